//! `demiurge serve`: starts every subsystem in order, reports each on the status board, waits
//! for SIGTERM or SIGINT, and stops them in reverse order. If any subsystem cannot start, the
//! ones already running are stopped and the error names the subsystem and the address.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use demiurge_web::SubsystemState;

use crate::app::{App, AppError, AppState, Metrics};
use crate::config::{Config, ConfigError, DatabaseUrl, redact_url};
use crate::db::{Db, DbError};
use crate::dns::{Dns, DnsError};
use crate::edge::certs::{self, CertError};
use crate::edge::{Edge, EdgeError, EdgeSettings};
use crate::status::{StatusBoard, Subsystem};
use crate::vpn::{Vpn, VpnError, VpnSettings};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Edge(#[from] EdgeError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    Vpn(#[from] VpnError),
    #[error(transparent)]
    Acme(#[from] crate::acme::AcmeError),
    #[error("secrets: {0}")]
    Seal(#[from] crate::sealed::SealError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// Everything that has started so far; stopped in reverse order.
#[derive(Default)]
struct Running {
    db: Option<Db>,
    app: Option<App>,
    edge: Option<Edge>,
    dns: Option<Dns>,
    vpn: Option<Vpn>,
    acme: Option<crate::acme::Acme>,
    backups: Option<crate::backup::Scheduler>,
    /// The containers' state reports (stopped before the gateways).
    container_reports: Option<(
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Running {
    /// Stops everything, giving up after [`STOP_DEADLINE`] (the process exits anyway).
    async fn stop_within_deadline(self, status: &StatusBoard) {
        if tokio::time::timeout(STOP_DEADLINE, self.stop(status))
            .await
            .is_err()
        {
            tracing::warn!(
                "some subsystem did not stop within {} s",
                STOP_DEADLINE.as_secs()
            );
        }
    }

    async fn stop(self, status: &StatusBoard) {
        // Not ready from the first moment of stopping: a page waiting to reload (it polls
        // `/readyz`) must not reload into a server that is about to close its listener.
        if self.app.is_some() {
            status.set(Subsystem::App, SubsystemState::Stopping, "");
        }
        if let Some(acme) = self.acme {
            acme.stop().await;
        }
        if let Some(b) = self.backups {
            b.stop().await;
        }
        if let Some(vpn) = self.vpn {
            status.set(Subsystem::Vpn, SubsystemState::Stopping, "");
            vpn.stop().await;
        }
        if let Some(dns) = self.dns {
            status.set(Subsystem::Dns, SubsystemState::Stopping, "");
            dns.stop().await;
        }
        if let Some((stop, task)) = self.container_reports {
            stop.cancel();
            let _ = task.await;
        }
        if let Some(app) = &self.app {
            app.stop_gateways().await;
        }
        if let Some(edge) = self.edge {
            status.set(Subsystem::Edge, SubsystemState::Stopping, "");
            edge.stop().await;
        }
        if let Some(app) = self.app {
            app.stop().await;
        }
        if let Some(db) = self.db {
            db.close().await;
        }
    }
}

/// Runs until SIGTERM/SIGINT. Returns an error if something could not start.
pub async fn serve(cfg: Config) -> Result<(), ServeError> {
    let t0 = Instant::now();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signals)?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(ServeError::Signals)?;
    let status = StatusBoard::new();
    let mut running = Running::default();
    let started = tokio::select! {
        r = start_all(&cfg, &status, &mut running) => r,
        _ = terminate.recv() => Ok(()),
        _ = interrupt.recv() => Ok(()),
    };
    if let Err(e) = started {
        tracing::error!(error = %e, "start failed; stopping what had started");
        running.stop_within_deadline(&status).await;
        return Err(e);
    }
    if status.ready() {
        tracing::info!(elapsed_ms = t0.elapsed().as_millis() as u64, "ready");
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
    }
    let t1 = Instant::now();
    running.stop_within_deadline(&status).await;
    tracing::info!(elapsed_ms = t1.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

async fn start_all(
    cfg: &Config,
    status: &StatusBoard,
    running: &mut Running,
) -> Result<(), ServeError> {
    crate::fsutil::private_dir(&cfg.server.data_dir).map_err(|e| {
        ConfigError::Invalid(format!(
            "server.data_dir: cannot create {}: {e}",
            cfg.server.data_dir.display()
        ))
    })?;

    // Database first: everything else keeps its state there.
    let url = cfg.database_url()?;
    let db = Db::connect(&url, cfg.database.max_connections).await?;
    running.db = Some(db.clone());
    let applied = db.migrate().await?;
    let described = match &url {
        DatabaseUrl::Sqlite(p) => format!("sqlite {}", p.display()),
        DatabaseUrl::Postgres(u) => format!("postgres {}", redact_url(u)),
    };
    tracing::info!(database = %described, migrations_applied = applied, "database ready");
    status.set(Subsystem::Database, SubsystemState::Running, described);

    // App on an internal loopback port; only the edge (and the VPN) talk to it.
    let app_listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| AppError::Listen {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            source,
        })?;
    let metrics = Metrics::new()?;
    let state = AppState::new(status.clone(), metrics, db.clone(), cfg)?;
    // What an admin changed on the admin page overrides the config file from the start.
    state.instance.load().await?;
    // A new instance is claimed only with its setup code (made before the app answers).
    match state.auth.setup_code().await {
        Ok(Some(code)) => tracing::warn!(
            setup_code = %code,
            "this server has no account yet: its first account (the instance admin) signs up with this setup code, which `demiurge admin setup-code` prints again"
        ),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "the setup code could not be made; the first account must be made with `demiurge admin create-user`")
        }
    }
    let boards = Arc::new(crate::app::boards::BoardService::new(
        state.auth.clone(),
        state.orgs.clone(),
        state.gateways.clone(),
        format!("{}/", state.guard.service_url("{label}")),
    ));
    let shell = demiurge_web::Shell {
        instance_name: state.instance.watch_name(),
        boot_id: format!("{:08x}", rand::random::<u32>()),
        status: status.subscribe(),
        boards: boards.clone(),
    };
    let tls = state.tls.clone();
    let peer_changes = state.containers.peer_changes();
    let relays = state.containers.relays();
    let reports_stop = tokio_util::sync::CancellationToken::new();
    let guard = state.guard.clone();
    let reports = state
        .containers
        .spawn_reports(state.gateways.clone(), reports_stop.clone());
    let sweep = tokio::spawn(guard.clone().sweep(reports_stop.clone()));
    running.container_reports = Some((
        reports_stop,
        tokio::spawn(async move {
            let _ = tokio::join!(reports, sweep);
        }),
    ));
    let backups = state.backups.clone();
    let registry = state.metrics.registry().clone();
    let app = App::start(app_listener, state, shell, boards)?;
    let app_addr = app.addr();
    running.app = Some(app);
    status.set(
        Subsystem::App,
        SubsystemState::Running,
        format!("internal {app_addr}"),
    );

    // Edge.
    let certs = tls.certs.clone();
    if cfg.edge.https.0.is_some() {
        let key = certs::load_or_create_self_signed(
            &cfg.server.data_dir.join("tls"),
            &cfg.server.domain,
        )?;
        certs.set_fallback(key);
    }
    if cfg.edge.http.0.is_none() && cfg.edge.https.0.is_none() {
        status.set(
            Subsystem::Edge,
            SubsystemState::Off,
            "no listener configured",
        );
    } else {
        let edge = Edge::start(EdgeSettings {
            http: cfg.edge.http.0,
            https: cfg.edge.https.0,
            app: app_addr,
            handoff: running
                .app
                .as_ref()
                .map(App::door)
                .ok_or_else(|| EdgeError::Setup("the app is not running".into()))?,
            domain: cfg.server.domain.clone(),
            certs: certs.clone(),
            threads: cfg.edge.threads,
            public_https_port: cfg.public_https_port(),
            gate: Some(guard.clone()),
        })?;
        let waited = edge.wait_listening().await;
        running.edge = Some(edge);
        waited?;
        let detail = [
            cfg.edge.http.0.map(|a| format!("http://{a}")),
            cfg.edge.https.0.map(|a| format!("https://{a}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        status.set(Subsystem::Edge, SubsystemState::Running, detail);
    }

    // DNS.
    match cfg.dns.listen.0 {
        None => status.set(Subsystem::Dns, SubsystemState::Off, "dns.listen is empty"),
        Some(listen) => {
            let dns = Dns::start(listen, &cfg.server.domain, cfg.dns.public_ipv4).await?;
            status.set(
                Subsystem::Dns,
                SubsystemState::Running,
                format!("{} udp+tcp, zone {}", dns.addr(), dns.origin()),
            );
            running.dns = Some(dns);
        }
    }

    // ACME: stored certificates are served at once; orders run in the background.
    if cfg.acme.enabled() {
        let acme = crate::acme::Acme::start(
            crate::acme::AcmeSettings {
                domain: cfg.server.domain.trim_end_matches('.').to_ascii_lowercase(),
                email: cfg.acme.email.trim().to_string(),
                directory: cfg.acme.directory_url(),
                ca_root: Some(cfg.acme.ca_root.trim())
                    .filter(|p| !p.is_empty())
                    .map(std::path::PathBuf::from),
                wildcard: cfg.acme.wildcard,
                retry_after: cfg.acme.retry_after,
            },
            db.clone(),
            Arc::new(crate::sealed::Sealer::load_or_create(&cfg.server.data_dir)?),
            certs,
            tls.challenges.clone(),
            running.dns.as_ref().map(Dns::zone),
            running.dns.as_ref().map(Dns::addr),
            tls.acme.clone(),
            &registry,
        )
        .await?;
        running.acme = Some(acme);
    }

    // VPN: tunnel port 80 goes to the edge (so routing and headers are the same as outside).
    match cfg.vpn.listen.0 {
        None => status.set(Subsystem::Vpn, SubsystemState::Off, "vpn.listen is empty"),
        Some(listen) => {
            let forward_to = match cfg.edge.http.0 {
                Some(a) if a.ip().is_unspecified() => {
                    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), a.port())
                }
                Some(a) => a,
                None => app_addr,
            };
            let vpn = Vpn::start(
                VpnSettings {
                    listen,
                    subnet: cfg.vpn.subnet,
                    server_address: cfg.vpn.server_address(),
                    data_dir: cfg.server.data_dir.clone(),
                    forward_to,
                    changes: peer_changes,
                    relays,
                },
                db.clone(),
            )
            .await?;
            status.set(
                Subsystem::Vpn,
                SubsystemState::Running,
                format!("{} udp, server {}", vpn.addr(), cfg.vpn.server_address()),
            );
            guard.set_dialer(vpn.dialer());
            running.vpn = Some(vpn);
        }
    }

    if !cfg.backup.every.is_zero() {
        running.backups = Some(crate::backup::Scheduler::start(
            db.clone(),
            cfg.server.data_dir.clone(),
            cfg.backup.dir(&cfg.server.data_dir),
            cfg.backup.every,
            cfg.backup.keep,
            backups,
        ));
    }

    if let Some(url) = cfg.public_url() {
        println!("Demiurge is running at {url}");
    }
    Ok(())
}

/// How long `stop` may take in total before the process exits anyway.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);
