//! The application server (actix-web): the API, the OAuth2/OIDC provider later, the LiveView
//! UI and its assets. It listens only on an internal loopback address; the edge forwards to it.

pub mod api;
pub mod client;
pub mod error;
pub mod metrics;
pub mod pages;
pub mod ratelimit;
pub mod session;

use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use actix_web::dev::{ServerHandle, Service};
use actix_web::{App as ActixApp, HttpServer, web};
use futures::FutureExt;
use tokio::task::JoinHandle;

pub use self::client::ClientInfo;
pub use self::error::ApiError;
pub use self::metrics::Metrics;
use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::status::StatusBoard;

/// How long the app keeps an idle connection (from the edge) open; the edge drops its idle
/// connections sooner.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(120);

/// Largest JSON body the API accepts.
pub const JSON_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
pub struct AppState {
    pub auth: Auth,
    pub orgs: crate::orgs::Orgs,
    pub gateways: crate::gateway::GatewayRegistry,
    pub limits: ratelimit::RateLimits,
    pub status: StatusBoard,
    pub metrics: Metrics,
    pub db: Db,
    pub started_at: Instant,
    openapi: String,
}

impl AppState {
    pub fn new(
        status: StatusBoard,
        metrics: Metrics,
        db: Db,
        cfg: &Config,
    ) -> Result<Self, crate::auth::AuthError> {
        let auth = Auth::new(db.clone(), cfg)?;
        Ok(Self {
            limits: ratelimit::RateLimits::new(&cfg.auth),
            orgs: auth.orgs().clone(),
            gateways: crate::gateway::GatewayRegistry::new(
                db.clone(),
                cfg.gateway.clone(),
                crate::gateway::Modules::builtin(),
                metrics.registry(),
            )
            .map_err(|e| crate::auth::AuthError::Internal(format!("metrics: {e}")))?,
            auth,
            status,
            metrics,
            db,
            started_at: Instant::now(),
            openapi: api::openapi_document(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("app: cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running app server.
pub struct App {
    addr: SocketAddr,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
    gateways: crate::gateway::GatewayRegistry,
}

impl App {
    /// Starts serving on `listener` (already bound, so the address is known before start).
    pub fn start(
        listener: TcpListener,
        state: AppState,
        ui: demiurge_web::Shell,
    ) -> Result<App, AppError> {
        let addr = listener.local_addr().map_err(|source| AppError::Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let gateways = state.gateways.clone();
        let state = web::Data::new(state);
        let warm = state.auth.clone();
        tokio::spawn(async move { warm.warm_up().await });
        let ui = demiurge_web::configure(ui);
        let workers = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .clamp(1, 8);
        let server = HttpServer::new(move || {
            let metrics = state.metrics.clone();
            ActixApp::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(JSON_LIMIT)
                        .error_handler(error::json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(
                    web::FormConfig::default()
                        .limit(64 * 1024)
                        .error_handler(error::form_error),
                )
                .wrap_fn(move |req, srv| {
                    let started = Instant::now();
                    let method = req.method().as_str().to_owned();
                    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                    let metrics = metrics.clone();
                    srv.call(req).map(move |res| {
                        let status = match &res {
                            Ok(r) => r.status().as_u16(),
                            Err(e) => e.as_response_error().status_code().as_u16(),
                        };
                        metrics
                            .http_requests
                            .with_label_values(&[
                                method.as_str(),
                                route.as_str(),
                                &status.to_string(),
                            ])
                            .inc();
                        metrics
                            .http_duration
                            .with_label_values(&[route.as_str()])
                            .observe(started.elapsed().as_secs_f64());
                        res
                    })
                })
                .configure(api::routes)
                .configure(pages::routes)
                .configure(ui.clone())
                .default_service(web::to(not_found))
        })
        .keep_alive(KEEP_ALIVE)
        .disable_signals()
        .shutdown_timeout(3)
        .workers(workers)
        .listen(listener)
        .map_err(|source| AppError::Listen { addr, source })?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(App {
            addr,
            handle,
            task,
            gateways,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (bounded by the shutdown timeout).
    pub async fn stop(self) {
        // Gateways first: clients are told (1001), every project is durable and snapshotted.
        self.gateways.shutdown().await;
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}
