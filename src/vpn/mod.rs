//! The organization network: a userspace WireGuard endpoint (boringtun + smoltcp).
//!
//! The server holds the first address of `[vpn] subnet`; peers are rows in the database and are
//! picked up while the server runs (on a handshake from a key it does not know yet, on a
//! [`PeerChanges`] notice, and every 30 s). TCP to the server's tunnel address on port 80
//! reaches the HTTP front door, and [`TunnelDialer`] opens TCP connections to peers (the edge
//! reaching a container's service). [`AgentTunnel`] is the other end, in a container's agent:
//! one peer (the server), and its service ports carried to `127.0.0.1`.
//!
//! Where UDP is blocked, the same WireGuard datagrams travel over a WebSocket (a
//! [`RelayLink`]: the agent's control channel carries them as binary messages). Both paths
//! are used until the peer is heard over UDP; from then on UDP alone.

mod device;
mod engine;
pub mod keys;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::vpn_peers::{NewVpnPeer, VpnPeer};
use crate::db::{Db, DbError};

pub use engine::{HTTP_PORT, TunnelPath};

/// A TCP connection carried by the tunnel (this end's half of it).
pub type TunnelStream = tokio::io::DuplexStream;

/// Opens TCP connections into a running tunnel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TunnelDialer {
    commands: mpsc::Sender<engine::Command>,
}

impl TunnelDialer {
    /// A connection to `to` inside the tunnel, once it is established.
    pub async fn connect(&self, to: SocketAddrV4) -> std::io::Result<TunnelStream> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(engine::Command::Connect { to, reply })
            .await
            .map_err(|_| std::io::Error::other("the tunnel is not running"))?;
        answer
            .await
            .map_err(|_| std::io::Error::other("the tunnel stopped"))?
    }
}

/// Tunnel connections as the edge sees them: the VPN bridges each to the edge from a local
/// (loopback) address, which says nothing of who is on the other end. While a bridge lasts,
/// its local address maps to the peer's tunnel address, so the edge and the app see the
/// peer (never a client on this machine, which may read operator data).
static TUNNELED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<SocketAddr, std::net::IpAddr>>,
> = std::sync::LazyLock::new(Default::default);

/// The tunnel peer behind a connection from `local`, if the VPN opened it.
pub fn tunnel_peer(local: SocketAddr) -> Option<std::net::IpAddr> {
    TUNNELED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&local)
        .copied()
}

/// The address to treat as a connection's client: the tunnel peer for a VPN bridge,
/// otherwise `peer` itself.
pub fn real_peer(peer: SocketAddr) -> SocketAddr {
    match tunnel_peer(peer) {
        Some(ip) => SocketAddr::new(ip, peer.port()),
        None => peer,
    }
}

/// One registered bridge; removed when dropped.
struct Tunneled(SocketAddr);

impl Tunneled {
    fn register(local: SocketAddr, peer: std::net::IpAddr) -> Self {
        TUNNELED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(local, peer);
        Self(local)
    }
}

impl Drop for Tunneled {
    fn drop(&mut self) {
        TUNNELED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VpnError {
    #[error("vpn: cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("vpn key: {0}")]
    Key(String),
    #[error("vpn: the subnet {0} has no free address left")]
    SubnetFull(Ipv4Net),
    #[error("vpn: a peer named `{0}` already exists")]
    NameTaken(String),
    #[error("vpn: a peer name is 1 to 64 letters, digits, `.`, `_` or `-`")]
    BadName,
    #[error("vpn: the VPN is turned off (`[vpn] listen` is empty)")]
    Disabled,
    #[error("vpn: a public key is 32 bytes in base64")]
    BadKey,
    #[error("vpn: a peer with this public key already exists")]
    KeyTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Tells a running VPN that its peers changed in the database (a container enrolled or was
/// deleted): it re-reads them at once instead of at its next periodic reload. Cheap to
/// clone; a notice sent while no VPN runs is kept for the next one.
#[derive(Clone, Default)]
pub struct PeerChanges(std::sync::Arc<tokio::sync::Notify>);

impl PeerChanges {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Relays of the running VPN: WireGuard datagrams that a WebSocket carries instead of UDP.
/// Cheap to clone; attaching while no VPN runs gives nothing.
#[derive(Clone, Default)]
pub struct Relays(std::sync::Arc<std::sync::Mutex<Option<RelayPort>>>);

impl Relays {
    fn set(&self, port: Option<RelayPort>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = port;
    }

    /// A relay for the peer whose public key is `peer` (base64), if the VPN runs. Datagrams
    /// it delivers count only if they are that peer's.
    pub async fn attach(&self, peer: &str) -> Option<RelayLink> {
        let public = keys::decode(peer)?;
        let port = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        port.attach(public).await
    }
}

#[derive(Clone)]
struct RelayPort {
    commands: mpsc::Sender<engine::Command>,
    inbound: engine::Inbound,
}

impl RelayPort {
    async fn attach(&self, public: [u8; 32]) -> Option<RelayLink> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, outbound) = mpsc::channel(engine::RELAY_QUEUE);
        self.commands
            .send(engine::Command::RelayOpen { id, public, tx })
            .await
            .ok()?;
        Some(RelayLink {
            id,
            public,
            commands: self.commands.clone(),
            inbound: self.inbound.clone(),
            outbound,
        })
    }
}

/// One WebSocket's share of a tunnel: what arrives on it is [`Self::deliver`]ed, and what
/// [`Self::next`] gives is sent on it. Dropping it closes the relay.
pub struct RelayLink {
    id: u64,
    public: [u8; 32],
    commands: mpsc::Sender<engine::Command>,
    inbound: engine::Inbound,
    outbound: mpsc::Receiver<bytes::Bytes>,
}

impl RelayLink {
    /// A datagram that arrived over the WebSocket (dropped when the tunnel is busy, as a
    /// full UDP buffer would).
    pub fn deliver(&self, datagram: bytes::Bytes) {
        let _ = self.inbound.try_send((self.id, datagram));
    }

    /// Which way the tunnel's peer is reached now (`None` before a session, or once the
    /// tunnel stopped).
    pub async fn path(&self) -> Option<TunnelPath> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(engine::Command::Path {
                public: self.public,
                reply,
            })
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// The next datagram to send over the WebSocket; `None` once the tunnel stopped.
    pub async fn next(&mut self) -> Option<bytes::Bytes> {
        self.outbound.recv().await
    }
}

/// What the VPN needs to start.
pub struct VpnSettings {
    pub listen: SocketAddr,
    pub subnet: Ipv4Net,
    pub server_address: Ipv4Addr,
    pub data_dir: std::path::PathBuf,
    /// Where tunnel TCP port 80 is carried to (the edge's HTTP listener).
    pub forward_to: SocketAddr,
    /// Notices that the peers changed.
    pub changes: PeerChanges,
    /// Where agents' control channels find the tunnel for their datagrams.
    pub relays: Relays,
}

/// A running VPN endpoint.
pub struct Vpn {
    addr: SocketAddr,
    public_key: String,
    commands: mpsc::Sender<engine::Command>,
    relays: Relays,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Vpn {
    pub async fn start(s: VpnSettings, db: Db) -> Result<Vpn, VpnError> {
        let secret = keys::load_or_create(&s.data_dir)?;
        let public_key = keys::encode(keys::public_of(&secret).as_bytes());
        let udp = UdpSocket::bind(s.listen)
            .await
            .map_err(|source| VpnError::Listen {
                addr: s.listen,
                source,
            })?;
        let addr = udp.local_addr().unwrap_or(s.listen);
        let engine = engine::Engine::new(
            secret,
            udp,
            engine::Peers::Db {
                db,
                subnet: s.subnet,
            },
            s.server_address,
            s.subnet.prefix_len(),
            HashMap::from([(HTTP_PORT, s.forward_to)]),
        );
        let (commands, rx) = mpsc::channel(16);
        s.relays.set(Some(RelayPort {
            commands: commands.clone(),
            inbound: engine.inbound(),
        }));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(engine.run(rx, shutdown.clone()));
        let (changes, reload, stopped) = (s.changes.0.clone(), commands.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = changes.notified() => {
                        if reload.send(engine::Command::Reload).await.is_err() {
                            return;
                        }
                    }
                    _ = stopped.cancelled() => return,
                }
            }
        });
        tracing::info!(%addr, server = %s.server_address, "vpn listening");
        Ok(Vpn {
            addr,
            public_key,
            commands,
            relays: s.relays,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's WireGuard public key (base64).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Opens connections to peers through the tunnel.
    pub fn dialer(&self) -> TunnelDialer {
        TunnelDialer {
            commands: self.commands.clone(),
        }
    }

    /// Re-reads the peers from the database now.
    pub async fn reload(&self) {
        let _ = self.commands.send(engine::Command::Reload).await;
    }

    pub async fn stop(self) {
        self.relays.set(None);
        self.shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            tracing::warn!("vpn did not stop within 3 s");
        }
    }
}

/// What an agent's end of the tunnel needs.
pub struct AgentTunnelSettings {
    pub secret: boringtun::x25519::StaticSecret,
    /// Its own address in the tunnel.
    pub address: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub server_public_key: [u8; 32],
    pub server_address: Ipv4Addr,
    /// The server's UDP endpoint, resolved.
    pub server_endpoint: SocketAddr,
}

/// A container agent's end of the tunnel: one peer (the server) and the container's service
/// ports, each carried to `127.0.0.1:<port>`. Nothing else is reachable through it.
pub struct AgentTunnel {
    commands: mpsc::Sender<engine::Command>,
    relay: RelayPort,
    server_public_key: [u8; 32],
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl AgentTunnel {
    pub async fn start(s: AgentTunnelSettings, ports: &[u16]) -> Result<AgentTunnel, VpnError> {
        let any: SocketAddr = if s.server_endpoint.is_ipv6() {
            "[::]:0".parse().unwrap_or(s.server_endpoint)
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        };
        let udp = UdpSocket::bind(any)
            .await
            .map_err(|source| VpnError::Listen { addr: any, source })?;
        let server_public_key = s.server_public_key;
        let engine = engine::Engine::new(
            s.secret,
            udp,
            engine::Peers::Static(engine::StaticPeer {
                name: "server".into(),
                public: s.server_public_key,
                address: s.server_address,
                endpoint: s.server_endpoint,
            }),
            s.address,
            s.subnet.prefix_len(),
            loopback_targets(ports),
        );
        let (commands, rx) = mpsc::channel(16);
        let relay = RelayPort {
            commands: commands.clone(),
            inbound: engine.inbound(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(engine.run(rx, shutdown.clone()));
        Ok(AgentTunnel {
            commands,
            relay,
            server_public_key,
            shutdown,
            task,
        })
    }

    /// The service ports from now on (open connections stay).
    pub async fn set_ports(&self, ports: &[u16]) {
        let _ = self
            .commands
            .send(engine::Command::Listen(loopback_targets(ports)))
            .await;
    }

    /// Opens connections to the server through the tunnel.
    pub fn dialer(&self) -> TunnelDialer {
        TunnelDialer {
            commands: self.commands.clone(),
        }
    }

    /// A relay to the server, for a WebSocket that carries the tunnel where UDP does not
    /// get through (the control channel).
    pub async fn relay(&self) -> Option<RelayLink> {
        self.relay.attach(self.server_public_key).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

fn loopback_targets(ports: &[u16]) -> HashMap<u16, SocketAddr> {
    ports
        .iter()
        .map(|p| (*p, SocketAddr::from(([127, 0, 0, 1], *p))))
        .collect()
}

/// A peer just created, with the only copy of its private key.
pub struct CreatedPeer {
    pub peer: VpnPeer,
    /// A wg-quick configuration for the peer.
    pub wg_quick: String,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Creates a peer with a fresh key pair and the lowest free address of the subnet, and
/// returns its wg-quick configuration. A running server picks the peer up by itself.
pub async fn add_peer(db: &Db, cfg: &Config, name: &str) -> Result<CreatedPeer, VpnError> {
    let secret = keys::generate();
    let public = keys::encode(keys::public_of(&secret).as_bytes());
    let joined = add_peer_with_key(db, cfg, name, &public).await?;
    let wg_quick = format!(
        "# Demiurge VPN peer \"{name}\"\n\
         [Interface]\n\
         PrivateKey = {private}\n\
         Address = {address}/32\n\
         \n\
         [Peer]\n\
         PublicKey = {server_public}\n\
         AllowedIPs = {subnet}\n\
         Endpoint = {endpoint}\n\
         PersistentKeepalive = 25\n",
        private = keys::encode(secret.as_bytes()),
        address = joined.peer.address,
        server_public = joined.server_public_key,
        subnet = joined.subnet,
        endpoint = joined.endpoint,
    );
    Ok(CreatedPeer {
        peer: joined.peer,
        wg_quick,
    })
}

/// A peer registered with a public key its owner made (a container's agent keeps its
/// private key to itself), and what it needs to reach the server.
#[derive(Debug, Clone)]
pub struct JoinedPeer {
    pub peer: VpnPeer,
    /// The server's public key (base64).
    pub server_public_key: String,
    /// The server's UDP endpoint (`host:port`).
    pub endpoint: String,
    /// The network (the server holds its first address).
    pub subnet: Ipv4Net,
    pub server_address: Ipv4Addr,
}

/// Registers a peer with the given public key at the lowest free address of the subnet.
pub async fn add_peer_with_key(
    db: &Db,
    cfg: &Config,
    name: &str,
    public: &str,
) -> Result<JoinedPeer, VpnError> {
    if !valid_name(name) {
        return Err(VpnError::BadName);
    }
    if keys::decode(public).is_none() {
        return Err(VpnError::BadKey);
    }
    let endpoint = cfg.vpn_endpoint().ok_or(VpnError::Disabled)?;
    let server_secret = keys::load_or_create(&cfg.server.data_dir)?;
    let server_public = keys::encode(keys::public_of(&server_secret).as_bytes());
    let subnet = cfg.vpn.subnet;
    let server_ip = cfg.vpn.server_address();

    // Two adds at once may pick the same address; the unique index refuses one, which retries.
    for _ in 0..8 {
        let existing = db.vpn_peers().await?;
        if existing.iter().any(|p| p.name == name) {
            return Err(VpnError::NameTaken(name.to_string()));
        }
        if existing.iter().any(|p| p.public_key == public) {
            return Err(VpnError::KeyTaken);
        }
        let taken: HashSet<Ipv4Addr> = existing
            .iter()
            .filter_map(|p| p.address.parse().ok())
            .collect();
        let address = subnet
            .hosts()
            .find(|ip| *ip != server_ip && !taken.contains(ip))
            .ok_or(VpnError::SubnetFull(subnet))?;
        let address_text = address.to_string();
        let new = NewVpnPeer {
            name,
            public_key: public,
            address: &address_text,
            created_at: chrono::Utc::now().naive_utc(),
        };
        match db.insert_vpn_peer(&new).await {
            Ok(peer) => {
                return Ok(JoinedPeer {
                    peer,
                    server_public_key: server_public,
                    endpoint,
                    subnet,
                    server_address: server_ip,
                });
            }
            Err(DbError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(VpnError::NameTaken(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn peer_names() {
        assert!(valid_name("laptop-1"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
