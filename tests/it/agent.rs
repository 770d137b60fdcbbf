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
        let n = std::fs::read_dir(home).map(|d| d.count()).unwrap_or(0);
        let log = home.join(format!("agent-{n}.log"));
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
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", 9000), H).serve_forever()
"#;

/// Through the edge and the tunnel, in Chromium: the guard sends an anonymous visitor to
/// sign in; a project member signs in on the way and reaches the app, which sees who they
/// are in `X-Forwarded-*` headers (never the ones the client sent) and none of the edge's
/// or the main domain's cookies; an outsider and a viewer (no `open` permission) are
/// refused; a stopped agent's URL shows the offline page; a deleted container's URL is a
/// 404 at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_opens_a_container_service_through_the_guard_in_chromium() {
    crate::harness::chromium::require_browser();
    require_cmd("python3", "python3");
    let host = Host::new();
    let mut opts = options(None, &[("DEMIURGE_CONTAINERS__HEARTBEAT", "1s")]);
    opts.vpn = true;
    opts.listen = Some(Ipv4Addr::UNSPECIFIED);
    opts.vpn_endpoint_ip = Some(host.server_ip);
    let server = Server::start_with(opts);
    let port = server.http.port();
    let t = team(&server).await;
    let (st, out) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:create", "name": "Echo", "image": "custom",
                   "image_ref": "python:3.11-slim", "services": [{"name": "web", "port": 9000}]}),
        )
        .await;
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
    let app = dir.path().join("echo.py");
    std::fs::write(&app, ECHO_APP).unwrap();
    let mut web = host.ns.exec(&["python3"]);
    let mut web = web
        .arg(&app)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let volume = dir.path().join("volume");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // The agent reaches the server over the veth pair; people's browsers on loopback.
    let agent_url = format!("http://{}:{port}", host.server_ip);
    let mut agent = Agent::start(
        &host,
        &agent_url,
        e["token"].as_str(),
        &volume,
        e["command"].as_str().unwrap(),
        &home,
    );
    let logs = |a: &Agent| format!("agent:\n{}\nserver:\n{}", a.logs(), server.logs());
    until(
        &t,
        &id,
        Duration::from_secs(30),
        "running",
        || logs(&agent),
        |c| c["state"] == "running" && c["health"]["web"] == true,
    )
    .await;

    let main = format!("http://localhost:{port}");
    let service = format!("http://{label}.containers.localhost:{port}/hello?x=1");
    let shots = crate::harness::chromium::artifacts_dir("containers");
    let who = |name: &str| json!({"login": name, "password": "correct horse battery"});
    let args = json!({
        "main": main, "service": service,
        "member": who("editor"), "viewer": who("viewer"), "outsider": who("outsider"),
        "shots": shots,
    });
    let mut script =
        crate::harness::chromium::Script::start("ui_containers.mjs", &[&args.to_string()])
            .quoting_logs_of(&server);
    script.expect("PHASE", Duration::from_secs(90));
    script.expect("PHASE", Duration::from_secs(60));
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
    let (st, _) = t
        .event(
            &t.editor,
            json!({"type": "user-containers:delete", "id": id}),
        )
        .await;
    assert_eq!(st.as_u16(), 200);
    let gone = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .header("Host", format!("{label}.containers.localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 404);
    let _ = web.kill();
    let _ = web.wait();
}
