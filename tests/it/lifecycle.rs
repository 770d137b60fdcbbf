//! Start, stop and failure behaviour of the process, and the command line.

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Server, bin, free_port, loopback};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sigint_stop_cleanly_within_five_seconds() {
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let mut server = Server::start();
        let (http, dns, vpn) = (server.http, server.dns.unwrap(), server.vpn.unwrap());
        let (status, took) = server
            .signal_and_wait(sig, Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "{sig} did not stop the server within 5 s:\n{}",
                    server.logs()
                )
            });
        assert!(status.success(), "{sig}: exit {status}:\n{}", server.logs());
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Every socket is closed: the ports can be taken again.
        TcpListener::bind(http).expect("edge port released");
        UdpSocket::bind(dns).expect("dns udp port released");
        TcpListener::bind(dns).expect("dns tcp port released");
        UdpSocket::bind(vpn).expect("vpn port released");
    }
}

/// Starts `demiurge serve` expecting it to fail; returns its stderr.
fn serve_expecting_failure(env: &[(String, String)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut child = Command::new(bin())
        .arg("serve")
        .env_clear()
        .env("DEMIURGE_SERVER__DATA_DIR", data.path().join("data"))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "a failed start must exit non-zero");
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve kept running although it could not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn ports_env(http: u16, dns: u16, vpn: u16) -> Vec<(String, String)> {
    vec![
        ("DEMIURGE_EDGE__HTTP".into(), loopback(http).to_string()),
        ("DEMIURGE_DNS__LISTEN".into(), loopback(dns).to_string()),
        ("DEMIURGE_VPN__LISTEN".into(), loopback(vpn).to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_fails_with_a_message_naming_subsystem_and_address() {
    let (http, dns, vpn) = (free_port(), free_port(), free_port());

    let taken = TcpListener::bind(loopback(http)).unwrap();
    let err = serve_expecting_failure(&ports_env(http, dns, vpn));
    assert!(
        err.contains("edge: cannot listen on") && err.contains(&loopback(http).to_string()),
        "{err}"
    );
    drop(taken);
    // The failed start left nothing bound.
    UdpSocket::bind(loopback(dns)).expect("dns port free after failed start");

    let taken = UdpSocket::bind(loopback(dns)).unwrap();
    let err = serve_expecting_failure(&ports_env(http, dns, vpn));
    assert!(
        err.contains("dns: cannot listen on") && err.contains(&loopback(dns).to_string()),
        "{err}"
    );
    drop(taken);
    TcpListener::bind(loopback(http)).expect("edge port free after failed start");

    let taken = UdpSocket::bind(loopback(vpn)).unwrap();
    let err = serve_expecting_failure(&ports_env(http, dns, vpn));
    assert!(
        err.contains("vpn: cannot listen on") && err.contains(&loopback(vpn).to_string()),
        "{err}"
    );
    drop(taken);
    TcpListener::bind(loopback(http)).expect("edge port free after failed start");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_is_refused_naming_the_key() {
    let err = serve_expecting_failure(&[("DEMIURGE_EDGE__HTTPZ".into(), "127.0.0.1:1".into())]);
    assert!(err.contains("httpz"), "{err}");
    let err = serve_expecting_failure(&[("DEMIURGE_DNS__PUBLIC_IPV4".into(), "not-an-ip".into())]);
    assert!(err.contains("dns.public_ipv4"), "{err}");
    let err = serve_expecting_failure(&[("DEMIURGE_DATABASE__URL".into(), "mysql://x".into())]);
    assert!(err.contains("database.url"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demiurge.toml");
    std::fs::write(&file, "[edge]\nhttp = \"127.0.0.1:1\"\nbogus = true\n").unwrap();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&file)
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bogus") && err.contains("demiurge.toml"),
        "{err}"
    );
}

#[test]
fn help_and_version_on_every_command() {
    let version = env!("CARGO_PKG_VERSION");
    for args in [
        vec![],
        vec!["serve"],
        vec!["migrate"],
        vec!["admin"],
        vec!["admin", "vpn"],
        vec!["admin", "vpn", "add-peer"],
        vec!["admin", "vpn", "list-peers"],
        vec!["admin", "vpn", "remove-peer"],
        vec!["admin", "create-user"],
        vec!["admin", "reset-password"],
    ] {
        let out = Command::new(bin())
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: demiurge"),
            "{args:?}"
        );
        let out = Command::new(bin())
            .args(&args)
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?} --version");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(version),
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(bin())
            .arg("migrate")
            .env_clear()
            .env("DEMIURGE_SERVER__DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = String::from_utf8_lossy(&first.stdout);
    let dirs = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(
        text.starts_with(&format!("{dirs} migration(s) applied on sqlite")),
        "{text}"
    );
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).starts_with("0 migration(s) applied"));
}

/// A restart on the same data directory keeps its keys and database.
#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_the_data_directory() {
    let mut server = Server::start();
    let key = std::fs::read(server.data_dir.join("vpn/server.key")).unwrap();
    server.restart();
    assert_eq!(
        std::fs::read(server.data_dir.join("vpn/server.key")).unwrap(),
        key,
        "server key kept"
    );
    assert_eq!(
        crate::harness::http_get_status(server.http, "/readyz"),
        Some(200)
    );
}
