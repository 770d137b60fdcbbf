//! The whiteboard over HTTP on SQLite and PostgreSQL: its events from people with different
//! roles, per-user undo and redo through `/undo` and `/redo`, and locks that hold against
//! events, undo and a stock Yjs client writing a locked card's text.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Server;
use crate::harness::team::{Team, options, pg_url, team};
use crate::harness::yjs::yclient;

impl Team {
    async fn undo(&self, who: &crate::harness::Browser, redo: bool) -> (StatusCode, Value) {
        let verb = if redo { "redo" } else { "undo" };
        who.post(&format!("/api/v1/projects/{}/{verb}", self.pid), json!({}))
            .await
    }

    async fn node(&self, id: &str) -> Value {
        self.document(&self.owner).await["roots"]["nodes"][id].clone()
    }
}

async fn ok(t: &Team, who: &crate::harness::Browser, ev: Value) -> Value {
    let (st, body) = t.event(who, ev.clone()).await;
    assert_eq!(st, StatusCode::OK, "{ev}: {body}");
    body["result"].clone()
}

async fn board_events_undo_and_locks(pg: bool) {
    let server = Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;

    // Owner and editor each add a card; the editor colours the owner's.
    ok(&t, &t.owner, json!({"type": "whiteboard:add-card", "id": "mine", "kind": "note", "x": 0, "y": 0, "text": "owner's"})).await;
    ok(&t, &t.editor, json!({"type": "whiteboard:add-card", "id": "theirs", "kind": "shape", "x": 400, "y": 0, "style": {"shape": "ellipse"}})).await;
    ok(
        &t,
        &t.editor,
        json!({"type": "whiteboard:style", "cards": ["mine"], "style": {"fill": "#ff0000"}}),
    )
    .await;
    // The owner drags their card (ten moves, one step), then the editor moves it too.
    for i in 1..=10 {
        ok(&t, &t.owner, json!({"type": "whiteboard:move", "step": "drag", "moves": [{"id": "mine", "x": i * 10, "y": 0}], "drop": i == 10})).await;
    }
    let d = t.document(&t.owner).await;
    assert_eq!(d["roots"]["nodes"]["mine"]["x"].as_f64(), Some(100.0));
    assert_eq!(
        d["roots"]["views"]["main"]["cards"]["theirs"]["z"].as_f64(),
        Some(2.0),
        "{d}"
    );
    assert_eq!(d["roots"]["texts"]["mine"], "owner's");

    // The owner's undo takes back the whole drag, and nothing of the editor's.
    let (st, u) = t.undo(&t.owner, false).await;
    assert_eq!(st, StatusCode::OK, "{u}");
    assert_eq!(u["type"], "undo");
    assert!(u["seq"].as_i64().is_some(), "{u}");
    let mine = t.node("mine").await;
    assert_eq!(mine["x"].as_f64(), Some(0.0), "{mine}");
    assert_eq!(mine["data"]["fill"], "#ff0000", "the editor's colour stays");
    let (st, _) = t.undo(&t.owner, true).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t.node("mine").await["x"].as_f64(), Some(100.0));
    // The editor's undo takes back their colour only.
    let (st, _) = t.undo(&t.editor, false).await;
    assert_eq!(st, StatusCode::OK);
    let mine = t.node("mine").await;
    assert!(mine["data"].get("fill").is_none(), "{mine}");
    assert_eq!(mine["x"].as_f64(), Some(100.0));

    // A viewer changes nothing, by events or undo; an outsider sees nothing.
    let (st, e) = t
        .event(
            &t.viewer,
            json!({"type": "whiteboard:move", "moves": [{"id": "mine", "x": 5, "y": 5}]}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{e}"
    );
    let (st, e) = t.undo(&t.viewer, false).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    let (st, _) = t
        .event(
            &t.outsider,
            json!({"type": "whiteboard:delete", "cards": ["mine"]}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, e) = t.event(&t.editor, json!({"type": "whiteboard:add-card", "kind": "note", "x": 0, "y": 0, "style": {"fill": "nope"}})).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_style")),
        "{e}"
    );
    let (st, e) = t
        .event(
            &t.editor,
            json!({"type": "whiteboard:move", "step": 5, "moves": []}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_event")),
        "{e}"
    );

    // The editor locks the shape: the owner (an admin) may still move it, but an undo by
    // the owner of a change to it is refused while someone else holds the lock.
    ok(
        &t,
        &t.owner,
        json!({"type": "whiteboard:style", "cards": ["theirs"], "style": {"border": "#00ff00"}}),
    )
    .await;
    ok(
        &t,
        &t.editor,
        json!({"type": "whiteboard:lock", "cards": ["theirs", "mine"], "locked": true}),
    )
    .await;
    let (st, e) = t.undo(&t.viewer, false).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    ok(
        &t,
        &t.owner,
        json!({"type": "whiteboard:move", "moves": [{"id": "theirs", "x": 500, "y": 0}]}),
    )
    .await;
    ok(
        &t,
        &t.owner,
        json!({"type": "whiteboard:lock", "cards": ["theirs"], "locked": false}),
    )
    .await;
    ok(
        &t,
        &t.editor,
        json!({"type": "whiteboard:lock", "cards": ["theirs"], "locked": true}),
    )
    .await;

    // A second editor: the locks hold against them in events and through a stock Yjs client.
    let (other, _) = crate::harness::signed_up(&server, "other").await;
    for (path, body) in [
        (
            format!("/api/v1/orgs/{}/members", t.org),
            json!({"user": "other", "role": "org:member"}),
        ),
        (
            format!("/api/v1/projects/{}/members", t.pid),
            json!({"user": "other", "role": "project:editor"}),
        ),
    ] {
        let (st, b) = t.owner.post(&path, body).await;
        assert!(st.is_success(), "{path}: {b}");
    }
    let (st, e) = t
        .event(
            &other,
            json!({"type": "whiteboard:delete", "cards": ["mine"]}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("locked")),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap_or_default().contains("EDITOR")
            || e["message"].as_str().unwrap_or_default().contains("editor"),
        "{e}"
    );
    let (token, _) = crate::harness::team::token_of(&other).await;
    let r = yclient(&["edit", &t.base, &token, "mine", " + more"]);
    assert_eq!(r["closed"], 1008, "the write is refused: {r}");
    let d = t.document(&t.owner).await;
    assert_eq!(d["roots"]["texts"]["mine"], "owner's", "{d}");
    // Unlocked, the same write goes through.
    ok(
        &t,
        &t.editor,
        json!({"type": "whiteboard:lock", "cards": ["mine"], "locked": false}),
    )
    .await;
    let r = yclient(&["edit", &t.base, &token, "mine", " + more"]);
    assert!(r["closed"].is_null(), "{r}");
    let d = t.document(&t.owner).await;
    assert_eq!(d["roots"]["texts"]["mine"], "owner's + more", "{d}");

    // Every event type of the whiteboard module is in the API document.
    let (_, api) = t.owner.get("/api/v1/openapi.json").await;
    let text = api.to_string();
    for ev in [
        "whiteboard:add-card",
        "whiteboard:connect",
        "whiteboard:insert",
        "whiteboard:move",
        "whiteboard:resize",
        "whiteboard:delete",
        "whiteboard:style",
        "whiteboard:style-edges",
        "whiteboard:edit-text",
        "whiteboard:order",
        "whiteboard:lock",
        "whiteboard:collapse",
        "whiteboard:group",
        "whiteboard:align",
        "whiteboard:distribute",
        "whiteboard:add-view",
        "whiteboard:rename-view",
        "whiteboard:delete-view",
        "core-graph:add-node",
    ] {
        assert!(
            text.contains(&format!("\"{ev}\"")),
            "{ev} is not in the OpenAPI document"
        );
    }
    assert!(api["paths"]["/api/v1/projects/{id}/undo"]["post"].is_object());
    // And every schema it refers to is in it.
    let refs: Vec<&str> = text
        .split("\"$ref\":\"#/components/schemas/")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .collect();
    assert!(refs.contains(&"ModuleEvent"), "the events body is typed");
    for r in refs {
        assert!(
            api["components"]["schemas"][r].is_object(),
            "dangling $ref {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn board_events_undo_and_locks_sqlite() {
    board_events_undo_and_locks(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn board_events_undo_and_locks_postgres() {
    board_events_undo_and_locks(true).await;
}

/// Log-in details for the browser scripts (every team member's password is the same).
fn login(name: &str) -> Value {
    json!({"login": name, "password": "correct horse battery"})
}

/// `tests/peers/ui_board.mjs` in `mode` against `server`, with its screenshots in `shots`.
fn board_script(
    server: &Server,
    mode: &str,
    shots: &std::path::Path,
    args: &str,
) -> crate::harness::chromium::Script {
    let base = format!("http://localhost:{}", server.http.port());
    crate::harness::chromium::Script::start(
        "ui_board.mjs",
        &[mode, &base, &shots.display().to_string(), args],
    )
    .quoting_logs_of(server)
}

/// Two people on one board in Chromium: A types a note, B sees it and drags it, A connects
/// it to a shape, B deletes the shape and the connector goes, per-user undo, a lock B cannot
/// get past; a stock Yjs client and the document agree with what the pages show.
#[tokio::test(flavor = "multi_thread")]
async fn two_people_on_one_board_in_chromium() {
    use std::time::Duration;
    let server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let shots = crate::harness::chromium::artifacts_dir("ui-board");
    let args = json!({"pid": t.pid, "a": login("owner"), "b": login("editor")}).to_string();
    let mut s = board_script(&server, "people", &shots, &args);
    let p = s.expect("PHASE", Duration::from_secs(120));
    let (note, shape) = (p["note"].as_str().unwrap(), p["shape"].as_str().unwrap());
    let d = t.document(&t.owner).await;
    let edges = d["roots"]["edges"].as_object().expect("edges");
    assert_eq!(edges.len(), 1, "{d}");
    let e = edges.values().next().unwrap();
    assert_eq!(
        (e["from"].as_str(), e["to"].as_str()),
        (Some(note), Some(shape))
    );
    assert_eq!(d["roots"]["texts"][note], "Hello from A");
    assert_eq!(d["roots"]["texts"][shape], "Shape of A");
    // A stock Yjs client sees the same board.
    let seen = yclient(&[
        "watch",
        &t.base,
        &t.t_editor,
        &format!(
            "Object.keys(d.edges).length === 1 && d.texts['{note}'] === 'Hello from A' && d.nodes['{shape}']"
        ),
    ]);
    assert_eq!(seen["doc"]["nodes"][note]["kind"], "note");
    s.send("go");
    s.expect("PHASE", Duration::from_secs(60));
    let seen = yclient(&[
        "watch",
        &t.base,
        &t.t_viewer,
        "Object.keys(d.nodes).length === 1 && Object.keys(d.edges).length === 0",
    ]);
    assert!(seen["doc"]["nodes"][note].is_object(), "{seen}");
    s.send("go");
    let r = s.expect("RESULT", Duration::from_secs(150));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert!(r["a_sees_move"].as_f64().unwrap() > 150.0, "{r}");
    assert_eq!(r["edge_from"], note);
    assert_eq!(
        r["after_delete"],
        json!({"nodes": 1, "edges": 0, "text": "Hello from A"})
    );
    // A's undo took back A's colour only: B's move and B's card stay.
    let u = &r["undo"];
    assert_eq!(u["fill"], Value::Null, "{r}");
    assert_eq!(u["x"], u["moved_x"], "B's move stays: {r}");
    assert_eq!(u["b_card_kept"], true, "{r}");
    assert_eq!(r["redo_fill"], "#ffc9c9");
    let l = &r["lock"];
    assert_eq!(
        (l["still_there"].as_bool(), l["x_unchanged"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );
    assert_eq!(
        (l["api_status"].as_u64(), l["api_code"].as_str()),
        (Some(403), Some("locked")),
        "{r}"
    );
    assert!(
        l["toast"].as_str().unwrap_or_default().contains("locked"),
        "B is told why: {r}"
    );
    let c = &r["cursors"];
    let editor = t.editor_id.as_str();
    let owner = t.owner_id.as_str();
    assert_eq!(
        (c["a_sees"].as_str(), c["b_sees"].as_str()),
        (Some(editor), Some(owner)),
        "{r}"
    );
    assert_eq!(
        (
            c["a_sees_selection_of"].as_str(),
            c["b_sees_selection_of"].as_str()
        ),
        (Some(editor), Some(owner))
    );
    assert_eq!(c["a_cursor_name"], "editor");
    for f in ["board-a.png", "board-b.png"] {
        assert!(shots.join(f).is_file(), "screenshot {f} kept");
    }
}

/// Files and the clipboard in Chromium: three cards aligned, framed, one dragged out of its
/// frame and back in, duplicated; copied on one board and pasted on another project's; the
/// board exported as PNG, SVG, a board file and JSON Canvas from the page's menu, and both
/// files imported back from the file picker.
#[tokio::test(flavor = "multi_thread")]
async fn board_files_and_clipboard_in_chromium() {
    use std::time::Duration;
    let server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let (_, p2) = t
        .owner
        .post(
            &format!("/api/v1/orgs/{}/projects", t.org),
            json!({"name": "Other"}),
        )
        .await;
    let pid2 = p2["id"].as_str().unwrap();
    let shots = crate::harness::chromium::artifacts_dir("ui-board-files");
    let downloads = shots.join("downloads");
    let _ = std::fs::remove_dir_all(&downloads);
    std::fs::create_dir_all(&downloads).unwrap();
    let args = json!({"pid": t.pid, "pid2": pid2, "a": login("owner"), "downloads": downloads})
        .to_string();
    let mut s = board_script(&server, "files", &shots, &args);
    let r = s.expect("RESULT", Duration::from_secs(200));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert_eq!(
        r["aligned_y"].as_array().map(Vec::len),
        Some(1),
        "one top edge: {r}"
    );
    let gaps: Vec<f64> = r["distributed_gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(
        gaps.len() == 2 && (gaps[0] - gaps[1]).abs() < 0.5,
        "spaced evenly: {r}"
    );
    assert_eq!(
        (
            r["dragged_out"].as_bool(),
            r["dropped_in"].as_bool(),
            r["duplicated"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(r["clipboard_format"], "demiurge-board");
    assert_eq!(r["pasted"], json!(["One", "Two"]), "{r}");
    assert_eq!(r["pasted_ids_new"], true);
    // The downloaded files are what they say.
    let path = |f: &str| std::path::PathBuf::from(r["files"][f].as_str().unwrap());
    let png = std::fs::read(path("png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(path("svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    for text in ["One", "Two", "Three", "Frame"] {
        assert!(svg.contains(&format!(">{text}<")), "the SVG shows {text}");
    }
    let board: Value = serde_json::from_slice(&std::fs::read(path("json")).unwrap()).unwrap();
    assert_eq!(
        (board["format"].as_str(), board["version"].as_u64()),
        (Some("demiurge-board"), Some(1))
    );
    assert_eq!(board["cards"].as_array().map(Vec::len), Some(5), "{board}");
    let canvas: Value = serde_json::from_slice(&std::fs::read(path("canvas")).unwrap()).unwrap();
    let nodes = canvas["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    for n in nodes {
        for k in ["id", "type", "x", "y", "width", "height"] {
            assert!(n.get(k).is_some(), "JSON Canvas node without {k}: {n}");
        }
    }
    assert_eq!(canvas["edges"], json!([]));
    assert_eq!(r["imported"], 10, "both files came back as new cards: {r}");
    assert_eq!(r["imported_texts"], 2);
    // The same exports from a script, and an import of a bad file.
    let res = t
        .owner
        .http
        .get(format!(
            "{}/api/v1/projects/{}/export?format=canvas&ids=nope",
            t.owner.base, t.pid
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let (st, e) = t
        .owner
        .get(&format!("/api/v1/projects/{}/export?format=gif", t.pid))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    let (st, e) = t
        .owner
        .get(&format!(
            "/api/v1/projects/{}/export?format=svg&view=nope",
            t.pid
        ))
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("view_not_found"))
    );
    let res = t
        .owner
        .http
        .post(format!("{}/api/v1/projects/{}/import", t.owner.base, t.pid))
        .header("Origin", &t.owner.origin)
        .body("{\"hello\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"], "invalid_board_file");
    let res = t
        .viewer
        .http
        .post(format!("{}/api/v1/projects/{}/import", t.owner.base, t.pid))
        .header("Origin", &t.viewer.origin)
        .body(board.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a viewer imports nothing"
    );
    assert!(shots.join("board-files.png").is_file());
}

/// A viewer in Chromium sees every change live and can change nothing; a restart of the
/// server while both pages are open: both come back by themselves and keep working.
#[tokio::test(flavor = "multi_thread")]
async fn board_viewers_and_restarts_in_chromium() {
    use std::time::Duration;
    let mut server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let shots = crate::harness::chromium::artifacts_dir("ui-board-live");
    let args = json!({"pid": t.pid, "a": login("owner"), "v": login("viewer")}).to_string();
    let mut s = board_script(&server, "live", &shots, &args);
    s.expect("DOWN", Duration::from_secs(120));
    server.restart();
    s.send("restarted");
    let r = s.expect("RESULT", Duration::from_secs(120));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert_eq!(r["viewer_can_edit"], "false");
    assert_eq!(
        r["viewer_tools"],
        json!(["select", "hand"]),
        "no editing tools for a viewer"
    );
    assert_eq!(r["viewer_sees"], true);
    assert_eq!(r["viewer_changed_nothing"], true, "{r}");
    assert_eq!(r["viewer_api"], 403);
    assert_eq!(
        r["saw_reconnecting"],
        json!([true, true]),
        "both pages said they were reconnecting: {r}"
    );
    assert_eq!(r["after_restart"], true);
    let d = t.document(&t.owner).await;
    let texts: Vec<&str> = d["roots"]["texts"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        texts.contains(&"After the restart") && texts.contains(&"Seen by the viewer"),
        "{d}"
    );
}

/// The rest of the board's controls in Chromium: the context menu, resizing by a handle, a
/// connector restyled and labelled from the panel, the help dialog, a frame's title, following
/// someone, and the history panel (save a version, restore it: the other page sees it).
#[tokio::test(flavor = "multi_thread")]
async fn board_controls_follow_and_history_in_chromium() {
    use std::time::Duration;
    let server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let shots = crate::harness::chromium::artifacts_dir("ui-board-more");
    let args = json!({"pid": t.pid, "a": login("owner"), "b": login("editor"), "a_id": t.owner_id})
        .to_string();
    let mut s = board_script(&server, "more", &shots, &args);
    let r = s.expect("RESULT", Duration::from_secs(200));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert_eq!(r["clean_url"], true, "no stray ?# in the address: {r}");
    assert!(r["resized"].as_f64().unwrap() > 50.0, "{r}");
    assert_eq!(r["edge_style"], json!({"route": "step", "label": "next"}));
    assert!(r["help_rows"].as_u64().unwrap() >= 15, "{r}");
    assert_eq!(r["frame_title"], "Roadmap");
    assert_eq!(r["follow"]["following"], true, "{r}");
    assert_eq!(r["restored"], true);
    assert!(
        r["history_by"].as_str().unwrap().starts_with("owner"),
        "who saved it: {r}"
    );
    // The layers view lists every card (the frame by its title), finds the far one by name,
    // selects it, brings it on screen (checked in the page) and locks it.
    let rows: Vec<&str> = r["layer_rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(rows.len() >= 4, "{r}");
    assert!(rows.iter().any(|t| t.contains("Roadmap")), "{r}");
    assert!(rows.iter().any(|t| t.contains("Faraway idea")), "{r}");
    assert_eq!(r["layer_selected"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["layer_locked_by"], json!(t.owner_id), "{r}");
    // A second view: made from the menu, renamed, a card moved in it alone, deleted again.
    assert_eq!(r["view_name"], "Sketches", "made as Sketch, renamed: {r}");
    let m = &r["view_moved"];
    assert_eq!(
        m["main_before"], m["main_after"],
        "the main view kept it: {r}"
    );
    assert!(
        m["in_view"].as_f64().unwrap_or(f64::MIN) > m["main_before"].as_f64().unwrap() + 100.0,
        "moved in the second view: {r}"
    );
    assert_eq!(r["view_deleted"], true, "{r}");
    // Snapped to the 24 px grid.
    assert_eq!(r["snapped"]["moved"], true, "{r}");
    for axis in ["x", "y"] {
        let v = r["snapped"][axis].as_f64().unwrap();
        assert!(
            (v / 24.0 - (v / 24.0).round()).abs() < 1e-9,
            "{axis} = {v} on the grid: {r}"
        );
    }
}

/// The board on a phone in Chromium (390 px, touch only): one finger pans, two fingers pinch
/// to zoom, a tap selects, and the page does not scroll sideways.
#[tokio::test(flavor = "multi_thread")]
async fn board_on_a_phone_in_chromium() {
    use std::time::Duration;
    let server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let shots = crate::harness::chromium::artifacts_dir("ui-board-phone");
    let args = json!({"pid": t.pid, "a": login("owner")}).to_string();
    let mut s = board_script(&server, "touch", &shots, &args);
    let r = s.expect("RESULT", Duration::from_secs(120));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert!(
        r["page_width"].as_f64().unwrap() <= 390.0,
        "no sideways scroll: {r}"
    );
    let (dx, dy) = (
        r["pan"]["dx"].as_f64().unwrap(),
        r["pan"]["dy"].as_f64().unwrap(),
    );
    assert!(
        (dx + 80.0).abs() < 8.0 && (dy + 80.0).abs() < 8.0,
        "one finger pans with it: {r}"
    );
    let (z0, z1) = (
        r["pinch"]["before"].as_f64().unwrap(),
        r["pinch"]["after"].as_f64().unwrap(),
    );
    assert!(z1 > z0 * 1.5, "two fingers apart zoom in: {r}");
    let z2 = r["pinch"]["back"].as_f64().unwrap();
    assert!(z2 < z1 / 1.5, "and together zoom out: {r}");
    assert_eq!(r["tapped"], true);
    assert_eq!(
        r["tools_on_screen"], true,
        "the toolbar within the screen: {r}"
    );
}
