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
        (StatusCode::BAD_REQUEST, Some("invalid_style")),
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
