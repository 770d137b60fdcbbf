//! The `core-graph` module: nodes and edges with ids, positions, sizes, kinds and data.
//!
//! Document: root map `nodes` (id → map {id, kind, x, y, w, h, data}) and root map `edges`
//! (id → map {id, from, to, kind, data}), both changed through events only. Each node and edge
//! is its own map, so concurrent changes to different fields of one node merge. Deleting a
//! node deletes its edges. Root map `texts` (id → Y.Text) holds collaborative text that
//! clients write directly with Yjs updates.

use serde::Deserialize;
use serde_json::{Map as JsonMap, Value, json};
use yrs::{In, Map, MapPrelim, MapRef, Out, ReadTxn, TransactionMut, WriteTxn};

use super::{any, json};
use crate::gateway::module::{Cx, EventError, Module, RootDef, RootKind};
use crate::orgs::perms::{Level, PermissionDef, Scope};

pub struct CoreGraph;

/// Largest `data` object of a node or edge, serialised.
pub const MAX_DATA: usize = 64 * 1024;
/// Largest coordinate or size.
pub const MAX_COORD: f64 = 1e7;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Event {
    #[serde(rename = "core-graph:add-node")]
    AddNode {
        #[serde(default)]
        id: Option<String>,
        kind: String,
        x: f64,
        y: f64,
        #[serde(default = "default_w")]
        w: f64,
        #[serde(default = "default_h")]
        h: f64,
        #[serde(default)]
        data: Option<JsonMap<String, Value>>,
    },
    /// Changes the kind and/or merges keys into data (a `null` value removes a key).
    #[serde(rename = "core-graph:update-node")]
    UpdateNode {
        id: String,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        data: Option<JsonMap<String, Value>>,
    },
    #[serde(rename = "core-graph:move-node")]
    MoveNode { id: String, x: f64, y: f64 },
    #[serde(rename = "core-graph:resize-node")]
    ResizeNode { id: String, w: f64, h: f64 },
    /// Deletes the node and every edge that touches it.
    #[serde(rename = "core-graph:delete-node")]
    DeleteNode { id: String },
    #[serde(rename = "core-graph:add-edge")]
    AddEdge {
        #[serde(default)]
        id: Option<String>,
        from: String,
        to: String,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        data: Option<JsonMap<String, Value>>,
    },
    #[serde(rename = "core-graph:update-edge")]
    UpdateEdge {
        id: String,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        data: Option<JsonMap<String, Value>>,
    },
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
];

const ROOTS: &[RootDef] = &[
    RootDef {
        name: "nodes",
        kind: RootKind::Map,
        client_writable: false,
    },
    RootDef {
        name: "edges",
        kind: RootKind::Map,
        client_writable: false,
    },
    // Collaborative text (id → Y.Text, such as a node's body), typed by clients directly.
    RootDef {
        name: "texts",
        kind: RootKind::Map,
        client_writable: true,
    },
];

fn check_id(id: &str) -> Result<(), EventError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(EventError::invalid(
            "invalid_id",
            "an id is 1 to 64 letters, digits, `-` or `_`",
        ));
    }
    Ok(())
}

fn check_kind(kind: &str) -> Result<(), EventError> {
    if kind.trim().is_empty() || kind.chars().count() > 64 {
        return Err(EventError::invalid(
            "invalid_kind",
            "a kind is 1 to 64 characters",
        ));
    }
    Ok(())
}

fn check_coord(name: &str, v: f64) -> Result<(), EventError> {
    if !v.is_finite() || v.abs() > MAX_COORD {
        return Err(EventError::invalid(
            "invalid_position",
            format!("`{name}` must be a number within ±{MAX_COORD}"),
        ));
    }
    Ok(())
}

fn check_size(w: f64, h: f64) -> Result<(), EventError> {
    if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0 && w <= MAX_COORD && h <= MAX_COORD) {
        return Err(EventError::invalid(
            "invalid_size",
            format!("width and height must be greater than 0 and at most {MAX_COORD}"),
        ));
    }
    Ok(())
}

fn check_data(data: &Option<JsonMap<String, Value>>) -> Result<(), EventError> {
    if let Some(d) = data
        && serde_json::to_vec(d).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_DATA
    {
        return Err(EventError::invalid(
            "data_too_large",
            format!("`data` is limited to {MAX_DATA} bytes"),
        ));
    }
    Ok(())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn entry<T: ReadTxn>(root: &MapRef, txn: &T, id: &str) -> Option<MapRef> {
    match root.get(txn, id) {
        Some(Out::YMap(m)) => Some(m),
        _ => None,
    }
}

fn node_missing(id: &str) -> EventError {
    EventError::not_found("node_not_found", format!("no node `{id}`"))
}

fn edge_missing(id: &str) -> EventError {
    EventError::not_found("edge_not_found", format!("no edge `{id}`"))
}

/// Merges `patch` into the `data` object of `m` (`null` removes a key).
fn merge_data(m: &MapRef, txn: &mut TransactionMut, patch: JsonMap<String, Value>) {
    let mut data = match m.get(txn, "data").map(|v| json(&v)) {
        Some(Value::Object(o)) => o,
        _ => JsonMap::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            data.remove(&k);
        } else {
            data.insert(k, v);
        }
    }
    m.insert(txn, "data", any(&Value::Object(data)));
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
    fn permission(&self, event: &Event) -> &'static str {
        match event {
            Event::AddEdge { .. } | Event::UpdateEdge { .. } | Event::DeleteEdge { .. } => {
                "core-graph:edges:write"
            }
            _ => "core-graph:nodes:write",
        }
    }

    fn reduce(&self, cx: &mut Cx<'_, '_>, event: Event) -> Result<Value, EventError> {
        let nodes = cx.txn.get_or_insert_map("nodes");
        let edges = cx.txn.get_or_insert_map("edges");
        let txn = &mut *cx.txn;
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
                if nodes.contains_key(txn, &id) {
                    return Err(EventError::conflict(
                        "node_exists",
                        format!("a node `{id}` exists already"),
                    ));
                }
                let data = Value::Object(data.unwrap_or_default());
                let prelim: MapPrelim = MapPrelim::from_iter([
                    ("id", In::Any(id.clone().into())),
                    ("kind", In::Any(kind.into())),
                    ("x", In::Any(x.into())),
                    ("y", In::Any(y.into())),
                    ("w", In::Any(w.into())),
                    ("h", In::Any(h.into())),
                    ("data", In::Any(any(&data))),
                ]);
                nodes.insert(txn, id.as_str(), prelim);
                Ok(json!({ "id": id }))
            }
            Event::UpdateNode { id, kind, data } => {
                if let Some(k) = &kind {
                    check_kind(k)?;
                }
                check_data(&data)?;
                let m = entry(&nodes, txn, &id).ok_or_else(|| node_missing(&id))?;
                if let Some(k) = kind {
                    m.insert(txn, "kind", k);
                }
                if let Some(d) = data {
                    merge_data(&m, txn, d);
                }
                Ok(json!({ "id": id }))
            }
            Event::MoveNode { id, x, y } => {
                check_coord("x", x)?;
                check_coord("y", y)?;
                let m = entry(&nodes, txn, &id).ok_or_else(|| node_missing(&id))?;
                m.insert(txn, "x", x);
                m.insert(txn, "y", y);
                Ok(json!({ "id": id }))
            }
            Event::ResizeNode { id, w, h } => {
                check_size(w, h)?;
                let m = entry(&nodes, txn, &id).ok_or_else(|| node_missing(&id))?;
                m.insert(txn, "w", w);
                m.insert(txn, "h", h);
                Ok(json!({ "id": id }))
            }
            Event::DeleteNode { id } => {
                if !nodes.contains_key(txn, &id) {
                    return Err(node_missing(&id));
                }
                let touching: Vec<String> = edges
                    .iter(txn)
                    .filter_map(|(eid, v)| {
                        let Out::YMap(e) = v else { return None };
                        let ends = |k: &str| e.get(txn, k).map(|v| json(&v)) == Some(json!(id));
                        (ends("from") || ends("to")).then(|| eid.to_string())
                    })
                    .collect();
                for eid in &touching {
                    edges.remove(txn, eid);
                }
                nodes.remove(txn, &id);
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
                    if !nodes.contains_key(txn, end) {
                        return Err(node_missing(end));
                    }
                }
                if edges.contains_key(txn, &id) {
                    return Err(EventError::conflict(
                        "edge_exists",
                        format!("an edge `{id}` exists already"),
                    ));
                }
                let data = Value::Object(data.unwrap_or_default());
                let prelim: MapPrelim = MapPrelim::from_iter([
                    ("id", In::Any(id.clone().into())),
                    ("from", In::Any(from.into())),
                    ("to", In::Any(to.into())),
                    (
                        "kind",
                        In::Any(kind.unwrap_or_else(|| "edge".into()).into()),
                    ),
                    ("data", In::Any(any(&data))),
                ]);
                edges.insert(txn, id.as_str(), prelim);
                Ok(json!({ "id": id }))
            }
            Event::UpdateEdge { id, kind, data } => {
                if let Some(k) = &kind {
                    check_kind(k)?;
                }
                check_data(&data)?;
                let m = entry(&edges, txn, &id).ok_or_else(|| edge_missing(&id))?;
                if let Some(k) = kind {
                    m.insert(txn, "kind", k);
                }
                if let Some(d) = data {
                    merge_data(&m, txn, d);
                }
                Ok(json!({ "id": id }))
            }
            Event::DeleteEdge { id } => {
                if edges.remove(txn, &id).is_none() {
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

    fn run(m: &Modules, doc: &Doc, ev: Value) -> Result<Value, EventError> {
        let parsed = m.parse(ev)?;
        let mut txn = doc.transact_mut();
        m.run("p", &Actor::User("u".into()), &mut txn, parsed)
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
            | Err(EventError::Forbidden { code, .. }) => code,
            Ok(v) => panic!("expected an error, got {v}"),
        }
    }

    #[test]
    fn nodes_and_edges_through_their_events() {
        let m = Modules::builtin();
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
    fn bad_events_are_refused_before_anything_is_written() {
        let m = Modules::builtin();
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
