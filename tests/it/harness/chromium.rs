//! Headless Chromium (Debian's `chromium`, driven by npm `playwright-core` from a script in
//! `tests/peers`), and where the tests keep its screenshots.

use std::path::PathBuf;

use super::peers::peers_dir;
use super::{INSTALL_HINT, require_cmd};

/// `tests/artifacts/<name>`, created: screenshots and other files a test keeps.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/artifacts")
        .join(name);
    std::fs::create_dir_all(&d).expect("artifacts dir");
    d
}

/// Fails the test with the install step when Chromium or playwright-core is missing.
pub fn require_browser() {
    require_cmd("node", "nodejs");
    require_cmd("chromium", "chromium");
    assert!(
        peers_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/peers: {INSTALL_HINT}"
    );
}

/// A script in `tests/peers` that drives Chromium, talking over stdio: it prints tagged JSON
/// lines (`PHASE {...}`, `RESULT {...}`, `FAIL {...}`) and reads a line whenever the test must
/// act first (restart the server, check the document).
pub struct Script {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    name: String,
    /// Where the server under test writes its logs: a failure quotes their warnings.
    server_logs: Option<std::path::PathBuf>,
}

impl Script {
    pub fn start(script: &str, args: &[&str]) -> Script {
        use std::io::BufRead;
        require_browser();
        let mut child = std::process::Command::new("node")
            .arg(peers_dir().join(script))
            .args(args)
            .current_dir(peers_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("node");
        let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Script {
            stdin: child.stdin.take(),
            child,
            lines,
            name: format!("{script} {}", args.first().copied().unwrap_or_default()),
            server_logs: None,
        }
    }

    /// On failure, also quote the warnings and errors the server logged (in every run of
    /// it, restarts included): a flake in CI then says what the server saw.
    pub fn quoting_logs_of(mut self, server: &super::Server) -> Script {
        self.server_logs = server.data_dir.parent().map(std::path::Path::to_path_buf);
        self
    }

    fn fail(&self, why: String) -> ! {
        let mut quoted = String::new();
        if let Some(dir) = &self.server_logs {
            let mut logs: Vec<_> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for p in logs {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let lines: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect();
                let from = lines.len().saturating_sub(40);
                quoted.push_str(&format!(
                    "\n--- {} (warnings and errors) ---\n",
                    p.display()
                ));
                quoted.push_str(&lines[from..].join("\n"));
            }
        }
        panic!("{why}{quoted}");
    }

    /// The next line tagged `tag` (other lines are passed by); panics on `FAIL` or after
    /// `limit`.
    pub fn expect(&mut self, tag: &str, limit: std::time::Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                        return serde_json::from_str(rest).unwrap_or_else(|e| panic!("{l}: {e}"));
                    }
                    if l.starts_with("FAIL") {
                        self.fail(format!("{} failed: {l}", self.name));
                    }
                }
                Err(e) => self.fail(format!("{} printed no {tag} ({e})", self.name)),
            }
        }
    }

    /// Tells the script to go on.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
