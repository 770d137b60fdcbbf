//! What a heartbeat carries: the container's resource figures (its cgroup v2, as
//! `docker stats` reads them, and its root filesystem) and whether each service accepts
//! connections on its loopback port.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::containers::protocol::{AgentService, Resources};

/// CPU use is a rate: the meter keeps the previous reading.
#[derive(Default)]
pub struct Meter {
    cgroup: Option<PathBuf>,
    last_cpu: Option<(Instant, u64)>,
}

impl Meter {
    pub fn new() -> Meter {
        Meter {
            cgroup: own_cgroup(),
            last_cpu: None,
        }
    }

    pub fn read(&mut self) -> Resources {
        let cg = self.cgroup.as_ref();
        let memory_bytes = cg.and_then(|d| read_u64(&d.join("memory.current")));
        let cpu_percent = cg
            .and_then(|d| cpu_usage_usec(&d.join("cpu.stat")))
            .and_then(|usec| {
                let now = Instant::now();
                let prev = self.last_cpu.replace((now, usec));
                let (t, u) = prev?;
                let wall = now.duration_since(t).as_micros() as f64;
                (wall > 0.0).then(|| (usec.saturating_sub(u) as f64 / wall * 1000.0).round() / 10.0)
            });
        Resources {
            cpu_percent,
            memory_bytes,
            disk_bytes: disk_used("/"),
        }
    }
}

/// `/sys/fs/cgroup/<path>` of this process (cgroup v2 only).
fn own_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = PathBuf::from("/sys/fs/cgroup").join(rel.trim().trim_start_matches('/'));
    dir.join("memory.current").exists().then_some(dir)
}

fn read_u64(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn cpu_usage_usec(path: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// Bytes used on the filesystem holding `path`, as `df` counts them.
#[allow(
    clippy::unnecessary_cast,
    reason = "statvfs's field types are u32 on some targets"
)]
fn disk_used(path: &str) -> Option<u64> {
    let c = std::ffi::CString::new(path).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `s` points to writable memory of the right size;
    // statvfs fills it on success, which is checked before it is read.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0, so statvfs initialised the struct.
    let s = unsafe { s.assume_init() };
    let used = (s.f_blocks as u64).saturating_sub(s.f_bfree as u64);
    Some(used.saturating_mul(s.f_frsize as u64))
}

/// Service name -> it accepts a TCP connection on `127.0.0.1:<port>` within half a second.
pub async fn health(services: &[AgentService]) -> BTreeMap<String, bool> {
    let checks = services.iter().map(|s| async move {
        let ok = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(("127.0.0.1", s.port)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        (s.name.clone(), ok)
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_service_is_healthy_and_a_closed_one_is_not() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = {
            let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            t.local_addr().unwrap().port()
        };
        let svc = |name: &str, port| AgentService {
            name: name.into(),
            label: name.into(),
            port,
            terminal: false,
        };
        let h = health(&[svc("up", open), svc("down", closed)]).await;
        assert_eq!(h.get("up"), Some(&true));
        assert_eq!(h.get("down"), Some(&false));
    }

    #[test]
    fn the_root_filesystem_has_a_size() {
        assert!(disk_used("/").is_some_and(|b| b > 0));
        let mut m = Meter::new();
        let first = m.read();
        assert!(first.cpu_percent.is_none(), "a rate needs two readings");
    }
}
