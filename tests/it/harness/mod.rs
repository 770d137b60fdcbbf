//! The one test harness: starts the real `demiurge` binary on free loopback ports with a
//! temporary data directory, waits until it is ready, and gives the tests its addresses.
//! Also: free ports, a fresh PostgreSQL database per test, and checks that peers are installed.

#![allow(dead_code)]

pub mod browser;
pub mod chromium;
pub mod pebble;
pub mod peers;
pub mod team;
pub mod yjs;

pub use self::browser::{Browser, signed_up};

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const INSTALL_HINT: &str =
    "run scripts/install-deps.sh --test (or scripts/test.sh, which does it)";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_demiurge"))
}

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The kernel's range of ephemeral ports (the local ports of outgoing connections).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A port free for both TCP and UDP on 127.0.0.1, never handed out twice in this process,
/// and outside the kernel's ephemeral range: a server restarted on the same ports must not
/// find one taken by some client's outgoing connection in between (which once failed CI).
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    let (low, high) = ephemeral_range();
    // Below the ephemeral range when it leaves room, else above it.
    let (from, to) = if low > 11_000 {
        (10_000, low - 1)
    } else {
        (high.saturating_add(1).max(1024), u16::MAX)
    };
    for _ in 0..500 {
        let port = rand::random_range(from..=to);
        if used.contains(&port) {
            continue;
        }
        let (Ok(_t), Ok(_u)) = (
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)),
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)),
        ) else {
            continue;
        };
        used.insert(port);
        return port;
    }
    panic!("no free port found on 127.0.0.1");
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Fails the test with an install hint when a peer program is missing.
pub fn require_cmd(cmd: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{cmd}` is not installed: apt-get install {package}, or {INSTALL_HINT}"
    );
}

pub fn require_root(why: &str) {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "this test needs root ({why}); CI runs as root");
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Options {
    pub env: Vec<(String, String)>,
    pub https: bool,
    pub dns: bool,
    pub vpn: bool,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    /// Listen on this address instead of loopback (a veth address, for a "container" in a
    /// network namespace to reach the server).
    pub listen: Option<Ipv4Addr>,
    /// The address peers send WireGuard packets to (`[vpn] endpoint`, with the VPN's port).
    pub vpn_endpoint_ip: Option<Ipv4Addr>,
    /// Keep the data directory of an earlier server (for restarts).
    pub data_dir: Option<PathBuf>,
    pub ready_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            https: false,
            dns: true,
            vpn: true,
            netns: None,
            listen: None,
            vpn_endpoint_ip: None,
            data_dir: None,
            ready_timeout: Duration::from_secs(60),
        }
    }
}

impl Options {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

pub struct Server {
    child: Option<Child>,
    pub opts: Options,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub dns: Option<SocketAddr>,
    pub vpn: Option<SocketAddr>,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    log: PathBuf,
    out: PathBuf,
    pub startup: Duration,
}

impl Server {
    /// The setup code while the server has no account (as `demiurge serve` printed it).
    pub fn setup_code(&self) -> Option<String> {
        std::fs::read_to_string(self.data_dir.join("setup-code"))
            .ok()
            .map(|c| c.trim().to_string())
    }

    pub fn start() -> Server {
        Self::start_with(Options::default())
    }

    /// A server on a fresh PostgreSQL database; returns it and the database URL.
    pub async fn start_on_postgres() -> (Server, String) {
        let url = fresh_pg_database().await;
        let server = Self::start_with(Options::default().env("DEMIURGE_DATABASE__URL", &url));
        (server, url)
    }

    /// Runs `demiurge <args>` with this server's environment; panics with its stderr on failure.
    pub fn command_ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.command(args).output().expect("spawn demiurge");
        assert!(
            out.status.success(),
            "demiurge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn start_with(opts: Options) -> Server {
        let (tmp, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("demiurge-it-")
                    .tempdir()
                    .expect("tempdir");
                let d = t.path().join("data");
                (Some(t), d)
            }
        };
        let ip = opts.listen.unwrap_or(Ipv4Addr::LOCALHOST);
        let at = |port| SocketAddr::from((ip, port));
        let http = at(free_port());
        let https = opts.https.then(|| at(free_port()));
        let dns = opts.dns.then(|| at(free_port()));
        let vpn = opts.vpn.then(|| at(free_port()));
        let mut s = Server {
            child: None,
            opts,
            http,
            https,
            dns,
            vpn,
            data_dir,
            _tmp: tmp,
            log: PathBuf::new(),
            out: PathBuf::new(),
            startup: Duration::ZERO,
        };
        s.spawn_and_wait();
        s
    }

    /// The environment of this server's process (ports, data dir, extra variables).
    pub fn env(&self) -> Vec<(String, String)> {
        let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let mut env = vec![
            (
                "DEMIURGE_SERVER__DATA_DIR".to_string(),
                self.data_dir.display().to_string(),
            ),
            ("DEMIURGE_EDGE__HTTP".into(), self.http.to_string()),
            ("DEMIURGE_EDGE__HTTPS".into(), addr(self.https)),
            ("DEMIURGE_DNS__LISTEN".into(), addr(self.dns)),
            ("DEMIURGE_VPN__LISTEN".into(), addr(self.vpn)),
            ("DEMIURGE_LOG__LEVEL".into(), "info,demiurge=debug".into()),
        ];
        if let (Some(ip), Some(vpn)) = (self.opts.vpn_endpoint_ip, self.vpn) {
            env.push((
                "DEMIURGE_VPN__ENDPOINT".into(),
                format!("{ip}:{}", vpn.port()),
            ));
        }
        env.extend(self.opts.env.iter().cloned());
        env
    }

    /// A `demiurge` command with this server's environment (for `admin`, `migrate`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    fn spawn_and_wait(&mut self) {
        std::fs::create_dir_all(self.data_dir.parent().unwrap_or(Path::new("/tmp")))
            .expect("data dir parent");
        let n = std::fs::read_dir(self.data_dir.parent().unwrap_or(Path::new("/tmp")))
            .map(|d| d.count())
            .unwrap_or(0);
        self.log = self.data_dir.with_file_name(format!("server-{n}.log"));
        self.out = self.data_dir.with_file_name(format!("server-{n}.out"));
        let mut cmd = match &self.opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(File::create(&self.out).expect("stdout file"))
            .stderr(File::create(&self.log).expect("log file"));
        let t0 = Instant::now();
        let child = cmd.spawn().expect("spawn demiurge");
        self.child = Some(child);
        let deadline = t0 + self.opts.ready_timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("demiurge exited during start ({status}):\n{}", self.logs());
            }
            if self.ready_now() {
                self.startup = t0.elapsed();
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "demiurge not ready within {:?}:\n{}",
                    self.opts.ready_timeout,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn ready_now(&self) -> bool {
        let url = format!("http://{}/readyz", self.http);
        match &self.opts.netns {
            Some(ns) => Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "curl",
                    "-sf",
                    "-m",
                    "2",
                    "-o",
                    "/dev/null",
                    &url,
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false),
            None => http_get_status(self.http, "/readyz") == Some(200),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The server's stderr and stdout so far.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for p in [&self.out, &self.log] {
            if let Ok(mut f) = File::open(p) {
                let _ = f.read_to_string(&mut s);
            }
        }
        s
    }

    /// Sends `sig` and waits for the exit (bounded).
    pub fn signal_and_wait(
        &mut self,
        sig: nix::sys::signal::Signal,
        limit: Duration,
    ) -> Option<(ExitStatus, Duration)> {
        let child = self.child.as_mut()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let t0 = Instant::now();
        let _ = nix::sys::signal::kill(pid, sig);
        while t0.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some((status, t0.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn stop(&mut self) -> Option<(ExitStatus, Duration)> {
        self.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10))
    }

    /// Stops (SIGTERM) and starts again on the same ports and data directory.
    pub fn restart(&mut self) {
        let stopped = self.stop();
        assert!(stopped.is_some(), "server did not stop:\n{}", self.logs());
        self.spawn_and_wait();
    }

    /// Starts again after [`Server::stop`], on the same ports and data directory.
    pub fn restart_stopped(&mut self) {
        assert!(self.child.is_none(), "restart_stopped after stop");
        self.spawn_and_wait();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.1 GET over a plain socket (for polling before a client exists).
pub fn http_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).ok()?;
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A reqwest client builder. reqwest's TLS uses rustls with the process-wide crypto provider
/// (ring, as in the server), installed here once.
pub fn http_builder() -> reqwest::ClientBuilder {
    static RING: std::sync::Once = std::sync::Once::new();
    RING.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

pub fn client() -> reqwest::Client {
    crate::harness::http_builder()
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// GET a JSON document through the edge, with extra request headers.
pub async fn get_json(server: &Server, path: &str, headers: &[(&str, &str)]) -> serde_json::Value {
    let mut req = client().get(server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    r.json()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

/// The PostgreSQL server the test command started (`DEMIURGE_TEST_DATABASE_URL`).
pub fn pg_base_url() -> String {
    std::env::var("DEMIURGE_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DEMIURGE_TEST_DATABASE_URL is not set: storage tests run on PostgreSQL too. \
             Run scripts/test.sh, which starts a PostgreSQL server and sets it."
        )
    })
}

/// The two storage backends every storage test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A server on this backend (a fresh PostgreSQL database for `Postgres`), without the DNS
    /// server and the VPN.
    pub async fn start(self, opts: Options) -> Server {
        let opts = match self {
            Backend::Sqlite => opts,
            Backend::Postgres => opts.env("DEMIURGE_DATABASE__URL", &fresh_pg_database().await),
        };
        Server::start_with(Options {
            dns: false,
            vpn: false,
            ..opts
        })
    }
}

/// A new, empty PostgreSQL database for one test; returns its URL.
pub async fn fresh_pg_database() -> String {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let base = pg_base_url();
    let mut conn = AsyncPgConnection::establish(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DEMIURGE_TEST_DATABASE_URL: {e}"));
    let name = format!("dmg_test_{:016x}", rand::random::<u64>());
    RunQueryDsl::execute(
        diesel::sql_query(format!("CREATE DATABASE {name}")),
        &mut conn,
    )
    .await
    .expect("create test database");
    let mut url = url::Url::parse(&base).expect("database url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) from a raw connection.
pub fn read_response(s: &mut std::io::BufReader<std::net::TcpStream>) -> (u16, String) {
    use std::io::{BufRead, Read};
    let mut status = String::new();
    s.read_line(&mut status).unwrap();
    let code: u16 = status.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        s.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// A raw connection to `addr`: its writing half and a reader for answers.
pub fn raw(
    addr: std::net::SocketAddr,
) -> (std::net::TcpStream, std::io::BufReader<std::net::TcpStream>) {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    (s.try_clone().unwrap(), std::io::BufReader::new(s))
}

/// Sends `request` on a raw connection and reads the answer.
pub fn ask(
    (w, r): &mut (std::net::TcpStream, std::io::BufReader<std::net::TcpStream>),
    request: &[u8],
) -> (u16, String) {
    use std::io::Write;
    w.write_all(request).unwrap();
    read_response(r)
}
