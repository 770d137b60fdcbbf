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
    files: CgroupFiles,
    last_cpu: Option<(Instant, u64)>,
}

/// Where this process's cgroup keeps its figures: cgroup v2 (`memory.current`,
/// `cpu.stat`), or v1's memory and cpuacct hierarchies (still on many Docker hosts).
#[derive(Default)]
struct CgroupFiles {
    memory: Option<PathBuf>,
    /// `(file, true)`: v2's `cpu.stat` (`usage_usec`); `(file, false)`: v1's
    /// `cpuacct.usage` (nanoseconds).
    cpu: Option<(PathBuf, bool)>,
}

impl Meter {
    pub fn new() -> Meter {
        Meter {
            files: std::fs::read_to_string("/proc/self/cgroup")
                .map(|t| cgroup_files(&t, std::path::Path::new("/sys/fs/cgroup")))
                .unwrap_or_default(),
            last_cpu: None,
        }
    }

    pub fn read(&mut self) -> Resources {
        let memory_bytes = self.files.memory.as_ref().and_then(|f| read_u64(f));
        let cpu_usec = self.files.cpu.as_ref().and_then(|(f, v2)| {
            if *v2 {
                cpu_usage_usec(f)
            } else {
                read_u64(f).map(|ns| ns / 1000)
            }
        });
        let cpu_percent = cpu_usec.and_then(|usec| {
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

/// The figure files of the cgroup `/proc/self/cgroup` (`text`) names, under `root`. A
/// path that does not exist there (a container sees its own cgroup as the root) falls back
/// to the hierarchy's root.
fn cgroup_files(text: &str, root: &std::path::Path) -> CgroupFiles {
    let find = |mount: &str, rel: &str, file: &str| -> Option<PathBuf> {
        let base = root.join(mount);
        let own = base.join(rel.trim().trim_start_matches('/')).join(file);
        [own, base.join(file)].into_iter().find(|p| p.exists())
    };
    let mut files = CgroupFiles::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let ctrls: Vec<&str> = ctrl.split(',').collect();
        if ctrl.is_empty() {
            // v2 (unified); on a hybrid host it is mounted at `unified`.
            for mount in ["", "unified"] {
                if files.memory.is_none() {
                    files.memory = find(mount, rel, "memory.current");
                }
                if files.cpu.is_none() {
                    files.cpu = find(mount, rel, "cpu.stat").map(|f| (f, true));
                }
            }
        } else if ctrls.contains(&"memory") {
            files.memory = files
                .memory
                .or_else(|| find("memory", rel, "memory.usage_in_bytes"));
        } else if ctrls.contains(&"cpuacct") {
            files.cpu = files
                .cpu
                .or_else(|| find(ctrl, rel, "cpuacct.usage").map(|f| (f, false)));
        }
    }
    files
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
    fn cgroup_v1_and_v2_figures_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let put = |p: &str, v: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        };
        // v1, as a container sees it: its own cgroup is the hierarchy's root.
        put("memory/memory.usage_in_bytes", "1000\n");
        put("cpu,cpuacct/cpuacct.usage", "5000000\n");
        let v1 = cgroup_files(
            "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
            root,
        );
        assert_eq!(v1.memory, Some(root.join("memory/memory.usage_in_bytes")));
        assert_eq!(
            v1.cpu,
            Some((root.join("cpu,cpuacct/cpuacct.usage"), false))
        );
        // v2, the process in a nested cgroup.
        put("app/memory.current", "2000\n");
        put("app/cpu.stat", "usage_usec 7\n");
        let v2 = cgroup_files("0::/app\n", root);
        assert_eq!(v2.memory, Some(root.join("app/memory.current")));
        assert_eq!(v2.cpu, Some((root.join("app/cpu.stat"), true)));
    }

    #[test]
    fn the_root_filesystem_has_a_size() {
        assert!(disk_used("/").is_some_and(|b| b > 0));
        let mut m = Meter::new();
        let first = m.read();
        assert!(first.cpu_percent.is_none(), "a rate needs two readings");
    }
}
