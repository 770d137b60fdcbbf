//! The storage face on both backends: SQLite (a temp file) and PostgreSQL (a fresh database
//! on the server the test command started).

use std::process::Command;

use demiurge::config::DatabaseUrl;
use demiurge::db::vpn_peers::NewVpnPeer;
use demiurge::db::{Db, DbError};

use crate::harness::{Server, fresh_pg_database};

async fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("nested/dir/test.db"));
    (Db::connect(&url, None).await.expect("open sqlite"), dir)
}

async fn postgres() -> Db {
    let url = fresh_pg_database().await;
    Db::connect(&DatabaseUrl::Postgres(url), None)
        .await
        .expect("open postgres")
}

fn peer<'a>(name: &'a str, key: &'a str, addr: &'a str) -> NewVpnPeer<'a> {
    NewVpnPeer {
        name,
        public_key: key,
        address: addr,
        created_at: chrono::Utc::now().naive_utc(),
    }
}

async fn storage_smoke(db: Db, backend: &str) {
    assert_eq!(db.backend(), backend);
    assert!(db.migrate().await.unwrap() >= 1, "first migrate applies");
    assert_eq!(db.migrate().await.unwrap(), 0, "second migrate is a no-op");
    db.ping().await.unwrap();

    assert!(db.vpn_peers().await.unwrap().is_empty());
    let a = db
        .insert_vpn_peer(&peer("a", "key-a", "10.88.0.2"))
        .await
        .unwrap();
    let b = db
        .insert_vpn_peer(&peer("b", "key-b", "10.88.0.3"))
        .await
        .unwrap();
    assert!(b.id > a.id);
    assert_eq!(a.name, "a");
    let all = db.vpn_peers().await.unwrap();
    assert_eq!(all, vec![a.clone(), b.clone()]);

    for dup in [
        peer("a", "key-x", "10.88.0.9"),
        peer("x", "key-a", "10.88.0.9"),
        peer("x", "key-x", "10.88.0.2"),
    ] {
        match db.insert_vpn_peer(&dup).await {
            Err(DbError::Conflict(_)) => {}
            other => panic!("duplicate {dup:?} should conflict, got {other:?}"),
        }
    }
    db.delete_vpn_peer("a").await.unwrap();
    assert!(matches!(
        db.delete_vpn_peer("a").await,
        Err(DbError::NotFound)
    ));
    assert_eq!(db.vpn_peers().await.unwrap(), vec![b]);

    // Concurrent writers through the pool.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let (name, key, addr) = (format!("p{i}"), format!("k{i}"), format!("10.88.1.{i}"));
            db.insert_vpn_peer(&peer(&name, &key, &addr))
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(db.vpn_peers().await.unwrap().len(), 21);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_smoke_sqlite() {
    let (db, dir) = sqlite().await;
    storage_smoke(db, "sqlite").await;
    assert!(
        dir.path().join("nested/dir/test.db").is_file(),
        "parent folders created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_smoke_postgres() {
    storage_smoke(postgres().await, "postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_database_is_a_clear_error() {
    let url = DatabaseUrl::Postgres("postgres://nobody:secret-pw@127.0.0.1:1/none".into());
    let err = match Db::connect(&url, None).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(err.contains("cannot open database"), "{err}");
    assert!(!err.contains("secret-pw"), "password leaked: {err}");
}

/// The whole server on PostgreSQL: start, migrate, VPN peers stored there.
#[tokio::test(flavor = "multi_thread")]
async fn serve_and_admin_on_postgres() {
    let (server, url) = Server::start_on_postgres().await;
    let status = crate::harness::get_json(&server, "/api/v1/status", &[]).await;
    let db = &status["subsystems"][0];
    assert_eq!(db["name"], "database");
    assert!(
        db["detail"].as_str().unwrap().starts_with("postgres "),
        "{db}"
    );
    assert!(
        !db["detail"].as_str().unwrap().contains("pw@"),
        "no password in status: {db}"
    );

    server.command_ok(&["admin", "vpn", "add-peer", "pg-peer"]);
    let pg = Db::connect(&DatabaseUrl::Postgres(url.clone()), None)
        .await
        .unwrap();
    let peers = pg.vpn_peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].name, "pg-peer");

    let out = Command::new(crate::harness::bin())
        .arg("migrate")
        .env_clear()
        .env("DEMIURGE_DATABASE__URL", &url)
        .env("DEMIURGE_SERVER__DATA_DIR", &server.data_dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 migration(s) applied on postgres"));
}

/// The SQLite and PostgreSQL migrations build the same schema: the same tables, columns
/// (type and nullability), primary keys and indexes.
#[tokio::test(flavor = "multi_thread")]
async fn both_backends_build_the_same_schema() {
    let (lite, _dir) = sqlite().await;
    let pg = postgres().await;
    lite.migrate().await.unwrap();
    pg.migrate().await.unwrap();
    let (a, b) = (lite.shape().await.unwrap(), pg.shape().await.unwrap());
    assert!(a.len() >= 29, "{:?}", a.keys());
    // What it reads is what the migrations say (so an empty reading cannot pass).
    use demiurge::db::shape::IndexShape;
    for shape in [&a, &b] {
        let c = &shape["containers"];
        assert!(
            c.indexes.contains(&IndexShape {
                columns: vec!["credential_hash".into()],
                unique: true
            }),
            "{c:?}"
        );
        assert!(
            c.indexes.contains(&IndexShape {
                columns: vec!["project_id".into()],
                unique: false
            }),
            "{c:?}"
        );
        assert_eq!(shape["container_images"].primary_key, ["org_id", "slug"]);
        assert!(c.columns["command"].nullable && !c.columns["image"].nullable);
        assert_eq!(c.columns["created_at"].kind, "timestamp");
    }
    let mut differences = Vec::new();
    for name in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) => {
                for col in x
                    .columns
                    .keys()
                    .chain(y.columns.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                {
                    let (cx, cy) = (x.columns.get(col), y.columns.get(col));
                    if cx != cy {
                        differences.push(format!("{name}.{col}: sqlite {cx:?}, postgres {cy:?}"));
                    }
                }
                if x.primary_key != y.primary_key {
                    differences.push(format!(
                        "{name} primary key: sqlite {:?}, postgres {:?}",
                        x.primary_key, y.primary_key
                    ));
                }
                for i in x.indexes.symmetric_difference(&y.indexes) {
                    let on = if x.indexes.contains(i) {
                        "sqlite"
                    } else {
                        "postgres"
                    };
                    differences.push(format!("{name}: index {i:?} only on {on}"));
                }
            }
            (x, _) => differences.push(format!(
                "table {name} only on {}",
                if x.is_some() { "sqlite" } else { "postgres" }
            )),
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
