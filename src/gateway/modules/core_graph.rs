//! The `core-graph` module: nodes and edges with ids, positions, sizes, kinds and data.
//!
//! Document: root map `nodes` (id → map {id, kind, x, y, w, h, data, locked_by?,
//! locked_by_name?}) and root map `edges` (id → map {id, from, to, kind, data}), both changed
//! through events only. Each node and edge is its own map and its `data` a map of its own,
//! so concurrent changes to different fields (or different data keys) of one node merge.
//! Deleting a node deletes its edges and its text. Root map `texts` (id → Y.Text) holds
//! collaborative text that clients write directly with Yjs updates.
//!
//! Locks: a node with `locked_by` changes only by that user or by someone who holds
//! `core-graph:locks:override` (project admins); every reducer that changes a node checks
//! it ([`check_unlocked`]), and so do undo and direct writes to the node's text
//! ([`Module::may_change`]).

use crate::code::ErrorCode;
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value, json};
use yrs::{In, Map, MapPrelim, MapRef, Out, ReadTxn, TransactionMut, WriteTxn};

use super::{any, json};
use crate::gateway::module::{Actor, Cx, EventError, Module, RootDef, RootKind};
use crate::orgs::perms::{Level, PermissionDef, Scope};

pub struct CoreGraph;

/// Largest `data` object of a node or edge, serialised.
pub const MAX_DATA: usize = 64 * 1024;
/// Largest coordinate or size.
pub const MAX_COORD: f64 = 1e7;

/// The permission that moves or changes a node someone else locked.
pub const OVERRIDE_LOCKS: &str = "core-graph:locks:override";

/// The roots (names other modules use).
pub const NODES: &str = "nodes";
pub const EDGES: &str = "edges";
pub const TEXTS: &str = "texts";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Event {
    /// Adds a node. Needs `core-graph:nodes:write`.
    #[serde(rename = "core-graph:add-node")]
    AddNode {
        /// 1 to 64 letters, digits, `-` or `_`; generated when absent.
        #[serde(default)]
        id: Option<String>,
        /// 1 to 64 characters.
        kind: String,
        x: f64,
        y: f64,
        #[serde(default = "default_w")]
        w: f64,
        #[serde(default = "default_h")]
        h: f64,
        /// At most 64 KiB serialised.
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        data: Option<JsonMap<String, Value>>,
    },
    /// Changes the kind and/or merges keys into data (a `null` value removes a key). Needs
    /// `core-graph:nodes:write`.
    #[serde(rename = "core-graph:update-node")]
    UpdateNode {
        id: String,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        data: Option<JsonMap<String, Value>>,
    },
    /// Needs `core-graph:nodes:write`.
    #[serde(rename = "core-graph:move-node")]
    MoveNode { id: String, x: f64, y: f64 },
    /// Needs `core-graph:nodes:write`.
    #[serde(rename = "core-graph:resize-node")]
    ResizeNode { id: String, w: f64, h: f64 },
    /// Deletes the node, every edge that touches it, and its text. Needs
    /// `core-graph:nodes:write`.
    #[serde(rename = "core-graph:delete-node")]
    DeleteNode { id: String },
    /// Needs `core-graph:edges:write`.
    #[serde(rename = "core-graph:add-edge")]
    AddEdge {
        #[serde(default)]
        id: Option<String>,
        from: String,
        to: String,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        data: Option<JsonMap<String, Value>>,
    },
    /// Needs `core-graph:edges:write`.
    #[serde(rename = "core-graph:update-edge")]
    UpdateEdge {
        id: String,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        data: Option<JsonMap<String, Value>>,
    },
    /// Needs `core-graph:edges:write`.
    #[serde(rename = "core-graph:delete-edge")]
    DeleteEdge { id: String },
}

fn default_w() -> f64 {
    160.0
}
fn default_h() -> f64 {
    90.0
}

const PERMISSIONS: &[PermissionDef] = &[
    PermissionDef {
        name: "core-graph:nodes:write",
        description: "Add, change, move, resize and delete nodes",
        scope: Scope::Project,
        level: Level::Write,
    },
    PermissionDef {
        name: "core-graph:edges:write",
        description: "Add, change and delete edges",
        scope: Scope::Project,
        level: Level::Write,
    },
    PermissionDef {
        name: OVERRIDE_LOCKS,
        description: "Move, change and unlock cards someone else locked",
        scope: Scope::Project,
        level: Level::Manage,
    },
];

const ROOTS: &[RootDef] = &[
    RootDef {
        name: NODES,
        kind: RootKind::Map,
        client_writable: false,
        undoable: true,
        restorable: true,
    },
    RootDef {
        name: EDGES,
        kind: RootKind::Map,
        client_writable: false,
        undoable: true,
        restorable: true,
    },
    // Collaborative text (id → Y.Text, such as a node's body), typed by clients directly.
    RootDef {
        name: TEXTS,
        kind: RootKind::Map,
        client_writable: true,
        undoable: true,
        restorable: true,
    },
];

pub(crate) fn check_id(id: &str) -> Result<(), EventError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(EventError::invalid(
            ErrorCode::InvalidId,
            "an id is 1 to 64 letters, digits, `-` or `_`",
        ));
    }
    Ok(())
}

fn check_kind(kind: &str) -> Result<(), EventError> {
    if kind.trim().is_empty() || kind.chars().count() > 64 {
        return Err(EventError::invalid(
            ErrorCode::InvalidKind,
            "a kind is 1 to 64 characters",
        ));
    }
    Ok(())
}

pub(crate) fn check_coord(name: &str, v: f64) -> Result<(), EventError> {
    if !v.is_finite() || v.abs() > MAX_COORD {
        return Err(EventError::invalid(
            ErrorCode::InvalidPosition,
            format!("`{name}` must be a number within ±{MAX_COORD}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_size(w: f64, h: f64) -> Result<(), EventError> {
    if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0 && w <= MAX_COORD && h <= MAX_COORD) {
        return Err(EventError::invalid(
            ErrorCode::InvalidSize,
            format!("width and height must be greater than 0 and at most {MAX_COORD}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_data(data: &Option<JsonMap<String, Value>>) -> Result<(), EventError> {
    if let Some(d) = data
        && serde_json::to_vec(d).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_DATA
    {
        return Err(EventError::invalid(
            ErrorCode::DataTooLarge,
            format!("`data` is limited to {MAX_DATA} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) fn entry<T: ReadTxn>(root: &MapRef, txn: &T, id: &str) -> Option<MapRef> {
    match root.get(txn, id) {
        Some(Out::YMap(m)) => Some(m),
        _ => None,
    }
}

pub(crate) fn node_missing(id: &str) -> EventError {
    EventError::not_found(ErrorCode::NodeNotFound, format!("no node `{id}`"))
}

fn edge_missing(id: &str) -> EventError {
    EventError::not_found(ErrorCode::EdgeNotFound, format!("no edge `{id}`"))
}

/// A string field of a map.
pub(crate) fn str_of<T: ReadTxn>(m: &MapRef, txn: &T, key: &str) -> Option<String> {
    match m.get(txn, key) {
        Some(Out::Any(yrs::Any::String(s))) => Some(s.to_string()),
        _ => None,
    }
}

/// A number field of a map.
pub(crate) fn num_of<T: ReadTxn>(m: &MapRef, txn: &T, key: &str) -> Option<f64> {
    match m.get(txn, key) {
        Some(Out::Any(yrs::Any::Number(n))) => n.as_f64(),
        _ => None,
    }
}

/// A `data` value as it is written into a new node or edge: its own map.
pub(crate) fn data_prelim(data: &JsonMap<String, Value>) -> In {
    In::Map(MapPrelim::from_iter(
        data.iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), In::Any(any(v)))),
    ))
}

/// Merges `patch` into the `data` map of `m` (`null` removes a key); changes only the keys
/// whose value differs.
pub(crate) fn merge_data(m: &MapRef, txn: &mut TransactionMut, patch: JsonMap<String, Value>) {
    let data = match m.get(txn, "data") {
        Some(Out::YMap(d)) => d,
        other => {
            // An older document keeps `data` as one value: it becomes a map.
            let old = match other.map(|v| json(&v)) {
                Some(Value::Object(o)) => o,
                _ => JsonMap::new(),
            };
            m.insert(txn, "data", data_prelim(&old));
            match m.get(txn, "data") {
                Some(Out::YMap(d)) => d,
                _ => return,
            }
        }
    };
    for (k, v) in patch {
        if v.is_null() {
            if data.contains_key(txn, &k) {
                data.remove(txn, &k);
            }
        } else if data.get(txn, &k).map(|cur| json(&cur)) != Some(v.clone()) {
            data.insert(txn, k, any(&v));
        }
    }
}

/// Sets a field of a map unless it already holds `value` (an unchanged field writes nothing,
/// so it costs no log space and no undo step).
pub(crate) fn set<V: Into<yrs::Any> + Clone>(
    m: &MapRef,
    txn: &mut TransactionMut,
    key: &str,
    value: V,
) {
    let v: yrs::Any = value.into();
    let same = matches!(m.get(txn, key), Some(Out::Any(cur)) if cur == v);
    if !same {
        m.insert(txn, key, v);
    }
}

/// Who locked a node (id and display name), if anyone did.
pub(crate) fn lock_of<T: ReadTxn>(node: &MapRef, txn: &T) -> Option<(String, String)> {
    let by = str_of(node, txn, "locked_by")?;
    let name = str_of(node, txn, "locked_by_name").unwrap_or_else(|| "someone".into());
    Some((by, name))
}

/// Refuses when the node is locked by someone other than the actor, unless the actor may
/// override locks.
pub(crate) fn check_unlocked<T: ReadTxn>(
    node: &MapRef,
    txn: &T,
    actor: &Actor,
    id: &str,
) -> Result<(), EventError> {
    let Some((by, name)) = lock_of(node, txn) else {
        return Ok(());
    };
    if actor.user_id() == Some(by.as_str()) || actor.may(OVERRIDE_LOCKS) {
        return Ok(());
    }
    Err(EventError::Forbidden {
        code: ErrorCode::Locked,
        message: format!(
            "{} is locked by {name}; only they or a project admin can change it",
            label_of(node, txn, id)
        ),
    })
}

/// How a message names a node: the first words of its text, or its kind.
pub(crate) fn label_of<T: ReadTxn>(node: &MapRef, txn: &T, id: &str) -> String {
    use yrs::GetString;
    let text = match txn.get_map(TEXTS).and_then(|t| t.get(txn, id)) {
        Some(Out::YText(t)) => t.get_string(txn),
        _ => String::new(),
    };
    let first = text.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        let kind = str_of(node, txn, "kind").unwrap_or_else(|| "card".into());
        return format!("this {kind}");
    }
    let mut short: String = first.chars().take(40).collect();
    if short.chars().count() < first.chars().count() {
        short.push('…');
    }
    format!("“{short}”")
}

/// What a new node holds.
pub(crate) struct NewNode<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub data: &'a JsonMap<String, Value>,
}

/// Writes a new node (the caller checked that the id is free and the values are valid).
pub(crate) fn insert_node(cx: &mut Cx<'_, '_>, n: NewNode<'_>) -> MapRef {
    let nodes = cx.txn.get_or_insert_map(NODES);
    let prelim: MapPrelim = MapPrelim::from_iter([
        ("id", In::Any(n.id.into())),
        ("kind", In::Any(n.kind.into())),
        ("x", In::Any(n.x.into())),
        ("y", In::Any(n.y.into())),
        ("w", In::Any(n.w.into())),
        ("h", In::Any(n.h.into())),
        ("data", data_prelim(n.data)),
    ]);
    let m = nodes.insert(cx.txn, n.id, prelim);
    cx.touch(n.id);
    m
}

/// Writes a new edge (ends checked by the caller).
pub(crate) fn insert_edge(
    txn: &mut TransactionMut,
    id: &str,
    from: &str,
    to: &str,
    kind: &str,
    data: &JsonMap<String, Value>,
) {
    let edges = txn.get_or_insert_map(EDGES);
    let prelim: MapPrelim = MapPrelim::from_iter([
        ("id", In::Any(id.into())),
        ("from", In::Any(from.into())),
        ("to", In::Any(to.into())),
        ("kind", In::Any(kind.into())),
        ("data", data_prelim(data)),
    ]);
    edges.insert(txn, id, prelim);
}

/// The edges that touch node `id`.
pub(crate) fn edges_touching<T: ReadTxn>(edges: &MapRef, txn: &T, id: &str) -> Vec<String> {
    edges
        .iter(txn)
        .filter_map(|(eid, v)| {
            let Out::YMap(e) = v else { return None };
            let ends = |k: &str| str_of(&e, txn, k).as_deref() == Some(id);
            (ends("from") || ends("to")).then(|| eid.to_string())
        })
        .collect()
}

/// Deletes node `id`, its edges and its text (lock checked by the caller). Returns the
/// edges deleted.
pub(crate) fn delete_node(cx: &mut Cx<'_, '_>, id: &str) -> Vec<String> {
    let nodes = cx.txn.get_or_insert_map(NODES);
    let edges = cx.txn.get_or_insert_map(EDGES);
    let texts = cx.txn.get_or_insert_map(TEXTS);
    let touching = edges_touching(&edges, cx.txn, id);
    for eid in &touching {
        edges.remove(cx.txn, eid);
    }
    nodes.remove(cx.txn, id);
    if texts.contains_key(cx.txn, id) {
        texts.remove(cx.txn, id);
    }
    cx.touch(id);
    touching
}

impl Module for CoreGraph {
    type Event = Event;

    fn name(&self) -> &'static str {
        "core-graph"
    }
    fn dependencies(&self) -> &'static [&'static str] {
        &["gateway"]
    }
    fn roots(&self) -> &'static [RootDef] {
        ROOTS
    }
    fn permissions(&self) -> &'static [PermissionDef] {
        PERMISSIONS
    }
    fn permission(&self, event_type: &str) -> &'static str {
        match event_type {
            "core-graph:add-edge" | "core-graph:update-edge" | "core-graph:delete-edge" => {
                "core-graph:edges:write"
            }
            _ => "core-graph:nodes:write",
        }
    }

    fn may_change(
        &self,
        txn: &yrs::Transaction<'_>,
        actor: &Actor,
        id: &str,
    ) -> Result<(), EventError> {
        let Some(nodes) = txn.get_map(NODES) else {
            return Ok(());
        };
        match entry(&nodes, txn, id) {
            Some(node) => check_unlocked(&node, txn, actor, id),
            None => Ok(()),
        }
    }

    fn reduce(&self, cx: &mut Cx<'_, '_>, event: Event) -> Result<Value, EventError> {
        let nodes = cx.txn.get_or_insert_map(NODES);
        let edges = cx.txn.get_or_insert_map(EDGES);
        match event {
            Event::AddNode {
                id,
                kind,
                x,
                y,
                w,
                h,
                data,
            } => {
                let id = id.unwrap_or_else(new_id);
                check_id(&id)?;
                check_kind(&kind)?;
                check_coord("x", x)?;
                check_coord("y", y)?;
                check_size(w, h)?;
                check_data(&data)?;
                if nodes.contains_key(cx.txn, &id) {
                    return Err(EventError::conflict(
                        ErrorCode::NodeExists,
                        format!("a node `{id}` exists already"),
                    ));
                }
                let data = data.unwrap_or_default();
                insert_node(
                    cx,
                    NewNode {
                        id: &id,
                        kind: &kind,
                        x,
                        y,
                        w,
                        h,
                        data: &data,
                    },
                );
                Ok(json!({ "id": id }))
            }
            Event::UpdateNode { id, kind, data } => {
                if let Some(k) = &kind {
                    check_kind(k)?;
                }
                check_data(&data)?;
                let m = entry(&nodes, cx.txn, &id).ok_or_else(|| node_missing(&id))?;
                check_unlocked(&m, cx.txn, cx.actor, &id)?;
                cx.touch(&id);
                if let Some(k) = kind {
                    set(&m, cx.txn, "kind", k);
                }
                if let Some(d) = data {
                    merge_data(&m, cx.txn, d);
                }
                Ok(json!({ "id": id }))
            }
            Event::MoveNode { id, x, y } => {
                check_coord("x", x)?;
                check_coord("y", y)?;
                let m = entry(&nodes, cx.txn, &id).ok_or_else(|| node_missing(&id))?;
                check_unlocked(&m, cx.txn, cx.actor, &id)?;
                cx.touch(&id);
                set(&m, cx.txn, "x", x);
                set(&m, cx.txn, "y", y);
                Ok(json!({ "id": id }))
            }
            Event::ResizeNode { id, w, h } => {
                check_size(w, h)?;
                let m = entry(&nodes, cx.txn, &id).ok_or_else(|| node_missing(&id))?;
                check_unlocked(&m, cx.txn, cx.actor, &id)?;
                cx.touch(&id);
                set(&m, cx.txn, "w", w);
                set(&m, cx.txn, "h", h);
                Ok(json!({ "id": id }))
            }
            Event::DeleteNode { id } => {
                let m = entry(&nodes, cx.txn, &id).ok_or_else(|| node_missing(&id))?;
                check_unlocked(&m, cx.txn, cx.actor, &id)?;
                let touching = delete_node(cx, &id);
                Ok(json!({ "id": id, "edges_deleted": touching }))
            }
            Event::AddEdge {
                id,
                from,
                to,
                kind,
                data,
            } => {
                let id = id.unwrap_or_else(new_id);
                check_id(&id)?;
                if let Some(k) = &kind {
                    check_kind(k)?;
                }
                check_data(&data)?;
                for end in [&from, &to] {
                    if !nodes.contains_key(cx.txn, end) {
                        return Err(node_missing(end));
                    }
                }
                if edges.contains_key(cx.txn, &id) {
                    return Err(EventError::conflict(
                        ErrorCode::EdgeExists,
                        format!("an edge `{id}` exists already"),
                    ));
                }
                insert_edge(
                    cx.txn,
                    &id,
                    &from,
                    &to,
                    kind.as_deref().unwrap_or("edge"),
                    &data.unwrap_or_default(),
                );
                Ok(json!({ "id": id }))
            }
            Event::UpdateEdge { id, kind, data } => {
                if let Some(k) = &kind {
                    check_kind(k)?;
                }
                check_data(&data)?;
                let m = entry(&edges, cx.txn, &id).ok_or_else(|| edge_missing(&id))?;
                if let Some(k) = kind {
                    set(&m, cx.txn, "kind", k);
                }
                if let Some(d) = data {
                    merge_data(&m, cx.txn, d);
                }
                Ok(json!({ "id": id }))
            }
            Event::DeleteEdge { id } => {
                if edges.remove(cx.txn, &id).is_none() {
                    return Err(edge_missing(&id));
                }
                Ok(json!({ "id": id }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yrs::types::ToJson;
    use yrs::{Doc, Transact};

    use crate::gateway::module::{Actor, EventError, Modules};

    fn run_as(m: &Modules, doc: &Doc, actor: &Actor, ev: Value) -> Result<Value, EventError> {
        let parsed = m.parse(ev)?;
        let mut txn = doc.transact_mut();
        m.run("p", actor, &mut txn, parsed).0
    }

    fn run(m: &Modules, doc: &Doc, ev: Value) -> Result<Value, EventError> {
        run_as(m, doc, &Actor::user("u", "U", vec![]), ev)
    }

    fn roots(doc: &Doc) -> (Value, Value) {
        let txn = doc.transact();
        let get = |n: &str| {
            yrs::ReadTxn::get_map(&txn, n)
                .map(|m| serde_json::to_value(m.to_json(&txn)).expect("json"))
                .unwrap_or(json!({}))
        };
        (get("nodes"), get("edges"))
    }

    use serde_json::Value;

    fn code(r: Result<Value, EventError>) -> &'static str {
        match r {
            Err(EventError::Invalid { code, .. })
            | Err(EventError::NotFound { code, .. })
            | Err(EventError::Conflict { code, .. })
            | Err(EventError::Forbidden { code, .. }) => code.as_str(),
            Ok(v) => panic!("expected an error, got {v}"),
        }
    }

    #[test]
    fn nodes_and_edges_through_their_events() {
        let m = crate::gateway::modules::builtin();
        let doc = Doc::new();
        let a = run(&m, &doc, json!({"type": "core-graph:add-node", "id": "a", "kind": "note", "x": 1, "y": 2, "data": {"text": "hi"}})).expect("add a");
        assert_eq!(a, json!({"id": "a"}));
        let b = run(
            &m,
            &doc,
            json!({"type": "core-graph:add-node", "kind": "note", "x": 10, "y": 20}),
        )
        .expect("add b");
        let b = b["id"].as_str().expect("generated id").to_string();
        assert_eq!(b.len(), 32);
        run(
            &m,
            &doc,
            json!({"type": "core-graph:add-edge", "id": "e1", "from": "a", "to": b}),
        )
        .expect("edge");
        run(
            &m,
            &doc,
            json!({"type": "core-graph:add-edge", "id": "e2", "from": b, "to": b}),
        )
        .expect("loop edge");
        run(
            &m,
            &doc,
            json!({"type": "core-graph:move-node", "id": "a", "x": -5.5, "y": 7}),
        )
        .expect("move");
        run(
            &m,
            &doc,
            json!({"type": "core-graph:resize-node", "id": "a", "w": 300, "h": 200}),
        )
        .expect("resize");
        run(&m, &doc, json!({"type": "core-graph:update-node", "id": "a", "kind": "card", "data": {"text": null, "colour": "red"}}))
            .expect("update");
        let (nodes, edges) = roots(&doc);
        assert_eq!(nodes["a"]["x"], json!(-5.5));
        assert_eq!(nodes["a"]["w"].as_f64(), Some(300.0));
        assert_eq!(nodes["a"]["kind"], json!("card"));
        assert_eq!(nodes["a"]["data"], json!({"colour": "red"}));
        assert_eq!(nodes[&b]["w"].as_f64(), Some(160.0));
        assert_eq!(edges["e1"]["from"], json!("a"));
        assert_eq!(edges.as_object().map(|o| o.len()), Some(2));

        // Deleting b takes both of its edges with it.
        let r = run(&m, &doc, json!({"type": "core-graph:delete-node", "id": b})).expect("delete");
        let mut gone: Vec<String> =
            serde_json::from_value(r["edges_deleted"].clone()).expect("list");
        gone.sort();
        assert_eq!(gone, vec!["e1", "e2"]);
        let (nodes, edges) = roots(&doc);
        assert_eq!(nodes.as_object().map(|o| o.len()), Some(1));
        assert_eq!(edges, json!({}));
    }

    #[test]
    fn data_keys_merge_and_old_documents_keep_working() {
        use yrs::{Map, WriteTxn};
        let m = crate::gateway::modules::builtin();
        let doc = Doc::new();
        // A node as documents written before `data` became a map hold it: one plain value.
        {
            let mut txn = doc.transact_mut();
            let nodes = txn.get_or_insert_map("nodes");
            let prelim: yrs::MapPrelim = yrs::MapPrelim::from_iter([
                ("id", yrs::In::Any("old".into())),
                ("kind", yrs::In::Any("note".into())),
                ("x", yrs::In::Any(0.0.into())),
                ("y", yrs::In::Any(0.0.into())),
                ("w", yrs::In::Any(10.0.into())),
                ("h", yrs::In::Any(10.0.into())),
                ("data", yrs::In::Any(super::any(&json!({"a": 1, "b": 2})))),
            ]);
            nodes.insert(&mut txn, "old", prelim);
        }
        run(
            &m,
            &doc,
            json!({"type": "core-graph:update-node", "id": "old", "data": {"b": null, "c": 3}}),
        )
        .expect("update an old node");
        let (nodes, _) = roots(&doc);
        assert_eq!(nodes["old"]["data"], json!({"a": 1, "c": 3}));

        // Two replicas change different keys of one node's data at once: both stay.
        let a = Doc::with_client_id(1);
        let b = Doc::with_client_id(2);
        run(&m, &a, json!({"type": "core-graph:add-node", "id": "n", "kind": "k", "x": 0, "y": 0, "data": {"fill": "#fff"}}))
            .expect("add");
        let sync = |from: &Doc, to: &Doc| {
            use yrs::ReadTxn;
            use yrs::updates::decoder::Decode;
            let u = from
                .transact()
                .encode_state_as_update_v1(&to.transact().state_vector());
            to.transact_mut()
                .apply_update(yrs::Update::decode_v1(&u).expect("update"))
                .expect("apply");
        };
        sync(&a, &b);
        run(
            &m,
            &a,
            json!({"type": "core-graph:update-node", "id": "n", "data": {"fill": "#000"}}),
        )
        .expect("a");
        run(
            &m,
            &b,
            json!({"type": "core-graph:update-node", "id": "n", "data": {"border": "#f00"}}),
        )
        .expect("b");
        sync(&a, &b);
        sync(&b, &a);
        let (nodes, _) = roots(&a);
        assert_eq!(
            nodes["n"]["data"],
            json!({"fill": "#000", "border": "#f00"})
        );
        assert_eq!(roots(&a), roots(&b));
    }

    #[test]
    fn a_locked_node_changes_only_by_its_locker_or_an_admin() {
        use yrs::{Map, WriteTxn};
        let m = crate::gateway::modules::builtin();
        let doc = Doc::new();
        run(
            &m,
            &doc,
            json!({"type": "core-graph:add-node", "id": "a", "kind": "n", "x": 0, "y": 0}),
        )
        .expect("add");
        {
            let mut txn = doc.transact_mut();
            let nodes = txn.get_or_insert_map("nodes");
            let a = super::entry(&nodes, &txn, "a").expect("a");
            a.insert(&mut txn, "locked_by", "ada");
            a.insert(&mut txn, "locked_by_name", "Ada");
        }
        let bob = Actor::user("bob", "Bob", vec!["core-graph:nodes:write"]);
        let ada = Actor::user("ada", "Ada", vec!["core-graph:nodes:write"]);
        let admin = Actor::user(
            "carol",
            "Carol",
            vec!["core-graph:nodes:write", super::OVERRIDE_LOCKS],
        );
        for ev in [
            json!({"type": "core-graph:move-node", "id": "a", "x": 5, "y": 5}),
            json!({"type": "core-graph:resize-node", "id": "a", "w": 5, "h": 5}),
            json!({"type": "core-graph:update-node", "id": "a", "data": {"k": 1}}),
            json!({"type": "core-graph:delete-node", "id": "a"}),
        ] {
            assert_eq!(code(run_as(&m, &doc, &bob, ev.clone())), "locked", "{ev}");
        }
        assert_eq!(roots(&doc).0["a"]["x"].as_f64(), Some(0.0));
        run_as(
            &m,
            &doc,
            &ada,
            json!({"type": "core-graph:move-node", "id": "a", "x": 5, "y": 5}),
        )
        .expect("the locker moves it");
        run_as(
            &m,
            &doc,
            &admin,
            json!({"type": "core-graph:move-node", "id": "a", "x": 6, "y": 6}),
        )
        .expect("an admin moves it");
        assert_eq!(roots(&doc).0["a"]["x"].as_f64(), Some(6.0));
        let txn = doc.transact();
        assert!(m.may_change(&txn, &bob, "a").is_err());
        assert!(m.may_change(&txn, &ada, "a").is_ok());
        assert!(m.may_change(&txn, &Actor::System, "a").is_ok());
    }

    #[test]
    fn bad_events_are_refused_before_anything_is_written() {
        let m = crate::gateway::modules::builtin();
        let doc = Doc::new();
        run(
            &m,
            &doc,
            json!({"type": "core-graph:add-node", "id": "a", "kind": "n", "x": 0, "y": 0}),
        )
        .expect("add");
        let before = roots(&doc);
        let cases = [
            (
                json!({"type": "core-graph:add-node", "id": "a", "kind": "n", "x": 0, "y": 0}),
                "node_exists",
            ),
            (
                json!({"type": "core-graph:add-node", "id": "bad id", "kind": "n", "x": 0, "y": 0}),
                "invalid_id",
            ),
            (
                json!({"type": "core-graph:add-node", "kind": "", "x": 0, "y": 0}),
                "invalid_kind",
            ),
            (
                json!({"type": "core-graph:add-node", "kind": "n", "x": 1e300, "y": 0}),
                "invalid_position",
            ),
            (
                json!({"type": "core-graph:add-node", "kind": "n", "x": 0, "y": 0, "w": 0}),
                "invalid_size",
            ),
            (
                json!({"type": "core-graph:resize-node", "id": "a", "w": -1, "h": 5}),
                "invalid_size",
            ),
            (
                json!({"type": "core-graph:move-node", "id": "zz", "x": 0, "y": 0}),
                "node_not_found",
            ),
            (
                json!({"type": "core-graph:delete-node", "id": "zz"}),
                "node_not_found",
            ),
            (
                json!({"type": "core-graph:add-edge", "from": "a", "to": "zz"}),
                "node_not_found",
            ),
            (
                json!({"type": "core-graph:delete-edge", "id": "zz"}),
                "edge_not_found",
            ),
            (
                json!({"type": "core-graph:update-edge", "id": "zz", "kind": "x"}),
                "edge_not_found",
            ),
            (
                json!({"type": "core-graph:update-node", "id": "a", "data": {"big": "x".repeat(70_000)}}),
                "data_too_large",
            ),
        ];
        for (ev, expected) in cases {
            assert_eq!(code(run(&m, &doc, ev.clone())), expected, "{ev}");
        }
        assert_eq!(roots(&doc), before, "a refused event wrote nothing");
    }
}
