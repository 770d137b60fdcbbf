//! Sign-in beyond passwords, over HTTP through the edge, on SQLite and PostgreSQL: email links
//! through a real SMTP server, OIDC sign-in against a real provider (`oidc-provider`), and
//! passkeys with a software authenticator.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::{alice, totp_code};
use crate::harness::Browser;
use crate::harness::peers::{MailSink, NodePeer, link_in};
use crate::harness::{Backend, Options, Server, free_port};

async fn start(backend: Backend, opts: Options) -> Server {
    backend.start(opts).await
}

fn token_of(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .expect("token in link")
        .to_string()
}

async fn sign_up(b: &Browser, username: &str, email: &str) {
    let (st, body) = b
        .post(
            "/api/v1/auth/signup",
            json!({"username": username, "email": email, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

// ---------------------------------------------------------------------------------------
// Email links

async fn email_links(backend: Backend) {
    let sink = MailSink::start();
    let server = start(
        backend,
        Options::default()
            .env("DEMIURGE_MAIL__URL", &sink.url())
            .env("DEMIURGE_SERVER__PUBLIC_URL", "https://demiurge.example/"),
    )
    .await;
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let (_, me) = a.get("/api/v1/me").await;
    assert_eq!(me["email_verified"], false);

    // The answer is the same whether or not an account has the address.
    let b = Browser::new(&server);
    let known = b
        .post(
            "/api/v1/auth/email-link",
            json!({"email": "ALICE@example.test", "purpose": "sign_in"}),
        )
        .await;
    let unknown = b
        .post(
            "/api/v1/auth/email-link",
            json!({"email": "nobody@example.test", "purpose": "sign_in"}),
        )
        .await;
    assert_eq!(known.0, StatusCode::ACCEPTED);
    assert_eq!(known, unknown);
    let mail = sink.wait_mail("alice@example.test", 1).await;
    // Links start with the configured public URL, never the request's Host.
    let link = link_in(&mail, "https://demiurge.example/auth/link?token=");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.mails_to("nobody@example.test").is_empty());
    let token = token_of(&link);

    // Opening the link (a mail scanner, say) does not use it up.
    let page = b
        .http
        .get(server.url(&format!("/auth/link?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    assert_eq!(
        b.post("/api/v1/auth/email-link/check", json!({"token": token}))
            .await
            .1["purpose"],
        "sign_in"
    );

    // Used once: signed in, the address is verified; the second time it is refused.
    let (st, body) = b
        .post("/api/v1/auth/email-link/redeem", json!({"token": token}))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["username"], "Alice");
    assert_eq!(body["user"]["email_verified"], true);
    assert_eq!(b.get("/api/v1/me").await.0, StatusCode::OK);
    let (st, body) = b
        .post("/api/v1/auth/email-link/redeem", json!({"token": token}))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_link"))
    );
    let (st, body) = b
        .post("/api/v1/auth/email-link/redeem", json!({"token": "forged"}))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_link"))
    );

    // Password reset: a refused password does not burn the link; a good one signs in and
    // ends every other session.
    let c = Browser::new(&server);
    c.post(
        "/api/v1/auth/email-link",
        json!({"email": "alice@example.test", "purpose": "reset_password"}),
    )
    .await;
    let mail = sink.wait_mail("alice@example.test", 2).await;
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .contains("Reset your password")
    );
    let token = token_of(&link_in(&mail, "https://demiurge.example/auth/link?token="));
    let (st, body) = c
        .post("/api/v1/auth/email-link/redeem", json!({"token": token}))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
    );
    let (st, body) = c
        .post(
            "/api/v1/auth/email-link/redeem",
            json!({"token": token, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password"))
    );
    let (st, body) = c
        .post(
            "/api/v1/auth/email-link/redeem",
            json!({"token": token, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(c.get("/api/v1/me").await.0, StatusCode::OK);
    assert_eq!(a.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(b.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    let (st, _) = Browser::new(&server)
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    // Verification of a new account's address, asked for by its owner.
    let bob = Browser::new(&server);
    sign_up(&bob, "bob", "bob@example.test").await;
    let (st, _) = bob.post("/api/v1/me/email/verify", json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let mail = sink.wait_mail("bob@example.test", 1).await;
    let token = token_of(&link_in(&mail, "https://demiurge.example/auth/link?token="));
    let (st, body) = Browser::new(&server)
        .post("/api/v1/auth/email-link/redeem", json!({"token": token}))
        .await;
    assert_eq!(
        (st, body["email_verified"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    assert_eq!(bob.get("/api/v1/me").await.1["email_verified"], true);
    let (st, body) = bob.post("/api/v1/me/email/verify", json!({})).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_verified"))
    );

    // The page's form (no JavaScript): POST with the token signs in and redirects.
    let d = Browser::new(&server);
    d.post(
        "/api/v1/auth/email-link",
        json!({"email": "bob@example.test", "purpose": "sign_in"}),
    )
    .await;
    let mail = sink.wait_mail("bob@example.test", 2).await;
    let token = token_of(&link_in(&mail, "https://demiurge.example/auth/link?token="));
    let no_redirect = crate::harness::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let r = no_redirect
        .post(server.url("/auth/link"))
        .header("Origin", &d.origin)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("demiurge_session="),
        "a session cookie"
    );
    // Without an Origin the form post is refused (and the link is used up by nobody).
    let r = no_redirect
        .post(server.url("/auth/link"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Malformed requests: 4xx with a stable code.
    let (st, body) = b
        .post(
            "/api/v1/auth/email-link",
            json!({"email": "alice@example.test", "purpose": "bogus"}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (st, body) = b
        .post(
            "/api/v1/auth/email-link",
            json!({"email": "not-an-address", "purpose": "sign_in"}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn email_links_sqlite() {
    email_links(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn email_links_postgres() {
    email_links(Backend::Postgres).await;
}

/// Emailed links in Chromium, clicked as a person would: a sign-in link asked for on the
/// sign-in page, and a password reset from the "forgot" page. The link page's own headers
/// decide what Origin the browser sends with its form (with `Referrer-Policy: no-referrer`
/// Chromium sent `Origin: null`, and every link failed).
#[tokio::test(flavor = "multi_thread")]
async fn email_links_in_chromium() {
    let sink = MailSink::start();
    let server = start(
        Backend::Sqlite,
        Options::default().env("DEMIURGE_MAIL__URL", &sink.url()),
    )
    .await;
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    // Two passkeys, one of which (`unknown`) the person will not recognise after the reset.
    for name in ["laptop", "unknown"] {
        let mut key = SoftPasskey::new(true);
        register_passkey(&server, &a, &mut key, name).await;
    }
    // Links name the server as `localhost` (its domain) when no public URL is set.
    let base = format!("http://localhost:{}", server.http.port());
    let base = base.as_str();
    let shots = crate::harness::chromium::artifacts_dir("ui-links");
    let mut s = crate::harness::chromium::Script::start(
        "ui_links.mjs",
        &[base, &shots.display().to_string(), "alice@example.test"],
    );
    // The passkeys' notices came first: links are looked for after them.
    sink.wait_mail("alice@example.test", 2).await;
    let mut seen = sink.mails_to("alice@example.test").len();
    for _ in 1..=2 {
        s.expect("SENT", Duration::from_secs(60));
        let (link, now) = sink
            .wait_link(
                "alice@example.test",
                &format!("{base}/auth/link?token="),
                seen,
            )
            .await;
        seen = now;
        s.send(&link);
    }
    let r = s.expect("RESULT", Duration::from_secs(60));
    assert_eq!(r["errors"], json!([]), "page errors: {r}");
    assert_eq!(r["signed_in_at"], "/", "{r}");
    assert_eq!(r["me"]["username"], "Alice", "{r}");
    assert_eq!(
        r["me"]["email_verified"], true,
        "the link proved the address: {r}"
    );
    assert_eq!(r["reset_signed_in"], true, "{r}");
    assert_eq!(r["review_heading"], "Your password was reset", "{r}");
    assert_eq!(r["review_listed"], json!(["laptop", "unknown"]), "{r}");
    assert_eq!(r["review_after_reload"], false, "answered, it is gone: {r}");
    assert_eq!(r["passkeys_left"], json!(["laptop"]), "{r}");
    // The browser named our origin itself (never `null`).
    assert_eq!(r["origins"], json!([base, base]), "{r}");
    // The new password works, the old one does not.
    let b = Browser::new(&server);
    let (st, _) = b
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = b
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": alice()["password"]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

/// Links stop working when they expire; requests for links are rate limited.
async fn email_link_expiry_and_rate_limit(backend: Backend) {
    let sink = MailSink::start();
    let server = start(
        backend,
        Options::default()
            .env("DEMIURGE_MAIL__URL", &sink.url())
            .env("DEMIURGE_AUTH__EMAIL_LINK_LIFETIME", "2s")
            .env("DEMIURGE_AUTH__EMAIL_LINK_RATE", "2/1h"),
    )
    .await;
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let b = Browser::new(&server);
    let ask = json!({"email": "alice@example.test", "purpose": "sign_in"});
    assert_eq!(
        b.post("/api/v1/auth/email-link", ask.clone()).await.0,
        StatusCode::ACCEPTED
    );
    let mail = sink.wait_mail("alice@example.test", 1).await;
    let token = token_of(&link_in(
        &mail,
        &server
            .url("/auth/link?token=")
            .replace("127.0.0.1", "localhost"),
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (st, body) = b
        .post("/api/v1/auth/email-link/redeem", json!({"token": token}))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_link"))
    );

    assert_eq!(
        b.post("/api/v1/auth/email-link", ask.clone()).await.0,
        StatusCode::ACCEPTED
    );
    let r = b
        .http
        .post(server.url("/api/v1/auth/email-link"))
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread")]
async fn email_link_expiry_and_rate_limit_sqlite() {
    email_link_expiry_and_rate_limit(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn email_link_expiry_and_rate_limit_postgres() {
    email_link_expiry_and_rate_limit(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// OIDC sign-in against oidc-provider

/// A server with one OIDC provider `test`, and the provider itself.
async fn server_with_idp(
    backend: Backend,
    email_verified: bool,
    link_by_email: bool,
    opts: Options,
) -> (Server, NodePeer) {
    let idp_port = free_port();
    let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[auth]\nlink_by_verified_email = {link_by_email}\n\n[[auth.providers]]\nid = \"test\"\n\
             kind = \"oidc\"\nname = \"Test IdP\"\nissuer = \"http://127.0.0.1:{idp_port}\"\n\
             client_id = \"demiurge\"\nclient_secret = \"demiurge-secret\"\n"
        ),
    )
    .unwrap();
    let (_, path) = config.keep().unwrap();
    let server = start(
        backend,
        opts.env("DEMIURGE_CONFIG", &path.display().to_string())
            .env("DEMIURGE_AUTH__LOGIN_RATE", "100/1m"),
    )
    .await;
    let redirect = format!(
        "http://localhost:{}/api/v1/auth/providers/test/callback",
        server.http.port()
    );
    let peer = NodePeer::start(
        "idp.mjs",
        "oidc-provider",
        &[
            &idp_port.to_string(),
            &redirect,
            if email_verified { "true" } else { "false" },
        ],
    );
    (server, peer)
}

/// A browser that follows redirects by hand (to see each hop), at `http://localhost:PORT`.
struct Agent {
    http: reqwest::Client,
    base: String,
}

impl Agent {
    fn new(server: &Server) -> Agent {
        Agent {
            http: crate::harness::http_builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            base: format!("http://localhost:{}", server.http.port()),
        }
    }

    fn abs(&self, current: &str, location: &str) -> String {
        url::Url::parse(current)
            .unwrap()
            .join(location)
            .unwrap()
            .to_string()
    }

    /// Starts at `path` on our server and walks through the provider's login (as `login`)
    /// and consent pages until the browser comes back to our server and leaves the callback.
    /// Returns the callback's response.
    async fn sign_in_at_provider(&self, path: &str, login: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        let resp = self.http.get(&url).send().await.unwrap();
        self.through_provider(url, resp, login).await
    }

    /// Links a provider account to the signed-in user: the settings page's form posts to
    /// `path` (with our Origin, as the browser sends it), then the provider's pages.
    async fn link_at_provider(&self, path: &str, login: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .header("Origin", &self.base)
            .send()
            .await
            .unwrap();
        self.through_provider(url, resp, login).await
    }

    async fn through_provider(
        &self,
        mut url: String,
        mut resp: reqwest::Response,
        login: &str,
    ) -> reqwest::Response {
        for _ in 0..20 {
            if url.contains("/api/v1/auth/providers/test/callback") {
                return resp;
            }
            match resp.status() {
                s if s.is_redirection() => {
                    let loc = resp.headers()["location"].to_str().unwrap().to_string();
                    url = self.abs(&url, &loc);
                    resp = self.http.get(&url).send().await.unwrap();
                }
                StatusCode::OK => {
                    let html = resp.text().await.unwrap();
                    let action = html
                        .split("action=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .unwrap_or_else(|| panic!("no form at {url}: {html}"))
                        .to_string();
                    let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
                        vec![("prompt", "login"), ("login", login), ("password", "any")]
                    } else {
                        vec![("prompt", "consent")]
                    };
                    url = self.abs(&url, &action);
                    resp = self.http.post(&url).form(&form).send().await.unwrap();
                }
                other => panic!(
                    "{other} at {url}: {}",
                    resp.text().await.unwrap_or_default()
                ),
            }
        }
        panic!("never came back to the callback");
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let st = r.status();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .header("Origin", &self.base)
            .send()
            .await
            .unwrap();
        let st = r.status();
        (st, r.json().await.unwrap_or(Value::Null))
    }
}

async fn oidc_sign_in(backend: Backend) {
    let (server, _idp) = server_with_idp(backend, true, false, Options::default()).await;
    let agent = Agent::new(&server);
    let (st, list) = agent.get("/api/v1/auth/providers").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        list,
        json!([{"id": "test", "name": "Test IdP", "kind": "oidc"}])
    );

    // The start redirects to the provider with code flow, PKCE S256, state and nonce.
    let r = agent
        .http
        .get(format!(
            "{}/api/v1/auth/providers/test/start?return_to=/welcome",
            agent.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!((to.host_str(), to.path()), (Some("127.0.0.1"), "/auth"));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q.contains_key("state") && q.contains_key("nonce"));
    assert!(q["scope"].contains("openid") && q["scope"].contains("email"));

    // A server with no account is claimed only with its setup code: a provider sign-in
    // cannot make its first account.
    let back = agent
        .sign_in_at_provider(
            "/api/v1/auth/providers/test/start?return_to=/welcome",
            "carol",
        )
        .await;
    assert_eq!(
        back.headers()
            .get("x-demiurge-error")
            .and_then(|v| v.to_str().ok()),
        Some("setup_code_required"),
        "{:?}",
        back.headers()
    );
    assert_eq!(agent.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    let (admin, _) = crate::harness::signed_up(&server, "theadmin").await;
    assert_eq!(
        server.setup_code(),
        None,
        "the first account spends the code"
    );
    drop(admin);

    // A first sign-in creates an account from the provider's profile and lands on return_to.
    let back = agent
        .sign_in_at_provider(
            "/api/v1/auth/providers/test/start?return_to=/welcome",
            "carol",
        )
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "{:?}", back.headers());
    assert_eq!(back.headers()["location"], "/welcome");
    let (st, me) = agent.get("/api/v1/me").await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "carol");
    assert_eq!(me["email"], "carol@example.test");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["has_password"], false);
    let (_, ids) = agent.get("/api/v1/me/identities").await;
    assert_eq!(ids.as_array().unwrap().len(), 1);
    assert_eq!(ids[0]["provider"], "test");
    assert_eq!(ids[0]["display"], "User carol");

    // The only way in cannot be unlinked.
    let id = ids[0]["id"].as_str().unwrap().to_string();
    let (st, body) = agent.delete(&format!("/api/v1/me/identities/{id}")).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("last_sign_in_method"))
    );

    // Signing in again (a new browser) finds the same account.
    let again = Agent::new(&server);
    let back = again
        .sign_in_at_provider("/api/v1/auth/providers/test/start", "carol")
        .await;
    assert_eq!(back.headers()["location"], "/");
    assert_eq!(again.get("/api/v1/me").await.1["id"], me["id"]);

    // A callback whose state is not this browser's flow is refused with a page and a code.
    let stranger = Agent::new(&server);
    let r = stranger
        .http
        .get(format!(
            "{}/api/v1/auth/providers/test/callback?code=x&state=y",
            stranger.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.headers()["x-demiurge-error"], "provider_failed");
    let r = stranger
        .http
        .get(format!(
            "{}/api/v1/auth/providers/test/callback?error=access_denied&state=y",
            stranger.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("access_denied"));
    assert_eq!(
        stranger.get("/api/v1/auth/providers/nope/start").await.0,
        StatusCode::NOT_FOUND
    );

    // A password user links the provider from settings, then signs in with it.
    sign_up(&Browser::new(&server), "dave", "dave@example.test").await;
    let dave_agent = Agent::new(&server);
    // Share dave's session with the agent (same person, same browser).
    let r = dave_agent
        .http
        .post(format!("{}/api/v1/auth/login", dave_agent.base))
        .header("Origin", &dave_agent.base)
        .json(&json!({"login": "dave", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Opening an address cannot start linking (any page could make the browser do that).
    let (st, body) = dave_agent
        .get("/api/v1/auth/providers/test/start?intent=link&return_to=/settings")
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("link_needs_post"))
    );
    // Nor can another site's form (its Origin is not ours).
    let r = dave_agent
        .http
        .post(format!(
            "{}/api/v1/auth/providers/test/start",
            dave_agent.base
        ))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let back = dave_agent
        .link_at_provider(
            "/api/v1/auth/providers/test/start?return_to=/settings",
            "dave-at-idp",
        )
        .await;
    assert_eq!(
        back.status(),
        StatusCode::SEE_OTHER,
        "{}",
        back.text().await.unwrap()
    );
    assert_eq!(back.headers()["location"], "/settings");
    let (_, ids) = dave_agent.get("/api/v1/me/identities").await;
    assert_eq!(ids[0]["email"], "dave-at-idp@example.test");
    let fresh = Agent::new(&server);
    fresh
        .sign_in_at_provider("/api/v1/auth/providers/test/start", "dave-at-idp")
        .await;
    assert_eq!(fresh.get("/api/v1/me").await.1["username"], "dave");
    // Dave has a password, so the link can go; afterwards that provider account is new.
    let id = ids[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        dave_agent
            .delete(&format!("/api/v1/me/identities/{id}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );

    // Linking requires a signed-in user.
    let r = Agent::new(&server)
        .http
        .post(format!(
            "{}/api/v1/auth/providers/test/start",
            dave_agent.base
        ))
        .header("Origin", &dave_agent.base)
        .send()
        .await
        .unwrap();
    // A form brought the browser here: the answer is a page with the API's status and code.
    assert_eq!(
        (
            r.status(),
            r.headers()["x-demiurge-error"].to_str().unwrap()
        ),
        (StatusCode::UNAUTHORIZED, "not_authenticated")
    );

    // An existing address is never taken over when linking by email is off.
    let erin = Browser::new(&server);
    sign_up(&erin, "erin", "erin@example.test").await;
    let back = Agent::new(&server)
        .sign_in_at_provider("/api/v1/auth/providers/test/start", "erin")
        .await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    assert_eq!(back.headers()["x-demiurge-error"], "provider_not_linked");
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_sign_in_sqlite() {
    oidc_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_sign_in_postgres() {
    oidc_sign_in(Backend::Postgres).await;
}

/// With `link_by_verified_email`, a provider that vouches for an address signs in to the
/// account that has it, once that account has verified the address itself; one that does not
/// vouch never does. Addresses are matched by ASCII case only: a look-alike that Unicode
/// lowercasing folds into Erin's (`K`, the Kelvin sign, lowercases to `k`) is another address.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_links_by_verified_email_only_when_configured() {
    let sink = MailSink::start();
    let (server, _idp) = server_with_idp(
        Backend::Sqlite,
        true,
        true,
        Options::default().env("DEMIURGE_MAIL__URL", &sink.url()),
    )
    .await;
    let erin = Browser::new(&server);
    sign_up(&erin, "erin", "erin@example.test").await;
    let agent = Agent::new(&server);
    let back = agent
        .sign_in_at_provider("/api/v1/auth/providers/test/start", "erin")
        .await;
    assert_eq!(
        back.status(),
        StatusCode::FORBIDDEN,
        "Erin's own address is not verified: anyone could have typed it"
    );
    assert_eq!(agent.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);

    // Erin verifies her address; now the provider's word links the accounts.
    assert_eq!(
        erin.post("/api/v1/me/email/verify", json!({})).await.0,
        StatusCode::ACCEPTED
    );
    let mail = sink.wait_mail("erin@example.test", 1).await;
    let link = link_in(&mail, "http");
    let token = token_of(&link);
    let (st, body) = Browser::new(&server)
        .post("/api/v1/auth/email-link/redeem", json!({"token": token}))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let agent = Agent::new(&server);
    let back = agent
        .sign_in_at_provider("/api/v1/auth/providers/test/start", "erin")
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(agent.get("/api/v1/me").await.1["username"], "erin");

    // Kate's address differs from the provider's `\u{212A}ate@example.test` in a letter that
    // only Unicode folds: no link, whatever both sides vouch for.
    let kate = Browser::new(&server);
    sign_up(&kate, "kate", "kate@example.test").await;
    assert_eq!(
        kate.post("/api/v1/me/email/verify", json!({})).await.0,
        StatusCode::ACCEPTED
    );
    let mail = sink.wait_mail("kate@example.test", 1).await;
    let (st, _) = Browser::new(&server)
        .post(
            "/api/v1/auth/email-link/redeem",
            json!({"token": token_of(&link_in(&mail, "http"))}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let agent = Agent::new(&server);
    agent
        .sign_in_at_provider("/api/v1/auth/providers/test/start", "\u{212A}ate")
        .await;
    let (st, me) = agent.get("/api/v1/me").await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_ne!(
        me["username"], "kate",
        "a Unicode look-alike signed in to Kate's account"
    );
    assert_eq!(
        me["email"], "\u{212A}ate@example.test",
        "a new account of its own"
    );

    let (server, _idp) = server_with_idp(Backend::Sqlite, false, true, Options::default()).await;
    let erin = Browser::new(&server);
    sign_up(&erin, "erin", "erin@example.test").await;
    let back = Agent::new(&server)
        .sign_in_at_provider("/api/v1/auth/providers/test/start", "erin")
        .await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------
// Passkeys with a software authenticator

use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

fn origin_of(server: &Server) -> url::Url {
    url::Url::parse(&format!("http://localhost:{}", server.http.port())).unwrap()
}

/// Registers a passkey named `name` for the browser's user; returns its credential id.
pub(crate) async fn register_passkey(
    server: &Server,
    b: &Browser,
    key: &mut SoftPasskey,
    name: &str,
) -> String {
    let (st, start) = b
        .post("/api/v1/me/passkeys/register/start", json!({"name": name}))
        .await;
    assert_eq!(st, StatusCode::OK, "{start}");
    let ccr: webauthn_rs_proto::CreationChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap();
    let cred = key.do_registration(origin_of(server), ccr).unwrap();
    let id = cred.id.clone();
    let (st, body) = b
        .post(
            "/api/v1/me/passkeys/register/finish",
            json!({"ceremony": start["ceremony"], "credential": cred}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], name);
    id
}

/// Answers a sign-in challenge. A discoverable authenticator finds its own credential for
/// the site; the software one is told which (the allow list is not signed).
fn answer(server: &Server, key: &mut SoftPasskey, options: &Value, cred_id: &str) -> Value {
    let mut options = options.clone();
    options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": cred_id}]);
    let rcr: webauthn_rs_proto::RequestChallengeResponse = serde_json::from_value(options).unwrap();
    serde_json::to_value(key.do_authentication(origin_of(server), rcr).unwrap()).unwrap()
}

async fn passkeys(backend: Backend) {
    // Many sign-ins from one address in a few seconds: a higher limit than the default.
    let server = start(
        backend,
        Options::default().env("DEMIURGE_AUTH__LOGIN_RATE", "100/1m"),
    )
    .await;
    let a = Browser::new(&server);
    assert_eq!(
        a.post("/api/v1/auth/signup", alice()).await.0,
        StatusCode::CREATED
    );
    let mut key = SoftPasskey::new(true);
    let cred_id = register_passkey(&server, &a, &mut key, "laptop").await;
    let mut other_key = SoftPasskey::new(true);
    let other_id = register_passkey(&server, &a, &mut other_key, "phone").await;
    let (st, body) = a
        .post(
            "/api/v1/me/passkeys/register/start",
            json!({"name": "Laptop"}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("passkey_name_taken"))
    );
    let (_, list) = a.get("/api/v1/me/passkeys").await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Sign in with the passkey alone: a full session, no second step.
    let b = Browser::new(&server);
    let (st, start) = b.post("/api/v1/auth/passkey/start", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{start}");
    assert_eq!(
        start["options"]["publicKey"]["userVerification"],
        "required"
    );
    let assertion = answer(&server, &mut key, &start["options"], &cred_id);
    let finish = json!({"ceremony": start["ceremony"], "credential": assertion});
    let (st, body) = b.post("/api/v1/auth/passkey/finish", finish.clone()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["second_factor_required"], false);
    assert_eq!(body["user"]["username"], "Alice");
    assert_eq!(b.get("/api/v1/me").await.0, StatusCode::OK);
    // A ceremony works once; an answer to one challenge does not fit another.
    let (st, body) = Browser::new(&server)
        .post("/api/v1/auth/passkey/finish", finish)
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("passkey_failed"))
    );
    let (_, start2) = b.post("/api/v1/auth/passkey/start", json!({})).await;
    let (st, _) = Browser::new(&server)
        .post(
            "/api/v1/auth/passkey/finish",
            json!({"ceremony": start2["ceremony"], "credential": assertion}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = a.get("/api/v1/me/passkeys").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "laptop" && !p["last_used_at"].is_null())
    );

    // As the second factor of a password sign-in (TOTP on).
    let (_, enrol) = a.post("/api/v1/me/totp", json!({})).await;
    let secret = enrol["secret"].as_str().unwrap().to_string();
    let (st, _) = a
        .post(
            "/api/v1/me/totp/confirm",
            json!({"code": totp_code(&secret, 0)}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let c = Browser::new(&server);
    let (_, login) = c
        .post(
            "/api/v1/auth/login",
            json!({"login": "alice", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(login["second_factor_required"], true);
    let (st, start) = c
        .post("/api/v1/auth/second-factor/passkey/start", json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{start}");
    assert_eq!(
        start["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let assertion = key
        .do_authentication(
            origin_of(&server),
            serde_json::from_value(start["options"].clone()).unwrap(),
        )
        .unwrap();
    let (st, body) = c
        .post(
            "/api/v1/auth/second-factor/passkey/finish",
            json!({"ceremony": start["ceremony"], "credential": assertion}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["username"], "Alice");
    assert_eq!(c.get("/api/v1/me").await.0, StatusCode::OK);
    // Without a pending sign-in there is nothing to finish.
    let (st, _) = Browser::new(&server)
        .post("/api/v1/auth/second-factor/passkey/start", json!({}))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Rename and delete; a deleted passkey no longer signs in.
    let (_, list) = a.get("/api/v1/me/passkeys").await;
    let laptop = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "laptop")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a
        .http
        .patch(server.url(&format!("/api/v1/me/passkeys/{laptop}")))
        .header("Origin", &a.origin)
        .json(&json!({"name": "old laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        a.delete(&format!("/api/v1/me/passkeys/{laptop}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.delete(&format!("/api/v1/me/passkeys/{laptop}")).await,
        StatusCode::NOT_FOUND
    );
    let (_, start) = b.post("/api/v1/auth/passkey/start", json!({})).await;
    let assertion = answer(&server, &mut key, &start["options"], &cred_id);
    let (st, body) = Browser::new(&server)
        .post(
            "/api/v1/auth/passkey/finish",
            json!({"ceremony": start["ceremony"], "credential": assertion}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("passkey_failed"))
    );

    // No reset, no review.
    assert_eq!(
        a.get("/api/v1/me/sign-in-review").await.0,
        StatusCode::NOT_FOUND
    );
    // An admin resets the password: the owner, signed in again, is asked about the passkeys
    // that can still sign in, and the review ends when they answer it.
    let out = server.command_ok(&["admin", "reset-password", "alice"]);
    let generated = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(generated.len() >= 20, "{generated}");
    let c = Browser::new(&server);
    let (_, start) = c.post("/api/v1/auth/passkey/start", json!({})).await;
    let assertion = answer(&server, &mut other_key, &start["options"], &other_id);
    let (st, body) = c
        .post(
            "/api/v1/auth/passkey/finish",
            json!({"ceremony": start["ceremony"], "credential": assertion}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, review) = c.get("/api/v1/me/sign-in-review").await;
    assert_eq!(st, StatusCode::OK, "{review}");
    let names: Vec<&str> = review["passkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["phone"], "{review}");
    assert!(
        review["asked_at"].as_str().unwrap().ends_with('Z'),
        "{review}"
    );
    assert_eq!(
        c.delete("/api/v1/me/sign-in-review").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.get("/api/v1/me/sign-in-review").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.delete("/api/v1/me/sign-in-review").await,
        StatusCode::NOT_FOUND
    );

    // Malformed answers: 4xx with a stable code.
    let (_, start) = b.post("/api/v1/auth/passkey/start", json!({})).await;
    let (st, body) = b
        .post(
            "/api/v1/auth/passkey/finish",
            json!({"ceremony": start["ceremony"], "credential": {"id": 5}}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
    );
    let (st, body) = b
        .post("/api/v1/auth/passkey/finish", json!({"ceremony": "x"}))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn passkeys_sqlite() {
    passkeys(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn passkeys_postgres() {
    passkeys(Backend::Postgres).await;
}
