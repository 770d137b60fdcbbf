//! The front door (Pingora), in-process on its own threads with a shutdown signal we control.
//!
//! It listens on `[edge] http` (and `https`, with certificates from [`certs::CertStore`]),
//! routes `<anything>.containers.<domain>` to container services (a clear 404 page until
//! containers exist) and everything else to the app on its internal address, setting
//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`. WebSocket upgrades pass through.

pub mod certs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::oneshot;

/// How long an idle pooled connection to the app is kept (the app keeps them
/// [`crate::app::KEEP_ALIVE`], longer).
const UPSTREAM_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

pub use self::certs::CertStore;

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("edge: cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("edge: {0}")]
    Setup(String),
}

/// What the edge needs to start.
pub struct EdgeSettings {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// The app's internal address.
    pub app: SocketAddr,
    pub domain: String,
    pub certs: Arc<CertStore>,
    /// Proxy threads; 0 = one per core.
    pub threads: usize,
}

/// A running edge. Dropping it without [`Edge::stop`] leaves the threads running.
pub struct Edge {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct ChannelShutdown(tokio::sync::Mutex<Option<oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelShutdown {
    async fn recv(&self) -> ShutdownSignal {
        if let Some(rx) = self.0.lock().await.take() {
            let _ = rx.await;
        }
        ShutdownSignal::FastShutdown
    }
}

impl Edge {
    pub fn start(s: EdgeSettings) -> Result<Edge, EdgeError> {
        // Pingora binds inside its own threads and panics if it cannot; find out here first,
        // so a taken port is a clear error that names the edge and the address.
        for addr in [s.http, s.https].into_iter().flatten() {
            if addr.port() == 0 {
                return Err(EdgeError::Setup(format!(
                    "{addr}: the edge needs a fixed port, not 0"
                )));
            }
            drop(
                std::net::TcpListener::bind(addr)
                    .map_err(|source| EdgeError::Listen { addr, source })?,
            );
        }
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let conf = ServerConf {
            daemon: false,
            threads: if s.threads == 0 { cores } else { s.threads },
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        let containers_suffix = format!(".containers.{}", s.domain.to_ascii_lowercase());
        if let Some(addr) = s.http {
            let front = Front {
                app: s.app,
                tls: false,
                containers_suffix: containers_suffix.clone(),
            };
            let mut svc = http_proxy_service(&server.configuration, front);
            svc.add_tcp(&addr.to_string());
            server.add_service(svc);
        }
        if let Some(addr) = s.https {
            let front = Front {
                app: s.app,
                tls: true,
                containers_suffix,
            };
            let mut svc = http_proxy_service(&server.configuration, front);
            let mut tls =
                TlsSettings::intermediate("", "").map_err(|e| EdgeError::Setup(e.to_string()))?;
            tls.set_cert_resolver(s.certs.clone());
            tls.enable_h2();
            svc.add_tls_with_settings(&addr.to_string(), None, tls);
            server.add_service(svc);
        }
        let (tx, rx) = oneshot::channel();
        let watch = ChannelShutdown(tokio::sync::Mutex::new(Some(rx)));
        let thread = std::thread::Builder::new()
            .name("edge".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(watch),
                })
            })
            .map_err(|e| EdgeError::Setup(format!("cannot start the edge thread: {e}")))?;
        Ok(Edge {
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Waits until the listeners accept connections (bounded).
    pub async fn wait_listening(&self, addrs: &[SocketAddr]) -> Result<(), EdgeError> {
        for &addr in addrs {
            let target = if addr.ip().is_unspecified() {
                SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
            } else {
                addr
            };
            let mut ok = false;
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(target).await.is_ok() {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if !ok {
                return Err(EdgeError::Setup(format!("{addr} did not start listening")));
            }
        }
        Ok(())
    }

    /// Stops the listeners and joins the edge thread.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || t.join());
            if tokio::time::timeout(Duration::from_secs(4), joined)
                .await
                .is_err()
            {
                tracing::warn!("edge did not stop within 4 s");
            }
        }
    }
}

/// The proxy logic of one listener.
struct Front {
    app: SocketAddr,
    tls: bool,
    /// `.containers.<domain>`
    containers_suffix: String,
}

impl Front {
    /// The host the client asked for, lowercased, with its port if it gave one.
    fn host_with_port(session: &Session) -> String {
        let req = session.req_header();
        req.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri.authority().map(|a| a.as_str().to_string()))
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    /// The host name alone, for routing.
    fn host(session: &Session) -> String {
        strip_port(&Self::host_with_port(session))
            .trim_end_matches('.')
            .to_string()
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map(|h| h.trim_start_matches('['))
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

const NO_SUCH_SERVICE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>No such container service</title>\
<style>body{font:16px system-ui,sans-serif;margin:4rem auto;max-width:36rem;color:#1d2330}code{background:#eef0f4;padding:.1rem .3rem;border-radius:4px}</style>\
</head><body><h1>No such container service</h1><p>Nothing is registered at this address. A container's services appear \
here once its agent has joined the organization's network and registered them.</p></body></html>\n";

#[async_trait]
impl ProxyHttp for Front {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora::Result<bool> {
        let host = Self::host(session);
        if host.ends_with(&self.containers_suffix) {
            let body = Bytes::from_static(NO_SUCH_SERVICE.as_bytes());
            let mut resp = ResponseHeader::build(404, Some(4))?;
            resp.insert_header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")?;
            resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
            resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
            resp.insert_header("X-Demiurge-Error", "no_such_service")?;
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.app, false, String::new());
        // Pooled connections to the app are dropped well before the app's keep-alive
        // closes them, so a request never lands on a connection closing under it (a 502).
        peer.options.idle_timeout = Some(UPSTREAM_IDLE);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut (),
    ) -> pingora::Result<()> {
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string());
        if let Some(ip) = client_ip {
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) if !prev.is_empty() => format!("{prev}, {ip}"),
                _ => ip,
            };
            upstream.insert_header("X-Forwarded-For", xff)?;
        }
        upstream.insert_header("X-Forwarded-Proto", if self.tls { "https" } else { "http" })?;
        let host = Self::host_with_port(session);
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            upstream.remove_header("X-Forwarded-Host");
        } else {
            upstream.insert_header("X-Forwarded-Host", host)?;
        }
        // The X-Forwarded-* headers above are the only forwarding facts the app trusts.
        upstream.remove_header("Forwarded");
        // HTTP/1.0 clients may send no Host; the upstream hop is HTTP/1.1, which requires one.
        if upstream.headers.get(http::header::HOST).is_none() {
            upstream.insert_header(http::header::HOST, self.app.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.b:8080"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
