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

    // Member and role changes are in the log with the address they came from.
    let (st, org) = admin.post("/api/v1/orgs", json!({"name": "Audited"})).await;
    assert_eq!(st, StatusCode::CREATED, "{org}");
    let org = org["id"].as_str().unwrap().to_string();
    let (st, _) = admin
        .post(
            &format!("/api/v1/orgs/{org}/members"),
            json!({"user": "bob", "role": "org:member"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let member = format!("/api/v1/orgs/{org}/members/{bob_id}");
    let (st, _) = call(&admin, "PATCH", &member, Some(json!({"role": "org:admin"}))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(admin.delete(&member).await, StatusCode::NO_CONTENT);
    for kind in ["member_added", "role_changed", "member_removed"] {
        let (_, e) = admin
            .get(&format!("/api/v1/admin/audit?kind={kind}&user={bob_id}"))
            .await;
        assert_eq!(e[0]["ip"], "127.0.0.1", "{kind}: {e}");
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
    assert_eq!(r["other_header_name"], "Acme Team", "{r}");
    assert!(
        r["name_origin"].as_str().unwrap().starts_with("Set here"),
        "{r}"
    );
    assert_eq!(r["visitor_title"], "Acme Team", "{r}");
    assert_eq!(r["visitor_form"], false, "sign-up is closed: {r}");
    assert!(
        r["reset_notice"]
            .as_str()
            .unwrap()
            .contains("a link to choose a new password went to carol@example.test"),
        "{r}"
    );
    assert_eq!(r["other_after_reset"], "/signin", "{r}");
    let (link, _) = sink
        .wait_link("carol@example.test", "http://localhost:", 0)
        .await;
    assert!(link.contains("/auth/link?token="), "{link}");
    assert_eq!(r["other_admin_link"], false, "{r}");
    for name in [
        "admin",
        "admin-disabled",
        "admin-audit",
        "admin-settings",
        "signup-closed",
        "admin-not-found",
    ] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}.png");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_settings_apply_at_once_and_last_sqlite() {
    instance_settings(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_settings_apply_at_once_and_last_postgres() {
    instance_settings(true).await;
}

fn signup_body(name: &str, invitation: Option<&str>) -> Value {
    let mut b = json!({"username": name, "email": format!("{name}@example.test"),
        "password": "correct horse battery"});
    if let Some(t) = invitation {
        b["invitation"] = json!(t);
    }
    b
}

/// The instance's name and open sign-up, changed on the admin page: in force at once (page
/// title, mails, passkey prompts, sign-up), kept across a restart, and back to the config
/// file's value when set to it. With sign-up closed an invitation still admits its person.
async fn instance_settings(pg: bool) {
    use crate::harness::peers::{MailSink, link_in};
    let sink = MailSink::start();
    let mut server = Server::start_with(options(
        pg_url(pg).await,
        &[("DEMIURGE_MAIL__URL", &sink.url())],
    ));
    let (root, root_me) = signed_up(&server, "root").await;
    let (bob, _) = signed_up(&server, "bob").await;

    let (st, s) = root.get("/api/v1/admin/settings").await;
    assert_eq!(st, StatusCode::OK, "{s}");
    let configured = s["name"]["config_file"].as_str().unwrap().to_string();
    assert_eq!(s["name"]["value"], configured.as_str(), "{s}");
    assert_eq!(s["name"]["set_here"], Value::Null, "{s}");
    assert_eq!(s["open_signup"]["value"], true, "{s}");
    // Nobody else sees or changes them.
    assert_eq!(
        bob.get("/api/v1/admin/settings").await.0,
        StatusCode::NOT_FOUND
    );
    let change = json!({"name": "Acme Team", "open_signup": false});
    assert_eq!(
        call(
            &bob,
            "PATCH",
            "/api/v1/admin/settings",
            Some(change.clone())
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    for bad in [
        json!({"name": "   "}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "a\u{7}b"}),
    ] {
        let (st, e) = call(&root, "PATCH", "/api/v1/admin/settings", Some(bad)).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input")),
            "{e}"
        );
    }
    let (st, s) = call(
        &root,
        "PATCH",
        "/api/v1/admin/settings",
        Some(json!({"name": "  Acme Team  ", "open_signup": false})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(s["name"]["value"], "Acme Team", "{s}");
    assert_eq!(s["name"]["set_here"]["by"], root_me["id"], "{s}");
    assert_eq!(s["open_signup"]["value"], false, "{s}");

    // At once: the page title, the sign-up page's answer, sign-up itself.
    let page = reqwest::get(server.url("/signin"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<title>Acme Team</title>"), "{page}");
    let (_, setup) = Browser::new(&server).get("/api/v1/auth/setup").await;
    assert_eq!(setup["signup_open"], false, "{setup}");
    let (st, e) = Browser::new(&server)
        .post("/api/v1/auth/signup", signup_body("dave", None))
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("signup_closed")),
        "{e}"
    );
    // The passkey prompt names the instance as it is now.
    let (st, start) = bob
        .post(
            "/api/v1/me/passkeys/register/start",
            json!({"name": "laptop"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{start}");
    assert_eq!(
        start["options"]["publicKey"]["rp"]["name"], "Acme Team",
        "{start}"
    );

    // Invitations still admit their people: one bound to carol's address (mailed, under
    // the new name), and an open link.
    let (_, orgs) = root.get("/api/v1/orgs").await;
    let org = orgs[0]["id"].as_str().unwrap().to_string();
    let (st, inv) = root
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "carol@example.test", "role": "org:member"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let mail = sink.wait_mail("carol@example.test", 1).await;
    assert!(
        mail.to_string().contains("An invitation to Acme Team"),
        "{mail}"
    );
    let carol_token = link_in(&mail, "http://localhost:")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let (st, e) = Browser::new(&server)
        .post(
            "/api/v1/auth/signup",
            signup_body("dave", Some(&carol_token)),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("signup_closed")),
        "carol's invitation does not admit dave: {e}"
    );
    let (st, e) = Browser::new(&server)
        .post(
            "/api/v1/auth/signup",
            signup_body("dave", Some("not-a-token")),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    let carol = Browser::new(&server);
    let (st, body) = carol
        .post(
            "/api/v1/auth/signup",
            signup_body("carol", Some(&carol_token)),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, joined) = carol
        .post("/api/v1/invitations/accept", json!({"token": carol_token}))
        .await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    let (st, open) = root
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"open": true, "role": "org:member"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{open}");
    let open_token = open["link"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let (st, body) = Browser::new(&server)
        .post(
            "/api/v1/auth/signup",
            signup_body("erin", Some(&open_token)),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    // Kept across a restart.
    server.restart();
    let root = login(&server, "root", "correct horse battery").await.0;
    let (_, s) = root.get("/api/v1/admin/settings").await;
    assert_eq!(s["name"]["value"], "Acme Team", "{s}");
    assert_eq!(s["open_signup"]["value"], false, "{s}");
    let (st, _) = Browser::new(&server)
        .post("/api/v1/auth/signup", signup_body("dave", None))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // The config file's value again: the setting follows the config file.
    let (st, s) = call(
        &root,
        "PATCH",
        "/api/v1/admin/settings",
        Some(json!({"open_signup": true, "name": configured})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(s["open_signup"]["set_here"], Value::Null, "{s}");
    assert_eq!(s["name"]["set_here"], Value::Null, "{s}");
    let (st, body) = Browser::new(&server)
        .post("/api/v1/auth/signup", signup_body("dave", None))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    // Each change is in the audit log.
    let (_, events) = root
        .get("/api/v1/admin/audit?kind=admin.settings_changed")
        .await;
    let details: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 2, "{events}");
    assert!(details[1].contains("renamed the instance"), "{details:?}");
    assert!(details[1].contains("closed sign-up"), "{details:?}");
    assert!(details[0].contains("opened sign-up"), "{details:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_resets_a_locked_out_account_sqlite() {
    reset_sign_in(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_resets_a_locked_out_account_postgres() {
    reset_sign_in(true).await;
}

/// Bob lost the phone with his authenticator app and his passkey: the admin resets his
/// sign-in. His second factor and passkeys are gone, his sessions ended, and a link to
/// choose a new password is in his mail; his password still signs him in, without a code.
async fn reset_sign_in(pg: bool) {
    use crate::harness::peers::MailSink;
    let sink = MailSink::start();
    let server = Server::start_with(options(
        pg_url(pg).await,
        &[("DEMIURGE_MAIL__URL", &sink.url())],
    ));
    let (root, _) = signed_up(&server, "root").await;
    let (bob, bob_me) = signed_up(&server, "bob").await;
    let bob_id = bob_me["id"].as_str().unwrap().to_string();
    let (_, enrol) = bob.post("/api/v1/me/totp", json!({})).await;
    let secret = enrol["secret"].as_str().unwrap().to_string();
    let (st, _) = bob
        .post(
            "/api/v1/me/totp/confirm",
            json!({"code": crate::accounts::totp_code(&secret, 0)}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let mut key = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    crate::signin::register_passkey(&server, &bob, &mut key, "phone").await;
    let (_, st, l) = login(&server, "bob", "correct horse battery").await;
    assert_eq!(l["second_factor_required"], true, "{st} {l}");

    let mails_before = sink.mails_to("bob@example.test").len();
    let path = format!("/api/v1/admin/users/{bob_id}/reset-sign-in");
    assert_eq!(
        call(&bob, "POST", &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &root,
            "POST",
            "/api/v1/admin/users/nobody/reset-sign-in",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (st, r) = call(&root, "POST", &path, None).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["second_factor_removed"], true, "{r}");
    assert_eq!(r["passkeys_removed"], 1, "{r}");
    assert!(r["sessions_ended"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["link_sent_to"], "bob@example.test", "{r}");
    assert_eq!(bob.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);

    // The password alone signs in now, and the mailed link sets a new one.
    let (b, st, l) = login(&server, "bob", "correct horse battery").await;
    assert_eq!(st, StatusCode::OK, "{l}");
    assert_ne!(l["second_factor_required"], true, "{l}");
    let (_, keys) = b.get("/api/v1/me/passkeys").await;
    assert_eq!(keys, json!([]));
    let (link, _) = sink
        .wait_link("bob@example.test", "http://localhost:", mails_before)
        .await;
    let token = link
        .split("/auth/link?token=")
        .nth(1)
        .expect("a reset link")
        .to_string();
    let (st, body) = Browser::new(&server)
        .post(
            "/api/v1/auth/email-link/redeem",
            json!({"token": token, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "the mailed link sets a new password: {body}"
    );
    assert_eq!(
        login(&server, "bob", "a brand new passphrase").await.1,
        StatusCode::OK
    );
    let (_, events) = root.get("/api/v1/admin/audit?kind=admin").await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "admin.reset_sign_in" && e["target"] == bob_id.as_str()),
        "{events}"
    );
}
