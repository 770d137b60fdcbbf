//! The apps of the built-in images, started and kept running by the agent: JupyterLab,
//! ttyd and code-server, each on `127.0.0.1:<its port>` only (the tunnel is the only way
//! in, and the edge's guard is in front of it). Each is told who the person is by the
//! edge's `X-Forwarded-*` headers. A custom or an organization's image names a start
//! command, which the agent runs the same way; without one the image's own processes serve.
//! No `DEMIURGE_*` variable reaches an app.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::containers::protocol::AgentManifest;

/// JupyterLab's identity provider: the person is who the edge says (it removes any
/// `X-Forwarded-*` header a client sends, and nothing else can reach 127.0.0.1).
const JUPYTER_IDENTITY: &str = r#""""Written by the Demiurge agent.

JupyterLab learns who the person is from the headers the Demiurge edge sets after its
guard has checked the person's session and project permission (the edge removes any such
header a client sends). JupyterLab listens on 127.0.0.1 only: the tunnel is the only way in.
"""
from jupyter_server.auth.identity import IdentityProvider, User


class ForwardedUser(IdentityProvider):
    need_token = False

    def get_user(self, handler):
        h = handler.request.headers
        username = h.get("X-Forwarded-Preferred-Username") or h.get("X-Forwarded-User")
        if not username:
            return None
        return User(username=username, name=username, display_name=username,
                    initials=username[:1].upper())

    @property
    def login_available(self):
        return False
"#;

/// The app processes; dropped or stopped, they are ended (their whole process group).
pub struct Apps {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Apps {
    /// Starts the apps of the manifest's image, or its start command (a custom or an
    /// organization's image; without one the image's own processes serve).
    pub fn start(m: &AgentManifest, state_dir: &Path) -> Apps {
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        for s in &m.services {
            let Some(spec) = spec_for(&m.image, s.port, state_dir) else {
                continue;
            };
            tracing::info!(service = %s.name, program = %spec.program, port = s.port, "starting the app");
            tasks.push(tokio::spawn(supervise(
                s.name.clone(),
                spec,
                shutdown.clone(),
            )));
        }
        if let Some(c) = m.command.as_deref().filter(|c| !c.trim().is_empty()) {
            tracing::info!("starting the image's app with its command");
            tasks.push(tokio::spawn(supervise(
                "command".to_string(),
                Spec {
                    program: "sh".to_string(),
                    args: vec!["-c".to_string(), c.to_string()],
                    env: vec![],
                    file: None,
                },
                shutdown.clone(),
            )));
        }
        Apps { shutdown, tasks }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Apps {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// How to start one app.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment (beside the agent's own, less `DEMIURGE_*`).
    pub env: Vec<(String, String)>,
    /// A file to write before starting: (path, content).
    pub file: Option<(PathBuf, String)>,
}

/// The app of a built-in image, or `None` (custom images, unknown keys).
pub fn spec_for(image: &str, port: u16, state_dir: &Path) -> Option<Spec> {
    let s = |v: &str| v.to_string();
    match image {
        "jupyterlab" => {
            let py = state_dir.join("python");
            let pythonpath = match std::env::var("PYTHONPATH") {
                Ok(p) if !p.is_empty() => format!("{}:{p}", py.display()),
                _ => py.display().to_string(),
            };
            let mut args = vec![
                s("lab"),
                s("--no-browser"),
                s("--ip=127.0.0.1"),
                format!("--port={port}"),
                s("--port-retries=0"),
                s("--ServerApp.allow_remote_access=True"),
                s("--ServerApp.trust_xheaders=True"),
                s("--ServerApp.identity_provider_class=demiurge_identity.ForwardedUser"),
                s("--IdentityProvider.token="),
                s("--ServerApp.password="),
            ];
            // The container is the sandbox: an image that runs as root still gets its lab.
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                args.push(s("--allow-root"));
            }
            Some(Spec {
                program: s("jupyter"),
                args,
                env: vec![(s("PYTHONPATH"), pythonpath)],
                file: Some((py.join("demiurge_identity.py"), s(JUPYTER_IDENTITY))),
            })
        }
        "terminal" => {
            let shell = ["/bin/bash", "/bin/sh"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .unwrap_or("/bin/sh");
            Some(Spec {
                program: s("ttyd"),
                args: vec![
                    s("--port"),
                    port.to_string(),
                    s("--interface"),
                    s("127.0.0.1"),
                    s("--writable"),
                    s("--auth-header"),
                    s("X-Forwarded-User"),
                    s(shell),
                ],
                env: vec![],
                file: None,
            })
        }
        "vscode" => Some(Spec {
            program: s("code-server"),
            args: vec![
                s("--auth"),
                s("none"),
                s("--bind-addr"),
                format!("127.0.0.1:{port}"),
                s("--disable-telemetry"),
                s("--disable-update-check"),
            ],
            env: vec![],
            file: None,
        }),
        _ => None,
    }
}

/// What the installer sets for the agent alone (its allocator's settings).
const AGENT_ONLY: &[&str] = &["MIMALLOC_ARENA_EAGER_COMMIT"];

/// The app's command, with `inherited` (the agent's environment) less `DEMIURGE_*` and
/// [`AGENT_ONLY`].
fn command(
    spec: &Spec,
    inherited: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Command {
    let mut c = Command::new(&spec.program);
    c.args(&spec.args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0)
        .env_clear();
    for (k, v) in inherited {
        if k == "HOME" && std::path::Path::new(&v).is_dir() {
            // Apps start in the person's home (JupyterLab's file browser shows it).
            c.current_dir(&v);
        }
        let name = k.to_string_lossy();
        if !name.starts_with("DEMIURGE_") && !AGENT_ONLY.contains(&name.as_ref()) {
            c.env(k, v);
        }
    }
    for (k, v) in &spec.env {
        c.env(k, v);
    }
    c
}

/// Runs the app, starting it again when it exits (1 s, doubling to 30 s, back to 1 s after
/// a minute of running), until `shutdown`.
async fn supervise(name: String, spec: Spec, shutdown: CancellationToken) {
    if let Some((path, content)) = &spec.file {
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(path, content));
        if let Err(e) = written {
            tracing::error!(service = %name, path = %path.display(), error = %e, "cannot write the app's file");
        }
    }
    let mut delay = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        match command(&spec, std::env::vars_os()).spawn() {
            Ok(mut child) => {
                let pid = child.id();
                tokio::select! {
                    status = child.wait() => {
                        tracing::warn!(service = %name, status = ?status.ok(), "the app exited; starting it again");
                    }
                    _ = shutdown.cancelled() => {
                        end_group(pid, &mut child).await;
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::error!(service = %name, program = %spec.program, error = %e,
                    "cannot start the app (is it installed in this image?)");
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            delay = Duration::from_secs(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// SIGTERM to the app's process group (JupyterLab's kernels, ttyd's shells), SIGKILL after
/// 5 s.
async fn end_group(pid: Option<u32>, child: &mut tokio::process::Child) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // SAFETY: killpg has no memory preconditions; `pid` leads the group it was started in.
    unsafe { libc::killpg(pid, libc::SIGTERM) };
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        // SAFETY: as above.
        unsafe { libc::killpg(pid, libc::SIGKILL) };
        let _ = child.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_apps_listen_on_loopback_and_take_the_edges_identity() {
        let dir = Path::new("/state");
        let j = spec_for("jupyterlab", 8888, dir).unwrap();
        assert!(j.args.contains(&"--ip=127.0.0.1".to_string()));
        assert!(j.args.iter().any(|a| a.contains("ForwardedUser")));
        assert!(j.file.as_ref().unwrap().1.contains("X-Forwarded-User"));
        let t = spec_for("terminal", 7681, dir).unwrap();
        assert_eq!(t.program, "ttyd");
        let i = t.args.iter().position(|a| a == "--interface").unwrap();
        assert_eq!(t.args[i + 1], "127.0.0.1");
        assert!(t.args.contains(&"X-Forwarded-User".to_string()));
        let v = spec_for("vscode", 8080, dir).unwrap();
        assert!(v.args.contains(&"127.0.0.1:8080".to_string()));
        assert!(spec_for("custom", 80, dir).is_none());
    }

    #[tokio::test]
    async fn an_app_never_sees_demiurge_variables() {
        let spec = Spec {
            program: "sh".into(),
            args: vec!["-c".into(), "env".into()],
            env: vec![("KEPT".into(), "yes".into())],
            file: None,
        };
        let agent_env = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", "/root".into()),
            ("DEMIURGE_ENROLL", "dmen_secret".into()),
            ("DEMIURGE_URL", "http://server".into()),
            ("MIMALLOC_ARENA_EAGER_COMMIT", "0".into()),
        ]
        .map(|(k, v)| (k.into(), v.into()));
        let out = command(&spec, agent_env).output().await.unwrap();
        let env = String::from_utf8_lossy(&out.stdout);
        assert!(
            env.contains("KEPT=yes") && env.contains("HOME=/root"),
            "{env}"
        );
        assert!(!env.contains("DEMIURGE_"), "{env}");
        assert!(!env.contains("MIMALLOC_"), "{env}");
    }
}
