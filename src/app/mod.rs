//! The application server (actix-web): the API, the OAuth2/OIDC provider later, the LiveView
//! UI and its assets. It serves the client connections the edge hands it ([`workers`]), and
//! listens on an internal loopback address for the requests the edge proxies.

mod agent_files;
pub mod api;
pub mod boards;
pub mod client;
pub mod error;
pub mod hosts;
pub mod methods;
pub mod metrics;
pub mod pages;
pub mod ratelimit;
pub mod session;
pub mod upgrade;
pub mod workers;

use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::Service;
use actix_web::{App as ActixApp, web};
use futures::FutureExt;

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
    /// The instance's name and sign-up setting (admin-changeable).
    pub instance: crate::instance::Instance,
    /// User containers: enrollment, agents' credentials, routes.
    pub containers: crate::containers::Containers,
    /// The guard in front of container services (the edge's gate; the authorize page).
    pub guard: Arc<crate::containers::guard::Guard>,
    pub gateways: crate::gateway::GatewayRegistry,
    pub limits: ratelimit::RateLimits,
    pub status: StatusBoard,
    pub metrics: Metrics,
    pub db: Db,
    pub started_at: Instant,
    /// Hosts the app never answers for.
    container_hosts: crate::edge::ContainerHosts,
    openapi: String,
    /// What each path answers, for 405 and OPTIONS.
    methods: methods::MethodTable,
    /// The names requests may use (DNS rebinding).
    hosts: hosts::KnownHosts,
    /// `[server] trusted_proxies`.
    proxies: client::TrustedProxies,
    /// Open collaboration sockets per user (a cap).
    pub(crate) sockets: api::collab::SocketCounts,
    /// Certificates, ACME challenges and the HTTPS redirect.
    pub tls: Tls,
    /// What the backup scheduler last did.
    pub backups: crate::backup::ScheduleStatus,
    /// `[server] data_dir` (the admin page shows its free space).
    pub data_dir: std::path::PathBuf,
}

/// What the app shares with the edge and ACME about HTTPS.
#[derive(Clone)]
pub struct Tls {
    /// The edge's certificates (the app asks which names have a CA-issued one).
    pub certs: Arc<crate::edge::CertStore>,
    /// The port HTTPS is reached on from outside (`public_url`'s, else the listener's);
    /// `None`: HTTPS is off (nothing is redirected).
    pub https_port: Option<u16>,
    /// HTTP-01 answers of orders in progress.
    pub challenges: Arc<crate::acme::Challenges>,
    pub acme: crate::acme::AcmeStatus,
    /// The ACME directory, when ACME is on.
    pub directory: Option<String>,
}

impl Tls {
    fn new(cfg: &Config) -> Self {
        Self {
            certs: Arc::new(crate::edge::CertStore::default()),
            https_port: cfg.public_https_port(),
            challenges: Arc::new(crate::acme::Challenges::default()),
            acme: crate::acme::AcmeStatus::default(),
            directory: cfg.acme.enabled().then(|| cfg.acme.directory_url()),
        }
    }
}

/// Accounts and tenancy, wired together: the gateway's modules (whose permissions the
/// catalogue lists), organizations, and authentication.
pub struct Accounts {
    pub modules: crate::gateway::Modules,
    pub orgs: crate::orgs::Orgs,
    pub auth: Auth,
    pub instance: crate::instance::Instance,
}

impl Accounts {
    pub fn new(db: &Db, cfg: &Config) -> Result<Self, crate::auth::AuthError> {
        let modules = crate::gateway::modules::builtin();
        let mailer = crate::mail::Mailer::new(&cfg.mail)
            .map_err(|e| crate::auth::AuthError::Internal(e.to_string()))?;
        let instance = crate::instance::Instance::new(db.clone(), cfg);
        let orgs = crate::orgs::Orgs::new(
            db.clone(),
            mailer.clone(),
            &cfg.link_base(),
            instance.clone(),
            &modules.permissions(),
        );
        let auth = Auth::new(db.clone(), cfg, mailer, orgs.clone(), instance.clone())?;
        Ok(Self {
            modules,
            orgs,
            auth,
            instance,
        })
    }
}

impl AppState {
    pub fn new(
        status: StatusBoard,
        metrics: Metrics,
        db: Db,
        cfg: &Config,
    ) -> Result<Self, crate::auth::AuthError> {
        let Accounts {
            modules,
            orgs,
            auth,
            instance,
        } = Accounts::new(&db, cfg)?;
        let doc = api::openapi_document(&modules);
        let methods = methods::MethodTable::new(&doc, demiurge_web::get_paths(), &pages::PATHS);
        let openapi = api::render_document(&doc)
            .map_err(|e| crate::auth::AuthError::Internal(format!("openapi: {e}")))?;
        let gateways = crate::gateway::GatewayRegistry::new(
            db.clone(),
            cfg.gateway.clone(),
            modules,
            metrics.registry(),
        )
        .map_err(|e| crate::auth::AuthError::Internal(format!("metrics: {e}")))?;
        let containers = crate::containers::Containers::new(db.clone(), cfg);
        // A deleted container's credential, peer and routes go before its deleter's answer.
        gateways.observe(Arc::new(containers.clone()));
        // A create event naming the organization's catalogue entry gets the entry.
        gateways.prepare_with(Arc::new(containers.clone()));
        let guard = Arc::new(crate::containers::guard::Guard::new(
            auth.clone(),
            orgs.clone(),
            db.clone(),
            containers.clone(),
            cfg,
        ));
        Ok(Self {
            limits: ratelimit::RateLimits::new(&cfg.auth),
            orgs,
            gateways,
            containers,
            guard,
            auth,
            instance,
            status,
            metrics,
            db,
            started_at: Instant::now(),
            container_hosts: crate::edge::ContainerHosts::new(&cfg.server.domain),
            openapi,
            methods,
            hosts: hosts::KnownHosts::new(&cfg.server.domain, cfg.public_url().as_deref()),
            proxies: client::TrustedProxies::new(&cfg.server.trusted_proxies),
            sockets: api::collab::SocketCounts::default(),
            tls: Tls::new(cfg),
            backups: crate::backup::ScheduleStatus::default(),
            data_dir: cfg.server.data_dir.clone(),
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
    workers: workers::Workers,
    in_flight: Arc<AtomicUsize>,
    gateways: crate::gateway::GatewayRegistry,
    boards: Arc<boards::BoardService>,
}

/// Counts a request while it is being answered.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl App {
    /// Starts serving on `listener` (already bound, so the address is known before start).
    /// `boards` serves the board pages of `ui` (the app stops its feeds first when stopping).
    pub fn start(
        listener: TcpListener,
        state: AppState,
        ui: demiurge_web::Shell,
        boards: Arc<boards::BoardService>,
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
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        let factory = move || {
            let metrics = state.metrics.clone();
            let counter = counter.clone();
            let containers = state.container_hosts.clone();
            let hosts = state.hosts.clone();
            let proxies = state.proxies.clone();
            let tls = state.tls.clone();
            ActixApp::new()
                .app_data(state.clone())
                .app_data(proxies)
                .app_data(
                    web::JsonConfig::default()
                        .limit(JSON_LIMIT)
                        .error_handler(error::json_error),
                )
                // Raw bodies (a board file to import) may be as large as a JSON one.
                .app_data(web::PayloadConfig::new(JSON_LIMIT))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(
                    web::FormConfig::default()
                        .limit(64 * 1024)
                        .error_handler(error::form_error),
                )
                .wrap_fn(move |mut req, srv| {
                    let started = Instant::now();
                    let method = req.method().as_str().to_owned();
                    // HEAD runs the GET; the HTTP layer drops the body (methods.rs).
                    if req.method() == actix_web::http::Method::HEAD {
                        req.head_mut().method = actix_web::http::Method::GET;
                    }
                    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                    let metrics = metrics.clone();
                    let counted = InFlight::new(&counter);
                    // U+0000 cannot be stored in PostgreSQL text, and no id or search has it:
                    // a path holding one names nothing, a query holding one is refused.
                    let raw = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
                    if raw.contains("%00") || raw.contains('\0') {
                        let in_path = req.uri().path().contains("%00") || req.uri().path().contains('\0');
                        let err = if in_path {
                            ApiError::NotFound("no such route".into())
                        } else {
                            ApiError::Unprocessable {
                                code: crate::code::ErrorCode::InvalidInput,
                                message: "a query parameter holds the NUL character (U+0000), which is not accepted".into(),
                            }
                        };
                        return futures::future::Either::Left(futures::future::ready(Ok(
                            req.error_response(err)
                        )));
                    }
                    // A cookie rides along on a cross-site WebSocket open: the LiveView socket
                    // (which reads it to open boards) takes only our own pages' Origin.
                    if req.path() == demiurge_web::WS_PATH
                        && let Err(err) = session::check_origin(req.request(), false)
                    {
                        return futures::future::Either::Left(futures::future::ready(Ok(
                            req.error_response(err)
                        )));
                    }
                    let host = req
                        .headers()
                        .get(actix_web::http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .or_else(|| req.uri().host())
                        .unwrap_or_default();
                    if !hosts.accepts(host) && !containers.matches(host) {
                        let err = ApiError::UnknownHost(format!(
                            "this server does not answer for `{}`; its names are set by [server] domain and public_url",
                            host.chars().take(100).collect::<String>()
                        ));
                        return futures::future::Either::Left(futures::future::ready(Ok(
                            req.error_response(err)
                        )));
                    }
                    if asks_for_container(&req, &containers) {
                        // A client that reused an app connection for a container host (an
                        // HTTP/2 client coalescing connections, say) is told to open another,
                        // which the edge routes to the container.
                        let err = ApiError::Misdirected(
                            "this connection serves the app; open a new one for a container".into(),
                        );
                        return futures::future::Either::Left(futures::future::ready(Ok(
                            req.error_response(err)
                        )));
                    }
                    let https = ClientInfo::of(req.request()).scheme == "https";
                    if !https
                        && let Some(to) = crate::edge::https_redirect(
                            &tls.certs,
                            tls.https_port,
                            host,
                            req.uri()
                                .path_and_query()
                                .map(|p| p.as_str())
                                .unwrap_or("/"),
                        )
                    {
                        // A CA-issued certificate covers this name: HTTPS only from now on.
                        let res = actix_web::HttpResponse::PermanentRedirect()
                            .insert_header((actix_web::http::header::LOCATION, to))
                            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                            .finish();
                        return futures::future::Either::Left(futures::future::ready(Ok(
                            req.into_response(res)
                        )));
                    }
                    futures::future::Either::Right(srv.call(req).map(move |mut res| {
                        drop(counted);
                        if let Ok(r) = &mut res {
                            security_headers(r.headers_mut(), https);
                        }
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
                    }))
                })
                .configure(api::configure)
                .configure(pages::routes)
                .configure(agent_files::routes)
                .configure(ui.clone())
                .default_service(web::to(unrouted))
        };
        let workers = workers::Workers::start(workers::worker(factory), workers, listener)
            .map_err(|source| AppError::Listen { addr, source })?;
        Ok(App {
            addr,
            workers,
            in_flight,
            gateways,
            boards,
        })
    }

    /// Where the edge hands client connections.
    pub fn door(&self) -> Arc<dyn crate::edge::Handoff> {
        Arc::new(self.workers.door())
    }

    /// Closes every collaboration connection (1001) after making every project durable; the
    /// first step of stopping, while clients can still be told.
    pub async fn stop_gateways(&self) {
        self.boards.close();
        self.gateways.shutdown().await;
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (at most 3 s), then closes every
    /// connection.
    pub async fn stop(self) {
        // Gateways first: clients are told (1001), every project is durable and snapshotted.
        self.boards.close();
        self.gateways.shutdown().await;
        let deadline = Instant::now() + std::time::Duration::from_secs(3);
        while self.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.workers.stop().await;
    }
}

/// The headers every answer carries unless its handler chose its own: never framed, no
/// sniffing, a Content-Security-Policy (the UI's on pages, nothing at all allowed on
/// anything else: JSON, exports, errors), and HSTS when the request came over HTTPS.
fn security_headers(h: &mut actix_web::http::header::HeaderMap, https: bool) {
    use actix_web::http::header::{self, HeaderValue};
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let csp = if html {
        demiurge_web::CONTENT_SECURITY_POLICY
    } else {
        "default-src 'none'; frame-ancestors 'none'; sandbox"
    };
    let defaults = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, csp),
    ];
    for (name, value) in defaults {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    if https && !h.contains_key(header::STRICT_TRANSPORT_SECURITY) {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// Whether a request on a connection the app serves directly names a container host.
fn asks_for_container(
    req: &actix_web::dev::ServiceRequest,
    containers: &crate::edge::ContainerHosts,
) -> bool {
    req.conn_data::<workers::Direct>().is_some()
        && req
            .headers()
            .get(actix_web::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .is_some_and(|h| containers.matches(h))
}

/// A request no route took: a known path asked with another method (405, or 204 for
/// OPTIONS, with `Allow`), or no such path (404).
pub(crate) async fn unrouted(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<actix_web::HttpResponse, ApiError> {
    match state.methods.allow(req.path()) {
        Some(allow) if req.method() == actix_web::http::Method::OPTIONS => {
            Ok(actix_web::HttpResponse::NoContent()
                .insert_header((actix_web::http::header::ALLOW, allow))
                .finish())
        }
        Some(allow) => Err(ApiError::MethodNotAllowed {
            message: format!(
                "{} is not answered here; this path answers {allow}",
                req.method()
            ),
            allow,
        }),
        None => Err(ApiError::NotFound("no such route".into())),
    }
}
