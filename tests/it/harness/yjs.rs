//! Real Yjs clients: `tests/peers/yclient.mjs` (npm `yjs` + `y-websocket`, raw `ws` sockets),
//! run to the end or alongside a test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::peers::peers_dir;

pub fn require_yjs() {
    crate::harness::require_cmd("node", "nodejs");
    assert!(
        peers_dir().join("node_modules/y-websocket").is_dir(),
        "npm package `y-websocket` is not installed in tests/peers: {}",
        crate::harness::INSTALL_HINT
    );
}

/// Runs `yclient.mjs` to the end; its RESULT line.
pub fn yclient(args: &[&str]) -> Value {
    yclient_with(&[], args)
}

/// [`yclient`] with more environment (a CA to trust, say).
pub fn yclient_with(env: &[(&str, &str)], args: &[&str]) -> Value {
    require_yjs();
    let out = Command::new("node")
        .arg(peers_dir().join("yclient.mjs"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(peers_dir())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("EOF");
    let json = line.strip_prefix("RESULT ").unwrap_or_else(|| {
        panic!(
            "yclient {:?}: {stdout} {}",
            &args[..1],
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(json).unwrap()
}

/// A `yclient.mjs` running alongside the test: wait for its progress lines, then its result.
pub struct Live {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Live {
    pub fn start(args: &[&str]) -> Live {
        require_yjs();
        let mut child = Command::new("node")
            .arg(peers_dir().join("yclient.mjs"))
            .args(args)
            .current_dir(peers_dir())
            // It lives as long as the test needs it (a loaded machine can be slow).
            .env("YCLIENT_TIMEOUT_MS", "120000")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Live { child, lines }
    }

    /// Blocks until the client prints `line` (it prints it once it is ready).
    pub fn wait(&self, line: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if l == line => return,
                Ok(l) if l.starts_with("FAIL") => panic!("yclient failed: {l}"),
                Ok(_) => {}
                Err(e) => panic!("yclient never printed {line}: {e}"),
            }
        }
    }

    pub fn result(mut self) -> Value {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => {
                    if let Some(j) = l.strip_prefix("RESULT ") {
                        let _ = self.child.wait();
                        return serde_json::from_str(j).unwrap();
                    }
                    if l.starts_with("FAIL") {
                        panic!("yclient failed: {l}");
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("yclient gave no result: {e}");
                }
            }
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
