//! User containers outside the project document: who may connect and where a host name goes
//! (docs/decisions/containers.md). [`Containers`] issues the one-time enrollment token of a
//! container's `docker run` line, exchanges it for the agent's credential and WireGuard peer,
//! authenticates the agent afterwards, and forgets a deleted container at once.
//!
//! The decisions are here: a handler passes the caller's [`ProjectAccess`] and the
//! container's record as the project document holds it.

pub mod guard;
pub mod images;
pub mod live;
pub mod protocol;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use serde_json::Value;

use crate::auth::tokens;
use crate::config::Config;
use crate::db::containers::{ContainerRow, EnrollmentRow, RouteRow};
use crate::db::{Db, DbError};
use crate::gateway::modules::user_containers::{CREATE, DELETE, Tunnel, catalogue};
use crate::orgs::ProjectAccess;

/// Where a running agent keeps its state (the volume of the `docker run` line).
pub const AGENT_STATE_DIR: &str = "/var/lib/demiurge";

#[derive(Debug, thiserror::Error)]
pub enum ContainersError {
    #[error("{0}")]
    Forbidden(String),
    #[error("no container `{0}` in this project")]
    NoSuchContainer(String),
    #[error(
        "this server's VPN is off ([vpn] listen is empty), so containers cannot join its network"
    )]
    VpnOff,
    #[error(
        "this enrollment token is not valid: it was used already, has expired, or never existed; ask for a new command"
    )]
    InvalidEnrollment,
    #[error("this agent credential is not valid (the container was deleted, or enrolled again)")]
    InvalidCredential,
    #[error("wg_public_key: a WireGuard public key is 32 bytes in base64")]
    BadKey,
    #[error(
        "a service label of this container is held by another one; delete it and make a new one"
    )]
    LabelTaken,
    /// A field of a catalogue entry is refused.
    #[error("{1}")]
    Invalid(crate::code::ErrorCode, String),
    #[error("no entry `{0}` in the organization's container catalogue")]
    NoSuchImage(String),
    #[error("the organization's container catalogue has an entry `{0}` already")]
    ImageExists(String),
    #[error(
        "the organization's container catalogue holds {} entries, its limit",
        catalogue::MAX_ORG_ENTRIES
    )]
    TooManyImages,
    #[error("{0}")]
    Internal(String),
}

impl ContainersError {
    fn invalid((code, message): catalogue::Refusal) -> Self {
        Self::Invalid(code, message)
    }
}

impl From<DbError> for ContainersError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(_) => Self::LabelTaken,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::vpn::VpnError> for ContainersError {
    fn from(e: crate::vpn::VpnError) -> Self {
        use crate::vpn::VpnError as V;
        match e {
            V::Disabled => Self::VpnOff,
            V::BadKey | V::KeyTaken => Self::BadKey,
            other => Self::Internal(other.to_string()),
        }
    }
}

/// What a person gets to start their container with (shown to them only).
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub token: String,
    pub expires_at: NaiveDateTime,
    /// The `docker run` line.
    pub command: String,
}

/// What an agent gets for its token.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub container_id: String,
    /// Its credential from now on (the only copy; stored as a hash).
    pub credential: String,
    pub tunnel_address: String,
    pub server_tunnel_address: String,
    pub server_public_key: String,
    pub server_endpoint: String,
    pub subnet: String,
    pub heartbeat: Duration,
}

/// What an agent is told after each (re)connect.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub container_id: String,
    pub project_id: String,
    pub routes: Vec<RouteRow>,
    pub heartbeat: Duration,
}

#[derive(Clone)]
pub struct Containers {
    db: Db,
    cfg: Arc<Config>,
    /// The running VPN re-reads its peers when an agent enrolls or a container goes.
    peers: crate::vpn::PeerChanges,
    /// Agents' control channels carry their tunnel's datagrams where UDP is blocked.
    relays: crate::vpn::Relays,
    live: Arc<live::Live>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

/// Where a container host's label goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub label: String,
    pub service: String,
    pub port: u16,
    pub terminal: bool,
    pub container_id: String,
    pub org_id: String,
    pub project_id: String,
    pub tunnel: Option<std::net::Ipv4Addr>,
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// The record's services as routes of container `id`.
fn routes_of(id: &str, record: &Value) -> Vec<RouteRow> {
    record["services"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| {
                    Some(RouteRow {
                        label: s["label"].as_str()?.to_string(),
                        container_id: id.to_string(),
                        service: s["name"].as_str()?.to_string(),
                        port: i32::try_from(s["port"].as_f64()? as i64).ok()?,
                        terminal: s["terminal"].as_bool().unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Quotes a word for a POSIX shell (single quotes; a `'` inside closes, escapes, reopens).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Containers {
    pub fn new(db: Db, cfg: &Config) -> Self {
        Self {
            db,
            cfg: Arc::new(cfg.clone()),
            peers: crate::vpn::PeerChanges::default(),
            relays: crate::vpn::Relays::default(),
            live: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// Heartbeats missed for this long make a container stale (three of them).
    pub fn stale_after(&self) -> Duration {
        self.cfg.containers.heartbeat * 3
    }

    /// What an agent is told when its control connection opens.
    pub async fn agent_manifest(
        &self,
        row: &ContainerRow,
    ) -> Result<protocol::AgentManifest, ContainersError> {
        let m = self.manifest(row).await?;
        Ok(protocol::AgentManifest {
            container_id: m.container_id,
            project_id: m.project_id,
            image: row.image.clone(),
            command: row.command.clone(),
            heartbeat_seconds: m.heartbeat.as_secs().max(1),
            services: m
                .routes
                .into_iter()
                .map(|r| protocol::AgentService {
                    name: r.service,
                    label: r.label,
                    port: u16::try_from(r.port).unwrap_or(0),
                    terminal: r.terminal,
                })
                .collect(),
        })
    }

    /// An agent's control connection opened; the token is cancelled when the container is
    /// deleted (the connection then says `bye` and ends).
    pub fn agent_connected(&self, row: &ContainerRow) -> tokio_util::sync::CancellationToken {
        tracing::info!(container = %row.id, "container agent connected");
        self.live.connected(&row.id, &row.org_id, &row.project_id)
    }

    pub fn agent_disconnected(&self, id: &str) {
        tracing::info!(container = %id, "container agent disconnected");
        self.live.disconnected(id);
    }

    pub fn agent_heartbeat(
        &self,
        id: &str,
        resources: Option<protocol::Resources>,
        health: BTreeMap<String, bool>,
        tunnel: Option<crate::vpn::TunnelPath>,
    ) {
        let tunnel = tunnel.map(|t| match t {
            crate::vpn::TunnelPath::Udp => Tunnel::Udp,
            crate::vpn::TunnelPath::Relay => Tunnel::Relay,
        });
        self.live.heartbeat(id, resources, health, tunnel);
    }

    /// Whether the container's agent reports (its URLs answer; otherwise "offline").
    pub fn is_running(&self, id: &str) -> bool {
        self.live.is_running(id, self.stale_after())
    }

    /// Sends the containers' state changes to their projects (as `user-containers:report`
    /// system events) until `shutdown`: every enrolled container is watched from now on.
    pub fn spawn_reports(
        &self,
        gateways: crate::gateway::GatewayRegistry,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            match this.db.enrolled_containers().await {
                Ok(rows) => {
                    for r in rows {
                        this.live.watch(&r.id, &r.org_id, &r.project_id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "containers: cannot read the enrolled ones"),
            }
            let every =
                (this.heartbeat() / 2).clamp(Duration::from_millis(200), Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                for (id, (org, project, event)) in this.live.due(this.stale_after()) {
                    if let Err(e) = gateways.system_event(&org, &project, event).await {
                        match this.db.container(&id).await {
                            Ok(None) => this.live.forget(&id),
                            _ => {
                                tracing::warn!(container = %id, error = %e, "containers: a state report was not delivered");
                                this.live.unsent(&id);
                            }
                        }
                    }
                }
            }
        })
    }

    /// What the VPN listens to for peer changes.
    pub fn peer_changes(&self) -> crate::vpn::PeerChanges {
        self.peers.clone()
    }

    /// Where the VPN hands out relays.
    pub fn relays(&self) -> crate::vpn::Relays {
        self.relays.clone()
    }

    /// The relay an agent's control channel carries its tunnel over (none while the VPN is
    /// off or before the agent enrolled).
    pub async fn agent_relay(&self, row: &ContainerRow) -> Option<crate::vpn::RelayLink> {
        let name = row.vpn_peer.as_deref()?;
        let key = match self.db.vpn_peer_key(name).await {
            Ok(k) => k?,
            Err(e) => {
                tracing::warn!(container = %row.id, error = %e, "containers: cannot read the agent's peer");
                return None;
            }
        };
        self.relays.attach(&key).await
    }

    pub fn heartbeat(&self) -> Duration {
        self.cfg.containers.heartbeat
    }

    /// A new one-time token and the `docker run` line for the container whose document
    /// record is `record`, for its creator (or someone who may delete containers). Older
    /// unused tokens of the container stop working.
    pub async fn issue_enrollment(
        &self,
        access: &ProjectAccess,
        container_id: &str,
        record: Option<&Value>,
    ) -> Result<Enrollment, ContainersError> {
        if !access.may(CREATE) {
            return Err(ContainersError::Forbidden(format!(
                "starting a container needs `{CREATE}`"
            )));
        }
        let record = record.filter(|r| r.is_object()).ok_or_else(|| {
            ContainersError::NoSuchContainer(container_id.chars().take(64).collect())
        })?;
        let creator = record["created_by"].as_str().unwrap_or_default();
        if creator != access.user_id() && !access.may(DELETE) {
            return Err(ContainersError::Forbidden(format!(
                "only its creator, or someone with `{DELETE}`, starts someone else's container"
            )));
        }
        if self.cfg.vpn_endpoint().is_none() {
            return Err(ContainersError::VpnOff);
        }
        let t = now();
        let (token, token_hash) = tokens::new_prefixed_token("dmen_");
        let expires_at = t + chrono::Duration::from_std(self.cfg.containers.enrollment_lifetime)
            .unwrap_or_default();
        let row = ContainerRow {
            id: container_id.to_string(),
            org_id: access.org_id().to_string(),
            project_id: access.project_id().to_string(),
            created_by: (!creator.is_empty()).then(|| creator.to_string()),
            created_at: t,
            credential_hash: None,
            enrolled_at: None,
            vpn_peer: None,
            image: record["image"]
                .as_str()
                .unwrap_or(catalogue::CUSTOM)
                .to_string(),
            command: record["command"].as_str().map(str::to_string),
        };
        let routes = routes_of(container_id, record);
        self.db
            .put_enrollment(
                &row,
                &routes,
                &EnrollmentRow {
                    token_hash,
                    container_id: container_id.to_string(),
                    user_id: access.user_id().to_string(),
                    created_at: t,
                    expires_at,
                    used_at: None,
                },
            )
            .await?;
        let volume = format!(
            "demiurge-{}",
            routes
                .first()
                .map_or_else(|| container_id.to_string(), |r| r.label.clone())
        );
        let image = record["image_ref"].as_str().unwrap_or_default();
        let url = self.cfg.link_base();
        let fetch = "(curl -fsSL \"$DEMIURGE_URL/agent/v1/install.sh\" || wget -qO- \"$DEMIURGE_URL/agent/v1/install.sh\") | sh";
        // A built-in entry's preparing step, or the one an organization entry came with.
        let prepare = catalogue::entry(&row.image)
            .and_then(|e| e.prepare)
            .or_else(|| record["prepare"].as_str());
        let boot = match prepare {
            Some(prepare) => format!("{prepare}; {fetch}"),
            None => fetch.to_string(),
        };
        let command = format!(
            "docker run -d --restart unless-stopped --name {volume} -v {volume}:{AGENT_STATE_DIR} \
             -e DEMIURGE_URL={url} -e DEMIURGE_ENROLL={token} {image} \
             sh -c {boot}",
            url = sh_quote(url.trim_end_matches('/')),
            token = sh_quote(&token),
            image = sh_quote(image),
            boot = sh_quote(&boot),
        );
        tracing::info!(container = %container_id, project = %access.project_id(), "container enrollment token issued");
        Ok(Enrollment {
            token,
            expires_at,
            command,
        })
    }

    /// Exchanges a token (once) for the agent's credential and WireGuard peer.
    pub async fn enroll(
        &self,
        token: &str,
        wg_public_key: &str,
    ) -> Result<Enrolled, ContainersError> {
        if crate::vpn::keys::decode(wg_public_key).is_none() {
            return Err(ContainersError::BadKey);
        }
        if token.is_empty() || token.len() > 128 {
            return Err(ContainersError::InvalidEnrollment);
        }
        let t = now();
        let row = self
            .db
            .take_enrollment(&tokens::hash(token), t)
            .await?
            .ok_or(ContainersError::InvalidEnrollment)?;
        // Enrolling again (a new volume): the old key and credential stop working.
        if let Some(old) = &row.vpn_peer {
            match self.db.delete_vpn_peer(old).await {
                Ok(()) | Err(DbError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let name = format!("container-{}", row.id);
        let joined =
            crate::vpn::add_peer_with_key(&self.db, &self.cfg, &name, wg_public_key).await?;
        let (credential, credential_hash) = tokens::new_prefixed_token("dmag_");
        self.db
            .set_container_agent(&row.id, &credential_hash, &name, t)
            .await?;
        self.peers.notify();
        // Routes looked up before (no tunnel address yet: "offline") are void now, so the
        // URL answers as soon as the agent runs, not when the cache expires.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.live.watch(&row.id, &row.org_id, &row.project_id);
        tracing::info!(container = %row.id, address = %joined.peer.address, "container agent enrolled");
        Ok(Enrolled {
            container_id: row.id,
            credential,
            tunnel_address: joined.peer.address,
            server_tunnel_address: joined.server_address.to_string(),
            server_public_key: joined.server_public_key,
            server_endpoint: joined.endpoint,
            subnet: joined.subnet.to_string(),
            heartbeat: self.heartbeat(),
        })
    }

    /// The container an agent's credential belongs to.
    pub async fn agent(&self, credential: &str) -> Result<ContainerRow, ContainersError> {
        if !credential.starts_with("dmag_") || credential.len() > 128 {
            return Err(ContainersError::InvalidCredential);
        }
        self.db
            .container_by_credential(&tokens::hash(credential))
            .await?
            .ok_or(ContainersError::InvalidCredential)
    }

    pub async fn manifest(&self, row: &ContainerRow) -> Result<Manifest, ContainersError> {
        Ok(Manifest {
            container_id: row.id.clone(),
            project_id: row.project_id.clone(),
            routes: self.db.container_routes(&row.id).await?,
            heartbeat: self.heartbeat(),
        })
    }

    /// Where a host label goes: its service, its container and the container's tunnel
    /// address (`None` before the agent enrolled).
    pub async fn route(&self, label: &str) -> Result<Option<Route>, ContainersError> {
        let Some((r, c)) = self.db.route(label).await? else {
            return Ok(None);
        };
        let tunnel = match &c.vpn_peer {
            Some(peer) => self
                .db
                .vpn_peer_address(peer)
                .await?
                .and_then(|a| a.parse().ok()),
            None => None,
        };
        Ok(Some(Route {
            label: r.label,
            service: r.service,
            port: u16::try_from(r.port).unwrap_or(0),
            terminal: r.terminal,
            container_id: c.id,
            org_id: c.org_id,
            project_id: c.project_id,
            tunnel,
        }))
    }

    /// Bumped whenever a container goes or (re-)enrolls: cached routes and routing decisions
    /// older than it are void.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets a deleted container: its credential, WireGuard peer, routes and tokens.
    pub async fn forget(&self, container_id: &str) -> Result<bool, ContainersError> {
        let gone = self.db.delete_container(container_id).await?;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.live.forget(container_id);
        if gone {
            self.peers.notify();
            tracing::info!(container = %container_id, "container forgotten: credential, peer and routes removed");
        }
        Ok(gone)
    }
}

impl crate::gateway::EventObserver for Containers {
    fn committed<'a>(
        &'a self,
        _org_id: &'a str,
        _project_id: &'a str,
        kind: &'a str,
        result: &'a Value,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            if kind != "user-containers:delete" {
                return;
            }
            let Some(id) = result["id"].as_str() else {
                return;
            };
            if let Err(e) = self.forget(id).await {
                tracing::error!(container = %id, error = %e, "a deleted container could not be forgotten");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(sh_quote("abc"), "'abc'");
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }
}
