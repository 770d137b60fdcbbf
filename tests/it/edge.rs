//! The operational endpoints through the edge, host routing, TLS, and the error format.

use serde_json::Value;

use crate::harness::{Options, Server, ask, client, get_json, raw, read_response, require_cmd};

#[tokio::test(flavor = "multi_thread")]
async fn operational_endpoints_answer_through_the_edge() {
    let server = Server::start();
    let c = client();

    let r = c.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let r = c.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    let subsystems = body["subsystems"].as_array().unwrap();
    let names: Vec<&str> = subsystems
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["database", "app", "edge", "dns", "vpn"]);
    for s in subsystems {
        assert_eq!(s["state"], "running", "{s}");
    }

    let r = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for needle in [
        "demiurge_subsystem_up{subsystem=\"vpn\"} 1",
        "demiurge_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"}",
        "demiurge_process_resident_memory_bytes",
        "demiurge_build_info",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }

    let r = c
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every route the server answers is in the document.
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/v1/status"),
        ("get", "/api/v1/openapi.json"),
        ("post", "/api/v1/auth/signup"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("post", "/api/v1/auth/second-factor"),
        ("get", "/api/v1/me"),
        ("put", "/api/v1/me/password"),
        ("get", "/api/v1/me/sessions"),
        ("delete", "/api/v1/me/sessions/{id}"),
        ("get", "/api/v1/me/tokens"),
        ("post", "/api/v1/me/tokens"),
        ("delete", "/api/v1/me/tokens/{id}"),
        ("get", "/api/v1/me/totp"),
        ("post", "/api/v1/me/totp"),
        ("post", "/api/v1/me/totp/confirm"),
        ("delete", "/api/v1/me/totp"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "openapi lacks {method} {path}"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn container_hosts_get_the_no_such_service_page() {
    let server = Server::start();
    let c = client();
    for host in [
        "x.containers.localhost",
        "jupyter-abc.containers.localhost:8080",
        "X.Containers.LOCALHOST",
    ] {
        let r = c
            .get(server.url("/"))
            .header("Host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{host}");
        assert_eq!(r.headers()["x-demiurge-error"], "no_such_service");
        let page = r.text().await.unwrap();
        assert!(page.contains("No such container service"), "{page}");
    }
    // Not a container host: the app answers.
    let r = c
        .get(server.url("/healthz"))
        .header("Host", "containers.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_get_the_json_error_format() {
    let server = Server::start();
    let r = client()
        .get(server.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_are_embedded_with_cache_headers() {
    let server = Server::start();
    let c = client();
    let page = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    let start = html.find("/assets/app.css?v=").expect("versioned css link");
    let href: String = html[start..].chars().take_while(|c| *c != '"').collect();
    let r = c.get(server.url(&href)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = c
        .get(server.url("/assets/app.css"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c.get(server.url("/assets/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // The icon: linked from every page, and at /favicon.ico where browsers look first.
    let start = html.find("<link rel=\"icon\"").expect("an icon link");
    let link: String = html[start..].chars().take_while(|c| *c != '>').collect();
    assert!(link.contains("/assets/favicon.svg?v="), "{link}");
    for path in ["/favicon.ico", "/assets/favicon.svg"] {
        let r = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "image/svg+xml", "{path}");
        assert!(r.text().await.unwrap().starts_with("<svg"), "{path}");
    }
}

/// TLS on the edge with the self-signed certificate kept in data_dir, checked with curl.
#[tokio::test(flavor = "multi_thread")]
async fn https_listener_serves_the_self_signed_certificate() {
    require_cmd("curl", "curl");
    let server = Server::start_with(Options {
        https: true,
        ..Options::default()
    });
    let https = server.https.unwrap();
    let crt = server.data_dir.join("tls/self-signed.crt");
    assert!(crt.is_file(), "certificate kept in data_dir");
    let run = |host: &str, path: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "-",
                "-w",
                "\n%{http_code} %{http_version}",
                "--http2",
                "--cacert",
            ])
            .arg(&crt)
            .arg("--resolve")
            .arg(format!("{host}:{}:127.0.0.1", https.port()))
            .arg(format!("https://{host}:{}{path}", https.port()))
            .output()
            .expect("curl");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )
    };
    // The certificate verifies for the domain and for container hosts (one wildcard).
    let out = run("localhost", "/healthz");
    assert!(out.ends_with("200 2"), "{out}");
    let out = run("svc.containers.localhost", "/");
    assert!(
        out.contains("No such container service") && out.ends_with("404 2"),
        "{out}"
    );
}

/// The app sees the client through the edge: the address the edge appended (not one the client
/// forged), the scheme and the host.
#[tokio::test(flavor = "multi_thread")]
async fn the_edge_forwards_client_address_scheme_and_host() {
    require_cmd("curl", "curl");
    let server = Server::start_with(Options {
        https: true,
        ..Options::default()
    });
    let r = get_json(
        &server,
        "/api/v1/status",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
        ],
    )
    .await;
    assert_eq!(r["request"]["ip"], "127.0.0.1", "{r}");
    assert_eq!(r["request"]["scheme"], "http", "{r}");
    assert_eq!(r["request"]["host"], server.http.to_string(), "{r}");

    let https = server.https.unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(server.data_dir.join("tls/self-signed.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", https.port()))
        .arg(format!("https://localhost:{}/api/v1/status", https.port()))
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["request"]["scheme"], "https", "{r}");
    assert_eq!(
        r["request"]["host"],
        format!("localhost:{}", https.port()),
        "{r}"
    );
    assert_eq!(r["request"]["ip"], "127.0.0.1", "{r}");
}

/// An HTTP/1.0 client that sends no Host header still gets an answer.
#[tokio::test(flavor = "multi_thread")]
async fn http10_without_host_is_answered() {
    use std::io::{Read, Write};
    let server = Server::start();
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
        "{out}"
    );
    assert!(out.contains("\"ok\""), "{out}");
}

/// Each connection is routed by its first request: the app serves its own connections
/// directly (a later request there for a container host is told 421), the container proxy
/// keeps its connections (a later request there for the app is proxied, with the forwarding
/// headers set by the edge). A first request that arrives in pieces is routed all the same.
#[tokio::test(flavor = "multi_thread")]
async fn connections_are_routed_by_their_first_request() {
    use std::io::Write;
    require_cmd("curl", "curl");
    let server = Server::start_with(Options {
        https: true,
        ..Options::default()
    });
    // An app connection.
    let mut app = raw(server.http);
    assert_eq!(
        ask(
            &mut app,
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        .0,
        200
    );
    let (code, body) = ask(
        &mut app,
        b"GET / HTTP/1.1\r\nHost: x.containers.localhost\r\n\r\n",
    );
    assert_eq!(code, 421, "{body}");
    assert!(body.contains("misdirected_request"), "{body}");
    // Forged forwarding headers mean nothing on a direct connection.
    let (code, body) = ask(
        &mut app,
        b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\r\n",
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["request"]["ip"], "127.0.0.1", "{v}");
    assert_eq!(v["request"]["scheme"], "http", "{v}");

    // A container connection, its first request in two pieces.
    let mut container = raw(server.http);
    container.0.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, body) = ask(&mut container, b"Host: x.containers.localhost\r\n\r\n");
    assert_eq!(code, 404);
    assert!(body.contains("No such container service"), "{body}");
    let (code, body) = ask(
        &mut container,
        b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["request"]["ip"], "127.0.0.1", "{v}");

    // TLS over HTTP/1.1 is served directly too (HTTP/2 goes through the proxy: the test above).
    let https = server.https.unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http1.1",
            "-H",
            "X-Forwarded-Proto: http",
            "--cacert",
        ])
        .arg(server.data_dir.join("tls/self-signed.crt"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", https.port()))
        .arg(format!("https://localhost:{}/api/v1/status", https.port()))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["request"]["scheme"], "https", "{v}");
    assert_eq!(v["request"]["ip"], "127.0.0.1", "{v}");
    assert_eq!(
        v["request"]["host"],
        format!("localhost:{}", https.port()),
        "{v}"
    );
}

/// An answer given before the request body was read (413 for a body over the limit) reaches a
/// client that is still sending the body: the server reads and discards the rest for a moment
/// before closing, rather than resetting the connection under the answer.
#[tokio::test(flavor = "multi_thread")]
async fn an_early_answer_survives_the_rest_of_the_body() {
    use std::io::Write;
    let server = Server::start();
    // A race without the drain (the reset comes while the body is still being written), so a
    // few rounds.
    for _ in 0..8 {
        let (mut w, mut r) = raw(server.http);
        let len = 2 * 1024 * 1024;
        write!(
            w,
            "POST /api/v1/auth/signup HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
        .unwrap();
        // The server answers from the head alone, while the body is still on its way.
        let body = vec![b' '; len];
        w.write_all(&body)
            .expect("the whole body is taken, not cut off by a reset");
        let (code, body) = read_response(&mut r);
        assert_eq!(code, 413, "{body}");
        assert!(body.contains("payload_too_large"), "{body}");
    }
}

/// `[server] trusted_proxies`: a connection from a named proxy has its forwarding headers
/// believed (the client is the last address that is not a trusted proxy, the scheme its
/// `X-Forwarded-Proto`); without the setting the same headers are ignored.
#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let ask = |server: &Server, xff: &'static str| {
        let req = client()
            .get(server.url("/api/v1/status"))
            .header("X-Forwarded-For", xff)
            .header("X-Forwarded-Proto", "https");
        async move {
            let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            (
                v["request"]["ip"].as_str().unwrap_or_default().to_string(),
                v["request"]["scheme"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    let plain = Server::start_with(Options {
        dns: false,
        vpn: false,
        ..Options::default()
    });
    assert_eq!(
        ask(&plain, "203.0.113.9").await,
        ("127.0.0.1".to_string(), "http".to_string())
    );
    let behind = Server::start_with(Options {
        dns: false,
        vpn: false,
        ..Options::default().env("DEMIURGE_SERVER__TRUSTED_PROXIES", "[\"127.0.0.0/8\"]")
    });
    assert_eq!(
        ask(&behind, "203.0.113.9").await,
        ("203.0.113.9".to_string(), "https".to_string())
    );
    assert_eq!(
        ask(&behind, "198.51.100.1, 203.0.113.9").await.0,
        "203.0.113.9",
        "what came before the proxy's own entry may be forged"
    );
    assert_eq!(
        ask(&behind, "203.0.113.9, 127.0.0.5").await.0,
        "203.0.113.9",
        "a chain of trusted proxies is walked through"
    );
}
