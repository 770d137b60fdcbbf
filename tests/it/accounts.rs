//! Accounts and sign-in over HTTP through the edge, on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Browser, Options, Server};

pub(crate) fn alice() -> Value {
    json!({"username": "Alice", "email": "alice@example.test", "display_name": "Alice A.", "password": "correct horse battery"})
}

async fn sign_up_sign_in_sessions(server: Server) {
    let a = Browser::new(&server);

    // Sign-up signs in; the first account is the instance admin.
    let r = a
        .http
        .post(server.url("/api/v1/auth/signup"))
        .header("Origin", &a.origin)
        .json(&a.with_setup_code(alice()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("demiurge_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http: no Secure flag: {cookie}"
    );
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["username"], "Alice");
    assert_eq!(user["is_admin"], true);
    assert!(user.get("password_hash").is_none());

    let (s, me) = a.get("/api/v1/me").await;
    assert_eq!(s, 200);
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["display_name"], "Alice A.");

    // Usernames are unique regardless of case; emails too.
    let b = Browser::new(&server);
    let (s, e) = b
        .post("/api/v1/auth/signup", json!({"username": "alice", "email": "other@example.test", "password": "another long secret"}))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("account_exists")),
        "{e}"
    );
    let (s, e) = b
        .post("/api/v1/auth/signup", json!({"username": "bob", "email": "ALICE@example.test", "password": "another long secret"}))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("account_exists")),
        "{e}"
    );

    // Password policy.
    for (pw, why) in [
        ("short", "length"),
        ("password123", "common"),
        ("Password123", "common, any case"),
    ] {
        let (s, e) = b
            .post(
                "/api/v1/auth/signup",
                json!({"username": "bob", "email": "bob@example.test", "password": pw}),
            )
            .await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password")),
            "{why}: {e}"
        );
    }
    let (s, e) = b.post("/api/v1/auth/signup", json!({"username": "b o b", "email": "bob@example.test", "password": "another long secret"})).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input")),
        "{e}"
    );
    let (s, bob) = b.post("/api/v1/auth/signup", json!({"username": "bob", "email": "bob@example.test", "password": "another long secret"})).await;
    assert_eq!(s, StatusCode::CREATED, "{bob}");
    assert_eq!(bob["is_admin"], false, "only the first account is admin");

    // Login by username or email, any case; wrong password and unknown account look the same.
    let c = Browser::new(&server);
    let (s, e) = c
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "wrong password!!"}),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (s, e2) = c
        .post(
            "/api/v1/auth/login",
            json!({"login": "nobody", "password": "wrong password!!"}),
        )
        .await;
    assert_eq!(
        (s, &e2),
        (StatusCode::UNAUTHORIZED, &e),
        "same answer for a missing account"
    );
    let (s, _) = c.get("/api/v1/me").await;
    assert_eq!(s, 401);
    let (s, who) = c
        .post(
            "/api/v1/auth/login",
            json!({"login": "ALICE@EXAMPLE.TEST", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(s, 200, "{who}");
    assert_eq!(who["user"]["username"], "Alice");

    // Alice now has two sessions; she sees both and revokes the other one.
    let (s, list) = c.get("/api/v1/me/sessions").await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.delete(&format!("/api/v1/me/sessions/{other}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.get("/api/v1/me").await.0,
        401,
        "the revoked session no longer works"
    );
    assert_eq!(
        c.delete(&format!("/api/v1/me/sessions/{other}")).await,
        StatusCode::NOT_FOUND
    );
    // Bob cannot revoke Alice's sessions.
    let alice_current = current[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        b.delete(&format!("/api/v1/me/sessions/{alice_current}"))
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.get("/api/v1/me").await.0, 200);

    // Logout revokes the session and clears the cookie.
    let (s, _) = c.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(c.get("/api/v1/me").await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_and_sessions_sqlite() {
    sign_up_sign_in_sessions(Server::start()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_and_sessions_postgres() {
    sign_up_sign_in_sessions(Server::start_on_postgres().await.0).await;
}

/// State-changing requests signed in by cookie must come from our own origin.
#[tokio::test(flavor = "multi_thread")]
async fn cookie_requests_from_another_origin_are_refused() {
    let server = Server::start();
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );

    let evil = Browser {
        origin: "http://evil.example".into(),
        ..Browser::new(&server)
    };
    let (s, e) = evil
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("origin_mismatch")),
        "login CSRF refused"
    );

    // The same cookie jar, a foreign Origin: refused; no Origin at all: refused.
    let token = {
        let r = a
            .http
            .post(server.url("/api/v1/auth/login"))
            .header("Origin", &a.origin)
            .json(&json!({"login": "alice", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
        c.split(';').next().unwrap().to_string()
    };
    let raw = crate::harness::http_builder().no_proxy().build().unwrap();
    let r = raw
        .post(server.url("/api/v1/auth/logout"))
        .header("Cookie", &token)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = raw
        .post(server.url("/api/v1/auth/logout"))
        .header("Cookie", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "origin_required");
    // An opaque origin is refused even with our own page as the Referer.
    let r = raw
        .post(server.url("/api/v1/auth/logout"))
        .header("Cookie", &token)
        .header("Origin", "null")
        .header("Referer", server.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "origin_mismatch");
    // Reads need no Origin, and the session survived the refused requests.
    let r = raw
        .get(server.url("/api/v1/me"))
        .header("Cookie", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The stored password is an argon2id PHC string at OWASP parameters; closed sign-up still
/// lets the first account in.
#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_stored_as_argon2id_and_signup_can_be_closed() {
    let server = Server::start_with(Options::default().env("DEMIURGE_AUTH__OPEN_SIGNUP", "false"));
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED,
        "first account always allowed"
    );
    let b = Browser::new(&server);
    let (s, e) = b.post("/api/v1/auth/signup", json!({"username": "bob", "email": "bob@example.test", "password": "another long secret"})).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("signup_closed"))
    );

    let db = demiurge::db::Db::connect(
        &demiurge::config::DatabaseUrl::Sqlite(server.data_dir.join("demiurge.db")),
        None,
    )
    .await
    .unwrap();
    let user = db.user_by_login("alice").await.unwrap().unwrap();
    let hash = user.password_hash.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("correct horse"));
}

/// Bad input gets a 4xx with a stable code, never a 5xx.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_stable_4xx_codes() {
    let server = Server::start();
    let raw = crate::harness::http_builder().no_proxy().build().unwrap();
    let url = server.url("/api/v1/auth/signup");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("application/json", b"{not json".to_vec(), "invalid_json"),
        (
            "application/json",
            b"{\"username\": 5}".to_vec(),
            "invalid_json",
        ),
        (
            "application/json",
            b"{\"username\": \"x\"}".to_vec(),
            "invalid_json",
        ),
        ("application/json", vec![0xff, 0xfe, 0x7b], "invalid_json"),
        (
            "application/json",
            format!("{{\"username\":\"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes(),
            "payload_too_large",
        ),
        ("text/plain", b"{}".to_vec(), "unsupported_content_type"),
    ];
    for (ct, body, code) in cases {
        let r = raw
            .post(&url)
            .header("Content-Type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(status.is_client_error(), "{code}: {status}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], code, "{e}");
    }
    let r = raw
        .get(server.url("/api/v1/me"))
        .header("Cookie", "demiurge_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Changing the password needs the current one, and ends the other sessions.
#[tokio::test(flavor = "multi_thread")]
async fn change_password_needs_the_current_one_and_ends_other_sessions() {
    let server = Server::start();
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let other = Browser::new(&server);
    assert_eq!(
        other
            .post(
                "/api/v1/auth/login",
                json!({"login": "alice", "password": "correct horse battery"})
            )
            .await
            .0,
        200
    );

    let put = |b: &Browser, body: Value| {
        let req = b
            .http
            .put(server.url("/api/v1/me/password"))
            .header("Origin", &b.origin)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    let r = put(
        &a,
        json!({"current_password": "not the password", "new_password": "a brand new secret"}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = put(
        &a,
        json!({"current_password": "correct horse battery", "new_password": "qwertyuiop"}),
    )
    .await;
    assert_eq!(r.status(), 422, "a common password is refused");
    let r = put(
        &a,
        json!({"current_password": "correct horse battery", "new_password": "a brand new secret"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    assert_eq!(a.get("/api/v1/me").await.0, 200, "this session stays");
    assert_eq!(other.get("/api/v1/me").await.0, 401, "other sessions end");
    let c = Browser::new(&server);
    assert_eq!(
        c.post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "correct horse battery"})
        )
        .await
        .0,
        401
    );
    assert_eq!(
        c.post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "a brand new secret"})
        )
        .await
        .0,
        200
    );
}

/// `demiurge admin create-user` and `reset-password`, while the server runs.
#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_users_and_resets_passwords() {
    use std::io::Write;
    use std::process::Stdio;
    let server = Server::start();
    let mut child = server
        .command(&[
            "admin",
            "create-user",
            "--username",
            "root",
            "--email",
            "root@example.test",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"operator chosen secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("instance admin"));
    assert!(
        out.stdout.is_empty(),
        "a password given on stdin is not echoed"
    );

    let a = Browser::new(&server);
    let (s, me) = a
        .post(
            "/api/v1/auth/login",
            json!({"login": "root", "password": "operator chosen secret"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(me["user"]["is_admin"], true);

    // A generated password is printed once, and the old sessions end.
    let out = server.command_ok(&["admin", "reset-password", "root@example.test"]);
    let generated = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(generated.len() >= 20, "{generated}");
    assert_eq!(a.get("/api/v1/me").await.0, 401);
    let b = Browser::new(&server);
    assert_eq!(
        b.post(
            "/api/v1/auth/login",
            json!({"login": "root", "password": generated})
        )
        .await
        .0,
        200
    );

    let out = server
        .command(&["admin", "reset-password", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

async fn bearer(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    let r = crate::harness::http_builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(server.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Personal access tokens: shown once, stored hashed, used as bearer, listed, revoked.
async fn personal_access_tokens(server: Server) {
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );

    let (s, created) = a
        .post(
            "/api/v1/me/tokens",
            json!({"name": "ci", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("dmg_pat_") && token.len() > 40, "{token}");
    assert!(created["expires_at"].is_string());
    let (s, e) = a.post("/api/v1/me/tokens", json!({"name": "ci"})).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("token_name_taken"))
    );
    let (s, _) = a
        .post(
            "/api/v1/me/tokens",
            json!({"name": "ci2", "expires_in_days": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, me) = bearer(&server, &token, "/api/v1/me").await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["username"], "Alice");
    for bad in ["dmg_pat_forged", "not-a-token", ""] {
        assert_eq!(bearer(&server, bad, "/api/v1/me").await.0, 401, "{bad}");
    }

    let (s, list) = a.get("/api/v1/me/tokens").await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "ci");
    assert!(list[0].get("token").is_none(), "the secret is never listed");
    assert!(
        list[0]["last_used_at"].is_string(),
        "last use recorded: {list:?}"
    );
    assert!(!list.iter().any(|t| t.to_string().contains(&token)));

    // Bearer requests need no Origin; a token cannot sign out a browser session.
    let raw = crate::harness::http_builder().no_proxy().build().unwrap();
    let r = raw
        .post(server.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let id = list[0]["id"].as_str().unwrap();
    assert_eq!(
        a.delete(&format!("/api/v1/me/tokens/{id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        bearer(&server, &token, "/api/v1/me").await.0,
        401,
        "revoked"
    );
    assert_eq!(
        a.delete(&format!("/api/v1/me/tokens/{id}")).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_access_tokens_sqlite() {
    personal_access_tokens(Server::start()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_access_tokens_postgres() {
    personal_access_tokens(Server::start_on_postgres().await.0).await;
}

/// Login limits trip per account and per address, answer 429 with Retry-After, and recover.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_trip_and_recover() {
    let server = Server::start_with(Options::default().env("DEMIURGE_AUTH__LOGIN_RATE", "3/3s"));
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let wrong = json!({"login": "alice", "password": "wrong password!!"});
    for _ in 0..3 {
        assert_eq!(a.post("/api/v1/auth/login", wrong.clone()).await.0, 401);
    }
    let r = a
        .http
        .post(server.url("/api/v1/auth/login"))
        .header("Origin", &a.origin)
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "rate_limited");
    // Even the right password waits: the account's attempts are spent.
    let right = json!({"login": "alice", "password": "correct horse battery"});
    assert_eq!(
        a.post("/api/v1/auth/login", right.clone()).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100 * retry)).await;
    assert_eq!(
        a.post("/api/v1/auth/login", right).await.0,
        200,
        "recovered"
    );

    // The account's limit is the account's, whatever names it: three wrong passwords for
    // "bob" from one address spend it for "BOB@example.test" from another.
    let (s, _) = Browser::new(&server)
        .post(
            "/api/v1/auth/signup",
            json!({"username": "bob", "email": "bob@example.test", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let from = |ip: [u8; 4]| {
        crate::harness::http_builder()
            .local_address(std::net::IpAddr::from(ip))
            .no_proxy()
            .build()
            .unwrap()
    };
    let login = |client: reqwest::Client, login: &str| {
        let req = client
            .post(server.url("/api/v1/auth/login"))
            .header("Origin", &a.origin)
            .json(&json!({"login": login, "password": "wrong password!!"}));
        async move { req.send().await.unwrap().status() }
    };
    let (one, two) = (from([127, 0, 0, 2]), from([127, 0, 0, 3]));
    for _ in 0..3 {
        assert_eq!(login(one.clone(), "bob").await, 401);
    }
    assert_eq!(
        login(two, "BOB@example.test").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the email address is the same account as the username"
    );
}

/// Password hashing is bounded: with one hash at a time (and four waiting), a burst of 40
/// sign-ins gets 503 `busy` with Retry-After for what does not fit, never a 5xx of another
/// kind, and the server signs in as usual afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_sign_ins_is_refused_not_queued_without_bound() {
    let server = Server::start_with(
        Options::default()
            .env("DEMIURGE_AUTH__PASSWORD_HASHES_AT_ONCE", "1")
            .env("DEMIURGE_AUTH__LOGIN_RATE", "1000/1s"),
    );
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let http = crate::harness::http_builder().no_proxy().build().unwrap();
    let mut burst = Vec::new();
    for _ in 0..40 {
        let req = http
            .post(server.url("/api/v1/auth/login"))
            .header("Origin", &a.origin)
            .json(&json!({"login": "alice", "password": "wrong password!!"}));
        burst.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            let retry = r.headers().get("retry-after").is_some();
            let st = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (st, body["error"].as_str().map(String::from), retry)
        }));
    }
    let (mut busy, mut refused) = (0, 0);
    for b in burst {
        match b.await.unwrap() {
            (StatusCode::SERVICE_UNAVAILABLE, Some(code), true) if code == "busy" => busy += 1,
            (StatusCode::UNAUTHORIZED, Some(code), _) if code == "invalid_credentials" => {
                refused += 1
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(busy > 0 && refused >= 5, "busy {busy}, checked {refused}");
    let right = json!({"login": "alice", "password": "correct horse battery"});
    assert_eq!(a.post("/api/v1/auth/login", right).await.0, StatusCode::OK);
}

/// A wrong password costs about the same time whether or not the account exists.
#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_take_similar_time_for_missing_and_existing_accounts() {
    let server = Server::start_with(Options::default().env("DEMIURGE_AUTH__LOGIN_RATE", "1000/1s"));
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    // Interleaved, so load from other tests falls on both alike; medians.
    let (mut existing, mut missing) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        for (login, samples) in [("alice", &mut existing), ("nobody-here", &mut missing)] {
            let t0 = std::time::Instant::now();
            let (s, _) = a
                .post(
                    "/api/v1/auth/login",
                    json!({"login": login, "password": "wrong password!!"}),
                )
                .await;
            assert_eq!(s, 401);
            samples.push(t0.elapsed().as_secs_f64());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (existing, missing) = (median(existing), median(missing));
    let ratio = existing.max(missing) / existing.min(missing);
    assert!(
        ratio < 2.0,
        "existing {existing:.4}s vs missing {missing:.4}s"
    );
    assert!(
        missing > 0.005,
        "the missing account still pays for a hash: {missing:.4}s"
    );
}

pub(crate) fn totp_code(secret: &str, offset_steps: i64) -> String {
    let t = demiurge::auth::totp::totp(secret, "Demiurge", "alice").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    t.generate((now + offset_steps * 30) as u64).to_string()
}

/// TOTP: enrol with a first code, two-step sign-in, replay refused, recovery codes work once,
/// a password change then needs the second factor, and TOTP can be turned off.
async fn totp_flow(server: Server) {
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let (s, st) = a.get("/api/v1/me/totp").await;
    assert_eq!((s, st["enabled"].as_bool()), (StatusCode::OK, Some(false)));

    let (s, e) = a
        .post("/api/v1/me/totp/confirm", json!({"code": "123456"}))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("totp_not_started"))
    );
    let (s, enrol) = a.post("/api/v1/me/totp", json!({})).await;
    assert_eq!(s, 200, "{enrol}");
    let secret = enrol["secret"].as_str().unwrap().to_string();
    let first_code = totp_code(&secret, 0);
    assert!(
        enrol["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Demiurge:Alice?"),
        "{}",
        enrol["otpauth_url"]
    );
    assert!(enrol["qr_svg"].as_str().unwrap().contains("<svg"));

    let (s, e) = a
        .post("/api/v1/me/totp/confirm", json!({"code": "000000"}))
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_code"))
    );
    let (s, codes) = a
        .post("/api/v1/me/totp/confirm", json!({"code": first_code}))
        .await;
    assert_eq!(s, 200, "{codes}");
    let codes: Vec<String> = codes["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    let (_, st) = a.get("/api/v1/me/totp").await;
    assert_eq!(
        (st["enabled"].as_bool(), st["recovery_codes_left"].as_i64()),
        (Some(true), Some(10))
    );

    // Two-step sign-in: the password alone gives an unusable session.
    let b = Browser::new(&server);
    let (s, r) = b
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["second_factor_required"], true);
    assert!(r["user"].is_null());
    let (s, e) = b.get("/api/v1/me").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("second_factor_required"))
    );
    // The code of the enrolment step was used: a replay is refused. The next step (within the
    // ±1 skew) is accepted once.
    let (s, _) = b
        .post("/api/v1/auth/second-factor", json!({"code": first_code}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "replayed code");
    let next = totp_code(&secret, 1);
    let (s, me) = b
        .post("/api/v1/auth/second-factor", json!({"code": next}))
        .await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["username"], "Alice");
    assert_eq!(b.get("/api/v1/me").await.0, 200);

    let c = Browser::new(&server);
    assert_eq!(
        c.post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "correct horse battery"})
        )
        .await
        .0,
        200
    );
    let (s, _) = c
        .post("/api/v1/auth/second-factor", json!({"code": next}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a code is accepted once");
    // A recovery code works once (any case, with or without the dash).
    let (s, _) = c
        .post(
            "/api/v1/auth/second-factor",
            json!({"code": codes[0].to_uppercase()}),
        )
        .await;
    assert_eq!(s, 200);
    let d = Browser::new(&server);
    assert_eq!(
        d.post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "correct horse battery"})
        )
        .await
        .0,
        200
    );
    let (s, _) = d
        .post("/api/v1/auth/second-factor", json!({"code": codes[0]}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "recovery code used up");
    let (_, st) = c.get("/api/v1/me/totp").await;
    assert_eq!(st["recovery_codes_left"], 9);

    // A password change now needs the second factor too.
    let put = |body: Value| {
        let req = c
            .http
            .put(server.url("/api/v1/me/password"))
            .header("Origin", &c.origin)
            .json(&body);
        async move { req.send().await.unwrap().status() }
    };
    let no_factor =
        json!({"current_password": "correct horse battery", "new_password": "a brand new secret"});
    assert_eq!(put(no_factor).await, StatusCode::UNAUTHORIZED);
    let with_factor = json!({"current_password": "correct horse battery", "new_password": "a brand new secret", "second_factor": codes[1]});
    assert_eq!(put(with_factor).await, StatusCode::NO_CONTENT);

    // Turning it off needs a code; then the password alone signs in.
    let r = c
        .http
        .delete(server.url("/api/v1/me/totp"))
        .header("Origin", &c.origin)
        .json(&json!({"code": "bad"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .http
        .delete(server.url("/api/v1/me/totp"))
        .header("Origin", &c.origin)
        .json(&json!({"code": codes[2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let e = Browser::new(&server);
    let (s, r) = e
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "a brand new secret"}),
        )
        .await;
    assert_eq!(
        (s, r["second_factor_required"].as_bool()),
        (StatusCode::OK, Some(false))
    );
}

/// Sensitive changes need a recent sign-in: within the window a new session creates a
/// token; after it, a token, TOTP, a passkey and a provider link are refused
/// (`reauthentication_required`) until the password confirms the session again; a token
/// never qualifies (`session_required`). The owner is mailed of each change, and a password
/// reset by emailed link ends every personal access token.
async fn sensitive_changes_need_a_recent_sign_in(backend: Backend) {
    let sink = crate::harness::peers::MailSink::start();
    let server = backend
        .start(
            Options::default()
                .env("DEMIURGE_MAIL__URL", &sink.url())
                .env("DEMIURGE_AUTH__REAUTHENTICATION_WINDOW", "2s"),
        )
        .await;
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let (st, t) = a.post("/api/v1/me/tokens", json!({"name": "fresh"})).await;
    assert_eq!(st, StatusCode::CREATED, "a new sign-in is recent: {t}");
    let pat = t["token"].as_str().unwrap().to_string();
    let notice = sink.wait_mail("alice@example.test", 1).await;
    assert!(
        notice["text"]
            .as_str()
            .unwrap()
            .contains("personal access token \"fresh\""),
        "{notice}"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    for (path, body) in [
        ("/api/v1/me/tokens", json!({"name": "late"})),
        ("/api/v1/me/totp", json!({})),
        ("/api/v1/me/passkeys/register/start", json!({"name": "key"})),
    ] {
        let (st, e) = a.post(path, body).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("reauthentication_required")),
            "{path}"
        );
    }
    let (st, e) = a
        .post(
            "/api/v1/auth/reauthenticate",
            json!({"password": "wrong password!!"}),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (st, _) = a
        .post(
            "/api/v1/auth/reauthenticate",
            json!({"password": "correct horse battery"}),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, t) = a
        .post("/api/v1/me/tokens", json!({"name": "confirmed"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");

    // A token is never enough.
    let r = crate::harness::http_builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(server.url("/api/v1/me/tokens"))
        .header("Authorization", format!("Bearer {pat}"))
        .json(&json!({"name": "from a token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "session_required");

    // A password reset by email ends the tokens, and says so.
    assert_eq!(bearer(&server, &pat, "/api/v1/me").await.0, StatusCode::OK);
    let (st, _) = Browser::new(&server)
        .post(
            "/api/v1/auth/email-link",
            json!({"email": "alice@example.test", "purpose": "reset_password"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    sink.wait_mail("alice@example.test", 3).await;
    let link = sink
        .mails_to("alice@example.test")
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .find_map(|t| {
            t.split_whitespace()
                .find(|w| w.contains("/auth/link?token="))
                .map(String::from)
        })
        .expect("a reset link");
    let token = link.split("token=").nth(1).unwrap().to_string();
    let (st, body) = Browser::new(&server)
        .post(
            "/api/v1/auth/email-link/redeem",
            json!({"token": token, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        bearer(&server, &pat, "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED,
        "the reset ended the token"
    );
    // Two token notices, the link, then the reset notice (sent after the answer).
    sink.wait_mail("alice@example.test", 4).await;
    let texts: Vec<String> = sink
        .mails_to("alice@example.test")
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("your password was reset")),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sensitive_changes_need_a_recent_sign_in_sqlite() {
    sensitive_changes_need_a_recent_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sensitive_changes_need_a_recent_sign_in_postgres() {
    sensitive_changes_need_a_recent_sign_in(Backend::Postgres).await;
}

/// Signs Alice up with TOTP on; returns her TOTP secret and recovery codes.
async fn alice_with_totp(server: &Server) -> (String, Vec<String>) {
    let a = Browser::new(server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let (_, enrol) = a.post("/api/v1/me/totp", json!({})).await;
    let secret = enrol["secret"].as_str().unwrap().to_string();
    let (s, codes) = a
        .post(
            "/api/v1/me/totp/confirm",
            json!({"code": totp_code(&secret, 0)}),
        )
        .await;
    assert_eq!(s, 200, "{codes}");
    let codes = codes["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (secret, codes)
}

/// A browser with a password sign-in of Alice's waiting for its second step.
async fn pending_alice(server: &Server) -> Browser {
    let b = Browser::new(server);
    let (s, r) = b
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(
        (s, r["second_factor_required"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    b
}

async fn wrong_codes(b: &Browser, n: usize) {
    for _ in 0..n {
        let (s, e, _) = second_step(b, "000000").await;
        assert_eq!(
            (s, e.as_deref()),
            (StatusCode::UNAUTHORIZED, Some("invalid_code"))
        );
    }
}

async fn second_step(b: &Browser, code: &str) -> (StatusCode, Option<String>, Option<u64>) {
    let r = b
        .http
        .post(format!("{}/api/v1/auth/second-factor", b.base))
        .header("Origin", &b.origin)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().map(String::from), retry)
}

/// Wrong second-factor codes count per account, whichever sign-in they come through: five
/// over three sign-ins lock the account, so neither the right code nor a recovery code passes
/// (429 `second_factor_locked`, Retry-After) until the lock ends; a right code then clears
/// the count. A sign-in waiting for its code ends after the window, and an account keeps at
/// most five of them (the oldest ends).
async fn second_factor_lockout(backend: Backend) {
    let server = backend
        .start(
            Options::default()
                .env("DEMIURGE_AUTH__SECOND_FACTOR_LOCKOUT", "2s")
                .env("DEMIURGE_AUTH__SECOND_FACTOR_WINDOW", "4s")
                .env("DEMIURGE_AUTH__LOGIN_RATE", "100/1m"),
        )
        .await;
    let (_secret, codes) = alice_with_totp(&server).await;
    let b1 = pending_alice(&server).await;
    wrong_codes(&b1, 2).await;
    let b2 = pending_alice(&server).await;
    wrong_codes(&b2, 2).await;
    let b3 = pending_alice(&server).await;
    let (s, e, retry) = second_step(&b3, "111111").await;
    assert_eq!(
        (s, e.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("second_factor_locked")),
        "the fifth wrong code locks"
    );
    assert_eq!(retry, Some(2));
    let (s, e, _) = second_step(&b3, &codes[0]).await;
    assert_eq!(
        (s, e.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("second_factor_locked")),
        "a recovery code waits too"
    );
    let b4 = pending_alice(&server).await;
    let (s, e, _) = second_step(&b4, &codes[0]).await;
    assert_eq!(
        (s, e.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("second_factor_locked")),
        "a new sign-in brings no new guesses"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, e, _) = second_step(&b4, &codes[0]).await;
    assert_eq!(
        (s, e),
        (StatusCode::OK, None),
        "after the lock, the code passes"
    );
    let b5 = pending_alice(&server).await;
    wrong_codes(&b5, 1).await;

    // The window: a sign-in left waiting ends.
    let late = pending_alice(&server).await;
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    let (s, e, _) = second_step(&late, &codes[1]).await;
    assert_eq!(
        (s, e.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("not_authenticated"))
    );

    // At most five at once: the sixth ends the oldest.
    let mut waiting = Vec::new();
    for _ in 0..6 {
        waiting.push(pending_alice(&server).await);
    }
    let (s, e, _) = second_step(&waiting[0], &codes[1]).await;
    assert_eq!(
        (s, e.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("not_authenticated"))
    );
    let (s, e, _) = second_step(&waiting[5], &codes[1]).await;
    assert_eq!((s, e), (StatusCode::OK, None));
}

/// Runs `sql` on the server's database; returns the first column of the first row as text
/// (for a query that returns one).
async fn sql(server: &Server, query: &str) -> Option<String> {
    use diesel::QueryableByName;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let pg = server
        .opts
        .env
        .iter()
        .find(|(k, _)| k == "DEMIURGE_DATABASE__URL")
        .map(|(_, v)| v.clone());
    let returns = query.trim_start().to_uppercase().starts_with("SELECT");
    match pg {
        Some(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut c = AsyncPgConnection::establish(&url).await.unwrap();
            if returns {
                diesel::sql_query(query)
                    .get_result::<Row>(&mut c)
                    .await
                    .ok()
                    .map(|r| r.v)
            } else {
                diesel::sql_query(query).execute(&mut c).await.unwrap();
                None
            }
        }
        None => {
            use diesel::{Connection, RunQueryDsl, SqliteConnection};
            let path = server.data_dir.join("demiurge.db");
            let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            if returns {
                diesel::sql_query(query)
                    .get_result::<Row>(&mut c)
                    .ok()
                    .map(|r| r.v)
            } else {
                diesel::sql_query(query).execute(&mut c).unwrap();
                None
            }
        }
    }
}

/// TOTP secrets are sealed at rest with a key in the data directory: the database holds no
/// secret in the clear, the second step still works after a restart, and a secret stored in
/// the clear before sealing existed is sealed at the next start and keeps working.
async fn totp_secrets_are_sealed_at_rest(backend: Backend) {
    let mut server = backend.start(Options::default()).await;
    let (secret, _) = alice_with_totp(&server).await;
    let q = "SELECT secret AS v FROM totp";
    let stored = sql(&server, q).await.unwrap();
    assert!(
        stored.starts_with("sealed1:") && !stored.contains(&secret),
        "{stored}"
    );
    use std::os::unix::fs::PermissionsExt;
    let key = server.data_dir.join("secrets.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    server.restart();
    let b = pending_alice(&server).await;
    let (st, e, _) = second_step(&b, &totp_code(&secret, 1)).await;
    assert_eq!((st, e), (StatusCode::OK, None), "opens after a restart");

    // A row from before sealing: in the clear until the next start seals it.
    // (last_step back to 0, so a code of this step is not a replay.)
    sql(
        &server,
        &format!("UPDATE totp SET secret = '{secret}', last_step = 0"),
    )
    .await;
    server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stored = sql(&server, q).await.unwrap();
        if stored.starts_with("sealed1:") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not sealed at start: {stored}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let b = pending_alice(&server).await;
    let (st, e, _) = second_step(&b, &totp_code(&secret, 0)).await;
    assert_eq!((st, e), (StatusCode::OK, None), "a resealed secret works");
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_secrets_are_sealed_at_rest_sqlite() {
    totp_secrets_are_sealed_at_rest(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_secrets_are_sealed_at_rest_postgres() {
    totp_secrets_are_sealed_at_rest(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn second_factor_lockout_sqlite() {
    second_factor_lockout(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn second_factor_lockout_postgres() {
    second_factor_lockout(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_sqlite() {
    totp_flow(Server::start()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_postgres() {
    totp_flow(Server::start_on_postgres().await.0).await;
}

/// Over HTTPS the session cookie is `Secure` (checked with curl through the TLS edge).
#[tokio::test(flavor = "multi_thread")]
async fn session_cookie_is_secure_over_https() {
    crate::harness::require_cmd("curl", "curl");
    let server = Server::start_with(Options {
        https: true,
        ..Options::default()
    });
    let port = server.https.unwrap().port();
    let out = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(server.data_dir.join("tls/self-signed.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .args(["-H", "Content-Type: application/json", "-H"])
        .arg(format!("Origin: https://localhost:{port}"))
        .arg("--data")
        .arg(Browser::new(&server).with_setup_code(alice()).to_string())
        .arg(format!("https://localhost:{port}/api/v1/auth/signup"))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        headers.starts_with("http/2 201") || headers.starts_with("http/1.1 201"),
        "{headers}"
    );
    let cookie = headers
        .lines()
        .find(|l| l.starts_with("set-cookie: __host-demiurge_session="))
        .unwrap_or_default();
    assert!(
        cookie.contains("secure")
            && cookie.contains("httponly")
            && cookie.contains("path=/")
            && !cookie.contains("domain="),
        "a __Host- cookie: {headers}"
    );
    // Over HTTPS only the __Host- name is read: a plain cookie (which a neighbouring host
    // could have set) authenticates nothing.
    let raw = String::from_utf8_lossy(&out.stdout).to_string();
    let token = raw
        .split("__Host-demiurge_session=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    let me = |name: &str| {
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(server.data_dir.join("tls/self-signed.crt"))
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .args(["-H"])
            .arg(format!("Cookie: {name}={token}"))
            .arg(format!("https://localhost:{port}/api/v1/me"))
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(me("__Host-demiurge_session"), b"200");
    assert_eq!(me("demiurge_session"), b"401");
    assert!(
        headers.contains("\nstrict-transport-security: max-age="),
        "HSTS over HTTPS: {headers}"
    );
}

/// A name that is not the server's (a DNS-rebinding page's) is refused before anything runs:
/// 421 `unknown_host`. IP addresses, `localhost` and the configured names are answered; the
/// data directory is the owner's alone.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_names_are_refused() {
    let server = Server::start_with(Options {
        dns: false,
        vpn: false,
        ..Options::default()
            .env("DEMIURGE_SERVER__DOMAIN", "team.example")
            .env("DEMIURGE_SERVER__PUBLIC_URL", "https://work.example/")
    });
    let http = crate::harness::http_builder().no_proxy().build().unwrap();
    let port = server.http.port();
    for (host, ok) in [
        (format!("localhost:{port}"), true),
        (format!("127.0.0.1:{port}"), true),
        ("team.example".to_string(), true),
        ("WORK.example".to_string(), true),
        ("rebind.attacker.example".to_string(), false),
        (format!("team.example.attacker.example:{port}"), false),
    ] {
        let r = http
            .get(server.url("/api/v1/me"))
            .header("Host", &host)
            .send()
            .await
            .unwrap();
        let st = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if ok {
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{host}: {body}");
        } else {
            assert_eq!(
                (st, body["error"].as_str()),
                (StatusCode::MISDIRECTED_REQUEST, Some("unknown_host")),
                "{host}"
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.data_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "data directory mode {mode:o}");
}

/// Every answer is never framed and not sniffed; pages carry the UI's Content-Security-Policy
/// (no inline script: the page's scripts all have a `src`), everything else one that allows
/// nothing; no HSTS over plain HTTP. (The Chromium tests run every page under the policy and
/// stop at any refusal.)
#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_security_headers() {
    let server = Server::start_with(Options {
        dns: false,
        vpn: false,
        ..Options::default()
    });
    let http = crate::harness::http_builder().no_proxy().build().unwrap();
    let pages = ["/", "/signin", "/projects/nope", "/auth/link?token=nope"];
    let others = ["/healthz", "/api/v1/me", "/api/v1/nope", "/assets/board.js"];
    for path in pages.iter().chain(&others) {
        let r = http.get(server.url(path)).send().await.unwrap();
        let h = r.headers().clone();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert!(get("strict-transport-security").is_empty(), "{path}");
        let csp = get("content-security-policy").to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if pages.contains(path) {
            assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
            assert!(
                !csp.contains("script-src 'self' 'unsafe-inline'"),
                "{path}: {csp}"
            );
            let body = r.text().await.unwrap();
            for tag in body.split("<script").skip(1) {
                assert!(
                    tag.starts_with(" src="),
                    "{path}: inline script <script{tag}"
                );
            }
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        }
    }
}

/// Every `…_at` string in `v` (at any depth): each must be RFC 3339 with its offset, in UTC.
fn timestamps_in(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let at = format!("{path}.{k}");
                match x {
                    Value::String(s) if k.ends_with("_at") => out.push((at, s.clone())),
                    _ => timestamps_in(x, &at, out),
                }
            }
        }
        Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                timestamps_in(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Timestamps in answers are RFC 3339 date-times in UTC (`…Z`), so a browser in any time zone
/// reads them right: accounts, sessions, tokens, organizations, members, invitations,
/// projects and history points.
async fn timestamps_are_rfc3339_utc(server: Server) {
    let t = crate::harness::team::team(&server).await;
    let (org, pid) = (&t.org, &t.pid);
    let (st, _) = t
        .owner
        .post("/api/v1/me/tokens", json!({"name": "ci"}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = t
        .owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "carol@example.test", "role": "org:member"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = t
        .owner
        .post(
            &format!("/api/v1/projects/{pid}/history"),
            json!({"name": "v1"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let mut seen = Vec::new();
    for path in [
        "/api/v1/me".to_string(),
        "/api/v1/me/sessions".into(),
        "/api/v1/me/tokens".into(),
        "/api/v1/orgs".into(),
        format!("/api/v1/orgs/{org}/members"),
        format!("/api/v1/orgs/{org}/invitations"),
        format!("/api/v1/orgs/{org}/projects"),
        format!("/api/v1/projects/{pid}"),
        format!("/api/v1/projects/{pid}/members"),
        format!("/api/v1/projects/{pid}/history"),
    ] {
        let (st, body) = t.owner.get(&path).await;
        assert_eq!(st, StatusCode::OK, "{path}: {body}");
        timestamps_in(&body, &path, &mut seen);
    }
    let fields: std::collections::BTreeSet<&str> = seen
        .iter()
        .filter_map(|(at, _)| at.rsplit('.').next())
        .collect();
    for f in ["created_at", "last_seen_at", "expires_at"] {
        assert!(fields.contains(f), "no {f} among {fields:?}");
    }
    for (at, s) in &seen {
        let parsed = chrono::DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{at} = {s:?} is not RFC 3339: {e}"));
        assert_eq!(parsed.offset().local_minus_utc(), 0, "{at} = {s:?}");
        assert!(s.ends_with('Z'), "{at} = {s:?} names UTC as Z");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_are_rfc3339_utc_sqlite() {
    timestamps_are_rfc3339_utc(Server::start_with(Options::default())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_are_rfc3339_utc_postgres() {
    let url = crate::harness::fresh_pg_database().await;
    timestamps_are_rfc3339_utc(Server::start_with(
        Options::default().env("DEMIURGE_DATABASE__URL", &url),
    ))
    .await;
}

/// A new server is claimed only with its setup code: without it (or with another) the first
/// sign-up is refused, as is a provider's; `demiurge admin setup-code` prints the code the
/// server made; the first account spends it (the file goes, the command has none to print),
/// and sign-up then works as configured.
async fn first_run_needs_the_setup_code(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let server = backend.start(Options::default()).await;
    let a = Browser::new(&server);
    let (st, setup) = a.get("/api/v1/auth/setup").await;
    assert_eq!(
        (st, &setup),
        (
            StatusCode::OK,
            &json!({"needed": true, "signup_open": true})
        )
    );
    let code = server.setup_code().expect("a new server has a setup code");
    let mode = std::fs::metadata(server.data_dir.join("setup-code"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the server's user reads it");
    let out = server.command_ok(&["admin", "setup-code"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), code);
    let (b, s) = (&a, &server);
    let refused = |body: Value| async move {
        let r = b
            .http
            .post(s.url("/api/v1/auth/signup"))
            .header("Origin", &b.origin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let st = r.status();
        let v: Value = r.json().await.unwrap();
        (st, v["error"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        refused(alice()).await,
        (StatusCode::FORBIDDEN, "setup_code_required".into())
    );
    let mut wrong = alice();
    wrong["setup_code"] = json!("0000-0000-0000-0000-0000");
    assert_eq!(
        refused(wrong).await,
        (StatusCode::FORBIDDEN, "invalid_setup_code".into())
    );
    assert_eq!(
        a.get("/api/v1/auth/setup").await.1,
        json!({"needed": true, "signup_open": true})
    );
    // Typed as a person would: lower case, spaces for dashes.
    let mut right = alice();
    right["setup_code"] = json!(code.to_lowercase().replace('-', " "));
    let (st, me) = a.post("/api/v1/auth/signup", right).await;
    assert_eq!(st, StatusCode::CREATED, "{me}");
    assert_eq!(me["is_admin"], true, "{me}");
    assert_eq!(server.setup_code(), None, "spent");
    assert_eq!(
        a.get("/api/v1/auth/setup").await.1,
        json!({"needed": false, "signup_open": true})
    );
    let out = server.command(&["admin", "setup-code"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has accounts already"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Later sign-ups need no code (open sign-up is the default).
    let (st, _) = Browser::new(&server)
        .post(
            "/api/v1/auth/signup",
            json!({"username": "bob", "email": "bob@example.test", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_needs_the_setup_code_sqlite() {
    first_run_needs_the_setup_code(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_needs_the_setup_code_postgres() {
    first_run_needs_the_setup_code(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_changes_their_name_sqlite() {
    changes_their_name(Server::start_with(Options::default())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_changes_their_name_postgres() {
    let url = crate::harness::fresh_pg_database().await;
    changes_their_name(Server::start_with(
        Options::default().env("DEMIURGE_DATABASE__URL", &url),
    ))
    .await;
}

/// `PATCH /api/v1/me`: the name others see, trimmed and checked, kept, and with a token too.
async fn changes_their_name(server: Server) {
    let (b, _) = crate::harness::signed_up(&server, "renamer").await;
    let patch = |body: Value| {
        b.http
            .patch(server.url("/api/v1/me"))
            .header("Origin", &b.origin)
            .json(&body)
            .send()
    };
    let r = patch(json!({"display_name": "  Ren A. Mer  "}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["display_name"], "Ren A. Mer");
    assert_eq!(b.get("/api/v1/me").await.1["display_name"], "Ren A. Mer");
    for bad in [
        json!({"display_name": "   "}),
        json!({"display_name": "x".repeat(101)}),
        json!({"display_name": "a\u{7}b"}),
    ] {
        let r = patch(bad.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_input", "{e}");
    }
    let r = patch(json!({"display_name": "x", "is_admin": true}))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "no other field changes"
    );
    assert_eq!(b.get("/api/v1/me").await.1["display_name"], "Ren A. Mer");
    // With a personal access token as well; signed out, no.
    let (token, _) = crate::harness::team::token_of(&b).await;
    let r = reqwest::Client::new()
        .patch(server.url("/api/v1/me"))
        .bearer_auth(&token)
        .json(&json!({"display_name": "By Token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(b.get("/api/v1/me").await.1["display_name"], "By Token");
    let r = reqwest::Client::new()
        .patch(server.url("/api/v1/me"))
        .json(&json!({"display_name": "Nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
