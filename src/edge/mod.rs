//! The front door (Pingora), in-process on its own threads with a shutdown signal we control.
//!
//! It listens on `[edge] http` (and `https`, with certificates from [`certs::CertStore`]).
//! Each new connection is routed once, by what it asks for first: `<anything>.containers.<domain>`
//! (the Host of a plain connection's first request, the SNI name of a TLS one) goes to the
//! Pingora proxy for container services (a clear 404 page until containers exist); everything
//! else is *handed* to the app ([`Handoff`]): the app serves the client's own connection, with
//! no second hop. A plain TCP connection moves to the app's threads whole (its first request is
//! only peeked at, never consumed); a TLS connection stays decrypted by the edge's TLS stream.
//! TLS connections that negotiated HTTP/2 stay with Pingora, which proxies each request to the
//! app's internal address with `X-Forwarded-For`, `-Proto` and `-Host` set (as it does for
//! requests on a container connection that ask for the app).

mod bridge;
pub mod certs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::ServerApp;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::HttpPeer;
use pingora::protocols::{ALPN, Stream};
use pingora::proxy::{HttpProxy, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::listening::Service;
use tokio::io::{AsyncRead, AsyncWrite};
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
    /// The app's internal address (for requests the edge proxies).
    pub app: SocketAddr,
    /// Where client connections for the app are handed.
    pub handoff: Arc<dyn Handoff>,
    pub domain: String,
    pub certs: Arc<CertStore>,
    /// Threads Pingora runs on; 0 = one per core.
    pub threads: usize,
    /// The port people reach HTTPS on (redirects point there); `None`: HTTPS is off.
    pub public_https_port: Option<u16>,
    /// Routing and the guard for container hosts; `None`: they answer 404.
    pub gate: Option<Arc<dyn ContainerGate>>,
}

/// A client connection's byte stream (TLS already terminated).
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientIo for T {}

/// The bytes of a connection handed to the app.
pub enum HandedIo {
    /// A plain TCP connection, moved whole (not yet registered with any runtime).
    Tcp(std::net::TcpStream),
    /// A TLS connection: the edge's decrypting stream.
    Tls(Box<dyn ClientIo>),
}

/// A client connection the app serves directly.
pub struct HandedConnection {
    pub io: HandedIo,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

impl HandedConnection {
    /// Whether the client reached us over TLS.
    pub fn tls(&self) -> bool {
        matches!(self.io, HandedIo::Tls(_))
    }
}

/// Whoever serves the app's connections (the app, in `serve`).
pub trait Handoff: Send + Sync {
    /// Takes the connection over; dropping it closes it.
    fn hand(&self, conn: HandedConnection);
}

/// A request for a container service, as the [`ContainerGate`] sees it.
#[derive(Debug, Clone)]
pub struct GateRequest {
    /// The host without its port, lowercase.
    pub host: String,
    /// Its first label (`<label>.containers.<domain>`).
    pub label: String,
    pub tls: bool,
    pub method: http::Method,
    pub path_and_query: String,
    /// The `Cookie` header, if any.
    pub cookies: Option<String>,
    pub origin: Option<String>,
    /// A WebSocket (or other) upgrade.
    pub upgrade: bool,
}

/// A byte stream to a container service (through the tunnel).
pub trait ServiceIo: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug> ServiceIo for T {}

/// Opens connections to container services.
#[async_trait]
pub trait ServiceDial: Send + Sync + std::fmt::Debug {
    async fn dial(&self, to: SocketAddr) -> std::io::Result<Box<dyn ServiceIo>>;
}

/// The request goes on to a container service.
pub struct Forward {
    /// The service's address (inside the tunnel).
    pub to: SocketAddr,
    pub dial: Arc<dyn ServiceDial>,
    /// Connections are pooled per group only (one person's, for one service).
    pub group: u64,
    /// Identity headers to add (after the client's own of these names are removed).
    pub headers: Vec<(&'static str, String)>,
    /// Cookies of the gate's own, removed before the request goes on.
    pub strip_cookies: Vec<&'static str>,
    /// Cancelled when the person loses access: their open connections close.
    pub revoked: tokio_util::sync::CancellationToken,
}

/// An answer the edge gives itself.
pub struct GateResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

pub enum GateDecision {
    Forward(Forward),
    Respond(GateResponse),
}

/// Who decides what a request for a container host gets: routing, and the guard in front
/// of every service. Without one the edge answers every container host with a 404 page.
#[async_trait]
pub trait ContainerGate: Send + Sync {
    async fn decide(&self, req: GateRequest) -> GateDecision;
}

/// Identity headers a client may never send to a container service (oauth2-proxy's and
/// their `X-Auth-Request-*` variants): the edge removes them before adding its own.
pub const IDENTITY_HEADERS: [&str; 8] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
];

/// A running edge. Dropping it without [`Edge::stop`] leaves the threads running.
pub struct Edge {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
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
        let containers = ContainerHosts::new(&s.domain);
        let conf = server.configuration.clone();
        let https_port = s.public_https_port;
        let bridges = Arc::new(
            bridge::Bridges::new()
                .map_err(|e| EdgeError::Setup(format!("the container bridges' directory: {e}")))?,
        );
        let door = |tls: bool| {
            let front = Front {
                app: s.app,
                tls,
                containers: containers.clone(),
                certs: s.certs.clone(),
                https_port,
                gate: s.gate.clone(),
                bridges: bridges.clone(),
            };
            let mut proxy = HttpProxy::new(front, conf.clone());
            proxy.handle_init_modules();
            ConnectionRouter {
                proxy: Arc::new(proxy),
                handoff: s.handoff.clone(),
                tls,
                containers: containers.clone(),
            }
        };
        if let Some(addr) = s.http {
            let mut svc = Service::new("edge http".into(), door(false));
            svc.add_tcp(&addr.to_string());
            server.add_service(svc);
        }
        if let Some(addr) = s.https {
            let mut svc = Service::new("edge https".into(), door(true));
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
            http: s.http,
            https: s.https,
        })
    }

    /// Waits until every listener accepts connections (bounded). The plain one is probed by
    /// connecting; the TLS one by its listening socket showing up (a connection that never
    /// says hello would be logged as a failed handshake).
    pub async fn wait_listening(&self) -> Result<(), EdgeError> {
        for (addr, tls) in [(self.http, false), (self.https, true)] {
            let Some(addr) = addr else { continue };
            let target = if addr.ip().is_unspecified() {
                SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
            } else {
                addr
            };
            let mut ok = false;
            for _ in 0..500 {
                ok = match tls.then(|| listening_on(addr.port())).flatten() {
                    Some(listening) => listening,
                    None => tokio::net::TcpStream::connect(target).await.is_ok(),
                };
                if ok {
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

/// Whether a TCP socket of this machine listens on `port` (from `/proc/net/tcp{,6}`); `None`
/// where that cannot be read.
fn listening_on(port: u16) -> Option<bool> {
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        let found = text.lines().skip(1).any(|line| {
            let mut cols = line.split_whitespace();
            let local = cols.nth(1).unwrap_or_default();
            let state = cols.nth(1).unwrap_or_default();
            state == "0A"
                && local
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        });
        if found {
            return Some(true);
        }
    }
    readable.then_some(false)
}

/// How long a new plain connection may take to say which host it wants.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a first request is looked at to find its host.
const HEAD_PEEK: usize = 8 * 1024;

/// Routes each new connection of one listener: to the container proxy, or to the app.
struct ConnectionRouter {
    proxy: Arc<HttpProxy<Front>>,
    handoff: Arc<dyn Handoff>,
    tls: bool,
    containers: ContainerHosts,
}

impl ConnectionRouter {
    /// Serves a connection through the Pingora proxy, reused requests included: a reused
    /// connection stays with the proxy (whose buffers may hold the next request), it is never
    /// peeked at and handed over again.
    async fn proxy(&self, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let mut next = self.proxy.process_new(stream, shutdown).await;
        while let Some(s) = next {
            next = self.proxy.process_new(s, shutdown).await;
        }
        None
    }

    /// A plain connection's first request host, peeked at (nothing is consumed), and the
    /// connection as a std socket the app can take. `None`: the client went away or said nothing.
    async fn peek_host(stream: &Stream) -> Option<(Option<String>, std::net::TcpStream)> {
        use std::os::fd::BorrowedFd;
        use tokio::io::unix::AsyncFd;
        // SAFETY: the descriptor belongs to `stream`, which outlives this call; we only
        // duplicate it.
        let fd = unsafe { BorrowedFd::borrow_raw(stream.id()) };
        let dup = std::net::TcpStream::from(fd.try_clone_to_owned().ok()?);
        // SAFETY: `dup` owns its descriptor, which stays open until `into_inner` gives it back.
        let afd = unsafe { AsyncFd::register(dup) }.ok()?;
        let mut buf = vec![0u8; HEAD_PEEK];
        let host = tokio::time::timeout(HEAD_TIMEOUT, async {
            loop {
                let mut ready = afd.readable().await.ok()?;
                match ready.try_io(|s| s.get_ref().peek(&mut buf)) {
                    Ok(Ok(0)) | Ok(Err(_)) => return None,
                    Ok(Ok(n)) => match head_host(&buf[..n], n == buf.len()) {
                        Head::Host(h) => return Some(Some(h)),
                        Head::Unknown => return Some(None),
                        // Wait for more bytes (the edge-triggered readiness is re-armed).
                        Head::NeedMore => ready.clear_ready(),
                    },
                    Err(_would_block) => {}
                }
            }
        })
        .await
        .ok()??;
        Some((host, afd.into_inner()))
    }
}

#[async_trait]
impl ServerApp for ConnectionRouter {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Read after the first bytes came (the TLS handshake, or the peeked request line):
        // by then a VPN bridge has registered its tunnel peer.
        let peer = || {
            stream
                .get_socket_digest()
                .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied())
                .map(crate::vpn::real_peer)
        };
        if self.tls {
            let sni = stream
                .get_ssl()
                .and_then(|t| t.server_name())
                .unwrap_or_default();
            if self.containers.matches(sni) || stream.selected_alpn_proto() == Some(ALPN::H2) {
                return self.proxy(stream, shutdown).await;
            }
            let peer = peer();
            self.handoff.hand(HandedConnection {
                io: HandedIo::Tls(Box::new(stream)),
                peer,
            });
            return None;
        }
        let (host, socket) = Self::peek_host(&stream).await?;
        let peer = peer();
        if host.as_deref().is_some_and(|h| self.containers.matches(h)) {
            drop(socket);
            return self.proxy(stream, shutdown).await;
        }
        // The app takes the socket; the edge's own handle on it goes (this closes only the
        // edge's descriptor, not the connection).
        drop(stream);
        self.handoff.hand(HandedConnection {
            io: HandedIo::Tcp(socket),
            peer,
        });
        None
    }

    async fn cleanup(&self) {
        self.proxy.cleanup().await;
    }
}

/// What a peeked request head says about its host.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Host(String),
    /// The head is complete (or as long as we look) and names no host.
    Unknown,
    NeedMore,
}

/// Finds the host of the first request in `buf` (HTTP/1.x): the absolute-form target's
/// authority, else the Host header. Only whole lines are read.
fn head_host(buf: &[u8], full: bool) -> Head {
    let mut lines = buf.split_inclusive(|&b| b == b'\n');
    let Some(first) = lines.next().filter(|l| l.ends_with(b"\n")) else {
        return if full { Head::Unknown } else { Head::NeedMore };
    };
    let target = first.split(|&b| b == b' ').nth(1).unwrap_or_default();
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            let end = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            return Head::Host(strip_port(&String::from_utf8_lossy(&rest[..end])).to_string());
        }
    }
    for line in lines {
        if !line.ends_with(b"\n") {
            break;
        }
        let line = line.trim_ascii();
        if line.is_empty() {
            return Head::Unknown;
        }
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:") {
            let value = String::from_utf8_lossy(line[5..].trim_ascii()).to_string();
            return Head::Host(strip_port(&value).to_string());
        }
    }
    if full { Head::Unknown } else { Head::NeedMore }
}

/// The proxy logic of one listener.
struct Front {
    app: SocketAddr,
    tls: bool,
    containers: ContainerHosts,
    certs: Arc<CertStore>,
    https_port: Option<u16>,
    gate: Option<Arc<dyn ContainerGate>>,
    /// Where requests for container services go (see [`bridge`]).
    bridges: Arc<bridge::Bridges>,
}

/// Where ACME's HTTP-01 challenges are asked for: always answered over plain HTTP.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The HTTPS address of a plain-HTTP request for `host` (perhaps with a port), when HTTPS is
/// on and a CA-issued certificate covers the host; `None`: answer it over HTTP. ACME
/// challenges are never redirected.
pub fn https_redirect(
    certs: &CertStore,
    https_port: Option<u16>,
    host: &str,
    path_and_query: &str,
) -> Option<String> {
    let port = https_port?;
    if path_and_query.starts_with(ACME_CHALLENGE_PREFIX) || !certs.covers(host) {
        return None;
    }
    let name = strip_port(host.trim()).trim_end_matches('.');
    let pq = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    Some(if port == 443 {
        format!("https://{name}{pq}")
    } else {
        format!("https://{name}:{port}{pq}")
    })
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
}

/// Which hosts are container services: `<anything>.containers.<domain>`.
#[derive(Debug, Clone)]
pub struct ContainerHosts {
    /// `.containers.<domain>`, lowercase.
    suffix: String,
}

impl ContainerHosts {
    pub fn new(domain: &str) -> Self {
        Self {
            suffix: format!(".containers.{}", domain.to_ascii_lowercase()),
        }
    }

    /// Whether `host`, as a client sent it (any case, perhaps with a port or a trailing dot),
    /// names a container service.
    pub fn matches(&self, host: &str) -> bool {
        let h = strip_port(host.trim()).trim_end_matches('.').as_bytes();
        let n = self.suffix.len();
        h.len() > n && h[h.len() - n..].eq_ignore_ascii_case(self.suffix.as_bytes())
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
    /// Where a request for a container service goes, once the gate let it through.
    type CTX = Option<Forward>;

    fn new_ctx(&self) -> Self::CTX {
        None
    }

    /// What an error log line says of the request: method, path and host, never the query
    /// (it may carry a token).
    fn request_summary(&self, session: &Session, _ctx: &Self::CTX) -> String {
        let req = session.req_header();
        format!(
            "{} {}, Host: {}",
            req.method,
            req.uri.path(),
            Self::host_with_port(session)
        )
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        let host = Self::host_with_port(session);
        if !self.tls
            && self.containers.matches(&host)
            && let Some(to) = https_redirect(
                &self.certs,
                self.https_port,
                &host,
                session
                    .req_header()
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/"),
            )
        {
            let mut resp = ResponseHeader::build(308, Some(3))?;
            resp.insert_header(http::header::LOCATION, to)?;
            resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
            resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
            session.write_response_header(Box::new(resp), true).await?;
            return Ok(true);
        }
        if self.containers.matches(&host)
            && let Some(gate) = &self.gate
        {
            let req = session.req_header();
            let header = |n: &str| {
                req.headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let name = strip_port(&host).trim_end_matches('.').to_string();
            let gate_req = GateRequest {
                label: name.split('.').next().unwrap_or_default().to_string(),
                host: name,
                tls: self.tls,
                method: req.method.clone(),
                path_and_query: req
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
                cookies: header("cookie"),
                origin: header("origin"),
                upgrade: session.is_upgrade_req(),
            };
            match gate.decide(gate_req).await {
                GateDecision::Forward(f) => {
                    *ctx = Some(f);
                    return Ok(false);
                }
                GateDecision::Respond(r) => {
                    let body = Bytes::from(r.body);
                    let mut resp = ResponseHeader::build(r.status, Some(r.headers.len() + 1))?;
                    for (k, v) in r.headers {
                        resp.append_header(k, v)?;
                    }
                    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
                    session
                        .write_response_header(Box::new(resp), body.is_empty())
                        .await?;
                    if !body.is_empty() {
                        session.write_response_body(Some(body), true).await?;
                    }
                    return Ok(true);
                }
            }
        }
        if self.containers.matches(&host) {
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
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        if let Some(f) = ctx {
            // Through the person's bridge for the service: pooled like any upstream.
            let path = self.bridges.path(f).map_err(|e| {
                pingora::Error::because(pingora::ErrorType::ConnectError, "the container bridge", e)
            })?;
            let mut peer = HttpPeer::new_uds(&path.to_string_lossy(), false, String::new())?;
            peer.group_key = f.group;
            peer.options.idle_timeout = Some(UPSTREAM_IDLE);
            return Ok(Box::new(peer));
        }
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
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        if let Some(f) = ctx {
            for h in IDENTITY_HEADERS {
                upstream.remove_header(h);
            }
            let kept: Option<String> = upstream
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .map(str::trim)
                .filter(|kv| {
                    let name = kv.split('=').next().unwrap_or_default();
                    !kv.is_empty() && !f.strip_cookies.contains(&name)
                })
                .map(str::to_string)
                .reduce(|a, b| format!("{a}; {b}"));
            upstream.remove_header(&http::header::COOKIE);
            if let Some(c) = kept {
                upstream.insert_header(http::header::COOKIE, c)?;
            }
            for (k, v) in &f.headers {
                upstream.insert_header(*k, v.as_str())?;
            }
        }
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| crate::vpn::real_peer(*a).ip().to_string());
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
    fn first_request_host() {
        use super::{Head, head_host};
        let h = |s: &str| head_host(s.as_bytes(), false);
        assert_eq!(
            h("GET / HTTP/1.1\r\nHost: A.containers.x:8080\r\n\r\n"),
            Head::Host("A.containers.x".into())
        );
        assert_eq!(
            h("GET / HTTP/1.1\r\nAccept: */*\r\nhOsT:  b\r\n"),
            Head::Host("b".into())
        );
        assert_eq!(
            h("GET http://c.d:1/x HTTP/1.1\r\nHost: e\r\n\r\n"),
            Head::Host("c.d".into())
        );
        assert_eq!(h("GET / HTTP/1.0\r\n\r\n"), Head::Unknown);
        assert_eq!(h("GET / HTTP/1.1\r\nHost: parti"), Head::NeedMore);
        assert_eq!(h("GET / HT"), Head::NeedMore);
        assert_eq!(head_host(b"GET / HT", true), Head::Unknown);
    }

    #[test]
    fn a_listening_socket_is_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(super::listening_on(port), Some(true));
        drop(l);
        assert_eq!(super::listening_on(port), Some(false));
    }

    #[test]
    fn container_hosts() {
        let c = super::ContainerHosts::new("Example.test");
        for h in [
            "a.containers.example.test",
            "A.Containers.EXAMPLE.test:8443",
            "a.containers.example.test.",
        ] {
            assert!(c.matches(h), "{h}");
        }
        for h in [
            "containers.example.test",
            "example.test",
            "a.containers.example.test.evil",
            "",
        ] {
            assert!(!c.matches(h), "{h}");
        }
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.b:8080"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
