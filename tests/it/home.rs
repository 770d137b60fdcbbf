//! Home (issue 20): a new account's first board, and recent boards (last opened first, with
//! who else was there, only those the person may still open), on both backends; and the page
//! in Chromium.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::team::{options, pg_url, team};
use crate::harness::yjs::{require_yjs, yclient};
use crate::harness::{Browser, Server, signed_up};

async fn recent(b: &Browser) -> Vec<Value> {
    let (st, list) = b.get("/api/v1/me/recent-boards").await;
    assert_eq!(st, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

/// Waits until `b`'s first recent board is `pid` (visits are recorded beside the join).
async fn first_recent(b: &Browser, pid: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = recent(b).await;
        if list.first().is_some_and(|r| r["id"] == pid) {
            return list;
        }
        assert!(Instant::now() < deadline, "{pid} never first: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recent_boards_sqlite() {
    recent_boards(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recent_boards_postgres() {
    recent_boards(true).await;
}

async fn recent_boards(pg: bool) {
    require_yjs();
    let server = Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;
    // A new account has one board in its personal workspace, and nothing opened yet.
    let (newbie, _) = signed_up(&server, "newbie").await;
    let (_, orgs) = newbie.get("/api/v1/orgs").await;
    let personal = orgs[0]["id"].as_str().unwrap();
    assert_eq!(orgs[0]["personal"], true, "{orgs}");
    let (_, projects) = newbie
        .get(&format!("/api/v1/orgs/{personal}/projects"))
        .await;
    assert_eq!(projects.as_array().unwrap().len(), 1, "{projects}");
    assert_eq!(projects[0]["name"], "My first board");
    assert_eq!(recent(&newbie).await, Vec::<Value>::new());

    // Opened by a stock Yjs client: listed, with its organization and who else was there.
    yclient(&["read", &t.base, &t.t_editor]);
    first_recent(&t.editor, &t.pid).await;
    yclient(&["read", &t.base, &t.t_owner]);
    let list = first_recent(&t.owner, &t.pid).await;
    assert_eq!(list[0]["name"], "Doc");
    assert_eq!(list[0]["org_name"], "Collab");
    assert_eq!(list[0]["others"], json!(["editor"]), "{list:?}");

    // A second board opened later comes first.
    let (st, p2) = t
        .owner
        .post(
            &format!("/api/v1/orgs/{}/projects", t.org),
            json!({"name": "Second"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p2}");
    let p2 = p2["id"].as_str().unwrap().to_string();
    let base2 = t.base.replace(&t.pid, &p2);
    yclient(&["read", &base2, &t.t_owner]);
    let list = first_recent(&t.owner, &p2).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[1]["id"], t.pid.as_str());

    // Out of the project: it leaves the editor's list.
    let st = t
        .owner
        .delete(&format!(
            "/api/v1/projects/{}/members/{}",
            t.pid, t.editor_id
        ))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !recent(&t.editor).await.is_empty() {
        assert!(Instant::now() < deadline, "still listed after removal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        Browser::new(&server)
            .get("/api/v1/me/recent-boards")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// Home in Chromium, clicked as a new person would (screenshots in tests/artifacts/ui-home).
#[tokio::test(flavor = "multi_thread")]
async fn home_shows_a_new_account_its_board_in_chromium() {
    let server = Server::start_with(options(None, &[]));
    // Someone set the server up already: the new person signs up without the setup code.
    signed_up(&server, "root").await;
    let shots = crate::harness::chromium::artifacts_dir("ui-home");
    let base = format!("http://localhost:{}", server.http.port());
    let mut s = crate::harness::chromium::Script::start(
        "ui_home.mjs",
        &[&base, &shots.display().to_string()],
    )
    .quoting_logs_of(&server);
    let r = s.expect("RESULT", Duration::from_secs(120));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert_eq!(r["first_page"], json!(["My first board"]), "{r}");
    assert_eq!(r["after_open"], json!(["My first board"]), "{r}");
    assert!(
        r["org_of_first"].as_str().unwrap().contains("workspace"),
        "{r}"
    );
    assert_eq!(
        r["after_second"],
        json!(["Second board", "My first board"]),
        "{r}"
    );
    assert!(r["phone_width"].as_u64().unwrap() <= 390, "{r}");
    // Nothing for operators on a person's home: no paths, internal ports or boot ids.
    let html = r["html"].as_str().unwrap();
    for leak in [
        server.data_dir.display().to_string(),
        "demiurge.db".to_string(),
        "internal 127.0.0.1".to_string(),
    ] {
        assert!(!html.contains(&leak), "home shows {leak}");
    }
    for name in ["home-new-account", "home", "home-phone"] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}.png");
    }
}
