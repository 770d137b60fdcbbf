//! Pebble, Let's Encrypt's test CA (Debian package `pebble`), on free loopback ports. Its
//! validation authority asks the DNS server it is given (ours) for every name, and connects
//! to the HTTP port it is given (our edge's) for HTTP-01.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, require_cmd};

/// A Pebble whose API certificate is made before it runs, so a server can be configured to
/// trust it (and to find the CA down) before Pebble starts.
pub struct Pebble {
    dir: tempfile::TempDir,
    pub port: u16,
    pub management: u16,
    child: Option<Child>,
}

impl Pebble {
    /// Makes the API certificate and picks the ports; nothing runs yet.
    pub fn prepare() -> Pebble {
        require_cmd("pebble", "pebble");
        let dir = tempfile::Builder::new()
            .prefix("demiurge-pebble-")
            .tempdir()
            .expect("tempdir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("pebble api certificate");
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        Pebble {
            dir,
            port: free_port(),
            management: free_port(),
            child: None,
        }
    }

    /// The directory URL a server is configured with.
    pub fn directory(&self) -> String {
        format!("https://localhost:{}/dir", self.port)
    }

    /// The root the directory's HTTPS is checked against (`[acme] ca_root`).
    pub fn api_root(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Starts Pebble: names are looked up at `dns`, HTTP-01 is fetched from `http_port`, and
    /// certificates are valid `validity` long (Pebble's default is five years).
    pub fn start(&mut self, dns: SocketAddr, http_port: u16, validity: Option<Duration>) {
        let mut pebble = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{}", self.port),
            "managementListenAddress": format!("127.0.0.1:{}", self.management),
            "certificate": self.api_root(),
            "privateKey": self.dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(v) = validity {
            pebble["certificateValidityPeriod"] = v.as_secs().into();
        }
        let cfg = self.dir.path().join("pebble.json");
        std::fs::write(&cfg, serde_json::json!({ "pebble": pebble }).to_string()).unwrap();
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&cfg)
            .arg("-dnsserver")
            .arg(dns.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn pebble");
        self.child = Some(child);
        let t0 = Instant::now();
        while self
            .curl(&format!("https://localhost:{}/roots/0", self.management))
            .is_none()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "pebble did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pebble.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The root that issued certificates chain to (new at every Pebble start), as a PEM file.
    pub fn issuing_root(&self) -> PathBuf {
        let pem = self
            .curl(&format!("https://localhost:{}/roots/0", self.management))
            .expect("pebble's issuing root");
        let p = self.dir.path().join("issuing-root.pem");
        std::fs::write(&p, pem).unwrap();
        p
    }

    /// Orders Pebble has answered (from its log).
    pub fn orders(&self) -> usize {
        self.log().matches("Added order").count()
    }

    fn curl(&self, url: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "-f", "-m", "5", "--cacert"])
            .arg(self.api_root())
            .arg(url)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `curl` sees of the certificate `host` gets from `https` (resolved to that address),
/// checked against `root`: `(subject and issuer lines, serial)`, or curl's error.
pub fn served_certificate(
    https: SocketAddr,
    host: &str,
    root: &Path,
) -> Result<(String, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "-v", "-o", "/dev/null", "-m", "10", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:{}:{}", https.port(), https.ip()))
        .arg(format!("https://{host}:{}/healthz", https.port()))
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Err(err);
    }
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("subject:") || l.contains("issuer:") || l.contains("expire date"))
        .collect();
    Ok((lines.join("\n"), serial_of(https, host)))
}

/// The serial number of the certificate the edge serves for `host` (openssl s_client).
pub fn serial_of(https: SocketAddr, host: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {https} -servername {host} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
