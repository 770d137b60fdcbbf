//! Backups taken while people edit, restored into a fresh instance on both backends; an
//! instance moved from SQLite to PostgreSQL with `db copy`.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::team::{options, team};
use crate::harness::{Browser, Options, Server, bin, fresh_pg_database};

/// Runs `demiurge <args>` on a data directory and database that no server runs on yet.
fn demiurge(data_dir: &Path, database: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEMIURGE_SERVER__DATA_DIR", data_dir);
    if let Some(url) = database {
        c.env("DEMIURGE_DATABASE__URL", url);
    }
    c.output().expect("run demiurge")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn signed_in(server: &Server, name: &str) -> Browser {
    let b = Browser::new(server);
    let (st, body) = b
        .post(
            "/api/v1/auth/login",
            json!({"login": name, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{name}: {body}");
    b
}

/// The ids of the nodes in a project's document.
fn node_ids(doc: &Value) -> HashSet<String> {
    doc["roots"]["nodes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_while_five_people_edit_restores_everything_sqlite() {
    backup_while_editing(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_while_five_people_edit_restores_everything_postgres() {
    backup_while_editing(true).await;
}

async fn backup_while_editing(pg: bool) {
    let url = if pg {
        Some(fresh_pg_database().await)
    } else {
        None
    };
    let mut opts = Options {
        dns: false,
        ..Options::default()
    };
    if let Some(u) = &url {
        opts = opts.env("DEMIURGE_DATABASE__URL", u);
    }
    let mut server = Server::start_with(opts);
    let t = Arc::new(team(&server).await);
    let vpn_key = std::fs::read(server.data_dir.join("vpn/server.key")).expect("vpn key");

    // Five people keep adding cards; each remembers which the server acknowledged.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut editors = Vec::new();
    for who in 0..5 {
        let (t, acked, stop) = (t.clone(), acked.clone(), stop.clone());
        editors.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("p{who}-{n}");
                let person = if who % 2 == 0 { &t.owner } else { &t.editor };
                let ev = json!({"type": "core-graph:add-node", "id": id, "kind": "note",
                    "x": n, "y": who, "data": {"text": format!("card {n} of {who}")}});
                let (st, body) = t.event(person, ev).await;
                assert_eq!(st, StatusCode::OK, "{body}");
                acked.lock().unwrap().push(id);
                n += 1;
            }
            n
        }));
    }
    while acked.lock().unwrap().len() < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let file = server.data_dir.parent().unwrap().join("backup.tar.gz");
    let t0 = Instant::now();
    let out = server
        .command(&["backup", &file.display().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "backup: {}", text(&out));
    let took = t0.elapsed();
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut made = 0;
    for e in editors {
        made += e.await.unwrap();
    }
    eprintln!(
        "backup in {took:?} while {during} more cards were added ({made} in all): {}",
        text(&out).trim()
    );
    assert!(text(&out).contains("Backed up"), "{}", text(&out));
    // It holds keys: only its owner reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "backup file mode");
    server.stop();

    // A fresh instance: another data directory (and database).
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let url2 = if pg {
        Some(fresh_pg_database().await)
    } else {
        None
    };
    let out = demiurge(
        &data,
        url2.as_deref(),
        &["restore", &file.display().to_string()],
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    assert!(text(&out).contains("Restored"), "{}", text(&out));
    // Once it holds an instance, a second restore is refused unless --force.
    let again = demiurge(
        &data,
        url2.as_deref(),
        &["restore", &file.display().to_string()],
    );
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("--force"), "{}", text(&again));
    let forced = demiurge(
        &data,
        url2.as_deref(),
        &["restore", "--force", &file.display().to_string()],
    );
    assert!(
        forced.status.success(),
        "restore --force: {}",
        text(&forced)
    );

    assert_eq!(
        std::fs::read(data.join("vpn/server.key")).unwrap(),
        vpn_key,
        "the same VPN key"
    );
    let mut opts = Options {
        dns: false,
        data_dir: Some(data.clone()),
        ..Options::default()
    };
    if let Some(u) = &url2 {
        opts = opts.env("DEMIURGE_DATABASE__URL", u);
    }
    let restored = Server::start_with(opts);
    // Every account signs in with its password; the project and every acknowledged card
    // up to the backup are there.
    for name in ["owner", "editor", "viewer", "outsider"] {
        signed_in(&restored, name).await;
    }
    let owner = signed_in(&restored, "owner").await;
    let (st, d) = owner
        .get(&format!("/api/v1/projects/{}/document", t.pid))
        .await;
    assert_eq!(st, StatusCode::OK, "{d}");
    let ids = node_ids(&d);
    let missing: Vec<&String> = before.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "cards acknowledged before the backup are missing: {missing:?}"
    );
    // The restored instance works: a new card, and the setup code is not asked for.
    let (st, body) = owner
        .post(
            &format!("/api/v1/projects/{}/events", t.pid),
            json!({"type": "core-graph:add-node", "id": "after", "kind": "note", "x": 0, "y": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, setup) = owner.get("/api/v1/auth/setup").await;
    assert_eq!(setup["needed"], false, "{setup}");
}

/// `db copy` from a SQLite instance with accounts, an organization, a project with cards,
/// history and a VPN peer to an empty PostgreSQL database: the server then runs on it with
/// everything intact.
#[tokio::test(flavor = "multi_thread")]
async fn db_copy_moves_an_instance_from_sqlite_to_postgres() {
    let mut server = Server::start_with(Options {
        vpn: true,
        ..options(None, &[])
    });
    let t = team(&server).await;
    for i in 0..40 {
        let ev = json!({"type": "core-graph:add-node", "id": format!("n{i}"), "kind": "note",
            "x": i, "y": 0, "data": {"text": format!("note {i} ✓")}});
        assert_eq!(t.event(&t.editor, ev).await.0, StatusCode::OK);
    }
    let (st, point) = t
        .owner
        .post(
            &format!("/api/v1/projects/{}/history", t.pid),
            json!({"name": "before the move"}),
        )
        .await;
    assert!(st.is_success(), "{point}");
    let peer = server
        .command(&["admin", "vpn", "add-peer", "laptop"])
        .output()
        .unwrap();
    assert!(peer.status.success(), "{}", text(&peer));
    let doc = t.document(&t.owner).await;
    let (_, history) = t
        .owner
        .get(&format!("/api/v1/projects/{}/history", t.pid))
        .await;
    server.stop();

    let url = fresh_pg_database().await;
    let out = server
        .command(&["db", "copy", "--to", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "db copy: {}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("every table checked") && said.contains("[database]"),
        "{said}"
    );
    eprintln!("{}", said.trim());
    // A second copy into the now full database is refused.
    let again = server
        .command(&["db", "copy", "--to", &url])
        .output()
        .unwrap();
    assert!(
        !again.status.success() && text(&again).contains("already holds"),
        "{}",
        text(&again)
    );

    let on_pg = Server::start_with(Options {
        vpn: true,
        data_dir: Some(server.data_dir.clone()),
        ..options(Some(url.clone()), &[])
    });
    let owner = signed_in(&on_pg, "owner").await;
    let (st, d) = owner
        .get(&format!("/api/v1/projects/{}/document", t.pid))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(d["roots"], doc["roots"], "the document after the move");
    let (_, h) = owner
        .get(&format!("/api/v1/projects/{}/history", t.pid))
        .await;
    // Times to the microsecond: what PostgreSQL keeps (SQLite kept nanoseconds).
    let micros = |mut v: Value| {
        for p in v.as_array_mut().into_iter().flatten() {
            if let Some(t) = p["created_at"].as_str() {
                p["created_at"] = Value::String(t[..26].to_string());
            }
        }
        v
    };
    assert_eq!(micros(h), micros(history), "the history after the move");
    let (_, status) = owner.get("/api/v1/status").await;
    assert!(status.to_string().contains("postgres"), "{status}");
    let peers = on_pg
        .command(&["admin", "vpn", "list-peers"])
        .output()
        .unwrap();
    assert!(text(&peers).contains("laptop"), "{}", text(&peers));
    // New rows get ids past the copied ones (PostgreSQL's identity sequences moved on).
    let peer2 = on_pg
        .command(&["admin", "vpn", "add-peer", "phone"])
        .output()
        .unwrap();
    assert!(peer2.status.success(), "{}", text(&peer2));
}

/// `[backup] every` takes backups by itself and keeps the newest `keep`; each restores.
#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_keep_the_newest() {
    let server = Server::start_with(options(
        None,
        &[
            ("DEMIURGE_BACKUP__EVERY", "700ms"),
            ("DEMIURGE_BACKUP__KEEP", "2"),
        ],
    ));
    let t = team(&server).await;
    let dir = server.data_dir.join("backups");
    let mut seen = HashSet::new();
    let t0 = Instant::now();
    let now = loop {
        let now: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tar.gz"))
            .collect();
        seen.extend(now.iter().cloned());
        if seen.len() >= 3 && now.len() == 2 {
            break now;
        }
        // A new backup is complete before the oldest goes (never fewer than `keep` good
        // ones), so a listing between the two sees keep + 1.
        assert!(now.len() <= 3, "more than keep + 1 = 3: {now:?}");
        assert!(t0.elapsed() < Duration::from_secs(30), "seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let newest = now.iter().max().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let out = demiurge(
        &data,
        None,
        &["restore", &dir.join(newest).display().to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let restored = Server::start_with(Options {
        data_dir: Some(data),
        ..options(None, &[])
    });
    let owner = signed_in(&restored, "owner").await;
    let (st, _) = owner
        .get(&format!("/api/v1/projects/{}/document", t.pid))
        .await;
    assert_eq!(st, StatusCode::OK);
}
