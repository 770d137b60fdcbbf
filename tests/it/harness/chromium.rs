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
        }
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
                        panic!("{} failed: {l}", self.name);
                    }
                }
                Err(e) => panic!("{} printed no {tag} ({e})", self.name),
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
