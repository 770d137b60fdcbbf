//! The instance admin's API: diagnostics, accounts (disable, enable, make admin, end
//! sessions) and the audit log of security events, on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::team::{options, pg_url, token_of};
use crate::harness::{Browser, Server, signed_up};

async fn call(b: &Browser, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = b
        .http
        .request(method.parse().unwrap(), format!("{}{path}", b.base))
        .header("Origin", &b.origin);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn login(server: &Server, name: &str, password: &str) -> (Browser, StatusCode, Value) {
    let b = Browser::new(server);
    let (st, body) = b
        .post(
            "/api/v1/auth/login",
            json!({"login": name, "password": password}),
        )
        .await;
    (b, st, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_sees_the_server_and_manages_accounts_sqlite() {
    admin_api(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_sees_the_server_and_manages_accounts_postgres() {
    admin_api(true).await;
}

async fn admin_api(pg: bool) {
    let server = Server::start_with(options(pg_url(pg).await, &[]));
    let (admin, _) = signed_up(&server, "root").await;
    let (bob, bob_me) = signed_up(&server, "bob").await;
    let bob_id = bob_me["id"].as_str().unwrap().to_string();
    let (bob_token, _) = token_of(&bob).await;

    let (st, d) = admin.get("/api/v1/admin/diagnostics").await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(
        d["database"]["backend"],
        if pg { "postgres" } else { "sqlite" }
    );
    assert!(d["database"]["size_bytes"].as_i64().unwrap() > 0, "{d}");
    assert!(
        d["database"]["clock_skew_ms"].as_i64().unwrap().abs() < 5_000,
        "{d}"
    );
    assert!(d["disk"]["free_bytes"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["accounts"], 2);
    assert!(
        d["subsystems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "database" && s["state"] == "running"),
        "{d}"
    );
    // Not for anyone else, nor a secret in it.
    assert_eq!(
        bob.get("/api/v1/admin/diagnostics").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!d.to_string().contains("correct horse"), "{d}");

    // A wrong password, then bob's sign-in: both in the audit log (the typed login of a
    // failed sign-in for no account is not kept).
    assert_eq!(
        login(&server, "bob", "wrong password!").await.1,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&server, "hunter2@nowhere", "wrong password!").await.1,
        StatusCode::UNAUTHORIZED
    );
    let (st, users) = admin.get("/api/v1/admin/users?q=bo").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users[0]["username"], "bob");

    // Disabled: no sign-in, the session and the token stop working.
    let (st, u) = call(
        &admin,
        "PATCH",
        &format!("/api/v1/admin/users/{bob_id}"),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{u}");
    assert!(u["disabled_at"].is_string(), "{u}");
    assert_eq!(bob.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    let with_token = reqwest::Client::new()
        .get(server.url("/api/v1/me"))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(with_token, StatusCode::UNAUTHORIZED);
    let (_, st, body) = login(&server, "bob", "correct horse battery").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_disabled")),
        "{body}"
    );
    // Enabled again: bob signs in.
    let (st, _) = call(
        &admin,
        "PATCH",
        &format!("/api/v1/admin/users/{bob_id}"),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (bob2, st, _) = login(&server, "bob", "correct horse battery").await;
    assert_eq!(st, StatusCode::OK);
    // Sessions ended by the admin.
    let (st, ended) = call(
        &admin,
        "DELETE",
        &format!("/api/v1/admin/users/{bob_id}/sessions"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(ended["ended"].as_u64().unwrap() >= 1, "{ended}");
    assert_eq!(bob2.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    // The last admin stays an admin.
    let me = admin.get("/api/v1/me").await.1;
    let root_id = me["id"].as_str().unwrap();
    let (st, body) = call(
        &admin,
        "PATCH",
        &format!("/api/v1/admin/users/{root_id}"),
        Some(json!({"is_admin": false})),
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("last_admin")),
        "{body}"
    );
    // Bob made admin sees the admin API.
    let (st, _) = call(
        &admin,
        "PATCH",
        &format!("/api/v1/admin/users/{bob_id}"),
        Some(json!({"is_admin": true})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (bob3, _, _) = login(&server, "bob", "correct horse battery").await;
    assert_eq!(bob3.get("/api/v1/admin/audit").await.0, StatusCode::OK);

    let (st, events) = admin.get("/api/v1/admin/audit?limit=100").await;
    assert_eq!(st, StatusCode::OK, "{events}");
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for k in [
        "sign_in",
        "sign_in_failed",
        "token_created",
        "admin.user_disabled",
        "admin.user_enabled",
        "admin.ended_sessions",
        "admin.made_admin",
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    assert!(
        !events.to_string().contains("hunter2"),
        "a typed login was kept: {events}"
    );
    assert!(!events.to_string().contains("wrong password!"), "{events}");
    // Newest first, and queryable by family and by user.
    let (_, admin_only) = admin.get("/api/v1/admin/audit?kind=admin").await;
    assert!(
        admin_only
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"].as_str().unwrap().starts_with("admin.")),
        "{admin_only}"
    );
    assert_eq!(admin_only[0]["kind"], "admin.made_admin", "{admin_only}");
    let (_, about_bob) = admin
        .get(&format!(
            "/api/v1/admin/audit?user={bob_id}&kind=sign_in_failed"
        ))
        .await;
    assert_eq!(about_bob.as_array().unwrap().len(), 1, "{about_bob}");
    assert_eq!(
        bob.get("/api/v1/admin/users").await.0,
        StatusCode::UNAUTHORIZED
    );
    // Parameters longer than the document allows do not fit the operation.
    let long = "x".repeat(101);
    for path in [
        format!("/api/v1/admin/users?q={long}"),
        format!("/api/v1/admin/audit?user={long}"),
        format!("/api/v1/admin/audit?kind={long}"),
        "/api/v1/admin/users?offset=-1".to_string(),
        "/api/v1/admin/audit?limit=501".to_string(),
    ] {
        let (st, body) = admin.get(&path).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{path}"
        );
    }

    // No mail server configured: the test mail says so instead of pretending.
    let (st, t) = admin
        .post(
            "/api/v1/admin/mail-test",
            json!({"to": "root@example.test"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["sent"], false, "{t}");
    assert!(t["answer"].as_str().unwrap().contains("[mail] url"), "{t}");
    let (st, t) = admin
        .post("/api/v1/admin/mail-test", json!({"to": "not an address"}))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{t}");
}

/// The admin page in Chromium, clicked as the admin would (screenshots in
/// tests/artifacts/ui-admin).
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_page_works_in_chromium() {
    use std::time::Duration;
    let sink = crate::harness::peers::MailSink::start();
    let server = Server::start_with(options(None, &[("DEMIURGE_MAIL__URL", &sink.url())]));
    signed_up(&server, "root").await;
    signed_up(&server, "carol").await;
    let shots = crate::harness::chromium::artifacts_dir("ui-admin");
    let args = json!({
        "admin": {"login": "root", "password": "correct horse battery"},
        "other": {"login": "carol", "password": "correct horse battery"},
    })
    .to_string();
    let base = format!("http://localhost:{}", server.http.port());
    let mut s = crate::harness::chromium::Script::start(
        "ui_admin.mjs",
        &[&base, &shots.display().to_string(), &args],
    )
    .quoting_logs_of(&server);
    let r = s.expect("RESULT", Duration::from_secs(120));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert_eq!(r["url"], "/admin");
    for fact in ["Version", "Database", "Disk", "Backups"] {
        assert!(
            r["facts"].as_array().unwrap().iter().any(|f| f == fact),
            "{r}"
        );
    }
    assert!(r["database"].as_str().unwrap().starts_with("sqlite"), "{r}");
    assert!(r["subsystems"].as_u64().unwrap() >= 5, "{r}");
    assert_eq!(r["no_acme"], true, "{r}");
    // The test mail reached the SMTP server, which said so.
    assert_eq!(r["mail_sent"], "true", "{r}");
    assert!(r["mail_answer"].as_str().unwrap().contains("250"), "{r}");
    let mail = sink.wait_mail("root@example.test", 1).await;
    assert!(mail.to_string().contains("test mail"), "{mail}");
    assert_eq!(r["disabled_pill"], "disabled");
    assert_eq!(r["other_sent_to"], "/signin", "{r}");
    assert_eq!(
        r["other_sign_in"], 403,
        "a disabled account cannot sign in: {r}"
    );
    assert!(
        r["audit_text"]
            .as_str()
            .unwrap()
            .contains("root disabled carol"),
        "{r}"
    );
    assert!(
        r["audit_kinds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.as_str().unwrap().starts_with("admin.")),
        "{r}"
    );
    assert_eq!(r["other_sign_in_after"], 200, "{r}");
    assert_eq!(r["other_admin_link"], false, "{r}");
    for name in ["admin", "admin-disabled", "admin-audit", "admin-not-found"] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}.png");
    }
}
