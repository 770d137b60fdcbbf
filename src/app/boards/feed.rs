//! One live copy of a project's board per process, shared by every board page open on it.
//!
//! A feed is a read-only collaboration client of the project (in-process, through the
//! gateway like any other client, so it only ever holds changes the log has). It keeps a
//! replica of the document, notices which cards, connectors and views each change touches
//! (deep observers), rebuilds just those into the [`BoardDoc`] it publishes, and publishes a
//! new version per batch of frames. Pages hold a `watch` receiver; a feed with no receiver
//! for [`IDLE`] leaves the project, so an unwatched project can unload.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demiurge_web::board::BoardDoc;
use demiurge_web::board::model::{Card, Edge, Layout, Shared, ViewInfo};
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::watch;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::types::ToJson;
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{DeepObservable, Doc, GetString, Map, MapRef, Out, ReadTxn, StateVector, Transact};

use crate::gateway::modules::core_graph::{EDGES, NODES, TEXTS};
use crate::gateway::modules::user_containers::CONTAINERS;
use crate::gateway::modules::whiteboard::doc::VIEWS;
use crate::gateway::{Close, GatewayRegistry};
use crate::orgs::ProjectAccess;

/// How long a feed nobody watches stays connected (a reload finds it still there).
pub const IDLE: Duration = Duration::from_secs(30);

type Board = watch::Sender<Arc<BoardDoc>>;

/// The feeds of this process, by project.
pub struct Feeds {
    gateways: GatewayRegistry,
    rt: tokio::runtime::Handle,
    map: Mutex<HashMap<String, Arc<Board>>>,
    closing: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feeds {
    pub fn new(gateways: GatewayRegistry, rt: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Self {
            gateways,
            rt,
            map: Mutex::default(),
            closing: watch::channel(false).0,
        })
    }

    /// The live board of a project (a feed starts if none runs).
    pub fn subscribe(self: &Arc<Self>, org: &str, project: &str) -> watch::Receiver<Arc<BoardDoc>> {
        let mut map = lock(&self.map);
        if let Some(tx) = map.get(project) {
            return tx.subscribe();
        }
        let tx = Arc::new(watch::channel(Arc::new(BoardDoc::default())).0);
        let rx = tx.subscribe();
        map.insert(project.to_string(), tx.clone());
        drop(map);
        let feeds = self.clone();
        let (org, project) = (org.to_string(), project.to_string());
        self.rt
            .spawn(async move { feeds.run(org, project, tx).await });
        rx
    }

    /// Stops every feed (the server is stopping: none may start a gateway again).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// True once [`Self::close`] was called (pages' presence clients stop joining too).
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Leaves the map if nobody watches `tx` (under the lock, so nobody subscribes meanwhile).
    fn retire(&self, project: &str, tx: &Arc<Board>) -> bool {
        let mut map = lock(&self.map);
        if tx.receiver_count() > 0 {
            return false;
        }
        if map.get(project).is_some_and(|t| Arc::ptr_eq(t, tx)) {
            map.remove(project);
        }
        true
    }

    async fn run(self: Arc<Self>, org: String, project: String, tx: Arc<Board>) {
        let mut closing = self.closing.subscribe();
        let mut backoff = Duration::from_millis(100);
        let mut idle_since: Option<Instant> = None;
        let reader = ProjectAccess::server_reader(&org, &project);
        loop {
            if *closing.borrow() {
                self.retire_now(&project, &tx);
                return;
            }
            let mut conn = match self.gateways.connect(&reader).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(project = %project, error = %e, "board feed cannot join; retrying");
                    tx.send_modify(|b| Arc::make_mut(b).live = false);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = closing.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if tx.receiver_count() == 0 && self.retire(&project, &tx) {
                        return;
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            let mut replica = Replica::new();
            let ask = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
            if !conn.send(ask).await {
                continue;
            }
            let mut check = tokio::time::interval(Duration::from_secs(1));
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    frame = conn.recv() => {
                        let Some(first) = frame else {
                            if conn.closed() == Some(Close::DELETED) {
                                tx.send_modify(|b| {
                                    let b = Arc::make_mut(b);
                                    b.deleted = true;
                                    b.live = false;
                                    b.version += 1;
                                });
                                self.retire_now(&project, &tx);
                                return;
                            }
                            tx.send_modify(|b| Arc::make_mut(b).live = false);
                            break;
                        };
                        replica.apply(&first);
                        // Everything already queued goes into the same version.
                        while let Some(Some(more)) = conn.recv().now_or_never() {
                            replica.apply(&more);
                        }
                        // (The borrow ends before the send: a watch's lock is not reentrant.)
                        let prev = tx.borrow().clone();
                        if let Some(next) = replica.publish(&prev) {
                            tx.send_replace(Arc::new(next));
                        }
                    }
                    _ = check.tick() => {
                        if tx.receiver_count() > 0 {
                            idle_since = None;
                        } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE
                            && self.retire(&project, &tx)
                        {
                            return;
                        }
                    }
                    _ = closing.changed() => {
                        self.retire_now(&project, &tx);
                        return;
                    }
                }
            }
        }
    }

    fn retire_now(&self, project: &str, tx: &Arc<Board>) {
        let mut map = lock(&self.map);
        if map.get(project).is_some_and(|t| Arc::ptr_eq(t, tx)) {
            map.remove(project);
        }
    }
}

/// What changes touched since the last publication.
#[derive(Default)]
struct Touched {
    nodes: HashSet<String>,
    edges: HashSet<String>,
    /// Views were added, removed or renamed, or a view's whole layout replaced.
    views: bool,
    /// Every card must be read again (a view appeared or went).
    all: bool,
    /// The project's containers changed (module `user-containers`).
    containers: bool,
}

/// The feed's copy of the document.
struct Replica {
    doc: Doc,
    touched: Arc<Mutex<Touched>>,
    synced: bool,
}

fn key_of(p: Option<&yrs::types::PathSegment>) -> Option<String> {
    match p {
        Some(yrs::types::PathSegment::Key(k)) => Some(k.to_string()),
        _ => None,
    }
}

impl Replica {
    fn new() -> Self {
        let doc = Doc::new();
        let touched: Arc<Mutex<Touched>> = Arc::default();
        // Roots must have their type before updates arrive (yrs reports nothing for an
        // untyped root).
        for name in ["meta", NODES, EDGES, TEXTS, CONTAINERS] {
            doc.get_or_insert_map(name);
        }
        let t = touched.clone();
        doc.get_or_insert_map(CONTAINERS)
            .observe_deep("feed", move |_, _| lock(&t).containers = true);
        for (root, edges) in [(NODES, false), (TEXTS, false), (EDGES, true)] {
            let t = touched.clone();
            doc.get_or_insert_map(root)
                .observe_deep("feed", move |txn, events| {
                    let mut t = lock(&t);
                    for e in events.iter() {
                        let path = e.path();
                        let keys: Vec<String> = match key_of(path.front()) {
                            Some(k) => vec![k],
                            None => match e {
                                yrs::types::Event::Map(m) => {
                                    m.keys(txn).keys().map(|k| k.to_string()).collect()
                                }
                                _ => Vec::new(),
                            },
                        };
                        let set = if edges { &mut t.edges } else { &mut t.nodes };
                        set.extend(keys);
                    }
                });
        }
        let t = touched.clone();
        doc.get_or_insert_map(VIEWS)
            .observe_deep("feed", move |txn, events| {
                let mut t = lock(&t);
                for e in events.iter() {
                    let path: Vec<String> =
                        e.path().iter().filter_map(|s| key_of(Some(s))).collect();
                    let keys = || match e {
                        yrs::types::Event::Map(m) => m
                            .keys(txn)
                            .keys()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>(),
                        _ => Vec::new(),
                    };
                    match path.len() {
                        // Views added or removed.
                        0 => {
                            t.views = true;
                            t.all = true;
                        }
                        // A view's own fields (its name, or its whole layout).
                        1 => {
                            t.views = true;
                            if keys().iter().any(|k| k == "cards") {
                                t.all = true;
                            }
                        }
                        // Layout entries added or removed.
                        2 => t.nodes.extend(keys()),
                        // One card's layout.
                        _ => {
                            t.nodes.insert(path[2].clone());
                        }
                    }
                }
            });
        Self {
            doc,
            touched,
            synced: false,
        }
    }

    /// Applies the document updates in a frame (awareness and the rest are not the feed's).
    fn apply(&mut self, frame: &[u8]) {
        // One message a frame: presence (awareness) is the pages' business, not the feed's.
        if frame.first() == Some(&yrs::sync::protocol::MSG_AWARENESS) {
            return;
        }
        let mut decoder = DecoderV1::from(frame);
        for msg in MessageReader::new(&mut decoder).flatten() {
            let update = match msg {
                Message::Sync(SyncMessage::SyncStep2(u)) => {
                    self.synced = true;
                    lock(&self.touched).all = true;
                    lock(&self.touched).views = true;
                    lock(&self.touched).containers = true;
                    u
                }
                Message::Sync(SyncMessage::Update(u)) => u,
                _ => continue,
            };
            match yrs::Update::decode_v1(&update) {
                Ok(u) => {
                    if let Err(e) = self.doc.transact_mut().apply_update(u) {
                        tracing::warn!(error = %e, "board feed could not apply an update");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "board feed got a malformed update"),
            }
        }
    }

    /// The next version of `prev`, if anything changed.
    fn publish(&mut self, prev: &BoardDoc) -> Option<BoardDoc> {
        if !self.synced {
            return None;
        }
        let touched = std::mem::take(&mut *lock(&self.touched));
        let live_again = !prev.live || !prev.ready;
        if touched.nodes.is_empty()
            && touched.edges.is_empty()
            && !touched.views
            && !touched.containers
            && !live_again
        {
            return None;
        }
        let txn = self.doc.transact();
        let nodes = txn.get_map(NODES);
        let edges = txn.get_map(EDGES);
        let texts = txn.get_map(TEXTS);
        let views = txn.get_map(VIEWS);
        let view_maps: Vec<(String, MapRef)> = views
            .as_ref()
            .map(|v| {
                v.iter(&txn)
                    .filter_map(|(id, m)| match m {
                        Out::YMap(m) => Some((id.to_string(), m)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut next = if touched.all {
            BoardDoc::default()
        } else {
            prev.clone()
        };
        let card = |id: &str| -> Option<Card> {
            let Some(Out::YMap(node)) = nodes.as_ref()?.get(&txn, id) else {
                return None;
            };
            let json = to_value(&node.to_json(&txn));
            let text = match texts.as_ref().and_then(|t| t.get(&txn, id)) {
                Some(Out::YText(t)) => t.get_string(&txn),
                _ => String::new(),
            };
            let layouts = view_maps
                .iter()
                .filter_map(|(vid, view)| {
                    let Some(Out::YMap(cards)) = view.get(&txn, "cards") else {
                        return None;
                    };
                    let Some(Out::YMap(l)) = cards.get(&txn, id) else {
                        return None;
                    };
                    Some((vid.clone(), Layout::from_json(&to_value(&l.to_json(&txn)))))
                })
                .collect();
            Some(Card::from_parts(id, &json, &text, layouts))
        };
        if touched.all {
            if let Some(n) = &nodes {
                for (id, _) in n.iter(&txn) {
                    if let Some(c) = card(id) {
                        next.cards.insert(id.to_string(), Shared::new(c));
                    }
                }
            }
            if let Some(e) = &edges {
                for (id, v) in e.iter(&txn) {
                    if let Out::YMap(m) = v
                        && let Some(edge) = Edge::from_json(id, &to_value(&m.to_json(&txn)))
                    {
                        next.edges.insert(id.to_string(), Shared::new(edge));
                    }
                }
            }
        } else {
            for id in &touched.nodes {
                match card(id) {
                    Some(c) => {
                        next.cards.insert(id.clone(), Shared::new(c));
                    }
                    None => {
                        next.cards.remove(id);
                    }
                }
            }
            for id in &touched.edges {
                let edge = edges.as_ref().and_then(|e| match e.get(&txn, id) {
                    Some(Out::YMap(m)) => Edge::from_json(id, &to_value(&m.to_json(&txn))),
                    _ => None,
                });
                match edge {
                    Some(e) => {
                        next.edges.insert(id.clone(), Shared::new(e));
                    }
                    None => {
                        next.edges.remove(id);
                    }
                }
            }
        }
        if touched.views || touched.all {
            let mut list: Vec<ViewInfo> = view_maps
                .iter()
                .map(|(id, m)| ViewInfo {
                    id: id.clone(),
                    name: match m.get(&txn, "name") {
                        Some(Out::Any(yrs::Any::String(s))) => s.to_string(),
                        _ => id.clone(),
                    },
                })
                .collect();
            if !list
                .iter()
                .any(|v| v.id == demiurge_web::board::model::MAIN)
            {
                list.push(ViewInfo {
                    id: demiurge_web::board::model::MAIN.into(),
                    name: "Board".into(),
                });
            }
            list.sort_by(|a, b| {
                (a.id != demiurge_web::board::model::MAIN)
                    .cmp(&(b.id != demiurge_web::board::model::MAIN))
                    .then(a.name.cmp(&b.name))
            });
            next.views = list;
        }
        if touched.containers || touched.all {
            let json = txn
                .get_map(CONTAINERS)
                .map(|m| to_value(&m.to_json(&txn)))
                .unwrap_or(Value::Null);
            next.containers = demiurge_web::board::model::containers_of(&json);
        }
        next.ready = true;
        next.live = true;
        next.deleted = false;
        next.version = prev.version + 1;
        next.prepare();
        Some(next)
    }
}

fn to_value(a: &yrs::Any) -> Value {
    serde_json::to_value(a).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::module::Actor;
    use serde_json::json;
    use yrs::updates::encoder::Encode;

    /// A project's document as the gateway holds it, and the frames its changes make.
    struct Source {
        doc: Doc,
        modules: crate::gateway::Modules,
    }

    impl Source {
        fn new() -> Self {
            let modules = crate::gateway::modules::builtin();
            let doc = Doc::new();
            modules.init("p", &mut doc.transact_mut());
            Self { doc, modules }
        }
        /// Runs an event; the update frame it makes.
        fn event(&self, ev: serde_json::Value) -> Vec<u8> {
            let sv = self.doc.transact().state_vector();
            let parsed = self.modules.parse(ev).expect("parse");
            {
                let mut txn = self.doc.transact_mut();
                self.modules
                    .run("p", &Actor::System, &mut txn, parsed)
                    .0
                    .expect("run");
            }
            let u = self.doc.transact().encode_state_as_update_v1(&sv);
            Message::Sync(SyncMessage::Update(u)).encode_v1()
        }
        fn whole(&self) -> Vec<u8> {
            let u = self
                .doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            Message::Sync(SyncMessage::SyncStep2(u)).encode_v1()
        }
    }

    #[test]
    fn a_change_replaces_only_the_cards_it_touched() {
        let src = Source::new();
        for i in 0..3 {
            src.event(json!({"type": "whiteboard:add-card", "id": format!("c{i}"), "kind": "note", "x": i * 300, "y": 0}));
        }
        let mut replica = Replica::new();
        assert!(
            replica.publish(&BoardDoc::default()).is_none(),
            "nothing before the sync"
        );
        replica.apply(&src.whole());
        let first = replica
            .publish(&BoardDoc::default())
            .expect("a first board");
        assert!(first.ready && first.live);
        assert_eq!(first.cards.len(), 3);
        assert_eq!(first.views.first().map(|v| v.id.as_str()), Some("main"));

        replica.apply(
            &src.event(
                json!({"type": "whiteboard:move", "moves": [{"id": "c1", "x": 50, "y": 60}]}),
            ),
        );
        let second = replica.publish(&first).expect("a new version");
        assert_eq!(second.version, first.version + 1);
        assert_eq!(second.cards["c1"].home.x, 50.0);
        assert!(
            Arc::ptr_eq(&second.cards["c0"].0, &first.cards["c0"].0),
            "c0 is the same value"
        );
        assert!(!Arc::ptr_eq(&second.cards["c1"].0, &first.cards["c1"].0));

        // Text, layout (z), a connector and a deletion each reach just their card.
        replica.apply(&src.event(json!({"type": "whiteboard:edit-text", "id": "c2", "base": "", "at": 0, "insert": "hi"})));
        replica
            .apply(&src.event(json!({"type": "whiteboard:order", "cards": ["c0"], "to": "front"})));
        replica.apply(
            &src.event(json!({"type": "whiteboard:connect", "id": "e", "from": "c0", "to": "c2"})),
        );
        let third = replica.publish(&second).expect("a new version");
        assert_eq!(third.cards["c2"].text, "hi");
        assert!(third.cards["c0"].place("main").z > third.cards["c2"].place("main").z);
        assert!(
            Arc::ptr_eq(&third.cards["c1"].0, &second.cards["c1"].0),
            "c1 untouched"
        );
        assert_eq!(third.edges["e"].from, "c0");
        replica.apply(&src.event(json!({"type": "whiteboard:delete", "cards": ["c2"]})));
        let fourth = replica.publish(&third).expect("a new version");
        assert!(!fourth.cards.contains_key("c2") && !fourth.edges.contains_key("e"));
        assert!(
            replica.publish(&fourth).is_none(),
            "nothing new, no new version"
        );
    }
}
