//! Organizations, projects, members, invitations and roles over HTTP, on SQLite and
//! PostgreSQL; and the authorization matrix: every endpoint as every kind of person.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Browser;
use crate::harness::peers::{MailSink, link_in};
use crate::harness::{Options, Server, fresh_pg_database};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn start(backend: Backend, opts: Options) -> (Server, Option<String>) {
    let (opts, url) = match backend {
        Backend::Sqlite => (opts, None),
        Backend::Postgres => {
            let url = fresh_pg_database().await;
            (opts.env("DEMIURGE_DATABASE__URL", &url), Some(url))
        }
    };
    let server = Server::start_with(Options {
        dns: false,
        vpn: false,
        ..opts
            .env("DEMIURGE_AUTH__LOGIN_RATE", "1000/1m")
            .env("DEMIURGE_AUTH__SIGNUP_RATE", "1000/1m")
            .env("DEMIURGE_AUTH__EMAIL_LINK_RATE", "1000/1m")
    });
    (server, url)
}

/// A signed-in person.
struct Person {
    b: Browser,
    id: String,
}

async fn person(server: &Server, name: &str) -> Person {
    let (b, user) = crate::harness::signed_up(server, name).await;
    Person {
        id: user["id"].as_str().unwrap().to_string(),
        b,
    }
}

impl Person {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .b
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.b.base))
            .header("Origin", &self.b.origin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let st = r.status();
        (st, r.json().await.unwrap_or(Value::Null))
    }
}

/// Counts rows with `sql` (a `SELECT COUNT(*) AS n ...`) straight from the database.
pub async fn count(server: &Server, pg: &Option<String>, sql: &str) -> i64 {
    use diesel::QueryableByName;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    match pg {
        Some(url) => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut c = AsyncPgConnection::establish(url).await.unwrap();
            diesel::sql_query(sql)
                .get_result::<N>(&mut c)
                .await
                .unwrap()
                .n
        }
        None => {
            use diesel::{Connection, RunQueryDsl, SqliteConnection};
            let path = server.data_dir.join("demiurge.db");
            let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            diesel::sql_query(sql).get_result::<N>(&mut c).unwrap().n
        }
    }
}

async fn orphans(server: &Server, pg: &Option<String>) -> i64 {
    let mut total = 0;
    for sql in [
        "SELECT COUNT(*) AS n FROM projects WHERE org_id NOT IN (SELECT id FROM organizations)",
        "SELECT COUNT(*) AS n FROM org_members WHERE org_id NOT IN (SELECT id FROM organizations)",
        "SELECT COUNT(*) AS n FROM roles WHERE org_id NOT IN (SELECT id FROM organizations)",
        "SELECT COUNT(*) AS n FROM invitations WHERE org_id NOT IN (SELECT id FROM organizations)",
        "SELECT COUNT(*) AS n FROM project_members WHERE project_id NOT IN (SELECT id FROM projects)",
        "SELECT COUNT(*) AS n FROM doc_updates WHERE project_id NOT IN (SELECT id FROM projects)",
        "SELECT COUNT(*) AS n FROM doc_snapshots WHERE project_id NOT IN (SELECT id FROM projects)",
        "SELECT COUNT(*) AS n FROM doc_history WHERE project_id NOT IN (SELECT id FROM projects)",
    ] {
        total += count(server, pg, sql).await;
    }
    total
}

async fn tenancy(backend: Backend) {
    let sink = MailSink::start();
    let (server, pg) = start(
        backend,
        Options::default().env("DEMIURGE_MAIL__URL", &sink.url()),
    )
    .await;
    let alice = person(&server, "alice").await;
    let bob = person(&server, "bob").await;

    // Every account starts with a personal organization it owns.
    let (_, orgs) = alice.call("GET", "/api/v1/orgs", None).await;
    assert_eq!(orgs.as_array().unwrap().len(), 1, "{orgs}");
    assert_eq!(
        (orgs[0]["personal"].as_bool(), orgs[0]["role"].as_str()),
        (Some(true), Some("org:owner"))
    );
    assert_eq!(orgs[0]["slug"], "alice");

    // Create; slugs are unique and URL-safe.
    let (st, acme) = alice
        .call(
            "POST",
            "/api/v1/orgs",
            Some(json!({"name": "Acme Research"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{acme}");
    assert_eq!(acme["slug"], "acme-research");
    let org = acme["id"].as_str().unwrap().to_string();
    let (st, body) = bob
        .call(
            "POST",
            "/api/v1/orgs",
            Some(json!({"name": "X", "slug": "acme-research"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    for bad in [
        json!({"name": "X", "slug": "Bad Slug"}),
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
    ] {
        let (st, body) = bob.call("POST", "/api/v1/orgs", Some(bad)).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
        );
    }

    // Members; bob creates a project and administers it.
    let (st, _) = alice
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/members"),
            Some(json!({"user": "BOB", "role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, body) = alice
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/members"),
            Some(json!({"user": "bob", "role": "org:member"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let (st, body) = alice
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/members"),
            Some(json!({"user": "nobody", "role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let (st, body) = alice
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/members"),
            Some(json!({"user": "bob", "role": "project:viewer"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
    );
    let (st, project) = bob
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/projects"),
            Some(json!({"name": "Alpha"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{project}");
    let pid = project["id"].as_str().unwrap().to_string();
    let (st, body) = alice
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/projects"),
            Some(json!({"name": "ALPHA"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let (_, perms) = bob
        .call(
            "GET",
            &format!("/api/v1/projects/{pid}/permissions/me"),
            None,
        )
        .await;
    assert!(
        perms["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "project:members:manage")
    );
    let (_, members) = alice
        .call("GET", &format!("/api/v1/projects/{pid}/members"), None)
        .await;
    assert_eq!(members[0]["role"], "project:admin");

    // Nobody changes their own role (an owner steps down by transferring ownership); the
    // last owner cannot leave; then ownership transfer.
    let (st, body) = alice
        .call(
            "PATCH",
            &format!("/api/v1/orgs/{org}/members/{}", alice.id),
            Some(json!({"role": "org:admin"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("own_role"))
    );
    let (st, body) = alice
        .call(
            "DELETE",
            &format!("/api/v1/orgs/{org}/members/{}", alice.id),
            None,
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("last_owner"))
    );
    let (st, _) = alice
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/transfer"),
            Some(json!({"user_id": bob.id})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, o) = alice
        .call("GET", &format!("/api/v1/orgs/{org}"), None)
        .await;
    assert_eq!(o["role"], "org:admin");
    let (_, o) = bob.call("GET", &format!("/api/v1/orgs/{org}"), None).await;
    assert_eq!(o["role"], "org:owner");
    // An admin cannot take the owner role away or delete the organization.
    let (st, _) = alice
        .call(
            "PATCH",
            &format!("/api/v1/orgs/{org}/members/{}", bob.id),
            Some(json!({"role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = alice
        .call(
            "DELETE",
            &format!("/api/v1/orgs/{org}"),
            Some(json!({"confirm": "acme-research"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Invitation by email, accepted once.
    let (st, inv) = bob
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/invitations"),
            Some(json!({"email": "carol@example.test", "role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let (_, pending) = bob
        .call("GET", &format!("/api/v1/orgs/{org}/invitations"), None)
        .await;
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let mail = sink.wait_mail("carol@example.test", 1).await;
    let token = link_in(&mail, "http://localhost:")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let carol = person(&server, "carol").await;
    let (st, joined) = carol
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    assert_eq!(
        (joined["id"].as_str(), joined["role"].as_str()),
        (Some(org.as_str()), Some("org:member"))
    );
    let (st, body) = carol
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_invitation"))
    );
    let (_, members) = bob
        .call("GET", &format!("/api/v1/orgs/{org}/members"), None)
        .await;
    assert_eq!(
        members
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["username"] == "carol")
            .count(),
        1
    );
    // A revoked invitation does not work.
    let (_, inv) = bob
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/invitations"),
            Some(json!({"email": "dan@example.test", "role": "org:member"})),
        )
        .await;
    let mail = sink.wait_mail("dan@example.test", 1).await;
    let token = link_in(&mail, "http://localhost:")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let (st, _) = bob
        .call(
            "DELETE",
            &format!(
                "/api/v1/orgs/{org}/invitations/{}",
                inv["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let dan = person(&server, "dan").await;
    let (st, _) = dan
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // Custom roles: patterns checked; in use cannot be deleted; built-ins cannot change.
    let (st, role) = bob
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/roles"),
            Some(json!({"name": "Auditor", "scope": "org", "permissions": ["org:*:read", "*:*:read"]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{role}");
    let rid = role["id"].as_str().unwrap().to_string();
    for bad in [
        json!(["org:members"]),
        json!(["Org:members:read"]),
        json!(["org::read"]),
    ] {
        let (st, body) = bob
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/roles"),
                Some(json!({"name": "Bad", "scope": "org", "permissions": bad})),
            )
            .await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
        );
    }
    let (st, _) = bob
        .call(
            "PATCH",
            &format!("/api/v1/orgs/{org}/members/{}", carol.id),
            Some(json!({"role": rid})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // The auditor reads every project but changes nothing.
    let (st, _) = carol
        .call("GET", &format!("/api/v1/projects/{pid}"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = carol
        .call(
            "PATCH",
            &format!("/api/v1/projects/{pid}"),
            Some(json!({"name": "Beta"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = bob
        .call("DELETE", &format!("/api/v1/orgs/{org}/roles/{rid}"), None)
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("role_in_use"))
    );
    let (st, _) = bob
        .call(
            "DELETE",
            &format!("/api/v1/orgs/{org}/roles/org:admin"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (_, roles) = bob
        .call("GET", &format!("/api/v1/orgs/{org}/roles"), None)
        .await;
    assert_eq!(
        roles.as_array().unwrap().len(),
        7,
        "six built-in roles and the auditor"
    );
    let (_, cat) = bob.call("GET", "/api/v1/permissions", None).await;
    assert!(cat.as_array().unwrap().iter().any(
        |p| p["name"] == "org:members:manage" && !p["description"].as_str().unwrap().is_empty()
    ));

    // Bob shares no organization with Dan: adding him directly answers exactly as adding
    // someone who does not exist (so adding cannot probe for accounts); Bob invites instead.
    // The instance admin (Alice, the first account) may add anyone.
    let add = |who: &str| {
        let body = json!({"user": who, "role": "org:member"});
        let path = format!("/api/v1/orgs/{org}/members");
        let bob = &bob;
        async move { bob.call("POST", &path, Some(body)).await }
    };
    let stranger = add("dan").await;
    assert_eq!(stranger.0, StatusCode::NOT_FOUND);
    assert_eq!(stranger, add("nobody-at-all").await);
    assert_eq!(stranger, add("dan@example.test").await);
    assert_eq!(stranger, add(&dan.id).await);

    // A removed member loses access at their next request (no stale permission cache).
    let (st, _) = alice
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/members"),
            Some(json!({"user": "dan", "role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(
        dan.call("GET", &format!("/api/v1/orgs/{org}"), None)
            .await
            .0,
        StatusCode::OK
    );
    let (st, _) = bob
        .call(
            "DELETE",
            &format!("/api/v1/orgs/{org}/members/{}", dan.id),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        dan.call("GET", &format!("/api/v1/orgs/{org}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Anyone may leave (but the last owner); leaving ends project access too.
    let (st, _) = carol
        .call(
            "DELETE",
            &format!("/api/v1/orgs/{org}/members/{}", carol.id),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        carol
            .call("GET", &format!("/api/v1/projects/{pid}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Having left, Carol is a stranger to Bob again (she comes back by invitation, or the
    // instance admin adds her).
    let again = json!({"user": "carol", "role": rid});
    let (st, _) = bob
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/members"),
            Some(again.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = alice
        .call("POST", &format!("/api/v1/orgs/{org}/members"), Some(again))
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Addresses in member lists go only to those who manage members (and to each member
    // for their own row).
    let (_, seen) = carol
        .call("GET", &format!("/api/v1/orgs/{org}/members"), None)
        .await;
    let rows = seen.as_array().unwrap();
    assert!(rows.len() >= 2, "{seen}");
    for m in rows {
        assert_eq!(
            m.get("email").is_some(),
            m["user_id"] == carol.id.as_str(),
            "{m}"
        );
    }
    let (_, seen) = bob
        .call("GET", &format!("/api/v1/orgs/{org}/members"), None)
        .await;
    assert!(
        seen.as_array()
            .unwrap()
            .iter()
            .all(|m| m["email"].is_string()),
        "{seen}"
    );

    // People search stays inside shared organizations, even for an exact address.
    let (_, found) = carol.call("GET", "/api/v1/users?q=ali", None).await;
    assert_eq!(found[0]["username"], "alice");
    let outsider = person(&server, "otto").await;
    let (_, found) = outsider.call("GET", "/api/v1/users?q=ali", None).await;
    assert_eq!(found, json!([]));
    let (_, found) = outsider
        .call("GET", "/api/v1/users?q=alice@example.test", None)
        .await;
    assert_eq!(found, json!([]), "an exact address finds no stranger");
    assert_eq!(
        outsider
            .call("GET", &format!("/api/v1/users/{}", alice.id), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        carol
            .call("GET", &format!("/api/v1/users/{}", alice.id), None)
            .await
            .0,
        StatusCode::OK
    );

    // Unknown and malformed ids, overlong names: 4xx with stable codes.
    for path in [
        "/api/v1/orgs/nope",
        "/api/v1/projects/nope",
        &format!("/api/v1/orgs/{}", "x".repeat(500)),
    ] {
        let (st, body) = bob.call("GET", path, None).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let (st, body) = bob
        .call(
            "PATCH",
            &format!("/api/v1/projects/{pid}"),
            Some(json!({"name": "y".repeat(101)})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_input"))
    );
    let (st, body) = bob
        .call(
            "PATCH",
            &format!("/api/v1/projects/{pid}"),
            Some(json!({"name": 5})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );

    // Delete: confirmed by name (or slug); everything under it goes, nothing is left behind.
    let (st, body) = bob
        .call(
            "DELETE",
            &format!("/api/v1/orgs/{org}"),
            Some(json!({"confirm": "acme"})),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("confirmation_mismatch")
        )
    );
    assert!(count(&server, &pg, "SELECT COUNT(*) AS n FROM project_members").await > 0);
    let (st, _) = bob
        .call(
            "DELETE",
            &format!("/api/v1/orgs/{org}"),
            Some(json!({"confirm": "Acme Research"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        bob.call("GET", &format!("/api/v1/projects/{pid}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(orphans(&server, &pg).await, 0);
    assert_eq!(
        count(
            &server,
            &pg,
            &format!("SELECT COUNT(*) AS n FROM projects WHERE id = '{pid}'")
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenancy_sqlite() {
    tenancy(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenancy_postgres() {
    tenancy(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// Invitations

/// An invitation by email works only for the account with that address (someone else who
/// holds the link is refused and uses nothing); its mail carries nothing the inviter chose;
/// its link's holder learns the organization, the inviter and the role. An open link is made
/// on purpose, returned once, and works for anyone signed in, once. Invitations are limited
/// per person and per organization.
async fn invitations_are_bound_and_limited(backend: Backend) {
    let sink = MailSink::start();
    let (server, _) = start(
        backend,
        Options::default()
            .env("DEMIURGE_MAIL__URL", &sink.url())
            .env("DEMIURGE_AUTH__INVITATION_RATE", "5/1h"),
    )
    .await;
    let admin = person(&server, "root").await;
    let bob = person(&server, "bob").await;
    let (_, org) = bob
        .call(
            "POST",
            "/api/v1/orgs",
            Some(json!({"name": "Initech Labs"})),
        )
        .await;
    let o = org["id"].as_str().unwrap().to_string();
    let invitations = format!("/api/v1/orgs/{o}/invitations");
    let (st, inv) = bob
        .call(
            "POST",
            &invitations,
            Some(json!({"email": "Carol@Example.test", "role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    assert_eq!(
        (inv["open"].as_bool(), inv.get("link")),
        (Some(false), None)
    );
    let mail = sink.wait_mail("Carol@Example.test", 1).await;
    let text = mail["text"].as_str().unwrap();
    assert!(!text.contains("Initech") && !text.contains("bob"), "{text}");
    assert!(!mail["subject"].as_str().unwrap().contains("Initech"));
    let token = link_in(&mail, "http://localhost:")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();

    let eve = person(&server, "eve").await;
    let (st, p) = eve
        .call(
            "POST",
            "/api/v1/invitations/preview",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(
        (
            p["org_name"].as_str(),
            p["inviter_username"].as_str(),
            p["email"].as_str()
        ),
        (
            Some("Initech Labs"),
            Some("bob"),
            Some("Carol@Example.test")
        )
    );
    let (st, e) = eve
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("invitation_for_another_address")
        )
    );
    let carol = person(&server, "carol").await;
    let (st, joined) = carol
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "the refusal used nothing: {joined}");

    // An open link, on purpose.
    let (st, b) = bob
        .call(
            "POST",
            &invitations,
            Some(json!({"email": "x@example.test", "open": true, "role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (st, open) = bob
        .call(
            "POST",
            &invitations,
            Some(json!({"open": true, "role": "org:member"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{open}");
    assert_eq!(open["open"], true);
    let link = open["link"].as_str().unwrap();
    let open_token = link.split("token=").nth(1).unwrap();
    let (_, listed) = bob.call("GET", &invitations, None).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("link").is_none()),
        "the link is shown once: {listed}"
    );
    let (st, _) = eve
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(json!({"token": open_token})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = admin
        .call(
            "POST",
            "/api/v1/invitations/accept",
            Some(json!({"token": open_token})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "once");

    // Five invitations an hour per person (and per organization): two used, three left.
    for i in 0..3 {
        let (st, b) = bob
            .call(
                "POST",
                &invitations,
                Some(json!({"email": format!("p{i}@example.test"), "role": "org:member"})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }
    let (st, b) = bob
        .call(
            "POST",
            &invitations,
            Some(json!({"email": "p9@example.test", "role": "org:member"})),
        )
        .await;
    assert_eq!(
        (st, b["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invitations_are_bound_and_limited_sqlite() {
    invitations_are_bound_and_limited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invitations_are_bound_and_limited_postgres() {
    invitations_are_bound_and_limited(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// No escalation

/// Nobody gives, invites into, edits or takes away a role holding more than they hold; nobody
/// changes their own role. A "member manager" (a custom role that may manage members) cannot
/// make anyone an admin, demote or remove an admin, or give the built-in member role (which
/// holds more than theirs); it can give its own role. A "role editor" cannot write a role
/// beyond its own. Admins give the admin role; only owners give the owner role.
async fn no_escalation(backend: Backend) {
    let (server, _) = start(backend, Options::default()).await;
    let owner = person(&server, "owner").await;
    let ann = person(&server, "ann").await;
    let mgr = person(&server, "mgr").await;
    let ed = person(&server, "edna").await;
    let mia = person(&server, "mia").await;
    let (_, org) = owner
        .call("POST", "/api/v1/orgs", Some(json!({"name": "Wall"})))
        .await;
    let o = org["id"].as_str().unwrap().to_string();
    let role = |name: &str, perms: Value| {
        let (o, owner) = (o.clone(), &owner);
        let body = json!({"name": name, "scope": "org", "permissions": perms});
        async move {
            let (st, r) = owner
                .call("POST", &format!("/api/v1/orgs/{o}/roles"), Some(body))
                .await;
            assert_eq!(st, StatusCode::CREATED, "{r}");
            r["id"].as_str().unwrap().to_string()
        }
    };
    let manager = role(
        "Member manager",
        json!(["org:org:read", "org:members:read", "org:members:manage"]),
    )
    .await;
    let editor = role(
        "Role editor",
        json!(["org:org:read", "org:roles:read", "org:roles:manage"]),
    )
    .await;
    for (p, r) in [
        (&ann, "org:admin"),
        (&mgr, manager.as_str()),
        (&ed, editor.as_str()),
        (&mia, "org:member"),
    ] {
        let (st, body) = owner
            .call(
                "POST",
                &format!("/api/v1/orgs/{o}/members"),
                Some(json!({"user": p.id, "role": r})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    let refused = |st: StatusCode, body: &Value, code: &str, what: &str| {
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some(code)),
            "{what}: {body}"
        );
    };

    let members = format!("/api/v1/orgs/{o}/members");
    let (st, b) = mgr
        .call(
            "PATCH",
            &format!("{members}/{}", mia.id),
            Some(json!({"role": "org:admin"})),
        )
        .await;
    refused(st, &b, "role_exceeds_yours", "make a member an admin");
    let (st, b) = mgr
        .call(
            "PATCH",
            &format!("{members}/{}", ann.id),
            Some(json!({"role": manager})),
        )
        .await;
    refused(st, &b, "role_exceeds_yours", "demote an admin");
    let (st, b) = mgr
        .call("DELETE", &format!("{members}/{}", ann.id), None)
        .await;
    refused(st, &b, "role_exceeds_yours", "remove an admin");
    let (st, b) = mgr
        .call(
            "POST",
            &format!("/api/v1/orgs/{o}/invitations"),
            Some(json!({"email": "new@example.test", "role": "org:admin"})),
        )
        .await;
    refused(st, &b, "role_exceeds_yours", "invite an admin");
    let (st, b) = mgr
        .call(
            "POST",
            &format!("/api/v1/orgs/{o}/invitations"),
            Some(json!({"email": "new@example.test", "role": "org:member"})),
        )
        .await;
    refused(
        st,
        &b,
        "role_exceeds_yours",
        "invite as a member, who may create projects",
    );
    let (st, b) = mgr
        .call(
            "POST",
            &format!("/api/v1/orgs/{o}/invitations"),
            Some(json!({"email": "new@example.test", "role": manager})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "their own role: {b}");
    let (st, b) = mgr
        .call(
            "PATCH",
            &format!("{members}/{}", mgr.id),
            Some(json!({"role": "org:admin"})),
        )
        .await;
    refused(st, &b, "own_role", "change their own role");

    // Role editing stays within the editor's own permissions.
    let roles = format!("/api/v1/orgs/{o}/roles");
    let (st, b) = ed
        .call(
            "POST",
            &roles,
            Some(json!({"name": "Everything", "scope": "org", "permissions": ["*:*:*"]})),
        )
        .await;
    refused(
        st,
        &b,
        "role_exceeds_yours",
        "write a role holding everything",
    );
    let (st, b) = ed
        .call(
            "PUT",
            &format!("{roles}/{editor}"),
            Some(json!({"name": "Role editor", "scope": "org", "permissions": ["org:org:read", "org:roles:read", "org:roles:manage", "org:members:manage"]})),
        )
        .await;
    refused(st, &b, "role_exceeds_yours", "widen their own role");
    let (st, b) = ed
        .call(
            "PUT",
            &format!("{roles}/{manager}"),
            Some(
                json!({"name": "Member manager", "scope": "org", "permissions": ["org:org:read"]}),
            ),
        )
        .await;
    refused(
        st,
        &b,
        "role_exceeds_yours",
        "edit a role holding what they lack",
    );
    let (st, b) = ed
        .call(
            "POST",
            &roles,
            Some(json!({"name": "Reader", "scope": "org", "permissions": ["org:org:read", "org:roles:read"]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "a role within theirs: {b}");

    // Admins make admins; the owner role is the owners'.
    let (st, b) = ann
        .call(
            "PATCH",
            &format!("{members}/{}", mia.id),
            Some(json!({"role": "org:admin"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
    let (st, _) = ann
        .call(
            "PATCH",
            &format!("{members}/{}", mia.id),
            Some(json!({"role": "org:owner"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // In a project: a project admin gives roles there, but not to themselves.
    let (_, p) = owner
        .call(
            "POST",
            &format!("/api/v1/orgs/{o}/projects"),
            Some(json!({"name": "Site"})),
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let pm = format!("/api/v1/projects/{pid}/members");
    let (st, b) = owner
        .call(
            "POST",
            &pm,
            Some(json!({"user": mgr.id, "role": "project:admin"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
    let (st, b) = mgr
        .call(
            "POST",
            &pm,
            Some(json!({"user": ed.id, "role": "project:editor"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
    let (st, b) = mgr
        .call(
            "POST",
            &pm,
            Some(json!({"user": mgr.id, "role": "project:viewer"})),
        )
        .await;
    refused(st, &b, "own_role", "change their own project role");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_escalation_sqlite() {
    no_escalation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_escalation_postgres() {
    no_escalation(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------
// The authorization matrix

const PERSONAS: [&str; 8] = [
    "owner",
    "admin",
    "member",
    "padmin",
    "editor",
    "viewer",
    "outsider",
    "anonymous",
];

/// One row: an endpoint and the status each persona gets (0: not run for that persona, as
/// it would change what the rows after it see).
struct Row {
    method: &'static str,
    path: String,
    body: Option<Value>,
    expect: [u16; 8],
}

/// Runs a row as every persona; the mismatches.
async fn check(r: &Row, people: &[Person], anonymous: &Browser) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, want) in r.expect.iter().enumerate() {
        if *want == 0 {
            continue;
        }
        let got = if i == 7 {
            let mut req = anonymous
                .http
                .request(
                    r.method.parse().unwrap(),
                    format!("{}{}", anonymous.base, r.path),
                )
                .header("Origin", &anonymous.origin);
            if let Some(b) = &r.body {
                req = req.json(b);
            }
            let res = req.send().await.unwrap();
            let st = res.status();
            (st, res.json().await.unwrap_or(Value::Null))
        } else {
            people[i].call(r.method, &r.path, r.body.clone()).await
        };
        let (got, body) = (got.0.as_u16(), got.1);
        if got != *want {
            failures.push(format!(
                "{} {} as {}: {got} {}, expected {want}",
                r.method, r.path, PERSONAS[i], body["error"]
            ));
        }
    }
    failures
}

/// A route about one's own account: every signed-in persona gets `status`, anonymous 401.
fn me(status: u16) -> [u16; 8] {
    [status, status, status, status, status, status, status, 401]
}

/// Whether a concrete path fits an OpenAPI path template (`{x}`: any one segment).
fn fits(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

fn row(method: &'static str, path: String, body: Option<Value>, expect: [u16; 8]) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_matrix() {
    let (server, _) = start(Backend::Sqlite, Options::default()).await;
    let mut people = Vec::new();
    for name in [
        "owner", "admin", "member", "padmin", "editor", "viewer", "outsider",
    ] {
        people.push(person(&server, name).await);
    }
    let target = person(&server, "target").await;
    let anonymous = Browser::new(&server);
    let owner = &people[0];
    let (_, org) = owner
        .call("POST", "/api/v1/orgs", Some(json!({"name": "Matrix"})))
        .await;
    let o = org["id"].as_str().unwrap().to_string();
    for (i, role) in [
        (1, "org:admin"),
        (2, "org:member"),
        (3, "org:member"),
        (4, "org:member"),
        (5, "org:member"),
    ] {
        let (st, _) = owner
            .call(
                "POST",
                &format!("/api/v1/orgs/{o}/members"),
                Some(json!({"user": people[i].id, "role": role})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    owner
        .call(
            "POST",
            &format!("/api/v1/orgs/{o}/members"),
            Some(json!({"user": "target", "role": "org:member"})),
        )
        .await;
    let (_, p) = owner
        .call(
            "POST",
            &format!("/api/v1/orgs/{o}/projects"),
            Some(json!({"name": "P"})),
        )
        .await;
    let p = p["id"].as_str().unwrap().to_string();
    for (i, role) in [
        (3, "project:admin"),
        (4, "project:editor"),
        (5, "project:viewer"),
    ] {
        let (st, _) = owner
            .call(
                "POST",
                &format!("/api/v1/projects/{p}/members"),
                Some(json!({"user": people[i].id, "role": role})),
            )
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    // The outsider owns another organization, with its own project.
    let (_, other) = people[6]
        .call("POST", "/api/v1/orgs", Some(json!({"name": "Elsewhere"})))
        .await;
    let other = other["id"].as_str().unwrap().to_string();

    // A container of the project, made by its owner.
    let (st, made) = owner
        .call(
            "POST",
            &format!("/api/v1/projects/{p}/events"),
            Some(json!({"type": "user-containers:create", "name": "C", "image": "terminal"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{made}");
    let c = made["result"]["id"].as_str().unwrap().to_string();

    let t = &target.id;
    let a = &people[0].id;
    let rows = vec![
        //                                                                 own  adm  mem  pad  edi  vie  out  anon
        row(
            "GET",
            format!("/api/v1/orgs/{o}"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/orgs/{o}/permissions/me"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "PATCH",
            format!("/api/v1/orgs/{o}"),
            Some(json!({"name": "Matrix"})),
            [200, 200, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/orgs/{o}/members"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "PATCH",
            format!("/api/v1/orgs/{o}/members/{t}"),
            Some(json!({"role": "org:member"})),
            [204, 204, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "PATCH",
            format!("/api/v1/orgs/{o}/members/{t}"),
            Some(json!({"role": "org:owner"})),
            [0, 403, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "PATCH",
            format!("/api/v1/orgs/{o}/members/{a}"),
            Some(json!({"role": "org:member"})),
            [0, 403, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/members"),
            Some(json!({"user": "target", "role": "org:member"})),
            [409, 409, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/orgs/{o}/members/{a}"),
            None,
            [0, 403, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/transfer"),
            Some(json!({"user_id": t})),
            [0, 403, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/orgs/{o}/invitations"),
            None,
            [200, 200, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/invitations"),
            Some(json!({"email": "x@example.test", "role": "org:member"})),
            [201, 201, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/invitations"),
            Some(json!({"email": "x@example.test", "role": "org:owner"})),
            [201, 403, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/orgs/{o}/invitations/nope"),
            None,
            [404, 404, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/orgs/{o}/roles"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/roles"),
            Some(json!({"name": "R", "scope": "org", "permissions": []})),
            [201, 409, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "PUT",
            format!("/api/v1/orgs/{o}/roles/org:admin"),
            Some(json!({"name": "R2", "scope": "org", "permissions": []})),
            [403, 403, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/orgs/{o}/roles/nope"),
            None,
            [404, 404, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/orgs/{o}/projects"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/projects/{p}"),
            None,
            [200, 200, 404, 200, 200, 200, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/projects/{p}/permissions/me"),
            None,
            [200, 200, 404, 200, 200, 200, 404, 401],
        ),
        row(
            "PATCH",
            format!("/api/v1/projects/{p}"),
            Some(json!({"name": "P"})),
            [200, 200, 404, 200, 403, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/projects/{p}/members"),
            None,
            [200, 200, 404, 200, 200, 200, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/members"),
            Some(json!({"user": "target", "role": "project:viewer"})),
            [204, 204, 404, 204, 403, 403, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/projects/{p}/members/{t}"),
            None,
            [204, 404, 404, 404, 403, 403, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/projects/{p}"),
            Some(json!({"confirm": "P"})),
            [0, 0, 404, 0, 403, 403, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/orgs/{o}"),
            Some(json!({"confirm": "matrix"})),
            [0, 403, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/users/{a}"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "GET",
            "/api/v1/permissions".to_string(),
            None,
            [200, 200, 200, 200, 200, 200, 200, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/projects"),
            Some(json!({"name": "New"})),
            [201, 409, 409, 409, 409, 409, 404, 401],
        ),
        // The gateway: status, lifecycle, events, document, history.
        row(
            "GET",
            format!("/api/v1/orgs/{o}/gateway"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/gateway/start"),
            Some(json!({})),
            [200, 200, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/events"),
            Some(json!({"type": "core-graph:add-node", "kind": "n", "x": 0, "y": 0})),
            [200, 200, 404, 200, 200, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/undo"),
            Some(json!({})),
            [200, 200, 404, 200, 200, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/redo"),
            Some(json!({})),
            [200, 200, 404, 200, 200, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/projects/{p}/export?format=svg"),
            None,
            [200, 200, 404, 200, 200, 200, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/import"),
            Some(
                json!({"nodes": [{"id": "n1", "type": "text", "text": "x", "x": 0, "y": 0, "width": 200, "height": 100}], "edges": []}),
            ),
            [200, 200, 404, 200, 200, 403, 404, 401],
        ),
        // Without the upgrade headers: who may open it is decided first.
        row(
            "GET",
            format!("/api/v1/projects/{p}/collab"),
            None,
            [426, 426, 404, 426, 426, 426, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/events"),
            Some(json!({"type": "core-graph:add-edge", "from": "nope", "to": "nope"})),
            [404, 404, 404, 404, 404, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/events"),
            Some(json!({"type": "gateway:init"})),
            [403, 403, 404, 403, 403, 403, 404, 401],
        ),
        // This server's VPN is off: who may ask is decided first, then `vpn_off`.
        row(
            "POST",
            format!("/api/v1/projects/{p}/containers/{c}/enrollment"),
            None,
            [409, 409, 404, 409, 409, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/events"),
            Some(json!({"type": "user-containers:create", "name": "D", "image": "vscode"})),
            [200, 200, 404, 200, 200, 403, 404, 401],
        ),
        // The organization's container catalogue: its members read it, the project's too;
        // those who may manage its containers keep it (refused here for the bad key).
        row(
            "GET",
            format!("/api/v1/orgs/{o}/container-images"),
            None,
            [200, 200, 200, 200, 200, 200, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/projects/{p}/container-images"),
            None,
            [200, 200, 404, 200, 200, 200, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/container-images"),
            Some(
                json!({"key": "Bad Key", "title": "T", "image_ref": "debian", "services": [{"name": "web", "port": 80}]}),
            ),
            [422, 422, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "PUT",
            format!("/api/v1/orgs/{o}/container-images/nope"),
            Some(
                json!({"key": "nope", "title": "T", "image_ref": "debian", "services": [{"name": "web", "port": 80}]}),
            ),
            [404, 404, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/orgs/{o}/container-images/nope"),
            None,
            [404, 404, 403, 403, 403, 403, 404, 401],
        ),
        // The agent's side: its token or credential, never a person's session.
        row(
            "POST",
            "/api/v1/agent/enroll".into(),
            Some(
                json!({"token": "dmen_forged", "wg_public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
            ),
            [401, 401, 401, 401, 401, 401, 401, 401],
        ),
        row(
            "GET",
            "/api/v1/agent/manifest".into(),
            None,
            [401, 401, 401, 401, 401, 401, 401, 401],
        ),
        row(
            "GET",
            "/api/v1/agent/connect".into(),
            None,
            [401, 401, 401, 401, 401, 401, 401, 401],
        ),
        row(
            "GET",
            format!("/api/v1/projects/{p}/document"),
            None,
            [200, 200, 404, 200, 200, 200, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/projects/{p}/history"),
            None,
            [200, 200, 404, 200, 200, 200, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/history"),
            Some(json!({"name": "point"})),
            [201, 201, 404, 201, 201, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/projects/{p}/history/none/restore"),
            Some(json!({})),
            [404, 404, 404, 404, 403, 403, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/orgs/{o}/gateway/stop"),
            Some(json!({})),
            [200, 200, 403, 403, 403, 403, 404, 401],
        ),
        row(
            "GET",
            format!("/api/v1/orgs/{other}"),
            None,
            [404, 404, 404, 404, 404, 404, 200, 401],
        ),
        row(
            "GET",
            "/api/v1/orgs".to_string(),
            None,
            [200, 200, 200, 200, 200, 200, 200, 401],
        ),
        row(
            "POST",
            "/api/v1/orgs".to_string(),
            Some(json!({"name": "Side"})),
            [201, 201, 201, 201, 201, 201, 201, 401],
        ),
        row(
            "GET",
            "/api/v1/users?q=own".to_string(),
            None,
            [200, 200, 200, 200, 200, 200, 200, 401],
        ),
        row(
            "POST",
            "/api/v1/invitations/accept".to_string(),
            Some(json!({"token": "forged"})),
            [422, 422, 422, 422, 422, 422, 422, 401],
        ),
        row(
            "POST",
            "/api/v1/invitations/preview".to_string(),
            Some(json!({"token": "forged"})),
            [422, 422, 422, 422, 422, 422, 422, 401],
        ),
        // The operational endpoints: open to all (the details, and /metrics, to operators:
        // every client here is on the server's machine).
        row("GET", "/healthz".into(), None, [200; 8]),
        row("GET", "/readyz".into(), None, [200; 8]),
        row("GET", "/metrics".into(), None, [200; 8]),
        row("GET", "/api/v1/status".into(), None, [200; 8]),
        row("GET", "/api/v1/openapi.json".into(), None, [200; 8]),
        // Signing in: open to all, and the same answer whoever asks.
        row("GET", "/api/v1/auth/providers".into(), None, [200; 8]),
        row("GET", "/api/v1/auth/setup".into(), None, [200; 8]),
        row(
            "GET",
            "/api/v1/auth/providers/nope/start".into(),
            None,
            [404; 8],
        ),
        row(
            "GET",
            "/api/v1/auth/providers/nope/callback?state=x&code=y".into(),
            None,
            [422; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/signup".into(),
            Some(
                json!({"username": "matrix-new", "email": "matrix-new@example.test", "password": "short"}),
            ),
            [422; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/login".into(),
            Some(json!({"login": "nobody-here", "password": "not the password"})),
            [401; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/second-factor".into(),
            Some(json!({"code": "000000"})),
            // Signed in already: no second step is pending.
            [422, 422, 422, 422, 422, 422, 422, 401],
        ),
        row(
            "POST",
            "/api/v1/auth/email-link".into(),
            Some(json!({"email": "nobody@example.test", "purpose": "sign_in"})),
            [202; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/email-link/check".into(),
            Some(json!({"token": "forged"})),
            [422; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/email-link/redeem".into(),
            Some(json!({"token": "forged"})),
            [422; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/passkey/start".into(),
            Some(json!({})),
            [200; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/passkey/finish".into(),
            Some(json!({"ceremony": "forged", "credential": {}})),
            [422; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/second-factor/passkey/start".into(),
            Some(json!({})),
            [422, 422, 422, 422, 422, 422, 422, 401],
        ),
        row(
            "POST",
            "/api/v1/auth/second-factor/passkey/finish".into(),
            Some(json!({"ceremony": "forged", "credential": {}})),
            [422, 422, 422, 422, 422, 422, 422, 401],
        ),
        // One's own account: anyone signed in, for themselves only; nobody else.
        row(
            "POST",
            "/api/v1/auth/reauthenticate".into(),
            Some(json!({"password": "not the password"})),
            [401; 8],
        ),
        row(
            "POST",
            "/api/v1/auth/providers/nope/start".into(),
            Some(json!({})),
            [404, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "PUT",
            "/api/v1/me/password".into(),
            Some(
                json!({"current_password": "not the password", "new_password": "a new long password 1"}),
            ),
            [401, 401, 401, 401, 401, 401, 401, 401],
        ),
        row(
            "POST",
            "/api/v1/me/email/verify".into(),
            Some(json!({})),
            [202, 202, 202, 202, 202, 202, 202, 401],
        ),
        row("GET", "/api/v1/me/identities".into(), None, me(200)),
        row("DELETE", "/api/v1/me/identities/nope".into(), None, me(404)),
        row("GET", "/api/v1/me/passkeys".into(), None, me(200)),
        row(
            "POST",
            "/api/v1/me/passkeys/register/start".into(),
            Some(json!({"name": "key"})),
            me(200),
        ),
        row(
            "POST",
            "/api/v1/me/passkeys/register/finish".into(),
            Some(json!({"ceremony": "forged", "credential": {}})),
            me(422),
        ),
        row(
            "PATCH",
            "/api/v1/me/passkeys/nope".into(),
            Some(json!({"name": "key"})),
            me(404),
        ),
        row("DELETE", "/api/v1/me/passkeys/nope".into(), None, me(404)),
        row("GET", "/api/v1/me/sessions".into(), None, me(200)),
        row("DELETE", "/api/v1/me/sessions/nope".into(), None, me(404)),
        row("GET", "/api/v1/me/tokens".into(), None, me(200)),
        row(
            "POST",
            "/api/v1/me/tokens".into(),
            Some(json!({"name": "matrix"})),
            me(201),
        ),
        row("DELETE", "/api/v1/me/tokens/nope".into(), None, me(404)),
        row("GET", "/api/v1/me/totp".into(), None, me(200)),
        row("POST", "/api/v1/me/totp".into(), Some(json!({})), me(200)),
        row(
            "POST",
            "/api/v1/me/totp/confirm".into(),
            Some(json!({"code": "000000"})),
            me(401),
        ),
        row(
            "DELETE",
            "/api/v1/me/totp".into(),
            Some(json!({"code": "000000"})),
            me(409),
        ),
        row("GET", "/api/v1/me/sign-in-review".into(), None, me(404)),
        // The instance admin's view (the owner signed up first); the route is not there for
        // anyone else.
        row(
            "GET",
            "/api/v1/admin/certificates".into(),
            None,
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "GET",
            "/api/v1/admin/diagnostics".into(),
            None,
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "GET",
            "/api/v1/admin/users".into(),
            None,
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "PATCH",
            format!("/api/v1/admin/users/{t}"),
            Some(json!({"disabled": false})),
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "DELETE",
            format!("/api/v1/admin/users/{t}/sessions"),
            None,
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "GET",
            "/api/v1/admin/audit".into(),
            None,
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "POST",
            format!("/api/v1/admin/users/{t}/reset-sign-in"),
            None,
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "GET",
            "/api/v1/admin/settings".into(),
            None,
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "PATCH",
            "/api/v1/admin/settings".into(),
            Some(json!({"open_signup": true})),
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row(
            "POST",
            "/api/v1/admin/mail-test".into(),
            Some(json!({"to": "owner@example.test"})),
            [200, 404, 404, 404, 404, 404, 404, 401],
        ),
        row("DELETE", "/api/v1/me/sign-in-review".into(), None, me(404)),
        row("GET", "/api/v1/me/recent-boards".into(), None, me(200)),
        row(
            "PATCH",
            "/api/v1/me".into(),
            Some(json!({"display_name": "Renamed"})),
            me(200),
        ),
        row(
            "GET",
            "/api/v1/me".to_string(),
            None,
            [200, 200, 200, 200, 200, 200, 200, 401],
        ),
    ];
    // Run last: it ends each persona's session.
    let logout = row(
        "POST",
        "/api/v1/auth/logout".into(),
        Some(json!({})),
        [204, 204, 204, 204, 204, 204, 204, 401],
    );
    // Every operation in the API document has a row here.
    let doc = anonymous.get("/api/v1/openapi.json").await.1;
    let mut uncovered = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let covered = rows.iter().chain([&logout]).any(|r| {
                r.method.eq_ignore_ascii_case(method)
                    && fits(template, r.path.split('?').next().unwrap_or_default())
            });
            if !covered {
                uncovered.push(format!("{} {template}", method.to_uppercase()));
            }
        }
    }
    assert!(
        uncovered.is_empty(),
        "operations without a row in the matrix: {uncovered:?}"
    );
    let mut failures = Vec::new();
    // Every event type, with only its tag: who may send it is decided by the type before
    // the body is read (so a refused sender learns nothing of its shape). The oracle is the
    // persona's permissions in the project, as the decision reports them.
    let mut events = Vec::new();
    crate::contract::events_in(&doc["components"]["schemas"], &mut events);
    assert!(events.len() > 20, "{events:?}");
    let mut holds: Vec<Option<Vec<String>>> = Vec::new();
    for person in &people {
        let (st, perms) = person
            .call("GET", &format!("/api/v1/projects/{p}/permissions/me"), None)
            .await;
        holds.push((st == StatusCode::OK).then(|| {
            perms["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        }));
    }
    let events_path = format!("/api/v1/projects/{p}/events");
    for (tag, description) in &events {
        let system_only = description.contains("Sent by the gateway only");
        let needs = description
            .split("Needs `")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .unwrap_or_else(|| {
                assert!(system_only, "{tag} names no permission: {description}");
                "(none)"
            });
        for (i, person) in people.iter().enumerate() {
            let (st, body) = person
                .call("POST", &events_path, Some(json!({"type": tag})))
                .await;
            let code = body["error"].as_str().unwrap_or_default();
            let refused = match &holds[i] {
                None => st == StatusCode::NOT_FOUND && code == "not_found",
                Some(_) if system_only => st == StatusCode::FORBIDDEN && code == "forbidden_event",
                Some(h) if !h.iter().any(|x| x == needs) => {
                    st == StatusCode::FORBIDDEN && code == "forbidden"
                }
                // Allowed past the wall: the reducer answers (or a system-only refusal).
                Some(_) => {
                    let wall = st == StatusCode::UNAUTHORIZED
                        || (st == StatusCode::FORBIDDEN && code == "forbidden")
                        || code == "not_found";
                    if wall {
                        failures.push(format!(
                            "event {tag} as {}: {st} {code}, but they hold `{needs}`",
                            PERSONAS[i]
                        ));
                    }
                    true
                }
            };
            if !refused {
                failures.push(format!(
                    "event {tag} as {}: {st} {code}, expected a refusal (needs `{needs}`)",
                    PERSONAS[i]
                ));
            }
        }
        let st = anonymous
            .http
            .post(format!("{}{events_path}", anonymous.base))
            .header("Origin", &anonymous.origin)
            .json(&json!({"type": tag}))
            .send()
            .await
            .unwrap()
            .status();
        if st != StatusCode::UNAUTHORIZED {
            failures.push(format!("event {tag} as anonymous: {st}"));
        }
    }
    for r in &rows {
        failures.extend(check(r, &people, &anonymous).await);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Zero leaks: what each persona sees of the organization's projects.
    let seen = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for (i, expected) in [
        (0, vec!["New", "P"]),
        (1, vec!["New", "P"]),
        (2, vec![]),
        (3, vec!["P"]),
        (4, vec!["P"]),
        (5, vec!["P"]),
    ] {
        let (_, list) = people[i]
            .call("GET", &format!("/api/v1/orgs/{o}/projects"), None)
            .await;
        assert_eq!(seen(&list), expected, "{} sees", PERSONAS[i]);
    }
    // The outsider's search finds nobody from the organization (only exact addresses).
    let (_, found) = people[6].call("GET", "/api/v1/users?q=own", None).await;
    assert_eq!(found, json!([]));
    let (_, perms) = people[4]
        .call("GET", &format!("/api/v1/projects/{p}/permissions/me"), None)
        .await;
    let perms: Vec<&str> = perms["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        perms.contains(&"project:content:write") && !perms.contains(&"project:members:manage"),
        "{perms:?}"
    );
    let (_, perms) = people[5]
        .call("GET", &format!("/api/v1/projects/{p}/permissions/me"), None)
        .await;
    assert!(
        !perms["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "project:content:write")
    );
    let failures = check(&logout, &people, &anonymous).await;
    assert!(failures.is_empty(), "{failures:?}");
}
