//! Third-party peers the tests start: Node programs in `tests/peers` (an SMTP sink, an OIDC
//! provider). Each prints `{"listening": PORT}` first, then one JSON line per event; it exits
//! when its stdin closes, so a peer never outlives the test that started it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{INSTALL_HINT, require_cmd};

pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

pub struct NodePeer {
    child: Child,
    _stdin: Option<ChildStdin>,
    pub port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl NodePeer {
    /// Starts `tests/peers/<script>`; `module` is the npm package it needs.
    pub fn start(script: &str, module: &str, args: &[&str]) -> NodePeer {
        require_cmd("node", "nodejs");
        assert!(
            peers_dir().join("node_modules").join(module).is_dir(),
            "npm package `{module}` is not installed in tests/peers: {INSTALL_HINT}"
        );
        let mut child = Command::new("node")
            .arg(peers_dir().join(script))
            .args(args)
            .current_dir(peers_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node peer");
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        out.read_line(&mut first).expect("peer output");
        let hello: Value = serde_json::from_str(first.trim())
            .unwrap_or_else(|_| panic!("{script} did not start: {first}"));
        let port = hello["listening"].as_u64().expect("listening port") as u16;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        NodePeer {
            child,
            _stdin: stdin,
            port,
            lines,
        }
    }

    /// Every event line so far.
    pub fn events(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SMTP sink: every message it receives, parsed.
pub struct MailSink(pub NodePeer);

impl MailSink {
    pub fn start() -> MailSink {
        MailSink(NodePeer::start("smtp_sink.mjs", "smtp-server", &["0"]))
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.0.port)
    }

    /// Every mail sent to `to`.
    pub fn mails_to(&self, to: &str) -> Vec<Value> {
        self.0
            .events()
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == to))
            })
            .collect()
    }

    /// Waits for the `n`th mail (1-based) to `to`.
    pub async fn wait_mail(&self, to: &str, n: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.mails_to(to);
            if got.len() >= n {
                return got[n - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no mail #{n} to {to} within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The link in a mail body that starts with `prefix`.
impl MailSink {
    /// Waits for a mail to `to`, past the first `after`, that carries a `prefix…` link (other
    /// mails, such as account notices, may come between); returns the link and how many mails
    /// `to` had then.
    pub async fn wait_link(&self, to: &str, prefix: &str, after: usize) -> (String, usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.mails_to(to);
            let found = got.iter().skip(after).rev().find_map(|m| {
                let text = m["text"].as_str()?;
                text.split_whitespace()
                    .find(|w| w.starts_with(prefix))
                    .map(str::to_string)
            });
            if let Some(link) = found {
                return (link, got.len());
            }
            assert!(
                Instant::now() < deadline,
                "no mail with a {prefix}… link to {to} within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn link_in(mail: &Value, prefix: &str) -> String {
    let text = mail["text"].as_str().expect("text body");
    text.split_whitespace()
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}… link in: {text}"))
        .to_string()
}
