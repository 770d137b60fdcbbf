//! The app's HTTP worker threads. Each runs one actix runtime with its own instance of the app
//! and serves two kinds of connections:
//!
//! - client connections the edge hands over ([`crate::edge::Handoff`]): the app talks to the
//!   client directly, knowing its address and whether it came over TLS ([`Direct`]);
//! - connections to the internal address (requests the edge proxies, and the VPN bridge), whose
//!   client facts come from the edge's `X-Forwarded-*` headers.
//!
//! Connections are spread round-robin over the workers, as actix-web's own server does.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::body::MessageBody;
use actix_http::{Extensions, HttpService, Protocol, Request, Response, h1};
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, fn_service, map_config,
};
use actix_web::dev::AppConfig;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use crate::edge::{ClientIo, HandedConnection, HandedIo, Handoff};

/// Facts about a client connection the app serves directly (not through the edge's proxy).
#[derive(Debug, Clone, Copy)]
pub struct Direct {
    pub peer: Option<SocketAddr>,
    pub tls: bool,
}

/// A connection on its way to a worker: handed over by the edge (its client facts are
/// known), or accepted on the internal address.
pub struct QueuedConnection {
    conn: HandedConnection,
    handed: bool,
}

/// A connection's bytes, as a worker serves them.
pub struct AppIo {
    inner: Inner,
    direct: Option<Direct>,
    /// Read before the connection's own bytes: a request head given back to be read again
    /// ([`super::upgrade`]).
    replay: Bytes,
}

impl AppIo {
    /// Makes `bytes` the next thing read, ahead of what the client sends.
    pub(super) fn replay(&mut self, bytes: Bytes) {
        self.replay = bytes;
    }
}

enum Inner {
    Tcp(tokio::net::TcpStream),
    Tls(Box<dyn ClientIo>),
}

impl AsyncRead for AppIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay.split_to(n));
            return Poll::Ready(Ok(()));
        }
        match &mut this.inner {
            Inner::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AppIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Tcp(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The running workers.
pub struct Workers {
    senders: Arc<Vec<mpsc::UnboundedSender<QueuedConnection>>>,
    next: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    accept: tokio::task::JoinHandle<()>,
}

/// The edge's way in: hands client connections to the workers.
#[derive(Clone)]
pub struct WorkerHandoff {
    senders: std::sync::Weak<Vec<mpsc::UnboundedSender<QueuedConnection>>>,
    next: Arc<AtomicUsize>,
}

impl WorkerHandoff {
    /// Gives the connection to the next worker; `false` once the workers are gone (dropping the
    /// connection closes it).
    fn send(&self, conn: QueuedConnection) -> bool {
        let Some(senders) = self.senders.upgrade() else {
            return false;
        };
        if !senders.is_empty() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % senders.len();
            // A worker that has stopped drops it too.
            let _ = senders[i].send(conn);
        }
        true
    }
}

impl Handoff for WorkerHandoff {
    fn hand(&self, conn: HandedConnection) {
        self.send(QueuedConnection { conn, handed: true });
    }
}

impl Workers {
    /// Starts `n` threads each running `worker` (see [`worker`]), and accepts on `listener`
    /// (the internal address).
    pub fn start(
        worker: impl FnOnce(mpsc::UnboundedReceiver<QueuedConnection>) + Send + Clone + 'static,
        n: usize,
        listener: std::net::TcpListener,
    ) -> std::io::Result<Workers> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut senders = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            let worker = worker.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("app-{i}"))
                    .spawn(move || worker(rx))?,
            );
        }
        let senders = Arc::new(senders);
        let next = Arc::new(AtomicUsize::new(0));
        let accept = {
            let door = WorkerHandoff {
                senders: Arc::downgrade(&senders),
                next: next.clone(),
            };
            tokio::spawn(async move {
                loop {
                    let (stream, peer) = match listener.accept().await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::debug!(error = %e, "app: accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let Ok(stream) = stream.into_std() else {
                        continue;
                    };
                    let conn = HandedConnection {
                        io: HandedIo::Tcp(stream),
                        peer: Some(peer),
                    };
                    if !door.send(QueuedConnection {
                        conn,
                        handed: false,
                    }) {
                        return;
                    }
                }
            })
        };
        Ok(Workers {
            senders,
            next,
            threads,
            accept,
        })
    }

    pub fn door(&self) -> WorkerHandoff {
        WorkerHandoff {
            senders: Arc::downgrade(&self.senders),
            next: self.next.clone(),
        }
    }

    /// Stops taking connections and ends the workers (their open connections close).
    pub async fn stop(self) {
        self.accept.abort();
        drop(self.senders);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        if tokio::time::timeout(Duration::from_secs(3), joined)
            .await
            .is_err()
        {
            tracing::warn!("app workers did not stop within 3 s");
        }
    }
}

/// One worker for [`Workers::start`]: an actix runtime serving the connections it is given
/// with its own instance of the app `factory` builds (the bounds are actix-web's own server's).
pub fn worker<F, I, S, B>(
    factory: F,
) -> impl FnOnce(mpsc::UnboundedReceiver<QueuedConnection>) + Send + Clone + 'static
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    move |mut rx| {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            // As actix-web's own server: a client gets 5 s to send a request head, and after an
            // answer that ends the connection (a 413 before the body was read, say) it gets a
            // second to take the answer before the socket closes, instead of a reset.
            let builder = || {
                HttpService::<AppIo, _, _, _, _>::build()
                    .keep_alive(super::KEEP_ALIVE)
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .on_connect_ext(|io: &AppIo, ext: &mut Extensions| {
                        if let Some(d) = io.direct {
                            ext.insert(d);
                        }
                    })
            };
            let app = || {
                factory()
                    .into_factory()
                    .map_err(|e| e.into().error_response())
            };
            let config = |_: ()| AppConfig::default();
            // Three instances of the app: the ordinary dispatcher's, the upgrade path's, and
            // the plain dispatcher's (no upgrade path) that upgrade requests the app does not
            // take over are replayed into.
            let built = async {
                let plain = builder()
                    .finish(map_config(app(), config))
                    .new_service(())
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let upgrading = app()
                    .new_service(AppConfig::default())
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let (plain, upgrading) = (Rc::new(plain), Rc::new(upgrading));
                let upgrade =
                    fn_service(move |(req, framed): (Request, Framed<AppIo, h1::Codec>)| {
                        let (plain, upgrading) = (plain.clone(), upgrading.clone());
                        async move {
                            super::upgrade::serve(req, framed, &*upgrading, &*plain).await;
                            Ok::<(), actix_web::Error>(())
                        }
                    });
                builder()
                    .upgrade(upgrade)
                    .finish(map_config(app(), config))
                    .new_service(())
                    .await
                    .map_err(|e| format!("{e:?}"))
            };
            let service = match built.await {
                Ok(s) => Rc::new(s),
                Err(e) => {
                    tracing::error!(error = %e, "app worker could not build the app");
                    return;
                }
            };
            while let Some(QueuedConnection { conn, handed }) = rx.recv().await {
                let HandedConnection { io, peer } = conn;
                let tls = matches!(io, HandedIo::Tls(_));
                let inner = match io {
                    HandedIo::Tcp(s) => match tokio::net::TcpStream::from_std(s) {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            Inner::Tcp(s)
                        }
                        Err(_) => continue,
                    },
                    HandedIo::Tls(s) => Inner::Tls(s),
                };
                let io = AppIo {
                    inner,
                    direct: handed.then_some(Direct { peer, tls }),
                    replay: Bytes::new(),
                };
                let service = service.clone();
                actix_web::rt::spawn(async move {
                    let _ = service.call((io, Protocol::Http1, peer)).await;
                });
            }
        });
    }
}
