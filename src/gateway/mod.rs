//! The collaboration gateway: each project's live document (a yrs `Doc` with its awareness),
//! synced to every client with the y-websocket protocol, and made durable by an update log.
//!
//! [`Gateways`] is the face. This first part holds one room per loaded project; the
//! per-organization gateway lifecycle, events and module reducers, group commit, snapshots
//! and unloading come next (issue "Collaboration gateway").
//!
//! Invariants: a room answers nothing before its persisted state is loaded; an update is
//! appended to the database before it is applied and sent to anyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{OnceCell, broadcast};
use yrs::sync::{Awareness, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::db::{Db, DbError};

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
}

/// Frames a slow client may fall behind by before it is disconnected.
pub const CLIENT_BUFFER: usize = 1024;

/// One frame for the other clients of a room: (sender connection, bytes).
pub type Frame = (u64, Arc<Vec<u8>>);

/// A loaded project document.
pub struct Room {
    project_id: String,
    loaded: OnceCell<()>,
    awareness: Mutex<Awareness>,
    /// Serialises appends, so the log order is the order clients see.
    next_seq: tokio::sync::Mutex<i64>,
    tx: broadcast::Sender<Frame>,
    metrics: GatewayMetrics,
}

/// What a connection's message led to.
#[derive(Debug, Default)]
pub struct Handled {
    /// Frames for this connection only.
    pub replies: Vec<Vec<u8>>,
    /// Awareness client ids this connection spoke for (removed when it leaves).
    pub awareness_clients: Vec<yrs::block::ClientID>,
    /// A document update was refused (read-only connection).
    pub refused_write: bool,
}

impl Room {
    fn new(project_id: &str, metrics: GatewayMetrics) -> Self {
        Self {
            project_id: project_id.to_string(),
            loaded: OnceCell::new(),
            awareness: Mutex::new(Awareness::new(Doc::new())),
            next_seq: tokio::sync::Mutex::new(1),
            tx: broadcast::channel(CLIENT_BUFFER).0,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Awareness> {
        self.awareness.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn load(&self, db: &Db) -> Result<(), GatewayError> {
        self.loaded
            .get_or_try_init(|| async {
                let updates = db.updates_of(&self.project_id).await?;
                let mut last = 0;
                {
                    let aw = self.lock();
                    let mut txn = aw.doc().transact_mut();
                    for (seq, data) in &updates {
                        let corrupt = |reason: String| GatewayError::Corrupt {
                            project: self.project_id.clone(),
                            seq: *seq,
                            reason,
                        };
                        let u = Update::decode_v1(data).map_err(|e| corrupt(e.to_string()))?;
                        txn.apply_update(u).map_err(|e| corrupt(e.to_string()))?;
                        last = *seq;
                    }
                }
                *self.next_seq.lock().await = last + 1;
                tracing::debug!(project = %self.project_id, updates = updates.len(), "document loaded");
                Ok::<(), GatewayError>(())
            })
            .await?;
        Ok(())
    }

    /// What a new connection gets first: the server's state vector (sync step 1) and the
    /// current awareness states.
    pub fn hello(&self) -> Vec<Vec<u8>> {
        let aw = self.lock();
        let sv = aw.doc().transact().state_vector();
        let mut out = vec![Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1()];
        if let Ok(update) = aw.update()
            && !update.clients.is_empty()
        {
            out.push(Message::Awareness(update).encode_v1());
        }
        out
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.tx.subscribe()
    }

    /// Handles one frame from connection `conn`.
    pub async fn handle(
        &self,
        db: &Db,
        conn: u64,
        writable: bool,
        frame: &[u8],
    ) -> Result<Handled, GatewayError> {
        let mut decoder = DecoderV1::from(frame);
        let messages: Vec<Message> = MessageReader::new(&mut decoder)
            .collect::<Result<_, _>>()
            .map_err(|e| GatewayError::Malformed(e.to_string()))?;
        let mut out = Handled::default();
        for msg in messages {
            match msg {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let diff = self.diff(&sv);
                    out.replies
                        .push(Message::Sync(SyncMessage::SyncStep2(diff)).encode_v1());
                }
                Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) => {
                    if !writable {
                        out.refused_write = true;
                        continue;
                    }
                    self.append(db, conn, u).await?;
                }
                Message::Awareness(update) => {
                    out.awareness_clients.extend(update.clients.keys().copied());
                    let encoded = Message::Awareness(update.clone()).encode_v1();
                    self.lock()
                        .apply_update(update)
                        .map_err(|e| GatewayError::Malformed(e.to_string()))?;
                    let _ = self.tx.send((conn, Arc::new(encoded)));
                }
                Message::AwarenessQuery => {
                    if let Ok(update) = self.lock().update() {
                        out.replies.push(Message::Awareness(update).encode_v1());
                    }
                }
                Message::Auth(_) | Message::Custom(..) => {}
            }
        }
        Ok(out)
    }

    fn diff(&self, sv: &StateVector) -> Vec<u8> {
        self.lock().doc().transact().encode_state_as_update_v1(sv)
    }

    /// Log, then apply, then tell the others: nobody sees an update the log does not have.
    async fn append(&self, db: &Db, conn: u64, update: Vec<u8>) -> Result<(), GatewayError> {
        let decoded =
            Update::decode_v1(&update).map_err(|e| GatewayError::Malformed(e.to_string()))?;
        let mut seq = self.next_seq.lock().await;
        let timer = self.metrics.append_seconds.start_timer();
        db.append_update(&self.project_id, *seq, &update, Utc::now().naive_utc())
            .await?;
        timer.observe_duration();
        *seq += 1;
        self.metrics.updates.inc();
        self.lock()
            .doc()
            .transact_mut()
            .apply_update(decoded)
            .map_err(|e| GatewayError::Malformed(e.to_string()))?;
        let frame = Message::Sync(SyncMessage::Update(update)).encode_v1();
        let _ = self.tx.send((conn, Arc::new(frame)));
        Ok(())
    }

    /// A connection left: its awareness states go, and the others are told.
    pub fn leave(&self, conn: u64, clients: &[yrs::block::ClientID]) {
        if clients.is_empty() {
            return;
        }
        let mut aw = self.lock();
        for c in clients {
            aw.remove_state(*c);
        }
        if let Ok(update) = aw.update_with_clients(clients.iter().copied()) {
            let _ = self
                .tx
                .send((conn, Arc::new(Message::Awareness(update).encode_v1())));
        }
    }

    /// The document's text root `name` (for tests and the UI).
    pub fn text(&self, name: &str) -> String {
        use yrs::GetString;
        let aw = self.lock();
        let txn = aw.doc().transact();
        txn.get_text(name)
            .map(|t| t.get_string(&txn))
            .unwrap_or_default()
    }
}

/// What the gateway counts (registered in the process's Prometheus registry).
#[derive(Clone)]
pub struct GatewayMetrics {
    pub documents_loaded: prometheus::IntGauge,
    pub clients_connected: prometheus::IntGauge,
    pub updates: prometheus::IntCounter,
    pub append_seconds: prometheus::Histogram,
}

impl GatewayMetrics {
    fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            documents_loaded: prometheus::IntGauge::new(
                "collab_documents_loaded",
                "Project documents held in memory",
            )?,
            clients_connected: prometheus::IntGauge::new(
                "collab_clients_connected",
                "Open collab WebSocket connections",
            )?,
            updates: prometheus::IntCounter::new(
                "collab_updates_total",
                "Document updates accepted (logged, applied and sent)",
            )?,
            append_seconds: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "collab_append_seconds",
                    "Time to append one update to the log",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ]),
            )?,
        };
        registry.register(Box::new(m.documents_loaded.clone()))?;
        registry.register(Box::new(m.clients_connected.clone()))?;
        registry.register(Box::new(m.updates.clone()))?;
        registry.register(Box::new(m.append_seconds.clone()))?;
        Ok(m)
    }
}

/// The loaded rooms.
#[derive(Clone)]
pub struct Gateways {
    db: Db,
    rooms: Arc<Mutex<HashMap<String, Arc<Room>>>>,
    metrics: GatewayMetrics,
}

impl Gateways {
    pub fn new(db: Db, registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        Ok(Self {
            db,
            rooms: Arc::default(),
            metrics: GatewayMetrics::new(registry)?,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// The project's room, loaded from the log (first use waits for the load).
    pub async fn room(&self, project_id: &str) -> Result<Arc<Room>, GatewayError> {
        let room = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            rooms
                .entry(project_id.to_string())
                .or_insert_with(|| {
                    self.metrics.documents_loaded.inc();
                    Arc::new(Room::new(project_id, self.metrics.clone()))
                })
                .clone()
        };
        room.load(&self.db).await?;
        Ok(room)
    }
}
