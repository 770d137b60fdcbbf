//! The VPN with a real WireGuard client: wireguard-go + wg-quick inside a network namespace
//! the test makes, with the server in the same namespace (PEERS.md, "recommended topology").

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::{Options, Server, bin, require_cmd, require_root};

/// A network namespace, deleted (with whatever runs in it) when dropped.
pub(crate) struct Netns {
    pub(crate) name: String,
    pub(crate) wg_conf: Option<std::path::PathBuf>,
}

impl Netns {
    pub(crate) fn new() -> Netns {
        let name = format!("dmg{:06x}", rand::random::<u32>() & 0xff_ffff);
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns {
            name,
            wg_conf: None,
        }
    }

    pub(crate) fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(conf) = &self.wg_conf {
            let _ = self.exec(&["wg-quick", "down"]).arg(conf).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub(crate) fn run_ok(c: &mut Command) -> Output {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn require_wireguard() {
    require_root("network namespaces and wireguard-go need it");
    require_cmd("ip", "iproute2");
    require_cmd("wireguard-go", "wireguard-go");
    require_cmd("wg-quick", "wireguard-tools");
    require_cmd("curl", "curl");
}

#[tokio::test(flavor = "multi_thread")]
async fn wireguard_client_reaches_the_app_through_the_tunnel() {
    require_wireguard();
    let mut ns = Netns::new();
    let server = Server::start_with(Options {
        netns: Some(ns.name.clone()),
        dns: false,
        ..Options::default()
    });

    // Added while the server runs: it must pick the peer up without a restart.
    let out = run_ok(&mut server.command(&["admin", "vpn", "add-peer", "laptop"]));
    let conf = String::from_utf8(out.stdout).unwrap();
    assert!(
        conf.contains("[Interface]") && conf.contains("PrivateKey = "),
        "{conf}"
    );
    assert!(conf.contains("Address = 10.88.0.2/32"), "{conf}");
    assert!(conf.contains("AllowedIPs = 10.88.0.0/16"), "{conf}");
    assert!(
        conf.contains(&format!("Endpoint = {}", server.vpn.unwrap())),
        "{conf}"
    );

    // The file name is the interface name (unique: the wireguard-go UAPI socket is global).
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join(format!("{}.conf", ns.name));
    std::fs::write(&conf_path, &conf).unwrap();
    run_ok(
        ns.exec(&[
            "env",
            "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
            "wg-quick",
            "up",
        ])
        .arg(&conf_path),
    );
    ns.wg_conf = Some(conf_path.clone());

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let out = ns
            .exec(&["curl", "-s", "-m", "3", "http://10.88.0.1/healthz"])
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && body.contains("\"ok\"") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no answer through the tunnel: {body}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    let show = run_ok(&mut ns.exec(&["wg", "show", &ns.name, "latest-handshakes"]));
    let handshakes = String::from_utf8_lossy(&show.stdout);
    let ts: u64 = handshakes
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    assert!(ts > 0, "no handshake recorded: {handshakes}");

    // A larger response arrives intact through the tunnel (the LiveView script, ~40 KB).
    let direct =
        run_ok(&mut ns.exec(&["curl", "-s", "-m", "5", &server.url("/ui/liveview.js")])).stdout;
    let tunneled =
        run_ok(&mut ns.exec(&["curl", "-s", "-m", "5", "http://10.88.0.1/ui/liveview.js"])).stdout;
    assert!(direct.len() > 10_000);
    assert_eq!(direct, tunneled);

    // A peer is not on the server's machine: no metrics, no subsystem details (paths,
    // ports); a client on the machine gets both.
    let tunneled = |path: &str| {
        let out = run_ok(&mut ns.exec(&[
            "curl",
            "-s",
            "-m",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("http://10.88.0.1{path}"),
        ]));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let m = tunneled("/metrics");
    assert!(m.ends_with("\n403") && m.contains("operators_only"), "{m}");
    let st = tunneled("/api/v1/status");
    let st: serde_json::Value = serde_json::from_str(st.rsplit_once('\n').unwrap().0).unwrap();
    assert_eq!(st["request"]["ip"], "10.88.0.2", "{st}");
    let subsystems = st["subsystems"].as_array().unwrap();
    assert!(!subsystems.is_empty());
    assert!(subsystems.iter().all(|s| s["detail"] == ""), "{st}");
    let local = run_ok(&mut ns.exec(&["curl", "-s", "-m", "5", &server.url("/api/v1/status")]));
    let local: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert!(
        local["subsystems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["detail"] != ""),
        "{local}"
    );

    // The peer is listed, and the second peer gets the next address.
    let list = run_ok(&mut server.command(&["admin", "vpn", "list-peers"]));
    assert!(String::from_utf8_lossy(&list.stdout).contains("laptop\t10.88.0.2\t"));
    let out = run_ok(&mut server.command(&["admin", "vpn", "add-peer", "phone"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Address = 10.88.0.3/32"));
    let dup = server
        .command(&["admin", "vpn", "add-peer", "phone"])
        .output()
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
}

/// With no configuration at all, `demiurge serve` runs on the defaults and prints the URL.
/// Run in a fresh network namespace so the default ports are surely free.
#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_with_no_configuration() {
    require_root("a network namespace keeps the default ports free");
    require_cmd("curl", "curl");
    require_cmd("dig", "bind9-dnsutils");
    let ns = Netns::new();
    let cwd = tempfile::tempdir().unwrap();
    let child = ns
        .exec(&[bin().to_str().unwrap(), "serve"])
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = ns
            .exec(&["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/readyz"])
            .output()
            .unwrap();
        if ok.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready on the default address"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cwd.path().join("data/demiurge.db").is_file(),
        "SQLite in ./data by default"
    );
    let dns = run_ok(&mut ns.exec(&[
        "dig",
        "@127.0.0.1",
        "-p",
        "5353",
        "+short",
        "localhost",
        "A",
    ]));
    assert_eq!(String::from_utf8_lossy(&dns.stdout).trim(), "127.0.0.1");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Demiurge is running at http://localhost:8080/"),
        "{stdout}"
    );
}
