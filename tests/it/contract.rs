//! The API as a contract: every path answers the methods its document declares, 405 with
//! `Allow` for the others, OPTIONS with `Allow`, and HEAD wherever GET is.

use std::io::{Read, Write};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{Options, Server};

fn server() -> Server {
    Server::start_with(Options {
        dns: false,
        vpn: false,
        ..Options::default()
    })
}

/// The server's OpenAPI document.
async fn openapi(server: &Server) -> Value {
    crate::harness::http_builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A concrete path for a template (`{id}` becomes `x`).
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('x');
            }
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// For every path of the OpenAPI document: a method it does not declare gets 405 with an
/// `Allow` of exactly its methods (HEAD beside GET, and OPTIONS), and OPTIONS gets 204 with
/// the same `Allow`. Unknown paths stay 404 whatever the method.
#[tokio::test(flavor = "multi_thread")]
async fn undeclared_methods_get_405_with_allow() {
    let server = server();
    let http = crate::harness::http_builder().no_proxy().build().unwrap();
    let doc = openapi(&server).await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 50, "{} paths", paths.len());
    let all = ["get", "post", "put", "patch", "delete"];
    for (template, item) in paths {
        let declared: Vec<&str> = all
            .iter()
            .copied()
            .filter(|m| item.get(*m).is_some())
            .collect();
        let mut allow: Vec<String> = Vec::new();
        for m in ["get", "head", "post", "put", "patch", "delete"] {
            if declared.contains(&m) || (m == "head" && declared.contains(&"get")) {
                allow.push(m.to_uppercase());
            }
        }
        allow.push("OPTIONS".into());
        let allow = allow.join(", ");
        let path = concrete(template);
        let other = all.iter().find(|m| !declared.contains(m)).unwrap();
        let r = http
            .request(other.to_uppercase().parse().unwrap(), server.url(&path))
            .header("Origin", format!("http://{}", server.http))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{other} {path} ({template})"
        );
        assert_eq!(r.headers()["allow"], allow.as_str(), "{other} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed");
        let r = http
            .request(Method::OPTIONS, server.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "OPTIONS {path}");
        assert_eq!(r.headers()["allow"], allow.as_str(), "OPTIONS {path}");
    }
    for m in [Method::GET, Method::POST, Method::OPTIONS] {
        let r = http
            .request(m.clone(), server.url("/api/v1/no-such-thing"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{m}");
    }
    // The UI's pages and the emailed-link page are in the same table.
    let r = http
        .delete(server.url("/signin"))
        .header("Origin", format!("http://{}", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET, HEAD, OPTIONS");
    let r = http
        .request(Method::OPTIONS, server.url("/auth/link"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD, POST, OPTIONS");
}

/// HEAD answers wherever GET does, with GET's status and headers and no body (read off a
/// raw socket, so nothing after the headers could hide).
#[tokio::test(flavor = "multi_thread")]
async fn head_is_answered_wherever_get_is() {
    let server = server();
    let http = crate::harness::http_builder().no_proxy().build().unwrap();
    for path in [
        "/",
        "/signin",
        "/healthz",
        "/api/v1/openapi.json",
        "/api/v1/me",
        "/favicon.ico",
        "/assets/app.css",
    ] {
        let get = http.get(server.url(path)).send().await.unwrap();
        let (status, ctype) = (get.status(), get.headers().get("content-type").cloned());
        let addr = server.http;
        let raw = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", status.as_u16())),
            "HEAD {path}: {head}"
        );
        assert_eq!(body, "", "HEAD {path} sent a body");
        if let Some(ct) = ctype {
            assert!(
                head.to_lowercase()
                    .contains(&format!("content-type: {}", ct.to_str().unwrap())),
                "HEAD {path}: {head}"
            );
        }
    }
}

/// Every (tag, description) of an event schema in `v`.
pub(crate) fn events_in(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let Some(tag) = m
                .get("properties")
                .and_then(|p| p["type"]["enum"].as_array())
                .and_then(|e| e.first())
                .and_then(Value::as_str)
            {
                let d = m.get("description").and_then(Value::as_str).unwrap_or("");
                out.push((tag.to_string(), d.to_string()));
                return;
            }
            m.values().for_each(|x| events_in(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| events_in(x, out)),
        _ => {}
    }
}

/// The events body is every module's events, and each says the permission it needs: the
/// permission the gateway itself checks (a view event needs `whiteboard:views:manage`, a
/// card event `whiteboard:board:edit`, an edge `core-graph:edges:write`).
#[tokio::test(flavor = "multi_thread")]
async fn every_event_names_its_permission() {
    let server = server();
    let doc = openapi(&server).await;
    let mut events = Vec::new();
    events_in(&doc["components"]["schemas"], &mut events);
    assert!(events.len() > 20, "{events:?}");
    for (tag, d) in &events {
        assert!(
            d.contains("Needs `") || d.contains("Sent by the gateway only"),
            "{tag}: {d}"
        );
    }
    let needs = |tag: &str| {
        events
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {tag}"))
    };
    assert!(needs("whiteboard:add-view").contains("Needs `whiteboard:views:manage`."));
    assert!(needs("whiteboard:add-card").contains("Needs `whiteboard:board:edit`."));
    assert!(needs("core-graph:add-edge").contains("Needs `core-graph:edges:write`."));
    assert!(needs("core-graph:add-node").contains("Needs `core-graph:nodes:write`."));
    assert!(needs("gateway:init").contains("Sent by the gateway only"));
}

/// A body the document declares as an object must be one: serde would read a struct from a
/// JSON array (its fields by position), which Schemathesis found accepted.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_must_be_json_objects() {
    let server = server();
    let (b, _) = crate::harness::signed_up(&server, "arrays").await;
    let (st, org) = b
        .post("/api/v1/orgs", serde_json::json!({"name": "Arrays"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{org}");
    let id = org["id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::PATCH, format!("/api/v1/orgs/{id}"), "[null, null]"),
        (
            Method::POST,
            "/api/v1/orgs".to_string(),
            "[\"Named by position\"]",
        ),
        (
            Method::POST,
            "/api/v1/auth/login".to_string(),
            "[\"arrays\", \"correct horse battery\"]",
        ),
        (Method::POST, "/api/v1/orgs".to_string(), "\"a string\""),
    ] {
        let r = b
            .http
            .request(method.clone(), server.url(&path))
            .header("Origin", &b.origin)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let st = r.status();
        let e: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(
            (st, e["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_json")),
            "{method} {path} {body}"
        );
    }
    let (_, still) = b.get(&format!("/api/v1/orgs/{id}")).await;
    assert_eq!(still["name"], "Arrays", "nothing changed");
}

/// Error codes are one enum in the document (`ErrorCode`, each with its meaning), which the
/// error body refers to; what the server answers, from any layer (the HTTP layer, sign-in,
/// tenancy, a reducer), is one of them.
#[tokio::test(flavor = "multi_thread")]
async fn error_codes_are_one_documented_enum() {
    let server = server();
    let doc = openapi(&server).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let described = schemas["ErrorCode"]["description"].as_str().unwrap();
    for c in &codes {
        assert!(
            described.contains(&format!("- `{c}`: ")),
            "{c} is not explained"
        );
    }
    let (b, _) = crate::harness::signed_up(&server, "codes").await;
    let (_, org) = b
        .post("/api/v1/orgs", serde_json::json!({"name": "Codes"}))
        .await;
    let org = org["id"].as_str().unwrap();
    let (_, p) = b
        .post(
            &format!("/api/v1/orgs/{org}/projects"),
            serde_json::json!({"name": "P"}),
        )
        .await;
    let p = p["id"].as_str().unwrap();
    let anonymous = crate::harness::Browser::new(&server);
    let mut answered = Vec::new();
    for (who, method, path, body) in [
        (&anonymous, Method::GET, "/api/v1/me".to_string(), None),
        (&b, Method::GET, "/api/v1/nowhere".to_string(), None),
        (&b, Method::DELETE, "/api/v1/orgs".to_string(), None),
        (
            &b,
            Method::POST,
            "/api/v1/orgs".to_string(),
            Some(serde_json::json!({"name": 5})),
        ),
        (
            &b,
            Method::POST,
            format!("/api/v1/projects/{p}/events"),
            Some(serde_json::json!({"type": "core-graph:delete-node", "id": "none"})),
        ),
        (
            &b,
            Method::POST,
            format!("/api/v1/projects/{p}/undo"),
            Some(serde_json::json!({})),
        ),
    ] {
        let mut req = who
            .http
            .request(method, format!("{}{path}", who.base))
            .header("Origin", &who.origin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        answered.push(body["error"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        answered,
        [
            "not_authenticated",
            "not_found",
            "method_not_allowed",
            "invalid_json",
            "node_not_found",
            "nothing_to_undo"
        ]
    );
    for c in &answered {
        assert!(codes.contains(&c.as_str()), "{c} is not in ErrorCode");
    }
}

/// Operation ids are unique, and each create's 201 links to the operations on what it made
/// (in OpenAPI's own spelling: `operationId`), with the id taken from the answer: what a
/// client, and Schemathesis's stateful phase, follows from where an id is made to its uses.
/// Anonymous callers are told which operations are open to them (`security: [{}]`); every
/// other operation lists 401.
#[tokio::test(flavor = "multi_thread")]
async fn operations_link_and_say_who_may_call_them() {
    let server = server();
    let doc = openapi(&server).await;
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            assert!(ids.insert(id.to_string()), "{id} twice ({method} {path})");
            let open = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r == &serde_json::json!({})));
            assert!(
                open || op["responses"].get("401").is_some(),
                "{method} {path} needs a credential but does not list 401"
            );
        }
    }
    assert!(
        doc["paths"]["/healthz"]["get"]["security"]
            .as_array()
            .is_some_and(|s| s.contains(&serde_json::json!({})))
    );
    let links = &doc["paths"]["/api/v1/orgs"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["get_org"]["operationId"], "get_org", "{links}");
    assert_eq!(links["get_org"]["parameters"]["org"], "$response.body#/id");
    let links = &doc["paths"]["/api/v1/orgs/{org}/roles"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["update_role"]["parameters"]["org"],
        "$request.path.org"
    );
    assert_eq!(
        links["update_role"]["parameters"]["id"],
        "$response.body#/id"
    );
    let links = &doc["paths"]["/api/v1/orgs/{org}/projects"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["event"]["parameters"]["id"], "$response.body#/id");
    // Only the names OpenAPI uses.
    assert!(!doc.to_string().contains("\"operation_id\""));
}

/// U+0000 cannot be stored in PostgreSQL text: a body or a path that holds one is refused
/// with a 4xx on both backends, never a 500 (Schemathesis found the 500 on PostgreSQL).
#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_are_refused_not_a_server_error_sqlite() {
    nul_characters(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_are_refused_not_a_server_error_postgres() {
    nul_characters(true).await;
}

async fn nul_characters(pg: bool) {
    use crate::harness::team::{options, pg_url, team};
    let server = crate::harness::Server::start_with(options(pg_url(pg).await, &[]));
    let t = team(&server).await;
    let (st, body) = t
        .owner
        .post(
            &format!("/api/v1/projects/{}/members", t.pid),
            serde_json::json!({"user": "\u{15}j", "role": "\u{0}P"}),
        )
        .await;
    assert_eq!(st.as_u16(), 422, "{body}");
    assert_eq!(body["error"], "invalid_input", "{body}");
    assert!(
        body["message"].as_str().unwrap().starts_with("role"),
        "{body}"
    );
    let (st, body) = t
        .owner
        .post("/api/v1/orgs", serde_json::json!({"name": "a\u{0}b"}))
        .await;
    assert_eq!(st.as_u16(), 422, "{body}");
    for path in [
        "/api/v1/projects/%00".to_string(),
        format!("/api/v1/orgs/{}/members/%00x", t.org),
        "/api/v1/users/%00".to_string(),
        "/api/v1/me/sessions/a%00".to_string(),
    ] {
        let (st, body) = t.owner.get(&path).await;
        assert_eq!(st.as_u16(), 404, "{path}: {body}");
    }
    let (st, body) = t.owner.get("/api/v1/users?q=%00a").await;
    assert_eq!(st.as_u16(), 422, "{body}");
}
