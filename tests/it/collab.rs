//! The collab endpoint with real Yjs clients (npm `yjs` + `y-websocket`), on SQLite and
//! PostgreSQL: sync of text, maps and awareness; viewers read but never write; outsiders are
//! refused before the upgrade; a garbage frame closes only its sender; updates survive a
//! restart.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::Browser;
use crate::harness::{Options, Server, fresh_pg_database};
use crate::peers::peers_dir;

fn yclient(args: &[&str]) -> Value {
    assert!(
        peers_dir().join("node_modules/y-websocket").is_dir(),
        "npm package `y-websocket` is not installed in tests/peers: {}",
        crate::harness::INSTALL_HINT
    );
    let out = Command::new("node")
        .arg(peers_dir().join("yclient.mjs"))
        .args(args)
        .current_dir(peers_dir())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("EOF");
    let json = line.strip_prefix("RESULT ").unwrap_or_else(|| {
        panic!(
            "yclient {args:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(json).unwrap()
}

async fn token_of(b: &Browser) -> String {
    let (st, body) = b.post("/api/v1/me/tokens", json!({"name": "collab"})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn person(server: &Server, name: &str) -> Browser {
    crate::accounts::signed_up(server, name).await.0
}

async fn collab(pg: bool) {
    let opts = Options {
        dns: false,
        vpn: false,
        ..Options::default()
    };
    let opts = if pg {
        opts.env("DEMIURGE_DATABASE__URL", &fresh_pg_database().await)
    } else {
        opts
    };
    let mut server = Server::start_with(opts);
    let owner = person(&server, "owner").await;
    let editor = person(&server, "editor").await;
    let viewer = person(&server, "viewer").await;
    let outsider = person(&server, "outsider").await;
    let (_, org) = owner.post("/api/v1/orgs", json!({"name": "Collab"})).await;
    let org = org["id"].as_str().unwrap().to_string();
    let (_, p) = owner
        .post(
            &format!("/api/v1/orgs/{org}/projects"),
            json!({"name": "Doc"}),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    for (who, role) in [("editor", "project:editor"), ("viewer", "project:viewer")] {
        owner
            .post(
                &format!("/api/v1/orgs/{org}/members"),
                json!({"user": who, "role": "org:member"}),
            )
            .await;
        let (st, _) = owner
            .post(
                &format!("/api/v1/projects/{pid}/members"),
                json!({"user": who, "role": role}),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    let (t_owner, t_editor, t_viewer, t_out) = (
        token_of(&owner).await,
        token_of(&editor).await,
        token_of(&viewer).await,
        token_of(&outsider).await,
    );
    let base = format!(
        "ws://localhost:{}/api/v1/projects/{pid}",
        server.http.port()
    );

    let r = yclient(&["sync", &base, &t_owner, &t_editor, &t_viewer]);
    assert_eq!(r["awareness"], true, "{r}");
    assert_eq!(r["viewer_write_leaked"], false, "{r}");
    assert_eq!(r["garbage_close"], 1007, "{r}");
    assert_eq!(r["awareness_removed"], true, "{r}");
    assert_eq!(r["text"], "hello from A!");

    // The gateway's metrics saw it (connections close asynchronously: poll briefly).
    let value = |metrics: &str, name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = crate::harness::client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if value(&metrics, "demiurge_collab_clients_connected") == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        value(&metrics, "demiurge_collab_clients_connected"),
        0.0,
        "every client has left"
    );
    assert!(
        value(&metrics, "demiurge_collab_updates_total") >= 3.0,
        "text, map and the '!'"
    );
    assert_eq!(value(&metrics, "demiurge_collab_documents_loaded"), 1.0);
    assert!(value(&metrics, "demiurge_collab_append_seconds_count") >= 3.0);

    // Outsiders and anonymous callers are refused before any upgrade.
    let http = crate::harness::client();
    let url = server.url(&format!("/api/v1/projects/{pid}/collab"));
    assert_eq!(
        http.get(format!("{url}?token={t_out}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = http
        .get(format!("{url}?token={t_editor}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a plain GET is not a WebSocket"
    );

    // Durable: what was acknowledged is there after a restart.
    let w = yclient(&["write", &base, &t_editor, " more"]);
    assert_eq!(w["text"], "hello from A! more");
    server.restart();
    let r = yclient(&["read", &base, &t_viewer]);
    assert_eq!(r["text"], "hello from A! more");
}

#[tokio::test(flavor = "multi_thread")]
async fn yjs_clients_sync_through_the_gateway_sqlite() {
    collab(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn yjs_clients_sync_through_the_gateway_postgres() {
    collab(true).await;
}
