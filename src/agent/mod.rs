//! `demiurge agent`: the container side of a user container. It makes its WireGuard key
//! in the container's volume, exchanges the one-time token of the `docker run` line for a
//! credential of this one container (kept 0600 beside the key, so a restart needs no new
//! token), keeps one control WebSocket to the server (reconnecting with backoff), brings up
//! its end of the tunnel with the manifest's service ports, starts the built-in image's
//! app and sends a heartbeat with resource figures and service health every
//! `heartbeat_seconds`. The server derives the container's state from those heartbeats.
//!
//! Public face: [`AgentOptions`] and [`run`].

mod apps;
mod control;
mod report;
mod state;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::containers::protocol::{self, AgentManifest, FromAgent, ToAgent};
use crate::vpn::{AgentTunnel, AgentTunnelSettings, VpnError, keys};

pub struct AgentOptions {
    /// The server (`DEMIURGE_URL`), e.g. `https://demiurge.example.com`.
    pub url: String,
    /// The one-time token (`DEMIURGE_ENROLL`); needed on first start only.
    pub enroll: Option<String>,
    /// The container's volume (`DEMIURGE_STATE_DIR`, `/var/lib/demiurge`).
    pub state_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "this container has not enrolled yet and DEMIURGE_ENROLL is not set: copy the command from the container's card again"
    )]
    NoToken,
    #[error("enrolling failed: {0}")]
    Enroll(String),
    #[error(
        "the server no longer knows this container (it was deleted in its project); remove this container"
    )]
    Deleted,
    #[error("{path}: {source}")]
    State {
        path: String,
        source: std::io::Error,
    },
    #[error("the agent's state is damaged: {0}")]
    Corrupt(String),
    #[error("the server's answer cannot be used: {0}")]
    BadServer(String),
    #[error(transparent)]
    Tunnel(#[from] VpnError),
    #[error("http client: {0}")]
    Http(String),
}

/// Runs the agent until `shutdown` (SIGTERM), or until the server says the container is
/// gone.
pub async fn run(opts: AgentOptions, shutdown: CancellationToken) -> Result<(), AgentError> {
    let base = opts.url.trim().trim_end_matches('/').to_string();
    let dir = opts.state_dir.clone();
    state::prepare(&dir)?;
    let secret = state::key(&dir)?;
    let http = reqwest::Client::builder()
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("demiurge-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AgentError::Http(e.to_string()))?;
    let mut token = opts
        .enroll
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let mut saved = match state::load(&dir)? {
        Some(s) => s,
        None => enroll(&http, &base, &dir, &secret, token.take()).await?,
    };
    tracing::info!(container = %saved.container_id, server = %base, "agent started");
    let mut node = Node {
        dir: dir.clone(),
        secret,
        tunnel: None,
        apps: None,
        manifest: None,
    };
    let mut backoff = Backoff::default();
    let result = loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            r = tokio::time::timeout(
                Duration::from_secs(15),
                control::connect(&http, &base, &saved.credential),
            ) => r.unwrap_or_else(|_| Err(control::ConnectError::Failed("no answer within 15 s".into()))),
        };
        match attempt {
            Ok(socket) => {
                let opened = Instant::now();
                match session(socket, &mut node, &saved, &shutdown).await {
                    End::Shutdown => break Ok(()),
                    End::Bye(reason) => {
                        tracing::warn!(%reason, "the server ended this container");
                        break Err(AgentError::Deleted);
                    }
                    End::Lost(why) => {
                        tracing::warn!(%why, "control connection lost; reconnecting");
                    }
                }
                if opened.elapsed() > Duration::from_secs(30) {
                    backoff = Backoff::default();
                }
            }
            Err(control::ConnectError::Refused) => match token.take() {
                // A new command pasted on the same volume: enroll again with its token.
                Some(t) => {
                    saved = enroll(&http, &base, &dir, &node.secret, Some(t)).await?;
                    continue;
                }
                None => break Err(AgentError::Deleted),
            },
            Err(control::ConnectError::Failed(why)) => {
                tracing::warn!(%why, "cannot open the control connection");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = tokio::time::sleep(backoff.next()) => {}
        }
    };
    if matches!(result, Err(AgentError::Deleted)) {
        state::forget(&dir)?;
    }
    node.stop().await;
    result
}

/// `POST /api/v1/agent/enroll` with the token and this agent's public key; the answer is
/// saved before it is used.
async fn enroll(
    http: &reqwest::Client,
    base: &str,
    dir: &std::path::Path,
    secret: &boringtun::x25519::StaticSecret,
    token: Option<String>,
) -> Result<state::Saved, AgentError> {
    let token = token.ok_or(AgentError::NoToken)?;
    let public = keys::encode(keys::public_of(secret).as_bytes());
    let url = format!("{base}{}", protocol::ENROLL_PATH);
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        http.post(&url)
            .json(&serde_json::json!({"token": token, "wg_public_key": public}))
            .send(),
    )
    .await
    .map_err(|_| AgentError::Enroll(format!("{url} did not answer within 30 s")))?
    .map_err(|e| AgentError::Enroll(format!("cannot reach {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message = body["message"].as_str().unwrap_or("no message");
        return Err(AgentError::Enroll(format!(
            "{url} answered {status}: {message}"
        )));
    }
    let saved: state::Saved = resp
        .json()
        .await
        .map_err(|e| AgentError::BadServer(format!("enrollment answer: {e}")))?;
    state::save(dir, &saved)?;
    tracing::info!(container = %saved.container_id, address = %saved.tunnel_address, "enrolled");
    Ok(saved)
}

/// What the agent runs: its end of the tunnel and the apps, kept across reconnects.
struct Node {
    dir: PathBuf,
    secret: boringtun::x25519::StaticSecret,
    tunnel: Option<AgentTunnel>,
    apps: Option<apps::Apps>,
    manifest: Option<AgentManifest>,
}

impl Node {
    async fn apply(&mut self, m: AgentManifest, saved: &state::Saved) -> Result<(), AgentError> {
        let ports: Vec<u16> = m.services.iter().map(|s| s.port).collect();
        match &self.tunnel {
            Some(t) => t.set_ports(&ports).await,
            None => {
                let settings = tunnel_settings(&self.secret, saved).await?;
                self.tunnel = Some(AgentTunnel::start(settings, &ports).await?);
                tracing::info!(address = %saved.tunnel_address, ports = ?ports, "tunnel up");
            }
        }
        let changed = self
            .manifest
            .as_ref()
            .is_none_or(|old| old.image != m.image || old.services != m.services);
        if changed {
            if let Some(a) = self.apps.take() {
                a.stop().await;
            }
            self.apps = Some(apps::Apps::start(&m, &self.dir));
        }
        self.manifest = Some(m);
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(a) = self.apps.take() {
            a.stop().await;
        }
        if let Some(t) = self.tunnel.take() {
            t.stop().await;
        }
    }
}

async fn tunnel_settings(
    secret: &boringtun::x25519::StaticSecret,
    saved: &state::Saved,
) -> Result<AgentTunnelSettings, AgentError> {
    let bad = |what: &str| AgentError::BadServer(format!("{what} in the enrollment"));
    let address: Ipv4Addr = saved
        .tunnel_address
        .parse()
        .map_err(|_| bad("tunnel_address"))?;
    let subnet: ipnet::Ipv4Net = saved.subnet.parse().map_err(|_| bad("subnet"))?;
    let server_address: Ipv4Addr = saved
        .server
        .tunnel_address
        .parse()
        .map_err(|_| bad("server.tunnel_address"))?;
    let server_public_key =
        keys::decode(&saved.server.public_key).ok_or_else(|| bad("server.public_key"))?;
    let server_endpoint = tokio::net::lookup_host(saved.server.endpoint.as_str())
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            AgentError::BadServer(format!(
                "the server's UDP endpoint {} does not resolve",
                saved.server.endpoint
            ))
        })?;
    Ok(AgentTunnelSettings {
        secret: secret.clone(),
        address,
        subnet,
        server_public_key,
        server_address,
        server_endpoint,
    })
}

enum End {
    Shutdown,
    Bye(String),
    Lost(String),
}

/// One control connection: the manifest first, then `hello`, then a heartbeat (and a ping)
/// every `heartbeat_seconds`. A server silent for three intervals counts as gone.
async fn session(
    socket: control::Socket,
    node: &mut Node,
    saved: &state::Saved,
    shutdown: &CancellationToken,
) -> End {
    let (mut tx, mut rx) = socket.split();
    let first = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
    let manifest = match first {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ToAgent>(&t) {
            Ok(ToAgent::Manifest(m)) => m,
            Ok(ToAgent::Bye { reason }) => return End::Bye(reason),
            Err(e) => return End::Lost(format!("the server's first message: {e}")),
        },
        Ok(other) => return End::Lost(format!("no manifest: {other:?}")),
        Err(_) => return End::Lost("no manifest within 10 s".into()),
    };
    let every = Duration::from_secs(manifest.heartbeat_seconds.clamp(1, 300));
    if let Err(e) = node.apply(manifest, saved).await {
        return End::Lost(e.to_string());
    }
    let text = |m: &FromAgent| Message::text(serde_json::to_string(m).unwrap_or_default());
    let hello = FromAgent::Hello {
        version: env!("CARGO_PKG_VERSION").into(),
    };
    if let Err(e) = tx.send(text(&hello)).await {
        return End::Lost(e.to_string());
    }
    // The tunnel's datagrams ride along as binary messages, for when UDP does not get through.
    let mut relay = match &node.tunnel {
        Some(t) => t.relay().await,
        None => None,
    };
    let mut meter = report::Meter::new();
    let mut beat = tokio::time::interval(every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        let datagram = async {
            match relay.as_mut() {
                Some(r) => r.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = tx.send(Message::Close(None)).await;
                return End::Shutdown;
            }
            d = datagram => match d {
                Some(d) => {
                    if let Err(e) = tx.send(Message::Binary(d)).await {
                        return End::Lost(e.to_string());
                    }
                }
                None => relay = None,
            },
            _ = beat.tick() => {
                if heard.elapsed() > every * 3 + Duration::from_secs(2) {
                    return End::Lost("the server went silent".into());
                }
                let services = node.manifest.as_ref().map(|m| m.services.clone()).unwrap_or_default();
                let beat_msg = FromAgent::Heartbeat {
                    resources: Some(meter.read()),
                    health: report::health(&services).await,
                };
                if let Err(e) = tx.send(text(&beat_msg)).await {
                    return End::Lost(e.to_string());
                }
                if let Err(e) = tx.send(Message::Ping(Vec::new().into())).await {
                    return End::Lost(e.to_string());
                }
            }
            m = rx.next() => {
                heard = Instant::now();
                match m {
                    Some(Ok(Message::Text(t))) => match serde_json::from_str::<ToAgent>(&t) {
                        Ok(ToAgent::Manifest(m)) => {
                            if let Err(e) = node.apply(m, saved).await {
                                return End::Lost(e.to_string());
                            }
                        }
                        Ok(ToAgent::Bye { reason }) => return End::Bye(reason),
                        Err(e) => tracing::debug!(error = %e, "unknown message from the server"),
                    },
                    Some(Ok(Message::Binary(d))) => {
                        if let Some(r) = &relay {
                            r.deliver(d);
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return End::Lost("closed by the server".into()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return End::Lost(e.to_string()),
                }
            }
        }
    }
}

/// Reconnect delays: 0.5 s doubling to 30 s, each with up to 25 % jitter.
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(30));
        let jitter = rand::random_range(0.0..0.25);
        d.mul_f64(1.0 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_half_a_minute() {
        let mut b = Backoff::default();
        let first = b.next();
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_millis(625));
        let last = (0..20).map(|_| b.next()).last().unwrap();
        assert!(last >= Duration::from_secs(30) && last <= Duration::from_millis(37_500));
    }
}
