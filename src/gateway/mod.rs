//! The collaboration gateway: per organization, the live documents of its projects (yrs, with
//! awareness), synced to every client with the y-websocket protocol, changed by events that
//! module reducers run, and made durable by an update log with group commit, snapshots and
//! history points.
//!
//! [`GatewayRegistry`] is the face: one [`Gateway`] per organization, started on first use
//! and stopped when idle; each loaded project is a task (`project::Project`) that owns its
//! document and handles everything about it in order.
//!
//! Invariants: a project answers nothing before its persisted state is loaded; no client
//! receives an update, and no event is acknowledged, before the log has committed it; an
//! unloaded project holds no memory and loses nothing.

mod mailbox;
pub mod module;
pub mod modules;
mod project;
mod undo;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use self::mailbox::Outbox;
pub use self::mailbox::{Delivery, Outlet};
pub use self::module::{
    Actor, EventError, Module, Modules, ParsedEvent, RootDef, RootKind, UserActor,
};
use self::project::ClientUser;
use self::project::{Cmd, JoinError, Out, Project, ProjectState};
pub use self::project::{EventOutcome, colour_of};
pub use self::writer::WriteError;
use self::writer::Writer;
pub use crate::config::GatewayConfig as Settings;
pub use crate::db::docs::HistoryPoint;
use crate::db::{Db, DbError};
use crate::orgs::{CONTENT_READ, CONTENT_WRITE, OrgAccess, ProjectAccess};

/// Starting and stopping an organization's gateway by hand.
pub const GATEWAY_MANAGE: &str = "gateway:gateway:manage";
/// Listing a project's history points.
pub const HISTORY_READ: &str = "gateway:history:read";
/// Saving a history point.
pub const HISTORY_CREATE: &str = "gateway:history:create";
/// Restoring a project to a history point.
pub const HISTORY_RESTORE: &str = "gateway:history:restore";

/// `Ok` when the access holds `permission`; otherwise what to answer (`forbidden`).
fn needs(may: bool, permission: &str, verb: &str) -> Result<(), GatewayError> {
    if may {
        Ok(())
    } else {
        Err(GatewayError::Forbidden(format!(
            "you may not {verb} (it needs `{permission}`)"
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("stored update {seq} of project {project} is unreadable: {reason}")]
    Corrupt {
        project: String,
        seq: i64,
        reason: String,
    },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("the update log refused a write: {0}")]
    Store(#[source] WriteError),
    /// A change held for an earlier write that failed.
    #[error("the change could not be stored (an earlier write of the project failed)")]
    NotStored,
    #[error("{0}")]
    Forbidden(String),
    /// An event only the gateway itself sends (`forbidden_event`).
    #[error("`{0}` is sent by the gateway only")]
    SystemOnly(String),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("the project has {0} clients, its limit")]
    RoomFull(usize),
    #[error("the project's document is at its size limit ({0} bytes)")]
    DocumentFull(i64),
    #[error("the project is unloading; try again")]
    Unloading,
    #[error("the project could not be loaded: {0}")]
    LoadFailed(String),
    #[error("no history point `{0}` in this project")]
    NoSuchPoint(String),
}

/// How a connection was closed (WebSocket close code and reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    pub const GOING_AWAY: Close = Close {
        code: 1001,
        reason: "the gateway stopped; reconnect",
    };
    pub const INVALID: Close = Close {
        code: 1007,
        reason: "malformed message",
    };
    pub const POLICY: Close = Close {
        code: 1008,
        reason: "only collaborative text may be written directly; use events",
    };
    pub const STORE_FAILED: Close = Close {
        code: 1011,
        reason: "an update could not be stored; reconnect",
    };
    pub const TOO_SLOW: Close = Close {
        code: 1013,
        reason: "too slow to keep up; reconnect",
    };
    pub const AUTH_EXPIRED: Close = Close {
        code: 4401,
        reason: "signed out or credential expired",
    };
    pub const PERMISSION_LOST: Close = Close {
        code: 4403,
        reason: "no longer allowed to see this project",
    };
    pub const DELETED: Close = Close {
        code: 4404,
        reason: "the project was deleted",
    };
    pub const DOCUMENT_FULL: Close = Close {
        code: 4413,
        reason: "the project's document is at its size limit; it can be read, not grown",
    };
    pub const ROOM_FULL: Close = Close {
        code: 4429,
        reason: "the project has as many clients as it allows",
    };
}

/// What the gateway counts (registered in the process's Prometheus registry).
#[derive(Clone)]
pub struct GatewayMetrics {
    pub gateways_running: prometheus::IntGauge,
    pub documents_loaded: prometheus::IntGauge,
    pub document_bytes: prometheus::IntGauge,
    pub clients_connected: prometheus::IntGauge,
    pub updates: prometheus::IntCounter,
    pub refused_writes: prometheus::IntCounter,
    pub kicked: prometheus::IntCounter,
    pub events: prometheus::IntCounter,
    pub events_refused: prometheus::IntCounter,
    pub event_seconds: prometheus::Histogram,
    pub append_seconds: prometheus::Histogram,
    pub append_batch: prometheus::Histogram,
    pub load_seconds: prometheus::Histogram,
    pub compactions: prometheus::IntCounter,
    pub compaction_seconds: prometheus::Histogram,
    pub history_points: prometheus::IntCounter,
}

impl GatewayMetrics {
    fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge};
        let secs = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(vec![
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
            ]))
        };
        let m = Self {
            gateways_running: IntGauge::new("gateways_running", "Organization gateways running")?,
            documents_loaded: IntGauge::new(
                "collab_documents_loaded",
                "Project documents held in memory",
            )?,
            document_bytes: IntGauge::new(
                "collab_document_bytes",
                "Encoded size of the documents held in memory (approximate)",
            )?,
            clients_connected: IntGauge::new(
                "collab_clients_connected",
                "Open collab WebSocket connections",
            )?,
            updates: IntCounter::new(
                "collab_updates_total",
                "Document changes logged (client updates, events, restores)",
            )?,
            refused_writes: IntCounter::new(
                "collab_refused_writes_total",
                "Direct updates refused (read-only client, or a module-owned root)",
            )?,
            kicked: IntCounter::new(
                "collab_clients_closed_total",
                "Connections the gateway closed (too slow, refused writes, stops, deletions)",
            )?,
            events: IntCounter::new("gateway_events_total", "Events applied")?,
            events_refused: IntCounter::new(
                "gateway_events_refused_total",
                "Events a reducer refused",
            )?,
            event_seconds: secs("gateway_event_seconds", "Time a reducer takes")?,
            append_seconds: secs(
                "collab_append_seconds",
                "Time to commit one batch of appends to the log",
            )?,
            append_batch: Histogram::with_opts(
                HistogramOpts::new("collab_append_batch_size", "Appends per commit")
                    .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0]),
            )?,
            load_seconds: secs("collab_load_seconds", "Time to load a project document")?,
            compactions: IntCounter::new(
                "collab_compactions_total",
                "Snapshots written (log folded into a snapshot)",
            )?,
            compaction_seconds: secs("collab_compaction_seconds", "Time to write a snapshot")?,
            history_points: IntCounter::new("collab_history_points_total", "History points saved")?,
        };
        registry.register(Box::new(m.gateways_running.clone()))?;
        registry.register(Box::new(m.documents_loaded.clone()))?;
        registry.register(Box::new(m.document_bytes.clone()))?;
        registry.register(Box::new(m.clients_connected.clone()))?;
        registry.register(Box::new(m.updates.clone()))?;
        registry.register(Box::new(m.refused_writes.clone()))?;
        registry.register(Box::new(m.kicked.clone()))?;
        registry.register(Box::new(m.events.clone()))?;
        registry.register(Box::new(m.events_refused.clone()))?;
        registry.register(Box::new(m.event_seconds.clone()))?;
        registry.register(Box::new(m.append_seconds.clone()))?;
        registry.register(Box::new(m.append_batch.clone()))?;
        registry.register(Box::new(m.load_seconds.clone()))?;
        registry.register(Box::new(m.compactions.clone()))?;
        registry.register(Box::new(m.compaction_seconds.clone()))?;
        registry.register(Box::new(m.history_points.clone()))?;
        Ok(m)
    }
}

/// The state of an organization's gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayState {
    Stopped,
    Running,
    Stopping,
}

/// One project as the gateway holds it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProjectStatus {
    pub project_id: String,
    /// `loading` until the persisted state is in memory, then `loaded`.
    pub state: &'static str,
    pub clients: usize,
}

/// `GET /api/v1/orgs/{org}/gateway`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct GatewayStatus {
    pub state: GatewayState,
    /// Seconds since it started (absent when stopped).
    pub uptime_seconds: Option<u64>,
    pub projects: Vec<ProjectStatus>,
    pub clients: usize,
}

impl GatewayStatus {
    fn stopped() -> Self {
        Self {
            state: GatewayState::Stopped,
            uptime_seconds: None,
            projects: Vec::new(),
            clients: 0,
        }
    }
}

#[derive(Clone)]
struct ProjectHandle {
    tx: mpsc::Sender<Cmd>,
    shared: Arc<ProjectState>,
}

impl ProjectHandle {
    async fn ended(&self) {
        let mut rx = self.shared.ended.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    }
}

/// One organization's gateway: its loaded projects.
pub struct Gateway {
    org_id: String,
    started: Instant,
    state: Mutex<GwState>,
    ended: watch::Sender<bool>,
}

struct GwState {
    stopping: bool,
    projects: HashMap<String, ProjectHandle>,
    idle_since: Instant,
}

impl Gateway {
    fn lock(&self) -> std::sync::MutexGuard<'_, GwState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self) -> GatewayStatus {
        let st = self.lock();
        let mut projects: Vec<ProjectStatus> = st
            .projects
            .iter()
            .map(|(id, h)| ProjectStatus {
                project_id: id.clone(),
                state: if h.shared.loaded.load(Ordering::Acquire) {
                    "loaded"
                } else {
                    "loading"
                },
                clients: h.shared.clients.load(Ordering::Relaxed),
            })
            .collect();
        projects.sort_by(|a, b| a.project_id.cmp(&b.project_id));
        GatewayStatus {
            state: if st.stopping {
                GatewayState::Stopping
            } else {
                GatewayState::Running
            },
            uptime_seconds: Some(self.started.elapsed().as_secs()),
            clients: projects.iter().map(|p| p.clients).sum(),
            projects,
        }
    }
}

struct RegistryInner {
    db: Db,
    settings: Arc<Settings>,
    modules: Arc<Modules>,
    metrics: GatewayMetrics,
    writer: Writer,
    gateways: Mutex<HashMap<String, Arc<Gateway>>>,
    /// Told of every user event once it is durable (see [`EventObserver`]).
    observers: std::sync::RwLock<Vec<Arc<dyn EventObserver>>>,
    /// Fill in user events before they are parsed (see [`EventPreparer`]).
    preparers: std::sync::RwLock<Vec<Arc<dyn EventPreparer>>>,
    /// The server's multi-threaded runtime: project tasks run there, not on the HTTP
    /// worker that happened to load them.
    rt: tokio::runtime::Handle,
}

/// Something outside the document that acts on a module's committed events (the
/// containers service forgets a deleted container's credential and routes). Called after
/// the event is durable and before its sender gets the answer; it never changes the event.
pub trait EventObserver: Send + Sync {
    fn committed<'a>(
        &'a self,
        org_id: &'a str,
        project_id: &'a str,
        kind: &'a str,
        result: &'a serde_json::Value,
    ) -> futures::future::BoxFuture<'a, ()>;
}

/// Something outside the document that fills in a person's event before it is parsed, with
/// what only the database knows (the containers service puts the organization's catalogue
/// entry into a create event that names one). It runs for every user event, so what it
/// fills in is never what the client sent; events the system sends do not pass it.
pub trait EventPreparer: Send + Sync {
    fn prepare<'a>(
        &'a self,
        org_id: &'a str,
        event: &'a mut serde_json::Value,
    ) -> futures::future::BoxFuture<'a, Result<(), GatewayError>>;
}

/// Every organization's gateway (the face of this subsystem). Cheap to clone.
#[derive(Clone)]
pub struct GatewayRegistry {
    inner: Arc<RegistryInner>,
}

/// A client's place in a project: frames in, frames out, and why it was closed.
pub struct Connection {
    conn: u64,
    tx: mpsc::Sender<Cmd>,
    /// The client's own frames; `None` for a client on an outlet.
    rx: Option<Outbox>,
}

impl Connection {
    /// A frame from the client (the project handles frames in order).
    pub async fn send(&self, data: Vec<u8>) -> bool {
        self.tx
            .send(Cmd::Frame {
                conn: self.conn,
                data,
            })
            .await
            .is_ok()
    }

    /// The next frame for the client; `None` once the gateway closed it (see [`Self::closed`]),
    /// and always for a client on an outlet (its transport gets its frames).
    pub async fn recv(&mut self) -> Option<Arc<[u8]>> {
        let rx = self.rx.as_mut()?;
        let mut one = Vec::with_capacity(1);
        std::future::poll_fn(|cx| rx.poll_recv_many(cx, &mut one, 1)).await;
        one.pop()
    }

    /// Why the gateway closed this connection, if it did.
    pub fn closed(&self) -> Option<Close> {
        self.rx.as_ref().and_then(|s| s.closed())
    }

    /// Resolves once the project is gone (its task ended): nothing more comes for the client.
    pub async fn project_gone(&self) {
        self.tx.closed().await
    }

    /// The client's id in the project.
    pub fn id(&self) -> u64 {
        self.conn
    }

    /// The client may (or may no longer) change the document.
    pub async fn set_writable(&self, writable: bool) {
        let _ = self
            .tx
            .send(Cmd::SetWritable {
                conn: self.conn,
                writable,
                holds: None,
            })
            .await;
    }

    /// What the client may do now (decided again after a membership or role changed):
    /// change the document, and the permissions it holds. Closed (4403) when it may no
    /// longer read.
    pub async fn set_access(&self, access: &ProjectAccess) {
        if !access.may(CONTENT_READ) {
            self.kick(Close::PERMISSION_LOST).await;
            return;
        }
        let _ = self
            .tx
            .send(Cmd::SetWritable {
                conn: self.conn,
                writable: access.may(CONTENT_WRITE),
                holds: Some(access.holds().clone()),
            })
            .await;
    }

    /// Closes it from outside (credential expired, permission lost).
    pub async fn kick(&self, close: Close) {
        let _ = self
            .tx
            .send(Cmd::Kick {
                conn: self.conn,
                close,
            })
            .await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let leave = Cmd::Leave { conn: self.conn };
        if let Err(mpsc::error::TrySendError::Full(leave)) = self.tx.try_send(leave) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(leave).await;
            });
        }
    }
}

/// Tries a command against a project, reloading it when it was just unloading.
const ATTEMPTS: usize = 5;

/// Client ids: unique in the process, so clients of a transport never clash across projects.
fn next_client_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl GatewayRegistry {
    /// Must be called inside the server's Tokio runtime (its tasks run there).
    pub fn new(
        db: Db,
        settings: Settings,
        modules: Modules,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        let metrics = GatewayMetrics::new(registry)?;
        let writer = Writer::start(db.clone(), metrics.clone());
        Ok(Self {
            inner: Arc::new(RegistryInner {
                db,
                settings: Arc::new(settings),
                modules: Arc::new(modules),
                metrics,
                writer,
                gateways: Mutex::default(),
                observers: std::sync::RwLock::default(),
                preparers: std::sync::RwLock::default(),
                rt: tokio::runtime::Handle::current(),
            }),
        })
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.inner.metrics
    }

    /// Adds an observer of committed user events.
    pub fn observe(&self, observer: Arc<dyn EventObserver>) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(observer);
    }

    /// Adds a preparer of user events.
    pub fn prepare_with(&self, preparer: Arc<dyn EventPreparer>) {
        self.inner
            .preparers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(preparer);
    }

    pub fn modules(&self) -> &Modules {
        &self.inner.modules
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Gateway>>> {
        self.inner
            .gateways
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the organization's gateway by hand (it also starts on first use).
    pub async fn start_for(&self, access: &OrgAccess) -> Result<GatewayStatus, GatewayError> {
        needs(
            access.may(GATEWAY_MANAGE),
            GATEWAY_MANAGE,
            "start this gateway",
        )?;
        self.start(access.org_id()).await;
        Ok(self.status(access.org_id()))
    }

    /// Stops the organization's gateway by hand: every client is closed (1001), every
    /// project made durable, snapshotted and unloaded before this returns.
    pub async fn stop_for(&self, access: &OrgAccess) -> Result<GatewayStatus, GatewayError> {
        needs(
            access.may(GATEWAY_MANAGE),
            GATEWAY_MANAGE,
            "stop this gateway",
        )?;
        Ok(self.stop(access.org_id()).await)
    }

    /// The organization's gateway: stopped, running or stopping; its projects and clients.
    pub fn status_for(&self, access: &OrgAccess) -> GatewayStatus {
        self.status(access.org_id())
    }

    /// The organization's gateway, started if it is not running (waits out a stop).
    async fn start(&self, org_id: &str) -> Arc<Gateway> {
        loop {
            let waiting = {
                let mut map = self.map();
                match map.get(org_id) {
                    Some(g) if !g.lock().stopping => return g.clone(),
                    Some(g) => g.ended.subscribe(),
                    None => {
                        let g = Arc::new(Gateway {
                            org_id: org_id.to_string(),
                            started: Instant::now(),
                            state: Mutex::new(GwState {
                                stopping: false,
                                projects: HashMap::new(),
                                idle_since: Instant::now(),
                            }),
                            ended: watch::channel(false).0,
                        });
                        map.insert(org_id.to_string(), g.clone());
                        self.inner.metrics.gateways_running.inc();
                        tracing::info!(org = org_id, "gateway started");
                        self.spawn_idle_watch(&g);
                        return g;
                    }
                }
            };
            let mut waiting = waiting;
            let _ = waiting.wait_for(|e| *e).await;
        }
    }

    /// Stops the organization's gateway when it has had no loaded project for `idle_stop`.
    fn spawn_idle_watch(&self, g: &Arc<Gateway>) {
        let weak = Arc::downgrade(g);
        let registry = self.clone();
        let idle_stop = self.inner.settings.idle_stop;
        let every = (idle_stop / 4).clamp(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_secs(10),
        );
        self.inner.rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(g) = weak.upgrade() else { return };
                let idle = {
                    let st = g.lock();
                    if st.stopping {
                        return;
                    }
                    st.projects.is_empty() && st.idle_since.elapsed() >= idle_stop
                };
                if idle {
                    tracing::info!(org = %g.org_id, "gateway idle; stopping");
                    registry.stop(&g.org_id).await;
                    return;
                }
            }
        });
    }

    /// Stops the organization's gateway: every client is closed (1001), every project made
    /// durable, snapshotted and unloaded. Returns when all of that is done.
    async fn stop(&self, org_id: &str) -> GatewayStatus {
        self.stop_with(org_id, Close::GOING_AWAY).await;
        GatewayStatus::stopped()
    }

    async fn stop_with(&self, org_id: &str, close: Close) {
        let Some(g) = self.map().get(org_id).cloned() else {
            return;
        };
        let handles: Option<Vec<ProjectHandle>> = {
            let mut st = g.lock();
            if st.stopping {
                None
            } else {
                st.stopping = true;
                Some(st.projects.values().cloned().collect())
            }
        };
        let Some(handles) = handles else {
            // Someone else is stopping it: wait for them.
            let mut rx = g.ended.subscribe();
            let _ = rx.wait_for(|e| *e).await;
            return;
        };
        for h in handles {
            let (done, wait) = oneshot::channel();
            if h.tx.send(Cmd::Stop { close, done }).await.is_ok() {
                let _ = wait.await;
            }
            h.ended().await;
        }
        {
            let mut map = self.map();
            if map.get(org_id).is_some_and(|x| Arc::ptr_eq(x, &g)) {
                map.remove(org_id);
                self.inner.metrics.gateways_running.dec();
            }
        }
        g.ended.send_replace(true);
        tracing::info!(org = org_id, "gateway stopped");
    }

    /// Stops every gateway (server shutdown): everything durable and snapshotted.
    pub async fn shutdown(&self) {
        let orgs: Vec<String> = self.map().keys().cloned().collect();
        for org in orgs {
            self.stop(&org).await;
        }
    }

    fn status(&self, org_id: &str) -> GatewayStatus {
        match self.map().get(org_id) {
            Some(g) => g.status(),
            None => GatewayStatus::stopped(),
        }
    }

    /// The project's task, spawned (loading) if it is not running.
    async fn project(&self, org_id: &str, project_id: &str) -> ProjectHandle {
        loop {
            let g = self.start(org_id).await;
            let mut st = g.lock();
            if st.stopping {
                continue;
            }
            if let Some(h) = st.projects.get(project_id) {
                return h.clone();
            }
            let (tx, rx) = mpsc::channel(1024);
            let shared = Arc::new(ProjectState {
                clients: Default::default(),
                loaded: Default::default(),
                ended: watch::channel(false).0,
            });
            let handle = ProjectHandle {
                tx,
                shared: shared.clone(),
            };
            st.projects.insert(project_id.to_string(), handle.clone());
            drop(st);
            let task = Project::new(
                project_id,
                self.inner.db.clone(),
                self.inner.writer.clone(),
                self.inner.modules.clone(),
                self.inner.settings.clone(),
                self.inner.metrics.clone(),
                shared.clone(),
            );
            let weak = Arc::downgrade(&g);
            let pid = project_id.to_string();
            self.inner.rt.spawn(async move {
                task.run(rx).await;
                // Out of the map before `ended` is set, so whoever waits on `ended` and tries
                // again gets a fresh task, which loads what this one wrote.
                if let Some(g) = weak.upgrade() {
                    let mut st = g.lock();
                    if st
                        .projects
                        .get(&pid)
                        .is_some_and(|h| Arc::ptr_eq(&h.shared, &shared))
                    {
                        st.projects.remove(&pid);
                        if st.projects.is_empty() {
                            st.idle_since = Instant::now();
                        }
                    }
                }
                shared.ended.send_replace(true);
            });
            return handle;
        }
    }

    /// Joins a client to a project (loading it first: nothing is answered before that); its
    /// frames wait in its own mailbox ([`Connection::recv`]).
    pub async fn connect(&self, access: &ProjectAccess) -> Result<Connection, GatewayError> {
        let user = ClientUser::of(access)?;
        let mut rx = None;
        let mut conn = self
            .join(
                access.org_id(),
                access.project_id(),
                user,
                next_client_id(),
                || {
                    let (out, outbox) = mailbox::mailbox(self.inner.settings.client_buffer);
                    rx = Some(outbox);
                    Out::Mailbox(out)
                },
            )
            .await?;
        conn.rx = rx;
        Ok(conn)
    }

    /// Joins client `id` (from [`Self::client_id`]) to a project, its frames delivered through
    /// `outlet`, where the transport knows the client by `id` (it must before joining: the
    /// first frames go out as soon as it is in).
    pub async fn connect_via(
        &self,
        access: &ProjectAccess,
        outlet: &Outlet,
        id: u64,
    ) -> Result<Connection, GatewayError> {
        let user = ClientUser::of(access)?;
        self.join(access.org_id(), access.project_id(), user, id, || {
            Out::Outlet(outlet.clone())
        })
        .await
    }

    /// A new client id, never given out before in this process.
    pub fn client_id(&self) -> u64 {
        next_client_id()
    }

    async fn join(
        &self,
        org_id: &str,
        project_id: &str,
        user: ClientUser,
        conn: u64,
        mut out: impl FnMut() -> Out,
    ) -> Result<Connection, GatewayError> {
        for _ in 0..ATTEMPTS {
            let h = self.project(org_id, project_id).await;
            let (reply, answer) = oneshot::channel();
            let join = Cmd::Join {
                conn,
                user: user.clone(),
                out: out(),
                reply,
            };
            if h.tx.send(join).await.is_err() {
                h.ended().await;
                continue;
            }
            match answer.await {
                Ok(Ok(())) => {
                    return Ok(Connection {
                        conn,
                        tx: h.tx.clone(),
                        rx: None,
                    });
                }
                Ok(Err(JoinError::Full(n))) => return Err(GatewayError::RoomFull(n)),
                Ok(Err(JoinError::Taken)) => {
                    return Err(GatewayError::Malformed(format!(
                        "client id {conn} is already in the project"
                    )));
                }
                Ok(Err(JoinError::Gone)) | Err(_) => h.ended().await,
            }
        }
        Err(GatewayError::Unloading)
    }

    /// May the access send events of type `kind`? Decided by the type alone, before any
    /// body is read: a refused sender learns nothing about what a valid event looks like.
    pub fn may_send(&self, access: &ProjectAccess, kind: &str) -> Result<(), GatewayError> {
        match self.inner.modules.gate_of(kind) {
            Some(module::Gate::SystemOnly) => {
                Err(GatewayError::SystemOnly(kind.chars().take(80).collect()))
            }
            Some(module::Gate::Needs(permission)) if !access.may(permission) => {
                Err(GatewayError::Forbidden(format!(
                    "`{}` needs `{permission}`",
                    kind.chars().take(80).collect::<String>()
                )))
            }
            // Unknown types are answered by the parse (`unknown_event`).
            _ => Ok(()),
        }
    }

    /// Runs an event (`{"type": "<module>:<verb>", ...}`) in the project: refused (403)
    /// unless the access holds the permission its module declares for the type, then parsed
    /// (400), then run. Events only the gateway sends are refused (`forbidden_event`).
    pub async fn event(
        &self,
        access: &ProjectAccess,
        mut value: serde_json::Value,
    ) -> Result<EventOutcome, GatewayError> {
        if let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) {
            self.may_send(access, kind)?;
        }
        let preparers = self
            .inner
            .preparers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for p in preparers {
            p.prepare(access.org_id(), &mut value).await?;
        }
        let event = self.inner.modules.parse(value)?;
        if event.system_only {
            return Err(GatewayError::SystemOnly(event.kind));
        }
        let actor = actor_of(access);
        let h = self.project(access.org_id(), access.project_id()).await;
        let (reply, answer) = oneshot::channel();
        if h.tx
            .send(Cmd::Event {
                actor,
                event,
                reply,
            })
            .await
            .is_err()
        {
            // The event was consumed by the send; the caller may simply retry.
            return Err(GatewayError::Unloading);
        }
        let outcome = answer.await.unwrap_or(Err(GatewayError::Unloading))?;
        self.notify_observers(access.org_id(), access.project_id(), &outcome)
            .await;
        Ok(outcome)
    }

    /// Runs an event as the server itself (`Actor::System`), such as the state reports of
    /// a container's agent: no person's permission applies, and events only the gateway
    /// sends are allowed. The project must exist (its id comes from the database).
    pub async fn system_event(
        &self,
        org_id: &str,
        project_id: &str,
        value: serde_json::Value,
    ) -> Result<EventOutcome, GatewayError> {
        for _ in 0..ATTEMPTS {
            let event = self.inner.modules.parse(value.clone())?;
            let h = self.project(org_id, project_id).await;
            let (reply, answer) = oneshot::channel();
            let cmd = Cmd::Event {
                actor: Actor::System,
                event,
                reply,
            };
            if h.tx.send(cmd).await.is_err() {
                h.ended().await;
                continue;
            }
            match answer.await {
                Ok(Err(GatewayError::Unloading)) | Err(_) => h.ended().await,
                Ok(r) => {
                    let outcome = r?;
                    self.notify_observers(org_id, project_id, &outcome).await;
                    return Ok(outcome);
                }
            }
        }
        Err(GatewayError::Unloading)
    }

    async fn notify_observers(&self, org_id: &str, project_id: &str, outcome: &EventOutcome) {
        let observers = self
            .inner
            .observers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for o in observers {
            o.committed(org_id, project_id, &outcome.kind, &outcome.result)
                .await;
        }
    }

    /// Undoes (`redo`: redoes) the user's last change in the project, as a new change every
    /// client receives. Refused (`locked`) when it would change a card the user may not
    /// change now, and `nothing_to_undo` / `nothing_to_redo` when there is none.
    pub async fn undo(
        &self,
        access: &ProjectAccess,
        redo: bool,
    ) -> Result<EventOutcome, GatewayError> {
        needs(
            access.may(CONTENT_WRITE),
            CONTENT_WRITE,
            "change this project",
        )?;
        let actor = actor_of(access);
        let h = self.project(access.org_id(), access.project_id()).await;
        let (reply, answer) = oneshot::channel();
        if h.tx.send(Cmd::Undo { actor, redo, reply }).await.is_err() {
            return Err(GatewayError::Unloading);
        }
        answer.await.unwrap_or(Err(GatewayError::Unloading))
    }

    async fn ask<T>(
        &self,
        org_id: &str,
        project_id: &str,
        make: impl Fn(oneshot::Sender<Result<T, GatewayError>>) -> Cmd,
    ) -> Result<T, GatewayError> {
        for _ in 0..ATTEMPTS {
            let h = self.project(org_id, project_id).await;
            let (reply, answer) = oneshot::channel();
            if h.tx.send(make(reply)).await.is_err() {
                h.ended().await;
                continue;
            }
            match answer.await {
                Ok(Err(GatewayError::Unloading)) | Err(_) => h.ended().await,
                Ok(r) => return r,
            }
        }
        Err(GatewayError::Unloading)
    }

    /// Saves a named history point of the project as it is now.
    pub async fn create_point(
        &self,
        access: &ProjectAccess,
        name: &str,
    ) -> Result<HistoryPoint, GatewayError> {
        needs(
            access.may(HISTORY_CREATE),
            HISTORY_CREATE,
            "save history points here",
        )?;
        self.ask(access.org_id(), access.project_id(), |reply| {
            Cmd::CreatePoint {
                name: name.to_string(),
                by: Some(access.user_id().to_string()),
                reply,
            }
        })
        .await
    }

    /// The project's history points, newest first.
    pub async fn history(&self, access: &ProjectAccess) -> Result<Vec<HistoryPoint>, GatewayError> {
        needs(
            access.may(HISTORY_READ),
            HISTORY_READ,
            "see this project's history",
        )?;
        Ok(self.inner.db.history_points(access.project_id()).await?)
    }

    /// Makes the project look as it did at a history point, as a new change every client
    /// receives. Returns the change's log position (absent if nothing differed).
    pub async fn restore(
        &self,
        access: &ProjectAccess,
        point_id: &str,
    ) -> Result<Option<i64>, GatewayError> {
        needs(
            access.may(HISTORY_RESTORE),
            HISTORY_RESTORE,
            "restore this project",
        )?;
        let (org_id, project_id) = (access.org_id(), access.project_id());
        let (_, state) = self
            .inner
            .db
            .history_data(project_id, point_id)
            .await?
            .ok_or_else(|| GatewayError::NoSuchPoint(point_id.chars().take(64).collect()))?;
        self.ask(org_id, project_id, |reply| Cmd::Restore {
            state: state.clone(),
            reply,
        })
        .await
    }

    /// The project's module roots as JSON (`{"seq": n, "roots": {...}}`).
    pub async fn document(
        &self,
        access: &ProjectAccess,
    ) -> Result<serde_json::Value, GatewayError> {
        needs(access.may(CONTENT_READ), CONTENT_READ, "read this project")?;
        self.ask(access.org_id(), access.project_id(), |reply| {
            Cmd::Document { reply }
        })
        .await
    }

    /// The project was deleted: its clients are closed (4404) and it unloads without writing.
    pub async fn project_deleted(&self, org_id: &str, project_id: &str) {
        let h = self
            .map()
            .get(org_id)
            .and_then(|g| g.lock().projects.get(project_id).cloned());
        if let Some(h) = h {
            let _ = h.tx.send(Cmd::Deleted).await;
            h.ended().await;
        }
    }

    /// The organization was deleted: its gateway stops, closing its clients with 4404.
    pub async fn org_deleted(&self, org_id: &str) {
        let handles: Vec<ProjectHandle> = self
            .map()
            .get(org_id)
            .map(|g| g.lock().projects.values().cloned().collect())
            .unwrap_or_default();
        for h in handles {
            let _ = h.tx.send(Cmd::Deleted).await;
            h.ended().await;
        }
        self.stop_with(org_id, Close::DELETED).await;
    }
}

/// The access's holder as an event's actor.
fn actor_of(access: &ProjectAccess) -> Actor {
    Actor::User(module::UserActor {
        id: access.user_id().to_string(),
        name: access.user_name().to_string(),
        holds: access.holds().clone(),
    })
}
