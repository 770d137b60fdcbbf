//! The collaboration gateway with real Yjs clients (npm `yjs` + `y-websocket`, raw `ws`
//! sockets), on SQLite and PostgreSQL: sync of text, maps and awareness; refused writes;
//! events over HTTP reaching live clients; lifecycle, unloading and compaction; close codes;
//! robustness against bad frames; `kill -9` durability; history points and restore.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::team::{Team, options, pg_url, team};
use crate::harness::yjs::{Live, yclient, yclient_with};
use crate::harness::{Browser, Options, Server, ask, raw};

async fn metrics(server: &Server) -> String {
    crate::harness::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Polls a metric until `ok` holds (things settle asynchronously), returning the last text.
async fn metric_until(server: &Server, name: &str, ok: impl Fn(f64) -> bool) -> String {
    let mut m = String::new();
    for _ in 0..100 {
        m = metrics(server).await;
        if ok(metric(&m, name)) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never settled: {}", metric(&m, name));
}

async fn collab(pg: bool) {
    let mut server = Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;

    let r = yclient(&["sync", &t.base, &t.t_owner, &t.t_editor, &t.t_viewer]);
    assert_eq!(
        r["awareness_user"]["id"], t.owner_id,
        "the server stamps the real user into awareness: {r}"
    );
    assert_eq!(r["awareness_user"]["name"], "owner", "{r}");
    assert_eq!(r["awareness_user"]["color"], "#f00", "{r}");
    assert_eq!(r["viewer_write_leaked"], false, "{r}");
    assert_eq!(
        r["forbidden_close"], 1008,
        "a direct write to `nodes` is refused: {r}"
    );
    assert_eq!(r["forbidden_leaked"], false, "{r}");
    assert_eq!(r["garbage_close"], 1007, "{r}");
    assert_eq!(r["awareness_removed"], true, "{r}");
    assert_eq!(r["text"], "hello from A!");

    let m = metric_until(&server, "demiurge_collab_clients_connected", |v| v == 0.0).await;
    assert!(
        metric(&m, "demiurge_collab_updates_total") >= 3.0,
        "init, texts and the '!'"
    );
    assert!(metric(&m, "demiurge_collab_refused_writes_total") >= 2.0);
    assert_eq!(metric(&m, "demiurge_collab_documents_loaded"), 1.0);
    assert_eq!(metric(&m, "demiurge_gateways_running"), 1.0);
    assert!(metric(&m, "demiurge_collab_append_seconds_count") >= 1.0);

    // Outsiders and anonymous callers are refused before any upgrade.
    let http = crate::harness::client();
    let url = server.url(&format!("/api/v1/projects/{}/collab", t.pid));
    let status = |u: String| {
        let http = http.clone();
        async move { http.get(u).send().await.unwrap().status() }
    };
    assert_eq!(
        status(format!("{url}?token={}", t.t_out)).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status(url.clone()).await, StatusCode::UNAUTHORIZED);
    // A session token never goes in a URL: refused even for someone who may read.
    let r = http
        .post(server.url("/api/v1/auth/signup"))
        .header("Origin", format!("http://{}", server.http))
        .json(&serde_json::json!({"username": "urlsession", "email": "urlsession@example.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("demiurge_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let r = http
        .get(format!("{url}?token={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"], "session_token_in_url");
    assert_eq!(
        status(format!("{url}?token={}", t.t_editor)).await,
        StatusCode::UPGRADE_REQUIRED,
        "a plain GET is not a WebSocket"
    );
    // The same over a real WebSocket handshake, which takes the upgrade path: an answer,
    // then the connection closes.
    let addr = server.http;
    let handshake = |path: String| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let pid = &t.pid;
    let path = format!("/api/v1/projects/{pid}/collab?token={}", t.t_out);
    let (code, body) = ask(&mut raw(addr), handshake(path).as_bytes());
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
    let path = format!("/api/v1/projects/{pid}/collab");
    let (code, body) = ask(&mut raw(addr), handshake(path).as_bytes());
    assert_eq!(code, 401, "{body}");
    // Any other upgrade request is served as it would be without the upgrade path (here an
    // `h2c` probe, as `curl --http2` sends on plain HTTP).
    let probe = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nAuthorization: Bearer {}\r\n\r\n",
        t.t_editor
    );
    let (code, body) = ask(&mut raw(addr), probe.as_bytes());
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&t.editor_id), "{body}");

    // Durable: what was acknowledged is there after a restart.
    let w = yclient(&["write", &t.base, &t.t_editor, " more"]);
    assert_eq!(w["text"], "hello from A! more");
    server.restart();
    let r = yclient(&["read", &t.base, &t.t_viewer]);
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

async fn events(pg: bool) {
    let server = Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;

    // An event over HTTP reaches a client that is already connected.
    let watch = Live::start(&[
        "watch",
        &t.base,
        &t.t_viewer,
        "d.nodes?.n1?.x === 5 && d.edges?.e1?.to === 'n2'",
    ]);
    watch.wait("SYNCED");
    for ev in [
        json!({"type": "core-graph:add-node", "id": "n1", "kind": "note", "x": 1, "y": 1}),
        json!({"type": "core-graph:add-node", "id": "n2", "kind": "note", "x": 9, "y": 9, "data": {"text": "two"}}),
        json!({"type": "core-graph:move-node", "id": "n1", "x": 5, "y": 6}),
        json!({"type": "core-graph:add-edge", "id": "e1", "from": "n1", "to": "n2"}),
    ] {
        let (st, body) = t.event(&t.editor, ev.clone()).await;
        assert_eq!(st, StatusCode::OK, "{ev}: {body}");
        assert!(body["seq"].as_i64().unwrap() > 0, "{body}");
    }
    let seen = watch.result();
    assert_eq!(seen["doc"]["nodes"]["n2"]["data"]["text"], "two", "{seen}");

    // The same state over HTTP, for anyone who can read.
    let d = t.document(&t.viewer).await;
    assert_eq!(d["roots"]["nodes"]["n1"]["y"].as_f64(), Some(6.0), "{d}");
    assert_eq!(d["roots"]["edges"]["e1"]["from"], "n1");
    assert!(d["roots"]["meta"]["created_at"].is_string(), "{d}");

    // Refusals, each with its status and stable code; none changes the document.
    let cases: Vec<(&Browser, Value, StatusCode, &str)> = vec![
        (
            &t.editor,
            json!({"kind": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            &t.editor,
            json!({"type": "nobody:thing"}),
            StatusCode::BAD_REQUEST,
            "unknown_event",
        ),
        (
            &t.editor,
            json!({"type": "core-graph:fly"}),
            StatusCode::BAD_REQUEST,
            "unknown_event",
        ),
        (
            &t.editor,
            json!({"type": "core-graph:move-node", "id": "n1", "x": "far"}),
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            &t.editor,
            json!({"type": "core-graph:resize-node", "id": "n1", "w": 0, "h": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_size",
        ),
        (
            &t.editor,
            json!({"type": "core-graph:move-node", "id": "zz", "x": 0, "y": 0}),
            StatusCode::NOT_FOUND,
            "node_not_found",
        ),
        (
            &t.editor,
            json!({"type": "core-graph:add-node", "id": "n1", "kind": "n", "x": 0, "y": 0}),
            StatusCode::CONFLICT,
            "node_exists",
        ),
        (
            &t.editor,
            json!({"type": "gateway:init"}),
            StatusCode::FORBIDDEN,
            "forbidden_event",
        ),
        (
            &t.viewer,
            json!({"type": "core-graph:delete-node", "id": "n1"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &t.outsider,
            json!({"type": "core-graph:delete-node", "id": "n1"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (who, ev, status, code) in cases {
        let (st, body) = t.event(who, ev.clone()).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (status, Some(code)),
            "{ev}: {body}"
        );
    }
    let r = crate::harness::client()
        .post(server.url(&format!("/api/v1/projects/{}/events", t.pid)))
        .header("Authorization", format!("Bearer {}", t.t_editor))
        .header("Content-Type", "application/json")
        .body("{\"type\": \"core-graph:add-node\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "malformed JSON");
    let anonymous = crate::harness::client()
        .post(server.url(&format!("/api/v1/projects/{}/events", t.pid)))
        .json(&json!({"type": "core-graph:delete-node", "id": "n1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        t.document(&t.owner).await["roots"],
        d["roots"],
        "nothing changed"
    );

    // Deleting a node deletes its edges.
    let (st, body) = t
        .event(
            &t.owner,
            json!({"type": "core-graph:delete-node", "id": "n2"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["edges_deleted"], json!(["e1"]));
    assert_eq!(t.document(&t.owner).await["roots"]["edges"], json!({}));

    // History: a named point, changes, a restore that a connected client follows.
    let (st, point) = t
        .owner
        .post(
            &format!("/api/v1/projects/{}/history", t.pid),
            json!({"name": "before the cleanup"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{point}");
    let point = point["id"].as_str().unwrap().to_string();
    t.event(
        &t.editor,
        json!({"type": "core-graph:delete-node", "id": "n1"}),
    )
    .await;
    t.event(
        &t.editor,
        json!({"type": "core-graph:add-node", "id": "n3", "kind": "n", "x": 0, "y": 0}),
    )
    .await;
    let (st, _) = t
        .viewer
        .post(
            &format!("/api/v1/projects/{}/history", t.pid),
            json!({"name": "mine"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "viewers cannot save points");
    let (st, list) = t
        .viewer
        .get(&format!("/api/v1/projects/{}/history", t.pid))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list[0]["name"], "before the cleanup", "{list}");
    let restore = format!("/api/v1/projects/{}/history/{point}/restore", t.pid);
    let (st, _) = t.editor.post(&restore, json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "restoring needs project admin");
    let (st, body) = t
        .owner
        .post(
            &format!("/api/v1/projects/{}/history/nope/restore", t.pid),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("history_point_not_found"))
    );
    let watch = Live::start(&[
        "watch",
        &t.base,
        &t.t_viewer,
        "d.nodes?.n1?.x === 5 && !d.nodes?.n3",
    ]);
    watch.wait("SYNCED");
    let (st, body) = t.owner.post(&restore, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body["seq"].as_i64().is_some(), "{body}");
    let seen = watch.result();
    assert_eq!(seen["doc"]["nodes"]["n1"]["kind"], "note");
    assert_eq!(
        t.document(&t.owner).await["roots"]["nodes"],
        d["roots"]["nodes"]
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("n2");
                Value::Object(o)
            })
            .unwrap(),
        "the restored nodes are those of the point"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_clients_and_history_restores_sqlite() {
    events(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_clients_and_history_restores_postgres() {
    events(true).await;
}

async fn lifecycle(pg: bool) {
    let pg = pg_url(pg).await;
    let server = Server::start_with(options(
        pg.clone(),
        &[
            ("DEMIURGE_GATEWAY__PROJECT_IDLE_UNLOAD", "1s"),
            ("DEMIURGE_GATEWAY__IDLE_STOP", "2s"),
            ("DEMIURGE_GATEWAY__COMPACT_AFTER", "5"),
            ("DEMIURGE_GATEWAY__TICK", "200ms"),
            ("DEMIURGE_GATEWAY__HISTORY_INTERVAL", "1s"),
        ],
    ));
    let t = team(&server).await;
    assert_eq!(t.gateway(&t.viewer).await["state"], "stopped");
    let (st, _) = t
        .editor
        .post(&format!("/api/v1/orgs/{}/gateway/start", t.org), json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "members cannot start it");
    let (st, g) = t
        .owner
        .post(&format!("/api/v1/orgs/{}/gateway/start", t.org), json!({}))
        .await;
    assert_eq!((st, g["state"].as_str()), (StatusCode::OK, Some("running")));

    // A connected client shows in the status; stopping closes it with 1001.
    let open = Live::start(&["close", &t.base, &t.t_editor]);
    open.wait("OPEN");
    let g = t.gateway(&t.owner).await;
    assert_eq!(g["projects"][0]["project_id"], t.pid, "{g}");
    assert_eq!(g["projects"][0]["state"], "loaded");
    assert_eq!(g["clients"], 1);
    let (st, g) = t
        .owner
        .post(&format!("/api/v1/orgs/{}/gateway/stop", t.org), json!({}))
        .await;
    assert_eq!((st, g["state"].as_str()), (StatusCode::OK, Some("stopped")));
    assert_eq!(open.result()["code"], 1001);

    // Started again on first use; twelve changes fold into a snapshot.
    for i in 0..12 {
        let (st, b) = t
            .event(
                &t.editor,
                json!({"type": "core-graph:add-node", "id": format!("n{i}"), "kind": "n", "x": i, "y": 0}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    assert_eq!(t.gateway(&t.owner).await["state"], "running");
    // A second of activity later, an automatic history point exists.
    let mut automatic = Value::Null;
    for _ in 0..50 {
        let (_, list) = t
            .viewer
            .get(&format!("/api/v1/projects/{}/history", t.pid))
            .await;
        if let Some(p) = list
            .as_array()
            .and_then(|l| l.iter().find(|p| p["automatic"] == true))
        {
            automatic = p.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        automatic["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Automatic")),
        "an automatic history point: {automatic}"
    );
    let mut snapshots = 0;
    for _ in 0..50 {
        snapshots = crate::orgs::count(
            &server,
            &pg,
            &format!(
                "SELECT COUNT(*) AS n FROM doc_snapshots WHERE project_id = '{}'",
                t.pid
            ),
        )
        .await;
        if snapshots == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(snapshots, 1, "the log was compacted");
    let log = crate::orgs::count(
        &server,
        &pg,
        &format!(
            "SELECT COUNT(*) AS n FROM doc_updates WHERE project_id = '{}'",
            t.pid
        ),
    )
    .await;
    assert!(log < 12, "compaction dropped folded entries ({log} left)");

    // Idle: the project unloads (memory back to zero), then the gateway stops.
    let m = metric_until(&server, "demiurge_collab_documents_loaded", |v| v == 0.0).await;
    assert_eq!(metric(&m, "demiurge_collab_document_bytes"), 0.0);
    assert!(metric(&m, "demiurge_collab_compactions_total") >= 1.0);
    metric_until(&server, "demiurge_gateways_running", |v| v == 0.0).await;
    assert_eq!(t.gateway(&t.owner).await["state"], "stopped");

    // Reloaded exactly from snapshot + log.
    let d = t.document(&t.viewer).await;
    let nodes = d["roots"]["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 12, "{d}");
    assert_eq!(nodes["n11"]["x"].as_f64(), Some(11.0));

    // Loading holds sync back: clients connecting while a document loads all get it whole.
    let big = "x".repeat(100_000);
    let w = yclient(&["write", &t.base, &t.t_editor, &big]);
    assert_eq!(w["text"].as_str().map(str::len), Some(100_000));
    t.owner
        .post(&format!("/api/v1/orgs/{}/gateway/stop", t.org), json!({}))
        .await;
    let first = yclient(&["first", &t.base, &t.t_viewer, "6"]);
    assert_eq!(first["lengths"], json!(vec![100_000; 6]), "{first}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_lifecycle_unload_and_compaction_sqlite() {
    lifecycle(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_lifecycle_unload_and_compaction_postgres() {
    lifecycle(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn close_codes_tell_why() {
    let server = Server::start_with(options(
        None,
        &[
            ("DEMIURGE_GATEWAY__MAX_CLIENTS_PER_PROJECT", "3"),
            ("DEMIURGE_GATEWAY__KEEPALIVE", "500ms"),
        ],
    ));
    let t = team(&server).await;
    // A client that answers no ping is closed after two intervals (1001, going away).
    let silent = yclient(&["close", &t.base, &t.t_owner, "nopong"]);
    assert_eq!(silent["code"], 1001, "{silent}");
    let editor = Live::start(&["close", &t.base, &t.t_editor]);
    let viewer = Live::start(&["close", &t.base, &t.t_viewer]);
    let owner = Live::start(&["close", &t.base, &t.t_owner]);
    editor.wait("OPEN");
    viewer.wait("OPEN");
    owner.wait("OPEN");
    // A fourth client: the room is full.
    assert_eq!(
        yclient(&["close", &t.base, &t.t_owner])["code"],
        4429,
        "room full"
    );
    // The editor leaves the project: its connection goes (4403).
    let status = t
        .owner
        .http
        .delete(
            t.owner.base.clone() + &format!("/api/v1/projects/{}/members/{}", t.pid, t.editor_id),
        )
        .header("Origin", &t.owner.origin)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(editor.result()["code"], 4403, "permission lost");
    // The viewer's token is revoked: 4401.
    assert_eq!(
        t.viewer
            .delete(&format!("/api/v1/me/tokens/{}", t.t_viewer_id))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(viewer.result()["code"], 4401, "credential revoked");
    // The project is deleted: 4404.
    let r = t
        .owner
        .http
        .delete(t.owner.base.clone() + &format!("/api/v1/projects/{}", t.pid))
        .header("Origin", &t.owner.origin)
        .json(&json!({"confirm": "Doc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(owner.result()["code"], 4404, "project deleted");
}

/// Over TLS, where the edge terminates it and hands the connection to the app: the stock
/// client syncs through the same socket takeover and fan-out, on the TLS stream.
#[tokio::test(flavor = "multi_thread")]
async fn yjs_clients_sync_over_tls() {
    let server = Server::start_with(Options {
        https: true,
        ..options(None, &[])
    });
    let t = team(&server).await;
    let https = server.https.expect("an https listener");
    let base = format!("wss://localhost:{}/api/v1/projects/{}", https.port(), t.pid);
    let ca = server.data_dir.join("tls/self-signed.crt");
    let env = [("NODE_EXTRA_CA_CERTS", ca.to_str().unwrap())];
    let w = yclient_with(&env, &["write", &base, &t.t_editor, "over TLS"]);
    assert_eq!(w["text"], "over TLS", "{w}");
    let r = yclient_with(&env, &["read", &base, &t.t_viewer]);
    assert_eq!(r["text"], "over TLS", "{r}");
}

/// Opens a collaboration socket by hand and reads the 101; `rcvbuf` makes the kernel's
/// receive buffer small, so a client that stops reading stalls its sender soon.
async fn ws_open(addr: &str, path: &str, rcvbuf: Option<u32>) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(n) = rcvbuf {
        socket.set_recv_buffer_size(n).unwrap();
    }
    let mut s = socket.connect(addr.parse().unwrap()).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Byte by byte up to the blank line: nothing past the head is taken.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.unwrap());
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// The next server frame (unmasked): its opcode and payload; `None` at the end of the stream.
async fn ws_frame(s: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let b0 = s.read_u8().await.ok()?;
    let len = match s.read_u8().await.ok()? & 0x7f {
        126 => u64::from(s.read_u16().await.ok()?),
        127 => s.read_u64().await.ok()?,
        n => u64::from(n),
    };
    let mut payload = vec![0; usize::try_from(len).ok()?];
    s.read_exact(&mut payload).await.ok()?;
    Some((b0 & 0x0f, payload))
}

/// Over real sockets: a client whose socket takes nothing is closed (1013) once
/// `client_buffer` frames wait for it beyond what the kernel holds, while a client on the same
/// worker that reads gets every change in the meantime.
#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_stops_reading_is_closed_not_waited_for() {
    let server = Server::start_with(options(None, &[("DEMIURGE_GATEWAY__CLIENT_BUFFER", "16")]));
    let t = team(&server).await;
    let addr = server.http.to_string();
    let path = format!("/api/v1/projects/{}/collab?token={}", t.pid, t.t_viewer);
    let mut slow = ws_open(&addr, &path, Some(4096)).await;
    let mut fast = ws_open(&addr, &path, None).await;
    // Bytes of document updates (sync message 0, update 2) the reading client got.
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let got = got.clone();
        tokio::spawn(async move {
            while let Some((op, payload)) = ws_frame(&mut fast).await {
                if op == 2 && payload.starts_with(&[0, 2]) {
                    got.fetch_add(payload.len(), std::sync::atomic::Ordering::Relaxed);
                }
                if op == 8 {
                    break;
                }
            }
        })
    };
    // Just under the 64 KiB `data` limit of a node.
    let blob = "x".repeat(60 * 1024);
    const EVENTS: usize = 150;
    for i in 0..EVENTS {
        let ev = json!({"type": "core-graph:add-node", "id": format!("n{i}"), "kind": "note",
            "x": 0, "y": 0, "data": {"blob": blob}});
        let (st, body) = t.event(&t.editor, ev).await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    metric_until(&server, "demiurge_collab_clients_closed_total", |v| {
        v >= 1.0
    })
    .await;
    // What the slow client was sent before it fell behind, then the reason it was closed.
    let (frames, close) = ws_until_close(&mut slow).await;
    assert_eq!(
        close,
        Some(1013),
        "closed as too slow after {frames} frames"
    );
    assert!(
        frames < EVENTS,
        "it was closed before it could take all {EVENTS}"
    );
    // The one that reads got every change.
    let want = EVENTS * blob.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let bytes = loop {
        let bytes = got.load(std::sync::atomic::Ordering::Relaxed);
        if bytes >= want || std::time::Instant::now() > deadline {
            break bytes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    reader.abort();
    assert!(
        bytes >= want,
        "the reading client got {bytes} bytes of updates for {EVENTS} changes of 60 KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_close_only_their_sender() {
    let server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let r = yclient(&["fuzz", &t.base, &t.t_editor, &t.t_owner]);
    assert_eq!(r["others_fine"], true, "{r}");
    assert_eq!(r["oversized_close"], 1009, "{r}");
    assert_eq!(r["text_close"], 1003, "{r}");
    for code in r["codes"].as_array().unwrap() {
        // Each bad frame closed its socket as malformed, or was a harmless no-op (the
        // empty frame); none took the server down.
        assert!(code == 1007 || code == "open", "{r}");
    }
    assert!(
        r["codes"].as_array().unwrap().iter().any(|c| c == 1007),
        "random bytes are seen as malformed: {r}"
    );
    let (st, _) = t.editor.get("/api/v1/me").await;
    assert_eq!(st, StatusCode::OK, "the server serves on");
}

async fn durability(pg: bool) {
    let mut server = Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;
    let storm = Live::start(&["storm", &t.base, &t.t_editor, "10", "100"]);
    storm.wait("SYNCED");
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill(); // SIGKILL, mid-stream
    let r = storm.result();
    server.restart_stopped();
    let d = t.document(&t.owner).await;
    let texts = d["roots"]["texts"].as_object().unwrap().clone();
    let mut checked = 0;
    for (i, got) in r["received"].as_array().unwrap().iter().enumerate() {
        for (key, seen) in got.as_object().unwrap() {
            let seen = seen.as_str().unwrap();
            let stored = texts.get(key).and_then(Value::as_str).unwrap_or("");
            assert!(
                stored.starts_with(seen),
                "client {i} had received {key} = {seen:?}, but after the crash it is {stored:?}"
            );
            checked += seen.matches(';').count();
        }
    }
    let sent = r["sent"].as_u64().unwrap();
    assert!(
        checked > 100 && sent < 1000,
        "the crash came mid-stream: {checked} received edits checked of {sent} sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_nothing_a_client_received_sqlite() {
    durability(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_nothing_a_client_received_postgres() {
    durability(true).await;
}

type Accesses = (demiurge::orgs::ProjectAccess, demiurge::orgs::ProjectAccess);

/// A team's project in the database a real server created it in, the server stopped, for
/// driving the gateway's public face in this process (the server is returned: its data
/// directory lives as long as it does).
async fn offline_team() -> (Server, Team, demiurge::db::Db, Accesses) {
    let mut server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    server.stop();
    let db = demiurge::db::Db::connect(
        &demiurge::config::DatabaseUrl::Sqlite(server.data_dir.join("demiurge.db")),
        None,
    )
    .await
    .unwrap();
    let both = accesses(&db, &t).await;
    (server, t, db, both)
}

fn registry(
    db: demiurge::db::Db,
    settings: demiurge::gateway::Settings,
) -> demiurge::gateway::GatewayRegistry {
    demiurge::gateway::GatewayRegistry::new(
        db,
        settings,
        demiurge::gateway::modules::builtin(),
        &prometheus::Registry::new(),
    )
    .unwrap()
}

/// The team owner's access to the project, decided by the real permission service on the
/// database the server left (the gateway takes nothing else), and a read-only copy.
async fn accesses(
    db: &demiurge::db::Db,
    t: &Team,
) -> (demiurge::orgs::ProjectAccess, demiurge::orgs::ProjectAccess) {
    let orgs = demiurge::orgs::Orgs::new(
        db.clone(),
        demiurge::mail::Mailer::new(&demiurge::config::MailConfig::default()).unwrap(),
        "http://127.0.0.1",
        demiurge::instance::Instance::new(db.clone(), &demiurge::config::Config::default()),
        &demiurge::gateway::modules::builtin().permissions(),
    );
    let owner = db.user_by_id(&t.owner_id).await.unwrap().unwrap();
    let (_, access) = orgs.project_access(&owner, &t.pid).await.unwrap();
    let reading = access.reading_only();
    (access, reading)
}

/// Applies the document updates in a frame; whether there were any.
fn apply_frame(doc: &yrs::Doc, frame: &[u8]) -> bool {
    use yrs::Transact;
    use yrs::updates::decoder::{Decode, DecoderV1};
    let mut decoder = DecoderV1::from(frame);
    let mut changed = false;
    for msg in yrs::sync::MessageReader::new(&mut decoder).flatten() {
        if let yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(u)) = msg {
            doc.transact_mut()
                .apply_update(yrs::Update::decode_v1(&u).unwrap())
                .unwrap();
            changed = true;
        }
    }
    changed
}

/// The length of text `key` in the `texts` root.
fn text_len(doc: &yrs::Doc, key: &str) -> usize {
    use yrs::{GetString, Map, ReadTxn, Transact};
    let txn = doc.transact();
    txn.get_map("texts")
        .and_then(|m| m.get(&txn, key))
        .and_then(|v| v.cast::<yrs::TextRef>().ok())
        .map(|t| t.get_string(&txn).len())
        .unwrap_or(0)
}

/// A client that stops reading is dropped (1013) once its buffer is full, and the others get
/// every update in the meantime. Driven through the gateway's public face in this process
/// (over sockets, the kernel's buffers on loopback hold tens of megabytes before anything
/// fills), on the database a real server created the project in.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_dropped_not_waited_for() {
    use demiurge::gateway::{Close, Settings};
    use yrs::updates::encoder::Encode;
    use yrs::{Map, Text, Transact};

    let (_server, _, db, (write, read)) = offline_team().await;
    let settings = Settings {
        client_buffer: 16,
        ..Settings::default()
    };
    let gateways = registry(db, settings);
    let writer = gateways.connect(&write).await.unwrap();
    let mut fast = gateways.connect(&read).await.unwrap();
    let mut slow = gateways.connect(&read).await.unwrap();
    // The writer sends 100 changes one at a time; the fast client applies each (as any Yjs
    // client would) before the next is sent, so each travels as its own frame.
    let mine = yrs::Doc::new();
    let doc = yrs::Doc::new();
    let texts = doc.get_or_insert_map("texts");
    let (text, created) = {
        let mut txn = doc.transact_mut();
        let text = texts.insert(&mut txn, "t", yrs::TextPrelim::new(""));
        let created = txn.encode_update_v1();
        (text, created)
    };
    for i in 0..100u32 {
        let update = if i == 0 {
            created.clone()
        } else {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, i - 1, "x");
            txn.encode_update_v1()
        };
        let frame = yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1();
        assert!(writer.send(frame).await);
        let want = i as usize;
        while text_len(&mine, "t") < want {
            let frame = tokio::time::timeout(Duration::from_secs(10), fast.recv())
                .await
                .expect("the fast client is served in time")
                .expect("the fast client stays connected");
            apply_frame(&mine, &frame);
        }
    }
    assert_eq!(
        text_len(&mine, "t"),
        99,
        "every change reached the fast client"
    );
    // The slow one was cut off after its 16 frames (its hello included), and told why.
    let mut buffered = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(10), slow.recv()).await {
        buffered += 1;
    }
    assert!(buffered <= 16, "{buffered} frames were buffered");
    assert_eq!(slow.closed(), Some(Close::TOO_SLOW));
    assert_eq!(writer.closed(), None);
    gateways.shutdown().await;
}

/// Changes that arrive within `broadcast_delay` of the oldest unsent one reach the others as one
/// merged frame; with the delay at 0 each goes out alone. Every change arrives either way.
#[tokio::test(flavor = "multi_thread")]
async fn broadcasts_are_paced_into_merged_frames() {
    use demiurge::gateway::Settings;
    use yrs::{Map, Transact};

    let (_server, _, db, (write, read)) = offline_team().await;
    // Frames the reader gets while the writer sends 10 changes 25 ms apart.
    let run = |interval: Duration| {
        let db = db.clone();
        let (write, read) = (write.clone(), read.clone());
        async move {
            let settings = Settings {
                broadcast_delay: interval,
                broadcast_max_delay: interval,
                ..Settings::default()
            };
            let gateways = registry(db, settings);
            let writer = gateways.connect(&write).await.unwrap();
            let mut reader = gateways.connect(&read).await.unwrap();
            let key = format!("t{}", interval.as_millis());
            let doc = yrs::Doc::new();
            let texts = doc.get_or_insert_map("texts");
            let text = {
                let mut txn = doc.transact_mut();
                let text = texts.insert(&mut txn, key.as_str(), yrs::TextPrelim::new(""));
                assert!(writer.send(update_frame(txn.encode_update_v1())).await);
                text
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
            type_edits(&writer, &doc, &text, 10, Duration::from_millis(25)).await;
            let mine = yrs::Doc::new();
            let mut frames = 0;
            let mut len = 0;
            while len < 10 {
                let f = tokio::time::timeout(Duration::from_secs(10), reader.recv())
                    .await
                    .expect("the reader is served in time")
                    .expect("the reader stays connected");
                let changes = apply_frame(&mine, &f);
                len = text_len(&mine, &key);
                // Count the frames that carried the 10 edits (not the hello or the creation).
                if changes && len > 0 {
                    frames += 1;
                }
            }
            gateways.shutdown().await;
            frames
        }
    };
    let paced = run(Duration::from_millis(400)).await;
    let unpaced = run(Duration::ZERO).await;
    assert!(paced <= 3, "paced: {paced} frames for 10 changes");
    assert!(unpaced >= 8, "unpaced: {unpaced} frames for 10 changes");
}

/// In a room the budget says to hold back (2 clients at 1 frame a second: 2 s), a change still
/// goes out after `broadcast_max_delay`, having waited for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_waits_no_longer_than_the_max_delay() {
    use demiurge::gateway::Settings;
    use yrs::{Map, Transact};

    let (_server, _, db, (write, read)) = offline_team().await;
    let settings = Settings {
        broadcast_budget: 1,
        broadcast_max_delay: Duration::from_millis(300),
        ..Settings::default()
    };
    let gateways = registry(db, settings);
    let (writer, mut reader) = writer_and_reader(&gateways, &(write, read)).await;
    // The hello (sync step 1, the document, awareness) first.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), reader.recv()).await {}
    let doc = yrs::Doc::new();
    let texts = doc.get_or_insert_map("texts");
    let update = {
        let mut txn = doc.transact_mut();
        texts.insert(&mut txn, "waited", yrs::TextPrelim::new("x"));
        txn.encode_update_v1()
    };
    let sent = std::time::Instant::now();
    assert!(writer.send(update_frame(update)).await);
    read_until(&mut reader, &yrs::Doc::new(), "waited", 1).await;
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "the change went out after {waited:?}, without waiting to be merged"
    );
    assert!(
        waited < Duration::from_millis(1500),
        "the change waited {waited:?}, past broadcast_max_delay"
    );
    gateways.shutdown().await;
}

/// A client's changes that may wait (here 300 ms, to be merged) are committed together: ten
/// changes 10 ms apart take one or two commits, not ten, and all of them arrive.
#[tokio::test(flavor = "multi_thread")]
async fn changes_that_may_wait_share_a_commit() {
    use demiurge::gateway::Settings;
    use yrs::{Map, Transact};

    let (_server, _, db, (write, read)) = offline_team().await;
    let settings = Settings {
        broadcast_delay: Duration::from_millis(300),
        broadcast_max_delay: Duration::from_millis(300),
        ..Settings::default()
    };
    let gateways = registry(db, settings);
    let (writer, mut reader) = writer_and_reader(&gateways, &(write, read)).await;
    let doc = yrs::Doc::new();
    let texts = doc.get_or_insert_map("texts");
    let text = {
        let mut txn = doc.transact_mut();
        let text = texts.insert(&mut txn, "shared", yrs::TextPrelim::new(""));
        assert!(writer.send(update_frame(txn.encode_update_v1())).await);
        text
    };
    // The creation is committed (and the hello and the creation read) before counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mine = yrs::Doc::new();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(200), reader.recv()).await {
        apply_frame(&mine, &f);
    }
    let commits = gateways.metrics().append_batch.get_sample_count();
    type_edits(&writer, &doc, &text, 10, Duration::from_millis(10)).await;
    read_until(&mut reader, &mine, "shared", 10).await;
    let used = gateways.metrics().append_batch.get_sample_count() - commits;
    assert!(used <= 2, "10 changes took {used} commits");
    gateways.shutdown().await;
}

/// A writable and a read-only client of the team's project.
async fn writer_and_reader(
    gateways: &demiurge::gateway::GatewayRegistry,
    (write, read): &Accesses,
) -> (demiurge::gateway::Connection, demiurge::gateway::Connection) {
    let writer = gateways.connect(write).await.unwrap();
    let reader = gateways.connect(read).await.unwrap();
    (writer, reader)
}

/// A y-websocket update message.
fn update_frame(update: Vec<u8>) -> Vec<u8> {
    use yrs::updates::encoder::Encode;
    yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1()
}

/// Types `n` characters into `text`, each its own change sent `gap` apart.
async fn type_edits(
    writer: &demiurge::gateway::Connection,
    doc: &yrs::Doc,
    text: &yrs::TextRef,
    n: u32,
    gap: Duration,
) {
    use yrs::{Text, Transact};
    for i in 0..n {
        let update = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, i, "x");
            txn.encode_update_v1()
        };
        assert!(writer.send(update_frame(update)).await);
        tokio::time::sleep(gap).await;
    }
}

/// Applies the reader's frames to `doc` until its text `key` is `len` long (10 s at most).
async fn read_until(
    reader: &mut demiurge::gateway::Connection,
    doc: &yrs::Doc,
    key: &str,
    len: usize,
) {
    while text_len(doc, key) < len {
        let f = tokio::time::timeout(Duration::from_secs(10), reader.recv())
            .await
            .expect("the changes arrive")
            .expect("the reader stays connected");
        apply_frame(doc, &f);
    }
}

/// Sends one client frame (binary, masked as a client must).
async fn ws_send(s: &mut tokio::net::TcpStream, payload: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut frame = vec![0x82];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [7u8, 1, 9, 3];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    // The server may close before taking it all; that is an answer too.
    let _ = s.write_all(&frame).await;
}

/// Reads `s` until the server closes it: how many frames came first, and the close code
/// (None if no close came within 10 s of the last frame).
async fn ws_until_close(s: &mut tokio::net::TcpStream) -> (usize, Option<u16>) {
    let mut frames = 0;
    while let Ok(Some((op, payload))) =
        tokio::time::timeout(Duration::from_secs(10), ws_frame(s)).await
    {
        if op == 8 {
            let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            return (frames, code);
        }
        frames += 1;
    }
    (frames, None)
}

/// An awareness message for `states` (client id, JSON state).
fn awareness(states: &[(u64, String)]) -> Vec<u8> {
    use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    use yrs::updates::encoder::Encode;
    let clients = states
        .iter()
        .map(|(id, json)| {
            (
                yrs::block::ClientID::new(*id),
                AwarenessUpdateEntry {
                    clock: 1,
                    json: json.as_str().into(),
                },
            )
        })
        .collect();
    yrs::sync::Message::Awareness(AwarenessUpdate { clients }).encode_v1()
}

/// What one socket may cost the server is bounded: a reader that stalls is closed (1013)
/// once 16 MiB wait for it, long before its 1024-frame allowance; awareness states over
/// 16 KiB, that are not objects, or for more than four client ids close their sender (1007);
/// a read-only socket's frames are limited to 64 KiB (1009). Meanwhile a client that reads
/// gets every change.
#[tokio::test(flavor = "multi_thread")]
async fn what_one_socket_may_cost_is_bounded() {
    let server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let addr = server.http.to_string();
    let viewer = format!("/api/v1/projects/{}/collab?token={}", t.pid, t.t_viewer);
    let editor = format!("/api/v1/projects/{}/collab?token={}", t.pid, t.t_editor);
    let mut slow = ws_open(&addr, &viewer, Some(4096)).await;
    let mut fast = ws_open(&addr, &viewer, None).await;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let got = got.clone();
        tokio::spawn(async move {
            while let Some((op, payload)) = ws_frame(&mut fast).await {
                if op == 2 && payload.starts_with(&[0, 2]) {
                    got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if op == 8 {
                    break;
                }
            }
        })
    };
    let blob = "x".repeat(60 * 1024);
    let mut sent = 0;
    while sent < 700 {
        let ev = json!({"type": "core-graph:add-node", "id": format!("n{sent}"), "kind": "note",
            "x": 0, "y": 0, "data": {"blob": blob}});
        let (st, body) = t.event(&t.editor, ev).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        sent += 1;
        if sent % 50 == 0
            && metric(
                &metrics(&server).await,
                "demiurge_collab_clients_closed_total",
            ) >= 1.0
        {
            break;
        }
    }
    let (frames, close) = ws_until_close(&mut slow).await;
    assert_eq!(
        close,
        Some(1013),
        "closed as too slow after {frames} frames"
    );
    assert!(
        frames < 500 && sent < 700,
        "closed by bytes (16 MiB is about 270 such frames), not by the frame count: {frames} frames, {sent} sent"
    );

    // Awareness: too big, not an object, too many ids; a viewer's big frame.
    let big_state = format!("{{\"cursor\":\"{}\"}}", "y".repeat(20 * 1024));
    for (path, msg, want) in [
        (&editor, awareness(&[(11, big_state.clone())]), 1007),
        (&editor, awareness(&[(12, "[1,2]".into())]), 1007),
        (
            &editor,
            awareness(
                &(20..25)
                    .map(|id| (id, "{}".to_string()))
                    .collect::<Vec<_>>(),
            ),
            1007,
        ),
        (
            &viewer,
            awareness(&[(13, format!("{{\"x\":\"{}\"}}", "z".repeat(100 * 1024)))]),
            1009,
        ),
    ] {
        let mut s = ws_open(&addr, path, None).await;
        ws_send(&mut s, &msg).await;
        assert_eq!(ws_until_close(&mut s).await.1, Some(want), "{path}");
    }
    // A small state from a viewer is fine and reaches the others.
    let mut ok = ws_open(&addr, &viewer, None).await;
    ws_send(&mut ok, &awareness(&[(14, "{\"cursor\":[1,2]}".into())])).await;

    // The reader got every change, and still does.
    let (st, _) = t
        .event(
            &t.editor,
            json!({"type": "core-graph:add-node", "id": "last", "kind": "note", "x": 0, "y": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.load(std::sync::atomic::Ordering::Relaxed) < sent + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader fell behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
}

/// Sockets per user are capped (the 65th is 429 `too_many_sockets` before any upgrade), and
/// a project's document stops growing at `[gateway] max_document_bytes`: events get 409
/// `document_full`, a direct write closes its client with 4413, reading goes on.
#[tokio::test(flavor = "multi_thread")]
async fn sockets_per_user_and_document_size_are_capped() {
    let server = Server::start_with(options(
        None,
        &[("DEMIURGE_GATEWAY__MAX_DOCUMENT_BYTES", "300000")],
    ));
    let t = team(&server).await;
    let addr = server.http.to_string();
    let viewer = format!("/api/v1/projects/{}/collab?token={}", t.pid, t.t_viewer);
    let mut open = Vec::new();
    for _ in 0..64 {
        open.push(ws_open(&addr, &viewer, None).await);
    }
    let handshake = format!(
        "GET {viewer} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let (code, body) = ask(&mut raw(server.http), handshake.as_bytes());
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("too_many_sockets"), "{body}");
    drop(open);

    let blob = "x".repeat(60 * 1024);
    let mut full = None;
    for i in 0..10 {
        let ev = json!({"type": "core-graph:add-node", "id": format!("b{i}"), "kind": "note",
            "x": 0, "y": 0, "data": {"blob": blob}});
        let (st, body) = t.event(&t.editor, ev).await;
        if st != StatusCode::OK {
            full = Some((st, body));
            break;
        }
    }
    let (st, body) = full.expect("the document filled up");
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("document_full"))
    );
    // A direct write of collaborative text is refused with its own close code.
    let update = {
        use yrs::updates::encoder::Encode;
        use yrs::{Doc, Map, ReadTxn, StateVector, TextPrelim, Transact};
        let doc = Doc::new();
        let texts = doc.get_or_insert_map("texts");
        let mut txn = doc.transact_mut();
        texts.insert(&mut txn, "b0", TextPrelim::new("more"));
        let u = txn.encode_state_as_update_v1(&StateVector::default());
        yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(u)).encode_v1()
    };
    let editor = format!("/api/v1/projects/{}/collab?token={}", t.pid, t.t_editor);
    let mut s = ws_open(&addr, &editor, None).await;
    ws_send(&mut s, &update).await;
    assert_eq!(ws_until_close(&mut s).await.1, Some(4413));
    // Reading goes on.
    let (st, _) = t
        .editor
        .get(&format!("/api/v1/projects/{}/document", t.pid))
        .await;
    assert_eq!(st, StatusCode::OK);
}

/// A stopping server says it is not ready before it closes anything: a client that sees
/// its socket closed and asks `/readyz` (as a page waiting to reload does) is not told to come
/// back to a server that is about to close its listener.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_server_is_not_ready_once_sockets_close() {
    let mut server = Server::start_with(options(None, &[]));
    let t = team(&server).await;
    let addr = server.http.to_string();
    let path = format!("/api/v1/projects/{}/collab?token={}", t.pid, t.t_viewer);
    let mut s = ws_open(&addr, &path, None).await;
    assert_eq!(
        crate::harness::http_get_status(server.http, "/readyz"),
        Some(200)
    );
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let (_, code) = ws_until_close(&mut s).await;
    assert_eq!(code, Some(1001), "stopping closes sockets as going away");
    let http = server.http;
    let ready =
        tokio::task::spawn_blocking(move || crate::harness::http_get_status(http, "/readyz"))
            .await
            .unwrap();
    assert_ne!(ready, Some(200), "ready while stopping:\n{}", server.logs());
    let stopped =
        server.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10));
    assert!(
        stopped.is_some_and(|(st, _)| st.success()),
        "{}",
        server.logs()
    );
}
