//! ACME against Pebble: the domain by HTTP-01 and `*.containers.<domain>` by DNS-01 with
//! Pebble's validation authority asking our DNS server; a CA that is down at first; HTTPS by
//! default once a certificate exists; a restart that orders nothing; a renewal that swaps the
//! certificate under a download in progress.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::pebble::{Pebble, serial_of, served_certificate};
use crate::harness::{Browser, Options, Server, require_cmd, signed_up};

const DOMAIN: &str = "demiurge.test";

fn acme_options(pebble: &Pebble) -> Options {
    Options {
        https: true,
        vpn: false,
        ..Options::default()
    }
    .env("DEMIURGE_SERVER__DOMAIN", DOMAIN)
    .env("DEMIURGE_ACME__EMAIL", "ops@demiurge.test")
    .env("DEMIURGE_ACME__DIRECTORY", &pebble.directory())
    .env(
        "DEMIURGE_ACME__CA_ROOT",
        &pebble.api_root().display().to_string(),
    )
    .env("DEMIURGE_ACME__RETRY_AFTER", "300ms")
}

async fn certificates(admin: &Browser) -> Value {
    let (st, body) = admin.get("/api/v1/admin/certificates").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body
}

fn cert<'a>(all: &'a Value, name: &str) -> &'a Value {
    all["certificates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no certificate `{name}` in {all}"))
}

/// Polls the admin API until `done` holds (bounded).
async fn until(admin: &Browser, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let all = certificates(admin).await;
        if done(&all) {
            return all;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{what} did not happen: {all}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `curl` over plain HTTP to `host` (resolved to the edge): status, Location and headers.
fn plain(server: &Server, host: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-m",
            "10",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", server.http.port()))
        .arg(format!("http://{host}:{}{path}", server.http.port()))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (code, location) = text.split_once(' ').unwrap_or((&text, ""));
    (code.parse().unwrap_or(0), location.to_string())
}

/// The CA is down at first: the server retries with backoff and says why; once Pebble is up,
/// the main name comes by HTTP-01 and the wildcard by DNS-01 (our DNS answers Pebble), curl
/// with Pebble's root accepts both, the TXT record is gone again, plain HTTP redirects to
/// HTTPS (challenges excepted) and HTTPS answers carry HSTS. After a restart the same
/// certificate is served at once, from the database, and nothing is ordered.
#[tokio::test(flavor = "multi_thread")]
async fn certificates_come_from_the_ca_by_http01_and_dns01_sqlite() {
    certificates_by_http01_and_dns01(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_come_from_the_ca_by_http01_and_dns01_postgres() {
    certificates_by_http01_and_dns01(true).await;
}

async fn certificates_by_http01_and_dns01(postgres: bool) {
    require_cmd("curl", "curl");
    require_cmd("openssl", "openssl");
    require_cmd("dig", "bind9-dnsutils");
    let mut pebble = Pebble::prepare();
    let mut opts = acme_options(&pebble);
    if postgres {
        opts = opts.env(
            "DEMIURGE_DATABASE__URL",
            &crate::harness::fresh_pg_database().await,
        );
    }
    let mut server = Server::start_with(opts);
    let https = server.https.unwrap();
    let dns = server.dns.unwrap();
    let (admin, _) = signed_up(&server, "admin").await;

    // The CA is down: retries, a visible error, and the server keeps serving.
    let down = until(&admin, "failed orders", |all| {
        cert(all, "main")["failures"].as_u64() >= Some(2)
    })
    .await;
    let main = cert(&down, "main");
    assert_eq!(main["state"], "failing", "{down}");
    assert!(
        main["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("localhost")),
        "the error names the CA: {down}"
    );
    assert_eq!(down["acme"], true);
    assert_eq!(
        crate::harness::http_get_status(server.http, "/healthz"),
        Some(200)
    );
    // Until a certificate is issued, plain HTTP is answered as it is.
    assert_eq!(plain(&server, DOMAIN, "/healthz").0, 200);

    let t0 = Instant::now();
    pebble.start(dns, server.http.port(), None);
    let all = until(&admin, "both certificates", |all| {
        cert(all, "main")["state"] == "valid" && cert(all, "containers")["state"] == "valid"
    })
    .await;
    let took = t0.elapsed();
    eprintln!("both certificates {took:?} after the CA came up");
    for name in ["main", "containers"] {
        let c = cert(&all, name);
        assert!(
            c["issuer"].as_str().is_some_and(|i| i.contains("Pebble")),
            "{all}"
        );
        assert_eq!(c["failures"], 0, "{all}");
        assert_eq!(c["last_error"], Value::Null, "{all}");
        assert!(
            c["not_after"].is_string() && c["next_attempt"].is_string(),
            "{all}"
        );
    }
    assert_eq!(
        cert(&all, "containers")["domains"][0],
        "*.containers.demiurge.test"
    );

    // Both names get the issued certificate from the edge, trusted through Pebble's root.
    let root = pebble.issuing_root();
    let (main_seen, main_serial) =
        served_certificate(https, DOMAIN, &root).unwrap_or_else(|e| panic!("the main name: {e}"));
    assert!(main_seen.contains("Pebble"), "{main_seen}");
    let (_, wild_serial) = served_certificate(https, "x1.containers.demiurge.test", &root)
        .unwrap_or_else(|e| panic!("a container name: {e}"));
    assert_ne!(main_serial, wild_serial, "two certificates");
    // The DNS-01 record was taken down again.
    let txt = Command::new("dig")
        .arg(format!("@{}", dns.ip()))
        .args([
            "-p",
            &dns.port().to_string(),
            "+short",
            "_acme-challenge.containers.demiurge.test",
            "TXT",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&txt.stdout).trim(), "");

    // HTTPS by default now: plain HTTP for the names redirects, challenges do not.
    let (code, to) = plain(&server, DOMAIN, "/projects/x?a=1");
    assert_eq!(code, 308);
    assert_eq!(
        to,
        format!("https://{DOMAIN}:{}/projects/x?a=1", https.port())
    );
    let (code, to) = plain(&server, "x1.containers.demiurge.test", "/lab");
    assert_eq!(
        (code, to.as_str()),
        (
            308,
            format!("https://x1.containers.demiurge.test:{}/lab", https.port()).as_str()
        )
    );
    assert_eq!(
        plain(&server, DOMAIN, "/.well-known/acme-challenge/unknown").0,
        404
    );
    // A client inside (an address, not the name) is answered over HTTP as before.
    assert_eq!(
        crate::harness::http_get_status(server.http, "/healthz"),
        Some(200)
    );
    let head = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&root)
        .arg("--resolve")
        .arg(format!("{DOMAIN}:{}:127.0.0.1", https.port()))
        .arg(format!("https://{DOMAIN}:{}/healthz", https.port()))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    // The metrics say when each expires.
    let metrics = admin
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("demiurge_certificate_not_after_seconds{certificate=\"main\"}")
            && metrics.contains(
                "demiurge_acme_orders_total{certificate=\"containers\",result=\"issued\"} 1"
            ),
        "{metrics}"
    );
    // Not for anyone else.
    let (someone, _) = signed_up(&server, "someone").await;
    assert_eq!(
        someone.get("/api/v1/admin/certificates").await.0,
        StatusCode::NOT_FOUND
    );

    // A restart: the same certificates at once, from the database; nothing is ordered.
    let orders = pebble.orders();
    server.restart();
    assert_eq!(serial_of(https, DOMAIN), main_serial);
    assert_eq!(serial_of(https, "x2.containers.demiurge.test"), wild_serial);
    // (The admin's session is in the database: it outlives the restart.)
    let after = certificates(&admin).await;
    assert_eq!(cert(&after, "main")["state"], "valid", "{after}");
    assert_eq!(
        cert(&after, "main")["issued_at"],
        cert(&all, "main")["issued_at"]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pebble.orders(), orders, "a restart ordered again");
}

/// A certificate that lives 12 s is renewed with a third of its life left: the new one is
/// served to new connections while a slow download on a connection opened before completes.
/// A CA that forgot the account gets a new one at the next renewal.
#[tokio::test(flavor = "multi_thread")]
async fn a_renewal_swaps_the_certificate_under_an_open_connection() {
    require_cmd("curl", "curl");
    require_cmd("openssl", "openssl");
    let mut pebble = Pebble::prepare();
    let server = Server::start_with(acme_options(&pebble).env("DEMIURGE_ACME__WILDCARD", "false"));
    let https = server.https.unwrap();
    let (admin, _) = signed_up(&server, "admin").await;
    pebble.start(
        server.dns.unwrap(),
        server.http.port(),
        Some(Duration::from_secs(12)),
    );
    let first = until(&admin, "the first certificate", |all| {
        cert(all, "main")["state"] == "valid"
    })
    .await;
    let root = pebble.issuing_root();
    let (_, serial) = served_certificate(https, DOMAIN, &root).expect("first certificate");
    assert!(
        first["certificates"].as_array().unwrap().len() == 1,
        "{first}"
    );

    // A slow download (about 10 s), twice on one connection, started on the first certificate.
    let url = format!("https://{DOMAIN}:{}/api/v1/openapi.json", https.port());
    let size = {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&root)
            .arg("--resolve")
            .arg(format!("{DOMAIN}:{}:127.0.0.1", https.port()))
            .arg(&url)
            .output()
            .unwrap();
        out.stdout.len()
    };
    let rate = (size / 5).max(1024);
    let download = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{num_connects}\n",
        ])
        .args(["--limit-rate", &rate.to_string(), "--cacert"])
        .arg(&root)
        .arg("--resolve")
        .arg(format!("{DOMAIN}:{}:127.0.0.1", https.port()))
        .arg(&url)
        .arg(&url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let issued_at = cert(&first, "main")["issued_at"].clone();
    let renewed = until(&admin, "a renewal", |all| {
        cert(all, "main")["issued_at"] != issued_at
    })
    .await;
    assert_eq!(cert(&renewed, "main")["state"], "valid", "{renewed}");
    let (_, new_serial) = served_certificate(https, DOMAIN, &root).expect("renewed certificate");
    assert_ne!(
        new_serial, serial,
        "new connections get the new certificate"
    );
    let out = download.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the download broke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    let sizes: Vec<&str> = seen.lines().collect();
    assert_eq!(sizes.len(), 2, "{seen}");
    for line in &sizes {
        let (bytes, connects) = line.split_once(' ').unwrap();
        assert_eq!(bytes.parse::<usize>().unwrap(), size, "{seen}");
        let _ = connects;
    }
    // The second request reused the connection opened on the old certificate.
    assert_eq!(sizes[1].split(' ').nth(1), Some("0"), "{seen}");

    // The CA forgets every account (a test CA restarted, a reset staging CA): the next
    // renewal finds ours gone, makes a new one and renews.
    pebble.stop();
    pebble.start(
        server.dns.unwrap(),
        server.http.port(),
        Some(Duration::from_secs(12)),
    );
    let before = cert(&renewed, "main")["issued_at"].clone();
    let again = until(&admin, "a renewal with a new account", |all| {
        cert(all, "main")["issued_at"] != before && cert(all, "main")["state"] == "valid"
    })
    .await;
    assert!(
        served_certificate(https, DOMAIN, &pebble.issuing_root()).is_ok(),
        "the new CA's certificate is served: {again}"
    );
}
