//! Board files: our own (`demiurge-board`, versioned, everything a view holds) and JSON
//! Canvas 1.0 (jsoncanvas.org: text, file, link and group nodes, and edges between them;
//! what it has no field for is kept under `demiurge` so a round trip loses nothing). Both
//! export from the document's roots and import as one `whiteboard:insert` (new ids, placed
//! where the person asked).

use serde_json::{Map as JsonMap, Value, json};

use super::{InsertCard, InsertEdge};

/// The name and version of our own board files.
pub const FORMAT: &str = "demiurge-board";
pub const VERSION: u64 = 1;

/// Why a file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("this is not a board file: {0}")]
    NotABoard(String),
    #[error("the file has nothing to import")]
    Empty,
    #[error("{0}")]
    Invalid(String),
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64).filter(|n| n.is_finite())
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// One card of view `view` in the document's roots, as the files hold it.
struct Row {
    id: String,
    kind: String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    z: f64,
    parent: Option<String>,
    collapsed: bool,
    text: String,
    data: Value,
}

fn rows(roots: &Value, view: &str, only: Option<&[String]>) -> Vec<Row> {
    let empty = Value::Object(JsonMap::new());
    let nodes = roots.get("nodes").unwrap_or(&empty);
    let texts = roots.get("texts").unwrap_or(&empty);
    let layouts = roots
        .get("views")
        .and_then(|v| v.get(view))
        .and_then(|v| v.get("cards"))
        .unwrap_or(&empty);
    let mut out: Vec<Row> = nodes
        .as_object()
        .map(|ns| {
            ns.iter()
                .filter(|(id, _)| only.is_none_or(|o| o.iter().any(|i| i == *id)))
                .map(|(id, n)| {
                    let l = layouts.get(id).unwrap_or(&empty);
                    let own = view != super::doc::MAIN;
                    let g = |k: &str, d: f64| {
                        own.then(|| num(l, k))
                            .flatten()
                            .or_else(|| num(n, k))
                            .unwrap_or(d)
                    };
                    Row {
                        id: id.clone(),
                        kind: s(n, "kind").unwrap_or("note").to_string(),
                        x: g("x", 0.0),
                        y: g("y", 0.0),
                        w: g("w", 160.0).max(1.0),
                        h: g("h", 90.0).max(1.0),
                        z: num(l, "z").unwrap_or(0.0),
                        parent: s(l, "parent").map(str::to_string),
                        collapsed: l.get("collapsed").and_then(Value::as_bool).unwrap_or(false),
                        text: s(texts, id).unwrap_or_default().to_string(),
                        data: n.get("data").cloned().unwrap_or(json!({})),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.z.total_cmp(&b.z).then(a.id.cmp(&b.id)));
    // A frame that is not exported is no card's frame.
    let ids: Vec<String> = out.iter().map(|r| r.id.clone()).collect();
    for r in &mut out {
        if r.parent.as_ref().is_some_and(|p| !ids.contains(p)) {
            r.parent = None;
        }
    }
    out
}

/// The edges between the cards in `ids`.
fn edges_between<'a>(roots: &'a Value, ids: &[String]) -> Vec<(&'a String, &'a Value)> {
    let mut out: Vec<(&String, &Value)> = roots
        .get("edges")
        .and_then(Value::as_object)
        .map(|es| {
            es.iter()
                .filter(|(_, e)| {
                    let end = |k| s(e, k).is_some_and(|id| ids.iter().any(|i| i == id));
                    end("from") && end("to")
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// Our own board file of view `view` (every card, or only `only`).
pub fn export_board(roots: &Value, view: &str, only: Option<&[String]>) -> Value {
    let rows = rows(roots, view, only);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let cards: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut c = json!({
                "id": r.id, "kind": r.kind, "x": r.x, "y": r.y, "w": r.w, "h": r.h, "z": r.z,
                "data": r.data,
            });
            if !r.text.is_empty() {
                c["text"] = json!(r.text);
            }
            if let Some(p) = &r.parent {
                c["parent"] = json!(p);
            }
            if r.collapsed {
                c["collapsed"] = json!(true);
            }
            c
        })
        .collect();
    let edges: Vec<Value> = edges_between(roots, &ids)
        .into_iter()
        .map(|(id, e)| {
            json!({
                "id": id,
                "from": e.get("from"),
                "to": e.get("to"),
                "data": e.get("data").cloned().unwrap_or(json!({})),
            })
        })
        .collect();
    json!({ "format": FORMAT, "version": VERSION, "view": view, "cards": cards, "edges": edges })
}

/// JSON Canvas's colour of a card or edge (hex, as the spec allows).
fn canvas_colour(data: &Value, key: &str) -> Option<String> {
    s(data, key)
        .filter(|c| c.starts_with('#'))
        .map(str::to_string)
}

/// A JSON Canvas 1.0 file of view `view`.
pub fn export_canvas(roots: &Value, view: &str, only: Option<&[String]>) -> Value {
    let rows = rows(roots, view, only);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    // Groups first: JSON Canvas draws in array order, and a group belongs under its cards.
    let mut ordered: Vec<&Row> = rows.iter().filter(|r| r.kind == "frame").collect();
    ordered.extend(rows.iter().filter(|r| r.kind != "frame"));
    let nodes: Vec<Value> = ordered
        .into_iter()
        .map(|r| {
            let mut n = json!({
                "id": r.id,
                "x": r.x.round() as i64, "y": r.y.round() as i64,
                "width": r.w.round().max(1.0) as i64, "height": r.h.round().max(1.0) as i64,
                "demiurge": {"kind": r.kind, "data": r.data, "z": r.z},
            });
            if r.kind == "frame" {
                n["type"] = json!("group");
                n["label"] = json!(s(&r.data, "title").unwrap_or("Frame"));
                if let Some(c) = canvas_colour(&r.data, "border") {
                    n["color"] = json!(c);
                }
            } else {
                n["type"] = json!("text");
                n["text"] = json!(r.text);
                if let Some(c) = canvas_colour(&r.data, "fill") {
                    n["color"] = json!(c);
                }
            }
            n
        })
        .collect();
    let edges: Vec<Value> = edges_between(roots, &ids)
        .into_iter()
        .map(|(id, e)| {
            let d = e.get("data").cloned().unwrap_or(json!({}));
            let end = |k: &str, default: &str| match s(&d, k).unwrap_or(default) {
                "arrow" => "arrow",
                _ => "none",
            };
            let mut out = json!({
                "id": id,
                "fromNode": e.get("from"),
                "toNode": e.get("to"),
                "fromEnd": end("start", "none"),
                "toEnd": end("end", "arrow"),
                "demiurge": {"data": d},
            });
            if let Some(c) = canvas_colour(&d, "color") {
                out["color"] = json!(c);
            }
            if let Some(l) = s(&d, "label").filter(|l| !l.is_empty()) {
                out["label"] = json!(l);
            }
            out
        })
        .collect();
    json!({ "nodes": nodes, "edges": edges })
}

/// The cards and connectors of a board file (ours or JSON Canvas), for a `whiteboard:insert`.
pub fn import(file: &Value) -> Result<(Vec<InsertCard>, Vec<InsertEdge>), FormatError> {
    let parsed = if file.get("format").and_then(Value::as_str) == Some(FORMAT) {
        import_board(file)?
    } else if file.get("nodes").is_some_and(Value::is_array) {
        import_canvas(file)?
    } else {
        return Err(FormatError::NotABoard(
            "expected a Demiurge board file or a JSON Canvas file (with `nodes`)".into(),
        ));
    };
    if parsed.0.is_empty() {
        return Err(FormatError::Empty);
    }
    Ok(parsed)
}

fn data_of(v: Option<&Value>) -> Option<JsonMap<String, Value>> {
    v.and_then(Value::as_object).cloned()
}

fn card_id(v: &Value, i: usize) -> String {
    match v.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.chars().take(64).collect(),
        Some(Value::Number(n)) => n.to_string(),
        _ => format!("card-{i}"),
    }
}

fn geometry(v: &Value, keys: [&str; 4]) -> Result<(f64, f64, f64, f64), FormatError> {
    let get = |k: &str| {
        num(v, k).ok_or_else(|| FormatError::Invalid(format!("a card has no number `{k}`")))
    };
    Ok((get(keys[0])?, get(keys[1])?, get(keys[2])?, get(keys[3])?))
}

fn import_board(file: &Value) -> Result<(Vec<InsertCard>, Vec<InsertEdge>), FormatError> {
    if file.get("version").and_then(Value::as_u64).unwrap_or(0) > VERSION {
        return Err(FormatError::Invalid(format!(
            "this board file is version {}; this server reads up to {VERSION}",
            file["version"]
        )));
    }
    let cards = file
        .get("cards")
        .and_then(Value::as_array)
        .ok_or_else(|| FormatError::Invalid("a board file has `cards`".into()))?;
    let mut out = Vec::with_capacity(cards.len());
    for (i, c) in cards.iter().enumerate() {
        let (x, y, w, h) = geometry(c, ["x", "y", "w", "h"])?;
        out.push(InsertCard {
            reference: card_id(c, i),
            kind: s(c, "kind").unwrap_or("note").chars().take(64).collect(),
            x,
            y,
            w,
            h,
            text: s(c, "text").map(str::to_string),
            data: data_of(c.get("data")),
            parent: s(c, "parent").map(str::to_string),
            z: num(c, "z"),
        });
    }
    let edges = file
        .get("edges")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .filter_map(|e| {
                    Some(InsertEdge {
                        reference: s(e, "id").map(str::to_string),
                        from: s(e, "from")?.to_string(),
                        to: s(e, "to")?.to_string(),
                        data: data_of(e.get("data")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((out, edges))
}

/// A JSON Canvas colour: hex, or a preset "1"–"6" (red, orange, yellow, green, cyan, purple).
fn from_canvas_colour(c: &str) -> Option<String> {
    let preset = match c {
        "1" => "#ffc9c9",
        "2" => "#ffd8a8",
        "3" => "#ffe27a",
        "4" => "#b2f2bb",
        "5" => "#99e9f2",
        "6" => "#d0bfff",
        other => {
            let hex = other.strip_prefix('#')?;
            return ((hex.len() == 3 || hex.len() == 6)
                && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| other.to_string());
        }
    };
    Some(preset.to_string())
}

fn import_canvas(file: &Value) -> Result<(Vec<InsertCard>, Vec<InsertEdge>), FormatError> {
    let nodes = file
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| FormatError::Invalid("a JSON Canvas file has `nodes`".into()))?;
    let mut out = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let (x, y, w, h) = geometry(n, ["x", "y", "width", "height"])?;
        let ours = n.get("demiurge");
        let kind_of_type = match s(n, "type").unwrap_or("text") {
            "group" => "frame",
            _ => "note",
        };
        let kind = ours
            .and_then(|o| s(o, "kind"))
            .unwrap_or(kind_of_type)
            .chars()
            .take(64)
            .collect::<String>();
        let mut data = data_of(ours.and_then(|o| o.get("data"))).unwrap_or_default();
        let text = match s(n, "type").unwrap_or("text") {
            "text" => s(n, "text").map(str::to_string),
            "file" => s(n, "file").map(|f| format!("📄 {f}")),
            "link" => s(n, "url").map(str::to_string),
            _ => None,
        };
        if s(n, "type") == Some("group") {
            data.entry("title")
                .or_insert_with(|| json!(s(n, "label").unwrap_or("Group")));
        }
        if let Some(c) = s(n, "color").and_then(from_canvas_colour) {
            let key = if kind == "frame" { "border" } else { "fill" };
            data.entry(key).or_insert_with(|| json!(c));
        }
        out.push(InsertCard {
            reference: card_id(n, i),
            kind,
            x,
            y,
            w,
            h,
            text,
            data: Some(data),
            // JSON Canvas groups are containment only: the frame is found by geometry.
            parent: None,
            z: ours.and_then(|o| num(o, "z")).or(Some(i as f64)),
        });
    }
    let edges = file
        .get("edges")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .filter_map(|e| {
                    let mut data =
                        data_of(e.get("demiurge").and_then(|o| o.get("data"))).unwrap_or_default();
                    if let Some(c) = s(e, "color").and_then(from_canvas_colour) {
                        data.insert("color".into(), json!(c));
                    }
                    if let Some(l) = s(e, "label") {
                        data.insert("label".into(), json!(l));
                    }
                    data.insert(
                        "start".into(),
                        json!(if s(e, "fromEnd") == Some("arrow") {
                            "arrow"
                        } else {
                            "none"
                        }),
                    );
                    data.insert(
                        "end".into(),
                        json!(if s(e, "toEnd").unwrap_or("arrow") == "arrow" {
                            "arrow"
                        } else {
                            "none"
                        }),
                    );
                    Some(InsertEdge {
                        reference: s(e, "id").map(str::to_string),
                        from: s(e, "fromNode")?.to_string(),
                        to: s(e, "toNode")?.to_string(),
                        data: Some(data),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((out, edges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Value {
        json!({
            "nodes": {
                "a": {"kind": "note", "x": 10.4, "y": 0, "w": 200, "h": 100, "data": {"fill": "#ffc9c9"}},
                "b": {"kind": "shape", "x": 400, "y": 0, "w": 100, "h": 100, "data": {"shape": "ellipse"}},
                "f": {"kind": "frame", "x": -50, "y": -50, "w": 700, "h": 300, "data": {"title": "Plan", "border": "#1864ab"}}
            },
            "edges": {"e": {"from": "a", "to": "b", "data": {"label": "next", "color": "#c92a2a"}}, "x": {"from": "a", "to": "zz"}},
            "texts": {"a": "hello"},
            "views": {"main": {"cards": {"a": {"z": 2, "parent": "f"}, "b": {"z": 3}, "f": {"z": 1}}}}
        })
    }

    #[test]
    fn our_board_file_round_trips() {
        let file = export_board(&roots(), "main", None);
        assert_eq!(file["format"], FORMAT);
        assert_eq!(file["cards"].as_array().map(Vec::len), Some(3));
        assert_eq!(file["cards"][0]["id"], "f", "by z");
        assert_eq!(file["cards"][1]["parent"], "f");
        assert_eq!(
            file["edges"].as_array().map(Vec::len),
            Some(1),
            "only edges between exported cards"
        );
        let (cards, edges) = import(&file).expect("import");
        assert_eq!(cards.len(), 3);
        assert_eq!(cards[1].text.as_deref(), Some("hello"));
        assert_eq!(cards[1].parent.as_deref(), Some("f"));
        assert_eq!(edges[0].from, "a");
        let part = export_board(&roots(), "main", Some(&["a".into()]));
        assert!(
            part["cards"][0].get("parent").is_none(),
            "its frame is not in the file"
        );
        let newer = json!({"format": FORMAT, "version": 99, "cards": []});
        assert!(matches!(import(&newer), Err(FormatError::Invalid(_))));
        assert!(matches!(
            import(&json!({"hello": 1})),
            Err(FormatError::NotABoard(_))
        ));
    }

    #[test]
    fn json_canvas_has_the_spec_fields_and_round_trips() {
        let c = export_canvas(&roots(), "main", None);
        let nodes = c["nodes"].as_array().expect("nodes");
        assert_eq!(nodes[0]["type"], "group", "groups first");
        assert_eq!(nodes[0]["label"], "Plan");
        for n in nodes {
            for k in ["id", "type", "x", "y", "width", "height"] {
                assert!(n.get(k).is_some(), "{k} in {n}");
            }
            assert!(n["x"].is_i64() && n["width"].is_i64(), "integers: {n}");
        }
        let text = nodes.iter().find(|n| n["id"] == "a").expect("a");
        assert_eq!(
            (
                text["text"].as_str(),
                text["x"].as_i64(),
                text["color"].as_str()
            ),
            (Some("hello"), Some(10), Some("#ffc9c9"))
        );
        let e = &c["edges"][0];
        for k in ["id", "fromNode", "toNode"] {
            assert!(e.get(k).is_some(), "{k}");
        }
        assert_eq!(
            (e["label"].as_str(), e["toEnd"].as_str()),
            (Some("next"), Some("arrow"))
        );
        let (cards, edges) = import(&c).expect("import");
        let a = cards.iter().find(|c| c.reference == "a").expect("a");
        assert_eq!(
            (a.kind.as_str(), a.text.as_deref()),
            ("note", Some("hello"))
        );
        let b = cards.iter().find(|c| c.reference == "b").expect("b");
        assert_eq!(b.kind, "shape", "our kind survives the round trip");
        assert_eq!(
            edges[0].data.as_ref().and_then(|d| d.get("label")),
            Some(&json!("next"))
        );
        // A JSON Canvas file from elsewhere: file and link nodes, preset colours.
        let foreign = json!({"nodes": [
            {"id": "1", "type": "file", "file": "notes/a.md", "x": 0, "y": 0, "width": 100, "height": 50, "color": "4"},
            {"id": "2", "type": "link", "url": "https://example.org", "x": 200, "y": 0, "width": 100, "height": 50},
            {"id": "3", "type": "group", "label": "G", "x": -10, "y": -10, "width": 400, "height": 100}
        ], "edges": [{"id": "e", "fromNode": "1", "toNode": "2", "fromSide": "right"}]});
        let (cards, edges) = import(&foreign).expect("import");
        assert_eq!(cards[0].text.as_deref(), Some("📄 notes/a.md"));
        assert_eq!(
            cards[0].data.as_ref().and_then(|d| d.get("fill")),
            Some(&json!("#b2f2bb"))
        );
        assert_eq!(cards[2].kind, "frame");
        assert_eq!(edges.len(), 1);
        assert!(matches!(
            import(&json!({"nodes": [{"id": "x", "type": "text"}]})),
            Err(FormatError::Invalid(_))
        ));
    }
}
