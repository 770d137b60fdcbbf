//! One loaded project: a task that owns the document and its awareness, and handles, one at a
//! time, everything that reads or changes them (client frames, events, history, ticks).
//!
//! Durability: every change gets the next sequence number and goes to the group-commit
//! writer; nothing that depends on it (a broadcast, a sync reply, an event's answer) leaves
//! before the writer has committed it. So a client never holds an update the log lacks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use yrs::block::ClientID;
use yrs::sync::{Awareness, AwarenessUpdate, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{BranchID, Doc, ReadTxn, StateVector, Transact, Update};

use super::mailbox::{self, Delivery, Outlet};
use super::module::{Actor, Modules, ParsedEvent, RootKind};
use super::undo::{DirectWrites, UndoBook};
use super::writer::Writer;
use super::{Close, GatewayError, GatewayMetrics, Settings};
use crate::db::Db;
use crate::db::docs::{HistoryPoint, NewUpdate};

/// What waits for the writer: a reply to one connection, or a change for everyone but its
/// sender. Changes released together are merged into one frame, so a burst (one group
/// commit of many changes) costs each client one frame, not one per change.
enum Held {
    Reply {
        conn: u64,
        frame: Arc<[u8]>,
    },
    /// `at`: when the project took it (the merge wait counts from there).
    Change {
        from: u64,
        delta: Vec<u8>,
        at: Instant,
    },
}

/// Who a connection is.
#[derive(Debug, Clone)]
pub(crate) struct ClientUser {
    pub(super) user_id: String,
    pub(super) name: String,
    pub(super) writable: bool,
    /// The permissions the user holds on the project (a direct write to a card's text is
    /// checked against the card's lock with them).
    pub(super) holds: Arc<[&'static str]>,
}

impl ClientUser {
    /// The connection an access may open: reading needs `project:content:read`, writing
    /// directly `project:content:write` (the server's own reader never writes).
    pub(super) fn of(access: &crate::orgs::ProjectAccess) -> Result<Self, super::GatewayError> {
        super::needs(
            access.may(crate::orgs::CONTENT_READ),
            crate::orgs::CONTENT_READ,
            "read this project",
        )?;
        Ok(Self {
            user_id: access.user_id().to_string(),
            name: access.user_name().to_string(),
            writable: access.is_user() && access.may(crate::orgs::CONTENT_WRITE),
            holds: access.holds().clone(),
        })
    }

    fn actor(&self) -> Actor {
        Actor::User(super::module::UserActor {
            id: self.user_id.clone(),
            name: self.name.clone(),
            holds: self.holds.clone(),
        })
    }
}

/// Why a join was refused.
#[derive(Debug)]
pub(crate) enum JoinError {
    Full(usize),
    /// Another client of the project has this connection id.
    Taken,
    Gone,
}

/// What an event did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EventOutcome {
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the reducer answered (for example the id of a created node).
    #[schema(value_type = Object)]
    pub result: Value,
    /// The log position of the change; absent when the document did not change.
    pub seq: Option<i64>,
}

pub(crate) enum Cmd {
    Join {
        conn: u64,
        user: ClientUser,
        out: Out,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Frame {
        conn: u64,
        data: Vec<u8>,
    },
    SetWritable {
        conn: u64,
        writable: bool,
        holds: Option<Arc<[&'static str]>>,
    },
    Kick {
        conn: u64,
        close: Close,
    },
    Leave {
        conn: u64,
    },
    Event {
        actor: Actor,
        event: ParsedEvent,
        reply: oneshot::Sender<Result<EventOutcome, GatewayError>>,
    },
    /// Undoes (or redoes) the user's last change.
    Undo {
        actor: Actor,
        redo: bool,
        reply: oneshot::Sender<Result<EventOutcome, GatewayError>>,
    },
    CreatePoint {
        name: String,
        by: Option<String>,
        reply: oneshot::Sender<Result<HistoryPoint, GatewayError>>,
    },
    Restore {
        state: Vec<u8>,
        reply: oneshot::Sender<Result<Option<i64>, GatewayError>>,
    },
    /// The module roots as JSON.
    Document {
        reply: oneshot::Sender<Result<Value, GatewayError>>,
    },
    /// Close every client with `close`, make everything durable, write a snapshot, end.
    Stop {
        close: Close,
        done: oneshot::Sender<()>,
    },
    /// The project is gone: close every client, end without writing.
    Deleted,
}

/// What the gateway sees of a running project task.
pub(crate) struct ProjectState {
    pub clients: std::sync::atomic::AtomicUsize,
    pub loaded: std::sync::atomic::AtomicBool,
    pub ended: watch::Sender<bool>,
}

/// Where a client's frames go.
pub(crate) enum Out {
    /// Its own mailbox (a client read in this process).
    Mailbox(mailbox::Sender),
    /// A transport's outlet, shared with its other clients.
    Outlet(Outlet),
}

struct Member {
    out: Out,
    user: ClientUser,
    awareness: Vec<ClientID>,
    /// Awareness updates this connection may still send now (refilled over time).
    awareness_budget: f64,
    awareness_at: Instant,
}

/// Awareness client ids one connection may speak for (a page has one; a few for tabs that
/// share a socket).
const AWARENESS_IDS: usize = 4;
/// Largest awareness state (its JSON): a cursor, a name, a selection.
const AWARENESS_STATE: usize = 16 * 1024;
/// Awareness updates per second per connection, and the burst allowed; more are dropped
/// (presence is lossy: the next one says where the cursor is).
const AWARENESS_RATE: f64 = 30.0;
const AWARENESS_BURST: f64 = 60.0;

type EventReply = oneshot::Sender<Result<EventOutcome, GatewayError>>;
type Inflight = BoxFuture<'static, (i64, Result<(), super::writer::WriteError>)>;

pub(crate) struct Project {
    pub id: String,
    db: Db,
    writer: Writer,
    modules: Arc<Modules>,
    settings: Arc<Settings>,
    metrics: GatewayMetrics,
    shared: Arc<ProjectState>,
    awareness: Awareness,
    members: HashMap<u64, Member>,
    /// The outlets the members are on, and how many of them each: a broadcast is one delivery
    /// per outlet. (Members with a mailbox are counted in `mailboxes`.)
    outlets: Vec<(Outlet, usize)>,
    mailboxes: usize,
    /// The project id, shared by every delivery to an outlet.
    key: Arc<str>,
    /// Last sequence number given out.
    applied: i64,
    /// Last sequence number the writer has committed (everything up to it is durable).
    durable: i64,
    /// Sequence covered by the stored snapshot.
    snapshot_seq: i64,
    inflight: FuturesOrdered<Inflight>,
    held: VecDeque<(i64, Held)>,
    held_replies: VecDeque<(i64, EventReply, EventOutcome)>,
    /// Durable changes waiting to go out merged (see [`Self::merge_wait`]), and when the
    /// project took the oldest of them.
    unsent: Vec<(u64, Vec<u8>)>,
    unsent_since: Option<Instant>,
    compacting: Option<tokio::task::JoinHandle<()>>,
    /// The whole document as a sync step 2 frame, and the change it reflects.
    whole: Option<(i64, Arc<[u8]>)>,
    last_activity: Instant,
    last_point: Instant,
    changed_since_point: bool,
    bytes: i64,
    /// Each user's undo history in this project.
    undo: UndoBook,
    /// Which entries of client-writable roots a direct write changed.
    direct: DirectWrites,
}

/// A document with every module root created with its type. (A root that first arrives in a
/// remote update has no type yet, and yrs reports no change events for it.)
fn typed_doc(modules: &Modules) -> Doc {
    let d = Doc::new();
    for r in modules.roots() {
        match r.kind {
            RootKind::Map => {
                d.get_or_insert_map(r.name);
            }
            RootKind::Array => {
                d.get_or_insert_array(r.name);
            }
            RootKind::Text => {
                d.get_or_insert_text(r.name);
            }
        }
    }
    d
}

/// What a transaction changed, as an update; `None` when it changed nothing.
fn delta_of(txn: &yrs::TransactionMut<'_>) -> Option<Vec<u8>> {
    (!txn.insert_set().is_empty() || !txn.delete_set().is_empty()).then(|| txn.encode_update_v1())
}

fn malformed(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Malformed(e.to_string())
}

impl Project {
    pub(crate) fn new(
        id: &str,
        db: Db,
        writer: Writer,
        modules: Arc<Modules>,
        settings: Arc<Settings>,
        metrics: GatewayMetrics,
        shared: Arc<ProjectState>,
    ) -> Self {
        Self {
            id: id.to_string(),
            db,
            writer,
            modules,
            settings,
            metrics,
            shared,
            awareness: Awareness::new(Doc::new()),
            members: HashMap::new(),
            outlets: Vec::new(),
            mailboxes: 0,
            key: Arc::from(id),
            applied: 0,
            durable: 0,
            snapshot_seq: 0,
            inflight: FuturesOrdered::new(),
            held: VecDeque::new(),
            held_replies: VecDeque::new(),
            unsent: Vec::new(),
            unsent_since: None,
            compacting: None,
            whole: None,
            last_activity: Instant::now(),
            last_point: Instant::now(),
            changed_since_point: false,
            bytes: 0,
            undo: UndoBook::default(),
            direct: DirectWrites::default(),
        }
    }

    /// Rebuilds the document from the snapshot and the log after it.
    async fn load_doc(db: Db, id: String, modules: Arc<Modules>) -> Result<Loaded, GatewayError> {
        let (snapshot, updates) = read_log(db, id.clone()).await?;
        let snapshot_seq = snapshot.as_ref().map(|(s, _)| *s).unwrap_or(0);
        let doc = typed_doc(&modules);
        let mut loaded = Loaded {
            last: snapshot_seq,
            snapshot_seq,
            bytes: 0,
            fresh: snapshot.is_none() && updates.is_empty(),
            doc: doc.clone(),
        };
        {
            let mut txn = doc.transact_mut();
            for (seq, data) in snapshot.iter().chain(updates.iter()) {
                let corrupt = |reason: String| GatewayError::Corrupt {
                    project: id.clone(),
                    seq: *seq,
                    reason,
                };
                let u = Update::decode_v1(data).map_err(|e| corrupt(e.to_string()))?;
                txn.apply_update(u).map_err(|e| corrupt(e.to_string()))?;
                loaded.last = loaded.last.max(*seq);
                loaded.bytes += data.len() as i64;
            }
        }
        tracing::debug!(project = %id, snapshot = snapshot_seq, updates = updates.len(), "document loaded");
        Ok(loaded)
    }

    /// The task: load, then serve commands until stopped, idle or deleted.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let started = Instant::now();
        match Self::load_doc(self.db.clone(), self.id.clone(), self.modules.clone()).await {
            Ok(loaded) => {
                self.direct.watch(&loaded.doc, &self.modules);
                self.awareness = Awareness::new(loaded.doc);
                self.applied = loaded.last;
                self.durable = loaded.last;
                self.snapshot_seq = loaded.snapshot_seq;
                self.metrics.documents_loaded.inc();
                if loaded.fresh {
                    // A new document: the modules lay out their parts.
                    let delta = {
                        let mut txn = self.awareness.doc().transact_mut();
                        self.modules.init(&self.id, &mut txn);
                        txn.encode_update_v1()
                    };
                    self.log(delta, None).await;
                } else {
                    self.bytes = loaded.bytes;
                    self.metrics.document_bytes.add(loaded.bytes);
                }
                self.metrics
                    .load_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                tracing::error!(project = %self.id, error = %e, "cannot load the project document");
                rx.close();
                while let Some(cmd) = rx.recv().await {
                    refuse(cmd, &e);
                }
                return;
            }
        }
        self.shared
            .loaded
            .store(true, std::sync::atomic::Ordering::Release);

        let mut tick = tokio::time::interval(self.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut write_snapshot = true;
        loop {
            let flush_at = self.unsent_since.map(|since| since + self.merge_wait());
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    match cmd {
                        Cmd::Stop { close, done } => {
                            self.flush_unsent();
                            self.kick_all(close);
                            rx.close();
                            self.finish(&mut rx, true).await;
                            let _ = done.send(());
                            return;
                        }
                        Cmd::Deleted => {
                            self.kick_all(Close::DELETED);
                            write_snapshot = false;
                            break;
                        }
                        cmd => self.handle(cmd).await,
                    }
                }
                Some(first) = self.inflight.next(), if !self.inflight.is_empty() => {
                    // One commit answers many appends at once: take every answer that is
                    // already in, so they are released (and merged) together.
                    let mut answers = vec![first];
                    while let Some(Some(more)) = self.inflight.next().now_or_never() {
                        answers.push(more);
                    }
                    if let Some((seq, Err(e))) = answers.iter().find(|(_, r)| r.is_err()) {
                        tracing::error!(project = %self.id, seq, error = %e, "an update could not be stored; the project reloads");
                        self.kick_all(Close::STORE_FAILED);
                        self.fail_held();
                        write_snapshot = false;
                        break;
                    }
                    if let Some((seq, _)) = answers.last() {
                        self.made_durable(*seq);
                    }
                }
                _ = sleep_until(flush_at), if flush_at.is_some() => {
                    self.flush_unsent();
                }
                _ = tick.tick() => {
                    self.tick().await;
                    if self.members.is_empty()
                        && self.last_activity.elapsed() >= self.settings.project_idle_unload
                    {
                        tracing::debug!(project = %self.id, "unloading an idle project");
                        break;
                    }
                }
            }
        }
        rx.close();
        self.finish(&mut rx, write_snapshot).await;
    }

    /// Ends the task: refuse what is queued, wait for the writer, snapshot, free.
    async fn finish(&mut self, rx: &mut mpsc::Receiver<Cmd>, snapshot: bool) {
        while let Ok(cmd) = rx.try_recv() {
            refuse(cmd, &GatewayError::Unloading);
        }
        if self.drain_inflight().await.is_err() {
            self.fail_held();
        }
        if let Some(c) = self.compacting.take() {
            let _ = c.await;
        }
        if snapshot && self.durable > self.snapshot_seq {
            let state = self.state();
            if let Err(e) = self
                .db
                .compact(
                    &self.id,
                    self.durable,
                    &state,
                    chrono::Utc::now().naive_utc(),
                )
                .await
            {
                tracing::warn!(project = %self.id, error = %e, "final snapshot not written (the log still has everything)");
            } else {
                self.metrics.compactions.inc();
            }
        }
        self.kick_all(Close::GOING_AWAY);
        self.metrics.documents_loaded.dec();
        self.metrics.document_bytes.sub(self.bytes);
        // Frees the document now, before anyone waiting on `ended` loads it again.
        self.awareness = Awareness::new(Doc::new());
    }

    fn state(&self) -> Vec<u8> {
        self.awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Join {
                conn,
                user,
                out,
                reply,
            } => {
                if self.members.len() >= self.settings.max_clients_per_project {
                    let _ = reply.send(Err(JoinError::Full(self.settings.max_clients_per_project)));
                    return;
                }
                if self.members.contains_key(&conn) {
                    let _ = reply.send(Err(JoinError::Taken));
                    return;
                }
                self.last_activity = Instant::now();
                for frame in self.hello() {
                    match &out {
                        Out::Mailbox(m) => {
                            m.push(frame.into());
                        }
                        Out::Outlet(o) => o.push(Delivery::One {
                            conn,
                            frame: frame.into(),
                        }),
                    }
                }
                match &out {
                    Out::Mailbox(_) => self.mailboxes += 1,
                    Out::Outlet(o) => match self.outlets.iter_mut().find(|(x, _)| x.same(o)) {
                        Some((_, n)) => *n += 1,
                        None => self.outlets.push((o.clone(), 1)),
                    },
                }
                self.members.insert(
                    conn,
                    Member {
                        out,
                        user,
                        awareness: Vec::new(),
                        awareness_budget: AWARENESS_BURST,
                        awareness_at: Instant::now(),
                    },
                );
                self.count_clients();
                let _ = reply.send(Ok(()));
            }
            Cmd::Frame { conn, data } => {
                self.last_activity = Instant::now();
                if let Err(e) = self.frame(conn, &data).await {
                    let close = match e {
                        GatewayError::Forbidden(_) => Close::POLICY,
                        GatewayError::DocumentFull(_) => Close::DOCUMENT_FULL,
                        _ => Close::INVALID,
                    };
                    tracing::debug!(project = %self.id, conn, error = %e, "client frame refused; closing it");
                    self.kick(conn, close);
                }
            }
            Cmd::SetWritable {
                conn,
                writable,
                holds,
            } => {
                if let Some(m) = self.members.get_mut(&conn) {
                    m.user.writable = writable;
                    if let Some(h) = holds {
                        m.user.holds = h;
                    }
                }
            }
            Cmd::Kick { conn, close } => self.kick(conn, close),
            Cmd::Leave { conn } => self.leave(conn),
            Cmd::Event {
                actor,
                event,
                reply,
            } => {
                self.last_activity = Instant::now();
                self.event(actor, event, reply).await;
            }
            Cmd::Undo { actor, redo, reply } => {
                self.last_activity = Instant::now();
                self.undo(actor, redo, reply).await;
            }
            Cmd::CreatePoint { name, by, reply } => {
                let _ = reply.send(self.create_point(name, by, false).await);
            }
            Cmd::Restore { state, reply } => {
                self.last_activity = Instant::now();
                let _ = reply.send(self.restore(&state).await);
            }
            Cmd::Document { reply } => {
                let _ = reply.send(Ok(self.document()));
            }
            Cmd::Stop { .. } | Cmd::Deleted => {}
        }
    }

    /// Every module root as JSON, with the log position it reflects.
    fn document(&self) -> Value {
        use yrs::GetString;
        use yrs::types::ToJson;
        let txn = self.awareness.doc().transact();
        let mut roots = serde_json::Map::new();
        for r in self.modules.roots() {
            let v = match r.kind {
                RootKind::Map => txn
                    .get_map(r.name)
                    .map(|m| serde_json::to_value(m.to_json(&txn)).unwrap_or(Value::Null)),
                RootKind::Array => txn
                    .get_array(r.name)
                    .map(|a| serde_json::to_value(a.to_json(&txn)).unwrap_or(Value::Null)),
                RootKind::Text => txn
                    .get_text(r.name)
                    .map(|t| Value::String(t.get_string(&txn))),
            };
            roots.insert(r.name.to_string(), v.unwrap_or(Value::Null));
        }
        serde_json::json!({ "seq": self.applied, "roots": roots })
    }

    fn count_clients(&self) {
        self.shared
            .clients
            .store(self.members.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// What a new connection gets first: the state vector (sync step 1) and the awareness.
    fn hello(&self) -> Vec<Vec<u8>> {
        let sv = self.awareness.doc().transact().state_vector();
        let mut out = vec![Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1()];
        if let Ok(update) = self.awareness.update()
            && !update.clients.is_empty()
        {
            out.push(Message::Awareness(update).encode_v1());
        }
        out
    }

    async fn frame(&mut self, conn: u64, frame: &[u8]) -> Result<(), GatewayError> {
        let mut decoder = DecoderV1::from(frame);
        let messages: Vec<Message> = MessageReader::new(&mut decoder)
            .collect::<Result<_, _>>()
            .map_err(malformed)?;
        for msg in messages {
            match msg {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let frame = self.sync_step2(&sv);
                    // The diff may hold changes still on their way to the log.
                    self.reply_after(self.applied, conn, frame);
                }
                Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) => {
                    let writable = self
                        .members
                        .get(&conn)
                        .map(|m| m.user.writable)
                        .unwrap_or(false);
                    if !writable {
                        self.metrics.refused_writes.inc();
                        continue;
                    }
                    self.client_update(conn, &u).await?;
                }
                Message::Awareness(update) => self.client_awareness(conn, update)?,
                Message::AwarenessQuery => {
                    if let Ok(update) = self.awareness.update() {
                        self.send_now(conn, Message::Awareness(update).encode_v1().into());
                    }
                }
                Message::Auth(_) | Message::Custom(..) => {}
            }
        }
        Ok(())
    }

    /// The answer to a sync step 1. A new client (empty state vector) gets the whole
    /// document; that frame is kept until the next change, so clients joining together cost
    /// one encoding.
    fn sync_step2(&mut self, sv: &StateVector) -> Arc<[u8]> {
        if sv.is_empty()
            && let Some((at, frame)) = &self.whole
            && *at == self.applied
        {
            return frame.clone();
        }
        let diff = self
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(sv);
        let frame: Arc<[u8]> = Message::Sync(SyncMessage::SyncStep2(diff))
            .encode_v1()
            .into();
        if sv.is_empty() {
            self.whole = Some((self.applied, frame.clone()));
        }
        frame
    }

    /// Whether the document may take `more` bytes ([gateway] max_document_bytes).
    fn room_for(&self, more: usize) -> Result<(), GatewayError> {
        let max = self.settings.max_document_bytes;
        if self.bytes.saturating_add(more as i64) > max {
            return Err(GatewayError::DocumentFull(max));
        }
        Ok(())
    }

    /// A direct Yjs update from a client: only roots modules declare client-writable.
    async fn client_update(&mut self, conn: u64, bytes: &[u8]) -> Result<(), GatewayError> {
        self.room_for(bytes.len())?;
        let update = Update::decode_v1(bytes).map_err(malformed)?;
        let (delta, refused) = {
            let mut txn = self.awareness.doc().transact_mut();
            txn.apply_update(update).map_err(malformed)?;
            let delta = delta_of(&txn);
            txn.commit();
            // A change under a module-owned root, or a root no module declares.
            let refused = txn
                .changed_parent_types()
                .iter()
                .find_map(|b| match b.id() {
                    BranchID::Root(name) if !self.modules.client_writable(&name) => {
                        Some(name.to_string())
                    }
                    _ => None,
                })
                .or_else(|| {
                    txn.root_refs()
                        .map(|(name, _)| name)
                        .find(|name| !self.modules.declared(name))
                        .map(str::to_string)
                });
            (delta, refused)
        };
        let changed = self.direct.take();
        let refused = match refused {
            Some(root) => Some(format!("`{root}` is changed through events only")),
            None => self.direct_refusal(conn, &changed),
        };
        if let Some(why) = refused {
            self.metrics.refused_writes.inc();
            // The document holds a change the log does not: rebuild it from the log.
            self.rebuild().await?;
            return Err(GatewayError::Forbidden(why));
        }
        if let Some(delta) = delta {
            self.log(delta, Some(conn)).await;
        }
        Ok(())
    }

    /// Waits until the writer has answered every append (everything applied is durable).
    async fn drain_inflight(&mut self) -> Result<(), GatewayError> {
        while let Some((seq, result)) = self.inflight.next().await {
            result.map_err(GatewayError::Store)?;
            self.made_durable(seq);
        }
        Ok(())
    }

    /// Throws the in-memory document away and loads it again (after a refused direct write).
    async fn rebuild(&mut self) -> Result<(), GatewayError> {
        self.drain_inflight().await?;
        let loaded = Self::load_doc(self.db.clone(), self.id.clone(), self.modules.clone()).await?;
        // Undo histories point into the old document.
        self.undo = UndoBook::default();
        self.direct.watch(&loaded.doc, &self.modules);
        let states = self.awareness.update().ok();
        let mut aw = Awareness::new(loaded.doc);
        if let Some(s) = states {
            let _ = aw.apply_update(s);
        }
        self.awareness = aw;
        self.applied = loaded.last.max(self.applied);
        self.whole = None;
        Ok(())
    }

    fn client_awareness(&mut self, conn: u64, update: AwarenessUpdate) -> Result<(), GatewayError> {
        let Some(member) = self.members.get_mut(&conn) else {
            return Ok(());
        };
        let now = Instant::now();
        let refill = now.duration_since(member.awareness_at).as_secs_f64() * AWARENESS_RATE;
        member.awareness_budget = (member.awareness_budget + refill).min(AWARENESS_BURST);
        member.awareness_at = now;
        if member.awareness_budget < 1.0 {
            self.metrics.refused_writes.inc();
            return Ok(());
        }
        member.awareness_budget -= 1.0;
        let mut clients = HashMap::new();
        for (id, mut entry) in update.clients {
            // A connection speaks for its own client ids only.
            let theirs =
                self.awareness.iter().any(|(c, _)| c == id) && !member.awareness.contains(&id);
            if theirs {
                continue;
            }
            if entry.json.len() > AWARENESS_STATE {
                return Err(GatewayError::Malformed(format!(
                    "an awareness state is at most {AWARENESS_STATE} bytes"
                )));
            }
            let Some(stamped) = stamp_user(&entry.json, &member.user) else {
                return Err(GatewayError::Malformed(
                    "an awareness state is a JSON object (or null when leaving)".into(),
                ));
            };
            if !member.awareness.contains(&id) {
                if member.awareness.len() >= AWARENESS_IDS {
                    return Err(GatewayError::Malformed(format!(
                        "one connection speaks for at most {AWARENESS_IDS} awareness clients"
                    )));
                }
                member.awareness.push(id);
            }
            entry.json = stamped;
            clients.insert(id, entry);
        }
        if clients.is_empty() {
            return Ok(());
        }
        let update = AwarenessUpdate { clients };
        let frame: Arc<[u8]> = Message::Awareness(update.clone()).encode_v1().into();
        self.awareness.apply_update(update).map_err(malformed)?;
        self.broadcast_now(conn, frame);
        Ok(())
    }

    /// Gives `delta` the next sequence number, sends it to the writer, and queues it for
    /// everyone but `from` once it is durable.
    async fn log(&mut self, delta: Vec<u8>, from: Option<u64>) -> i64 {
        self.applied += 1;
        let seq = self.applied;
        self.changed_since_point = true;
        self.bytes += delta.len() as i64;
        self.metrics.document_bytes.add(delta.len() as i64);
        self.metrics.updates.inc();
        let at = Instant::now();
        let change = Held::Change {
            from: from.unwrap_or(0),
            delta: delta.clone(),
            at,
        };
        // A client's change waits for merging anyway, so its commit may wait as long; anything
        // else (an event, whose caller waits on the answer) is committed at once.
        let by = match from {
            Some(_) => at + self.merge_wait(),
            None => at,
        };
        let done = self
            .writer
            .append(
                NewUpdate {
                    project_id: self.id.clone(),
                    seq,
                    data: delta,
                    created_at: chrono::Utc::now().naive_utc(),
                },
                by,
            )
            .await;
        self.inflight.push_back(Box::pin(async move {
            let r = match done.await {
                Ok(r) => r,
                Err(_) => Err(super::writer::WriteError::Stopped),
            };
            (seq, r)
        }));
        // Always after the writer: this change has the newest sequence number.
        self.held.push_back((seq, change));
        seq
    }

    fn made_durable(&mut self, seq: i64) {
        self.durable = self.durable.max(seq);
        while self
            .held
            .front()
            .is_some_and(|(needs, _)| *needs <= self.durable)
        {
            match self.held.pop_front() {
                Some((_, Held::Change { from, delta, at })) => {
                    self.unsent_since.get_or_insert(at);
                    self.unsent.push((from, delta));
                }
                Some((_, Held::Reply { conn, frame })) => {
                    // In order: the changes released before this reply go first.
                    self.flush_unsent();
                    self.send_now(conn, frame);
                }
                None => break,
            }
        }
        if self
            .unsent_since
            .is_some_and(|since| since.elapsed() >= self.merge_wait())
        {
            self.flush_unsent();
        }
        while let Some((needs, _, _)) = self.held_replies.front() {
            if *needs > self.durable {
                break;
            }
            if let Some((_, reply, outcome)) = self.held_replies.pop_front() {
                let _ = reply.send(Ok(outcome));
            }
        }
        self.maybe_compact();
    }

    /// How long a change waits for others to go out with it: `clients / broadcast_budget`, so
    /// the project sends about `broadcast_budget` client frames a second however busy it is,
    /// within `broadcast_delay ..= broadcast_max_delay`. Counting from the oldest change (not
    /// from the last broadcast) bounds every change's wait and sends the fewest frames for it.
    fn merge_wait(&self) -> Duration {
        let s = &self.settings;
        let budget = s.broadcast_budget.max(1) as f64;
        Duration::from_secs_f64(self.members.len() as f64 / budget).clamp(
            s.broadcast_delay,
            s.broadcast_max_delay.max(s.broadcast_delay),
        )
    }

    /// Broadcasts the durable changes not sent yet.
    fn flush_unsent(&mut self) {
        if self.unsent.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.unsent);
        self.unsent_since = None;
        self.broadcast_changes(changes);
    }

    /// Sends durable changes as one update frame (merged when there are several). Everyone
    /// gets it but the sender, when a single client sent them all; otherwise everyone (a
    /// client applying its own change again changes nothing).
    fn broadcast_changes(&mut self, changes: Vec<(u64, Vec<u8>)>) {
        let Some((first, _)) = changes.first() else {
            return;
        };
        let first = *first;
        let except = if changes.iter().all(|(f, _)| *f == first) {
            first
        } else {
            0
        };
        let delta = if changes.len() == 1 {
            changes
                .into_iter()
                .next()
                .map(|(_, d)| d)
                .unwrap_or_default()
        } else {
            match yrs::merge_updates_v1(changes.iter().map(|(_, d)| d.as_slice())) {
                Ok(merged) => merged,
                Err(e) => {
                    // Never expected (each delta was encoded here); send them one by one.
                    tracing::warn!(project = %self.id, error = %e, "could not merge updates");
                    for (from, d) in changes {
                        let frame = Message::Sync(SyncMessage::Update(d)).encode_v1();
                        self.broadcast_now(from, frame.into());
                    }
                    return;
                }
            }
        };
        let frame = Message::Sync(SyncMessage::Update(delta)).encode_v1();
        self.broadcast_now(except, frame.into());
    }

    fn fail_held(&mut self) {
        self.held.clear();
        for (_, reply, _) in self.held_replies.drain(..) {
            let _ = reply.send(Err(GatewayError::NotStored));
        }
    }

    /// A frame for one connection that may depend on changes still on their way to the log.
    fn reply_after(&mut self, needs: i64, conn: u64, frame: Arc<[u8]>) {
        if needs <= self.durable && self.held.is_empty() {
            self.send_now(conn, frame);
        } else {
            self.held.push_back((needs, Held::Reply { conn, frame }));
        }
    }

    fn send_now(&mut self, conn: u64, frame: Arc<[u8]>) {
        let full = match self.members.get(&conn).map(|m| &m.out) {
            Some(Out::Mailbox(m)) => !m.push(frame),
            Some(Out::Outlet(o)) => {
                o.push(Delivery::One { conn, frame });
                false
            }
            None => false,
        };
        if full {
            self.kick(conn, Close::TOO_SLOW);
        }
    }

    /// To every member but `except`; a member whose buffer is full is dropped, not waited for.
    fn broadcast_now(&mut self, except: u64, frame: Arc<[u8]>) {
        for (o, _) in &self.outlets {
            o.push(Delivery::All {
                project: self.key.clone(),
                except,
                frame: frame.clone(),
            });
        }
        if self.mailboxes == 0 {
            return;
        }
        let mut slow = Vec::new();
        for (id, m) in &self.members {
            if let Out::Mailbox(out) = &m.out
                && *id != except
                && !out.push(frame.clone())
            {
                slow.push(*id);
            }
        }
        for id in slow {
            self.kick(id, Close::TOO_SLOW);
        }
    }

    fn kick(&mut self, conn: u64, close: Close) {
        if let Some(m) = self.members.get(&conn) {
            match &m.out {
                Out::Mailbox(out) => out.kick(close),
                Out::Outlet(o) => o.push(Delivery::Closed { conn, why: close }),
            }
            self.metrics.kicked.inc();
        }
        self.leave(conn);
    }

    fn kick_all(&mut self, close: Close) {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            self.kick(id, close);
        }
    }

    /// A connection left: its awareness states go, and the others are told.
    fn leave(&mut self, conn: u64) {
        let Some(m) = self.members.remove(&conn) else {
            return;
        };
        match &m.out {
            Out::Mailbox(_) => self.mailboxes -= 1,
            Out::Outlet(o) => {
                if let Some(i) = self.outlets.iter().position(|(x, _)| x.same(o)) {
                    self.outlets[i].1 -= 1;
                    if self.outlets[i].1 == 0 {
                        self.outlets.swap_remove(i);
                    }
                }
            }
        }
        self.count_clients();
        self.last_activity = Instant::now();
        if m.awareness.is_empty() {
            return;
        }
        for c in &m.awareness {
            self.awareness.remove_state(*c);
        }
        if let Ok(update) = self
            .awareness
            .update_with_clients(m.awareness.iter().copied())
        {
            self.broadcast_now(conn, Message::Awareness(update).encode_v1().into());
        }
    }

    async fn event(
        &mut self,
        actor: Actor,
        event: ParsedEvent,
        reply: oneshot::Sender<Result<EventOutcome, GatewayError>>,
    ) {
        if !matches!(actor, Actor::System)
            && let Err(full) = self.room_for(0)
        {
            let _ = reply.send(Err(full));
            return;
        }
        let kind = event.kind.clone();
        let timer = self.metrics.event_seconds.start_timer();
        let (result, delta) = run_event(
            self.awareness.doc(),
            &self.modules,
            &mut self.undo,
            &self.id,
            &actor,
            event,
        );
        timer.observe_duration();
        let seq = match delta {
            Some(d) => Some(self.log(d, None).await),
            None => None,
        };
        match result {
            Ok(result) => {
                self.metrics.events.inc();
                let outcome = EventOutcome { kind, result, seq };
                match seq {
                    Some(s) if s > self.durable => self.held_replies.push_back((s, reply, outcome)),
                    _ => {
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
            Err(e) => {
                self.metrics.events_refused.inc();
                let _ = reply.send(Err(GatewayError::Event(e)));
            }
        }
    }

    /// Undoes (or redoes) the user's last change of the board roots, as a new change. Refused,
    /// leaving the history as it is, when it would change a card the user may not change now.
    async fn undo(&mut self, actor: Actor, redo: bool, reply: EventReply) {
        let kind = if redo { "redo" } else { "undo" };
        let doc = self.awareness.doc().clone();
        let done = self.undo.step(&doc, &actor, redo, |txn, id| {
            self.modules.may_change(txn, &actor, id)
        });
        let (delta, cards) = match done {
            Ok(d) => d,
            Err(e) => {
                let _ = reply.send(Err(GatewayError::Event(e)));
                return;
            }
        };
        let seq = match delta {
            Some(d) => Some(self.log(d, None).await),
            None => None,
        };
        let outcome = EventOutcome {
            kind: kind.to_string(),
            result: serde_json::json!({ "cards": cards }),
            seq,
        };
        match seq {
            Some(s) if s > self.durable => self.held_replies.push_back((s, reply, outcome)),
            _ => {
                let _ = reply.send(Ok(outcome));
            }
        }
    }

    /// Why a direct write by `conn` that changed these entries of client-writable roots is
    /// refused (a card's text locked by someone else), if it is.
    fn direct_refusal(&self, conn: u64, changed: &[(String, String)]) -> Option<String> {
        if changed.is_empty() {
            return None;
        }
        let actor = self.members.get(&conn)?.user.actor();
        let txn = self.awareness.doc().transact();
        changed.iter().find_map(|(_, key)| {
            self.modules
                .may_change(&txn, &actor, key)
                .err()
                .map(|e| e.to_string())
        })
    }

    /// Module ticks, automatic history points, compaction.
    async fn tick(&mut self) {
        let delta = {
            let mut txn = self.awareness.doc().transact_mut();
            self.modules.tick(&self.id, &mut txn);
            delta_of(&txn)
        };
        if let Some(d) = delta {
            self.log(d, None).await;
        }
        if self.changed_since_point && self.last_point.elapsed() >= self.settings.history_interval {
            let name = format!("Automatic {}", chrono::Utc::now().format("%Y-%m-%d %H:%M"));
            if let Err(e) = self.create_point(name, None, true).await {
                tracing::warn!(project = %self.id, error = %e, "automatic history point not saved");
            }
        }
    }

    fn maybe_compact(&mut self) {
        let due = self.durable - self.snapshot_seq >= self.settings.compact_after as i64;
        let busy = self.compacting.as_ref().is_some_and(|c| !c.is_finished());
        if !due || busy || self.durable != self.applied {
            return;
        }
        let state = self.state();
        let (db, id, seq) = (self.db.clone(), self.id.clone(), self.durable);
        let metrics = self.metrics.clone();
        self.snapshot_seq = seq;
        // The document is now about the size of its state.
        self.metrics
            .document_bytes
            .add(state.len() as i64 - self.bytes);
        self.bytes = state.len() as i64;
        self.compacting = Some(tokio::spawn(async move {
            let t = Instant::now();
            match db
                .compact(&id, seq, &state, chrono::Utc::now().naive_utc())
                .await
            {
                Ok(dropped) => {
                    metrics.compactions.inc();
                    metrics
                        .compaction_seconds
                        .observe(t.elapsed().as_secs_f64());
                    tracing::debug!(project = %id, seq, dropped, bytes = state.len(), "log compacted");
                }
                Err(e) => {
                    tracing::warn!(project = %id, error = %e, "compaction failed (the log still has everything)")
                }
            }
        }));
    }

    async fn create_point(
        &mut self,
        name: String,
        by: Option<String>,
        automatic: bool,
    ) -> Result<HistoryPoint, GatewayError> {
        // A point names what is durable: wait for the writer first.
        self.drain_inflight().await?;
        let point = HistoryPoint {
            id: uuid::Uuid::new_v4().simple().to_string(),
            project_id: self.id.clone(),
            name,
            seq: self.durable,
            automatic,
            created_by: by,
            created_at: chrono::Utc::now().naive_utc(),
        };
        let state = self.state();
        self.db
            .insert_history_point(&point, &state, self.settings.history_keep)
            .await?;
        self.last_point = Instant::now();
        self.changed_since_point = false;
        self.metrics.history_points.inc();
        Ok(point)
    }

    /// Makes every module root look as it did in `state`, as one new change.
    async fn restore(&mut self, state: &[u8]) -> Result<Option<i64>, GatewayError> {
        let old = Doc::new();
        {
            let u = Update::decode_v1(state).map_err(malformed)?;
            old.transact_mut().apply_update(u).map_err(malformed)?;
        }
        let old_txn = old.transact();
        let delta = {
            let mut txn = self.awareness.doc().transact_mut();
            for root in self.modules.roots().filter(|r| r.restorable) {
                restore_root(&mut txn, &old_txn, root.name, root.kind);
            }
            delta_of(&txn)
        };
        drop(old_txn);
        let Some(delta) = delta else {
            return Ok(None);
        };
        let seq = self.log(delta, None).await;
        self.drain_inflight().await?;
        Ok(Some(seq))
    }
}

/// Runs an event in one transaction, written with the actor's origin so their undo history
/// records it (with the cards it touched). Returns the reducer's answer and the change.
pub(crate) fn run_event(
    doc: &Doc,
    modules: &Modules,
    undo: &mut UndoBook,
    project_id: &str,
    actor: &Actor,
    event: ParsedEvent,
) -> (Result<Value, super::module::EventError>, Option<Vec<u8>>) {
    if let Some(user) = actor.user_id() {
        undo.before_event(doc, modules, user, event.step.as_deref());
    }
    let mut txn = match actor.origin() {
        Some(origin) => doc.transact_mut_with(origin),
        None => doc.transact_mut(),
    };
    let (result, touched) = modules.run(project_id, actor, &mut txn, event);
    let delta = delta_of(&txn);
    // The undo history reads what this change touched as the transaction commits.
    undo.touching(touched);
    drop(txn);
    undo.touching(Vec::new());
    (result, delta)
}

type Stored = (Option<(i64, Vec<u8>)>, Vec<(i64, Vec<u8>)>);

/// A document rebuilt from the database.
struct Loaded {
    doc: Doc,
    /// The last sequence number it holds.
    last: i64,
    /// The sequence number the snapshot covers (0 without one).
    snapshot_seq: i64,
    /// Bytes read (snapshot and log).
    bytes: i64,
    /// Nothing was stored: a new project.
    fresh: bool,
}

/// The snapshot and the log after it (a free function: the task is `Send`, not `Sync`).
async fn read_log(db: Db, id: String) -> Result<Stored, GatewayError> {
    let snapshot = db.snapshot_of(&id).await?;
    let after = snapshot.as_ref().map(|(s, _)| *s).unwrap_or(0);
    let updates = db.updates_after(&id, after).await?;
    Ok((snapshot, updates))
}

/// Copies one root of `old` over the same root of the live document, changing only what
/// differs (map keys compare by value).
fn restore_root(
    txn: &mut yrs::TransactionMut<'_>,
    old: &yrs::Transaction<'_>,
    name: &str,
    kind: RootKind,
) {
    use yrs::types::ToJson;
    use yrs::{Array, GetString, Map, Text, WriteTxn};
    match kind {
        RootKind::Map => {
            let live = txn.get_or_insert_map(name);
            let was = old.get_map(name);
            let keys: Vec<String> = live.keys(txn).map(str::to_string).collect();
            for k in keys {
                if was.as_ref().and_then(|w| w.get(old, &k)).is_none() {
                    live.remove(txn, &k);
                }
            }
            if let Some(was) = was {
                for (k, v) in was.iter(old) {
                    let same = live
                        .get(txn, k)
                        .map(|cur| cur.to_json(txn) == v.to_json(old))
                        .unwrap_or(false);
                    if !same {
                        live.insert(txn, k, yrs::types::AsPrelim::as_prelim(&v, old));
                    }
                }
            }
        }
        RootKind::Array => {
            let live = txn.get_or_insert_array(name);
            let len = live.len(txn);
            if len > 0 {
                live.remove_range(txn, 0, len);
            }
            if let Some(was) = old.get_array(name) {
                for v in was.iter(old) {
                    live.push_back(txn, yrs::types::AsPrelim::as_prelim(&v, old));
                }
            }
        }
        RootKind::Text => {
            let live = txn.get_or_insert_text(name);
            let before = old
                .get_text(name)
                .map(|t| t.get_string(old))
                .unwrap_or_default();
            if live.get_string(txn) != before {
                let len = live.len(txn);
                live.remove_range(txn, 0, len);
                live.insert(txn, 0, &before);
            }
        }
    }
}

/// Writes the authenticated user into an awareness state: `user.id` and `user.name` always
/// come from the server (nobody shows up as someone else); a colour is kept or derived.
/// `null` (a client leaving) passes; anything but an object or null is `None`.
fn stamp_user(json: &str, user: &ClientUser) -> Option<Arc<str>> {
    let mut state = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(state)) => state,
        // A client going away.
        Ok(Value::Null) => return Some(Arc::from(json)),
        _ => return None,
    };
    let mut u = match state.remove("user") {
        Some(Value::Object(u)) => u,
        _ => serde_json::Map::new(),
    };
    u.insert("id".into(), Value::String(user.user_id.clone()));
    u.insert("name".into(), Value::String(user.name.clone()));
    if !u.get("color").is_some_and(Value::is_string) {
        u.insert("color".into(), Value::String(colour_of(&user.user_id)));
    }
    state.insert("user".into(), Value::Object(u));
    Some(Arc::from(Value::Object(state).to_string()))
}

/// A stable, readable colour for a user.
pub fn colour_of(user_id: &str) -> String {
    const PALETTE: [&str; 10] = [
        "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#469990",
        "#9a6324", "#800000",
    ];
    let h = user_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    PALETTE[(h as usize) % PALETTE.len()].to_string()
}

fn refuse(cmd: Cmd, e: &GatewayError) {
    let err = || match e {
        GatewayError::Unloading => GatewayError::Unloading,
        other => GatewayError::LoadFailed(other.to_string()),
    };
    match cmd {
        Cmd::Join { reply, .. } => {
            let _ = reply.send(Err(JoinError::Gone));
        }
        Cmd::Event { reply, .. } | Cmd::Undo { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Cmd::CreatePoint { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Cmd::Restore { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Cmd::Document { reply } => {
            let _ = reply.send(Err(err()));
        }
        Cmd::Stop { done, .. } => {
            let _ = done.send(());
        }
        Cmd::Frame { .. }
        | Cmd::SetWritable { .. }
        | Cmd::Kick { .. }
        | Cmd::Leave { .. }
        | Cmd::Deleted => {}
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awareness_states_carry_the_real_user() {
        let user = ClientUser {
            user_id: "u1".into(),
            name: "Ada".into(),
            writable: true,
            holds: Arc::from(Vec::new()),
        };
        let stamped = stamp_user(
            r##"{"user":{"id":"someone-else","name":"Mallory","color":"#123456"},"cursor":{"x":1}}"##,
            &user,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(v["user"]["id"], "u1");
        assert_eq!(v["user"]["name"], "Ada");
        assert_eq!(v["user"]["color"], "#123456");
        assert_eq!(v["cursor"]["x"], 1);
        let fresh: Value = serde_json::from_str(&stamp_user("{}", &user).unwrap()).unwrap();
        assert_eq!(fresh["user"]["color"], colour_of("u1"));
        assert_eq!(stamp_user("null", &user).as_deref(), Some("null"));
        assert_eq!(stamp_user("[1,2]", &user), None, "not an object");
    }
}
