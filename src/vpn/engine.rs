//! The WireGuard event loop, for both ends of the tunnel: one task owns the UDP socket, every
//! peer's WireGuard tunnel (boringtun) and a userspace TCP/IP stack (smoltcp) holding this
//! end's tunnel address. No root, no TUN device.
//!
//! TCP connections that peers open to a listening port are bridged to that port's target (the
//! server: port 80 to the edge; an agent: each service port to `127.0.0.1:<port>`), and
//! [`Command::Connect`] opens a TCP connection *into* the tunnel (the edge reaching a
//! container's service). The server's peers come from the database; an agent has one static
//! peer, the server, which it dials itself.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use bytes::{Buf, Bytes};
use ipnet::Ipv4Net;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::device::QueueDevice;
use super::keys;
use crate::db::Db;

/// TCP port inside the tunnel that reaches the HTTP front door.
pub const HTTP_PORT: u16 = 80;
/// Most TCP connections carried at once; further SYNs are refused until some close.
const MAX_CONNECTIONS: usize = 512;
/// Listening sockets kept ready per port: smoltcp has no accept backlog, and a browser opens
/// six connections at once.
const LISTEN_POOL: usize = 8;
/// An outbound connection that is not established by then fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An agent's keepalive towards the server (keeps NAT mappings open).
const AGENT_KEEPALIVE: u16 = 25;
const TCP_BUFFER: usize = 64 * 1024;
const CHUNK: usize = 16 * 1024;
/// WireGuard timers want a tick every 100-250 ms.
const TIMER_TICK: Duration = Duration::from_millis(100);
/// Peers are re-read from the database this often (and on a handshake from an unknown key).
const RELOAD_EVERY: Duration = Duration::from_secs(30);
const RELOAD_MIN_GAP: Duration = Duration::from_millis(500);
/// A peer heard over UDP this recently is sent to over UDP only; otherwise over its relay
/// too (longer than the agent's keepalive, so an idle tunnel that works stays on UDP).
const UDP_FRESH: Duration = Duration::from_secs(30);
/// Datagrams waiting for one relay's WebSocket; more are dropped, as a full UDP buffer would.
pub const RELAY_QUEUE: usize = 512;

/// Datagrams that arrived over relays, with the relay's id.
pub type Inbound = mpsc::Sender<(u64, Bytes)>;

pub enum Command {
    /// Re-read peers from the database now.
    Reload,
    /// Open a TCP connection to `to` inside the tunnel; the answer comes once it is
    /// established (or refused, or timed out).
    Connect {
        to: std::net::SocketAddrV4,
        reply: oneshot::Sender<std::io::Result<DuplexStream>>,
    },
    /// Which tunnel ports accept connections, and where each is carried to. Open
    /// connections stay; ports no longer named stop accepting.
    Listen(HashMap<u16, SocketAddr>),
    /// A relay for the peer with key `public` opened (its WebSocket carries the same
    /// datagrams as UDP); datagrams for it go to `tx`, and it delivers to [`Inbound`].
    RelayOpen {
        id: u64,
        public: [u8; 32],
        tx: mpsc::Sender<Bytes>,
    },
    /// Which way the peer with key `public` is reached now (`None`: no such peer, or no
    /// session with it yet).
    Path {
        public: [u8; 32],
        reply: oneshot::Sender<Option<TunnelPath>>,
    },
}

/// Which way a peer's datagrams travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelPath {
    /// Heard over UDP within [`UDP_FRESH`]: UDP alone.
    Udp,
    /// Not heard over UDP lately: its relay (a WebSocket) carries the tunnel.
    Relay,
}

/// Where this end's peers come from.
pub enum Peers {
    /// The server: every row of `vpn_peers` (inside `subnet`), re-read on changes.
    Db { db: Db, subnet: Ipv4Net },
    /// An agent: one peer it dials itself.
    Static(StaticPeer),
}

/// A peer whose key, address and endpoint are known up front.
pub struct StaticPeer {
    pub name: String,
    pub public: [u8; 32],
    pub address: Ipv4Addr,
    pub endpoint: SocketAddr,
}

struct Peer {
    name: String,
    public: [u8; 32],
    address: Ipv4Addr,
    tunn: Box<Tunn>,
    /// Its UDP address (the last one it was heard from).
    endpoint: Option<SocketAddr>,
    /// When it was last heard over UDP.
    udp_heard: Option<StdInstant>,
    /// The relay it was last heard over (or that opened for it).
    relay: Option<u64>,
}

/// A WebSocket carrying one peer's datagrams (see [`super::Relays`]).
struct Relay {
    public: [u8; 32],
    tx: mpsc::Sender<Bytes>,
}

/// Where a datagram came from, and where an answer to it goes.
#[derive(Clone, Copy)]
enum Source {
    Udp(SocketAddr),
    Relay(u64),
}

/// A connection this end opened, not established yet.
struct Dialing {
    reply: oneshot::Sender<std::io::Result<DuplexStream>>,
    /// The other ends of `Conn`'s channels, handed to the bridge once established.
    to_up: mpsc::Receiver<Bytes>,
    from_up: mpsc::Sender<Bytes>,
    deadline: StdInstant,
}

struct Conn {
    handle: SocketHandle,
    dialing: Option<Dialing>,
    /// Bytes from the peer, on their way to the upstream. None once the peer sent FIN.
    to_up: Option<mpsc::Sender<Bytes>>,
    from_up: mpsc::Receiver<Bytes>,
    /// Part of an upstream chunk the socket had no room for yet.
    pending: Option<Bytes>,
    upstream_done: bool,
}

pub struct Engine {
    secret: StaticSecret,
    public: PublicKey,
    udp: UdpSocket,
    source: Peers,
    /// Tunnel port -> where its connections are carried.
    targets: HashMap<u16, SocketAddr>,
    peers: HashMap<u32, Peer>,
    by_key: HashMap<[u8; 32], u32>,
    by_ip: HashMap<Ipv4Addr, u32>,
    next_index: u32,
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    /// Ready listening sockets, with their port.
    listeners: Vec<(SocketHandle, u16)>,
    /// SYNs queued for the stack since it last ran, by port.
    syns_waiting: HashMap<u16, usize>,
    conns: Vec<Conn>,
    notify: Arc<Notify>,
    last_reload: Option<StdInstant>,
    next_local_port: u16,
    relays: HashMap<u64, Relay>,
    inbound_tx: Inbound,
    inbound_rx: Option<mpsc::Receiver<(u64, Bytes)>>,
}

fn now() -> Instant {
    Instant::now()
}

impl Engine {
    /// An endpoint holding `own_ip` (in a network of `prefix_len`), with peers from `source`
    /// and `targets` listening.
    pub fn new(
        secret: StaticSecret,
        udp: UdpSocket,
        source: Peers,
        own_ip: Ipv4Addr,
        prefix_len: u8,
        targets: HashMap<u16, SocketAddr>,
    ) -> Self {
        let public = keys::public_of(&secret);
        let (inbound_tx, inbound_rx) = mpsc::channel(4 * RELAY_QUEUE);
        let mut device = QueueDevice::default();
        let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
        cfg.random_seed = rand::random();
        let mut iface = Interface::new(cfg, &mut device, now());
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(own_ip), prefix_len));
        });
        let mut engine = Self {
            secret,
            public,
            udp,
            source,
            targets,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            by_ip: HashMap::new(),
            next_index: 1,
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            listeners: Vec::new(),
            syns_waiting: HashMap::new(),
            conns: Vec::new(),
            notify: Arc::new(Notify::new()),
            last_reload: None,
            next_local_port: 49_152 + rand::random::<u16>() % 16_000,
            relays: HashMap::new(),
            inbound_tx,
            inbound_rx: Some(inbound_rx),
        };
        engine.refill_listeners();
        engine
    }

    /// Where relays deliver the datagrams they carry.
    pub fn inbound(&self) -> Inbound {
        self.inbound_tx.clone()
    }

    /// The open relay of the peer with key `public`, if any.
    fn relay_of(&self, public: &[u8; 32]) -> Option<u64> {
        self.relays
            .iter()
            .filter(|(_, r)| &r.public == public && !r.tx.is_closed())
            .map(|(id, _)| *id)
            .max()
    }

    fn path_of(&self, public: &[u8; 32]) -> Option<TunnelPath> {
        let peer = self.by_key.get(public).and_then(|i| self.peers.get(i))?;
        if peer.udp_heard.is_some_and(|t| t.elapsed() < UDP_FRESH) {
            return Some(TunnelPath::Udp);
        }
        peer.tunn.time_since_last_handshake()?;
        peer.relay.map(|_| TunnelPath::Relay)
    }

    /// A relay opened: the peer is sent to over it (too) from now on. An agent whose tunnel
    /// has no session yet starts its handshake again at once, over both paths.
    async fn open_relay(
        &mut self,
        id: u64,
        public: [u8; 32],
        tx: mpsc::Sender<Bytes>,
        out: &mut [u8],
    ) {
        self.relays.insert(id, Relay { public, tx });
        let Some(peer) = self.by_key.get(&public).and_then(|i| self.peers.get_mut(i)) else {
            return;
        };
        peer.relay = Some(id);
        if matches!(self.source, Peers::Static(_))
            && peer.tunn.time_since_last_handshake().is_none()
            && let TunnResult::WriteToNetwork(pkt) =
                peer.tunn.format_handshake_initiation(out, true)
        {
            transmit(&self.udp, &mut self.relays, peer, pkt).await;
        }
    }

    fn new_socket() -> tcp::Socket<'static> {
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        sock.set_nagle_enabled(false);
        sock.set_timeout(Some(smoltcp::time::Duration::from_secs(120)));
        sock.set_keep_alive(Some(smoltcp::time::Duration::from_secs(30)));
        sock
    }

    /// Keeps [`LISTEN_POOL`] listening sockets ready on every target port (while there is
    /// room for more connections), and none on ports that are no longer targets.
    fn refill_listeners(&mut self) {
        let sockets = &mut self.sockets;
        let targets = &self.targets;
        self.listeners.retain(|(h, port)| {
            let keep = targets.contains_key(port);
            if !keep {
                sockets.remove(*h);
            }
            keep
        });
        if self.conns.len() + self.listeners.len() >= MAX_CONNECTIONS {
            return;
        }
        let mut ports: Vec<u16> = self.targets.keys().copied().collect();
        ports.sort_unstable();
        for port in ports {
            let ready = self.listeners.iter().filter(|(_, p)| *p == port).count();
            for _ in ready..LISTEN_POOL {
                let mut sock = Self::new_socket();
                if sock.listen(port).is_ok() {
                    self.listeners.push((self.sockets.add(sock), port));
                }
            }
        }
    }

    fn set_targets(&mut self, targets: HashMap<u16, SocketAddr>) {
        self.targets = targets;
        self.refill_listeners();
    }

    /// Starts a connection into the tunnel; [`Self::pump`] answers `reply` once it is
    /// established or has failed.
    fn connect(
        &mut self,
        to: std::net::SocketAddrV4,
        reply: oneshot::Sender<std::io::Result<DuplexStream>>,
    ) {
        if self.conns.len() >= MAX_CONNECTIONS {
            let _ = reply.send(Err(std::io::Error::other(
                "the tunnel carries as many connections as it may",
            )));
            return;
        }
        let in_use: std::collections::HashSet<u16> = self
            .conns
            .iter()
            .filter_map(|c| self.sockets.get::<tcp::Socket>(c.handle).local_endpoint())
            .map(|e| e.port)
            .collect();
        let mut local = self.next_local_port;
        for _ in 0..16_384 {
            local = if local >= 65_000 { 49_152 } else { local + 1 };
            if !in_use.contains(&local) {
                break;
            }
        }
        self.next_local_port = local;
        let mut sock = Self::new_socket();
        let remote = (IpAddress::Ipv4(*to.ip()), to.port());
        if let Err(e) = sock.connect(self.iface.context(), remote, local) {
            let _ = reply.send(Err(std::io::Error::other(format!(
                "cannot connect to {to} in the tunnel: {e}"
            ))));
            return;
        }
        let handle = self.sockets.add(sock);
        let (to_up_tx, to_up_rx) = mpsc::channel::<Bytes>(32);
        let (from_up_tx, from_up_rx) = mpsc::channel::<Bytes>(32);
        self.conns.push(Conn {
            handle,
            dialing: Some(Dialing {
                reply,
                to_up: to_up_rx,
                from_up: from_up_tx,
                deadline: StdInstant::now() + CONNECT_TIMEOUT,
            }),
            to_up: Some(to_up_tx),
            from_up: from_up_rx,
            pending: None,
            upstream_done: false,
        });
    }

    /// Reads the peers from the database: adds new ones, drops removed ones, keeps the
    /// sessions of unchanged ones.
    pub async fn reload_peers(&mut self) {
        self.last_reload = Some(StdInstant::now());
        let (db, subnet) = match &self.source {
            Peers::Db { db, subnet } => (db, *subnet),
            Peers::Static(_) => return,
        };
        let rows = match db.vpn_peers().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "vpn: cannot read peers");
                return;
            }
        };
        let mut seen = Vec::with_capacity(rows.len());
        for row in rows {
            let (Some(public), Ok(address)) = (
                keys::decode(&row.public_key),
                row.address.parse::<Ipv4Addr>(),
            ) else {
                tracing::warn!(peer = %row.name, "vpn: skipping a peer with a bad key or address");
                continue;
            };
            if !subnet.contains(&address) {
                tracing::warn!(peer = %row.name, %address, "vpn: peer address outside the subnet; skipped");
                continue;
            }
            seen.push(public);
            if let Some(idx) = self.by_key.get(&public) {
                if self.peers.get(idx).is_some_and(|p| p.address == address) {
                    continue;
                }
                self.remove_peer(public);
            }
            let index = self.next_index;
            self.next_index = (self.next_index + 1) & 0x00ff_ffff;
            let tunn = Tunn::new(
                self.secret.clone(),
                PublicKey::from(public),
                None,
                None,
                index,
                None,
            );
            self.by_key.insert(public, index);
            self.by_ip.insert(address, index);
            tracing::info!(peer = %row.name, %address, "vpn: peer loaded");
            let relay = self.relay_of(&public);
            self.peers.insert(
                index,
                Peer {
                    name: row.name,
                    public,
                    address,
                    tunn: Box::new(tunn),
                    endpoint: None,
                    udp_heard: None,
                    relay,
                },
            );
        }
        let gone: Vec<[u8; 32]> = self
            .by_key
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        for k in gone {
            self.remove_peer(k);
        }
    }

    /// An agent's one peer, dialled at once (and kept alive).
    async fn start_static(&mut self, out: &mut [u8]) {
        let Peers::Static(p) = &self.source else {
            return;
        };
        let index = self.next_index;
        self.next_index += 1;
        let tunn = Tunn::new(
            self.secret.clone(),
            PublicKey::from(p.public),
            None,
            Some(AGENT_KEEPALIVE),
            index,
            None,
        );
        let mut peer = Peer {
            name: p.name.clone(),
            public: p.public,
            address: p.address,
            tunn: Box::new(tunn),
            endpoint: Some(p.endpoint),
            udp_heard: None,
            relay: None,
        };
        self.by_key.insert(p.public, index);
        self.by_ip.insert(p.address, index);
        if let TunnResult::WriteToNetwork(pkt) = peer.tunn.format_handshake_initiation(out, false) {
            transmit(&self.udp, &mut self.relays, &mut peer, pkt).await;
        }
        self.peers.insert(index, peer);
    }

    fn remove_peer(&mut self, public: [u8; 32]) {
        if let Some(idx) = self.by_key.remove(&public)
            && let Some(p) = self.peers.remove(&idx)
        {
            self.by_ip.remove(&p.address);
            tracing::info!(peer = %p.name, "vpn: peer removed");
        }
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        self.reload_peers().await;
        let mut buf = vec![0u8; 65_536];
        let mut out = vec![0u8; 65_536 + 64];
        self.start_static(&mut out).await;
        let mut timers = tokio::time::interval(TIMER_TICK);
        timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reload = tokio::time::interval(RELOAD_EVERY);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.reset();
        let notify = self.notify.clone();
        let Some(mut inbound) = self.inbound_rx.take() else {
            return;
        };
        loop {
            let delay = self
                .iface
                .poll_delay(now(), &self.sockets)
                .map(|d| Duration::from_micros(d.total_micros()))
                .unwrap_or(TIMER_TICK)
                .min(TIMER_TICK);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        self.on_datagram(&buf[..n], Source::Udp(from), &mut out).await;
                        // Take whatever else is already queued before running the stack.
                        for _ in 0..64 {
                            match self.udp.try_recv_from(&mut buf) {
                                Ok((n, from)) => {
                                    self.on_datagram(&buf[..n], Source::Udp(from), &mut out).await;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "vpn: udp receive failed"),
                },
                Some((id, datagram)) = inbound.recv() => {
                    self.on_datagram(&datagram, Source::Relay(id), &mut out).await;
                    for _ in 0..64 {
                        match inbound.try_recv() {
                            Ok((id, d)) => self.on_datagram(&d, Source::Relay(id), &mut out).await,
                            Err(_) => break,
                        }
                    }
                }
                _ = notify.notified() => {}
                _ = timers.tick() => self.tick_timers(&mut out).await,
                _ = reload.tick() => self.reload_peers().await,
                Some(cmd) = commands.recv() => match cmd {
                    Command::Reload => self.reload_peers().await,
                    Command::Connect { to, reply } => self.connect(to, reply),
                    Command::Listen(targets) => self.set_targets(targets),
                    Command::RelayOpen { id, public, tx } => self.open_relay(id, public, tx, &mut out).await,
                    Command::Path { public, reply } => {
                        let _ = reply.send(self.path_of(&public));
                    }
                },
                _ = tokio::time::sleep(delay) => {}
            }
            self.process(&mut out).await;
        }
        for c in &self.conns {
            self.sockets.get_mut::<tcp::Socket>(c.handle).abort();
        }
        self.process(&mut out).await;
    }

    async fn on_datagram(&mut self, data: &[u8], from: Source, out: &mut [u8]) {
        let packet = Tunn::parse_incoming_packet(data);
        // A cookie reply is not proof that the peer is reachable this way; the rest is.
        let proves_path = !matches!(packet, Ok(Packet::PacketCookieReply(_)));
        let index = match packet {
            Ok(Packet::HandshakeInit(init)) => {
                let Ok(half) = parse_handshake_anon(&self.secret, &self.public, &init) else {
                    return;
                };
                if !self.by_key.contains_key(&half.peer_static_public)
                    && matches!(self.source, Peers::Db { .. })
                {
                    // Perhaps a peer added a moment ago (`demiurge admin vpn add-peer`).
                    let due = self
                        .last_reload
                        .is_none_or(|t| t.elapsed() >= RELOAD_MIN_GAP);
                    if due {
                        self.reload_peers().await;
                    }
                }
                match self.by_key.get(&half.peer_static_public) {
                    Some(i) => *i,
                    None => {
                        tracing::debug!("vpn: handshake from an unknown key");
                        return;
                    }
                }
            }
            Ok(Packet::HandshakeResponse(p)) => p.receiver_idx >> 8,
            Ok(Packet::PacketCookieReply(p)) => p.receiver_idx >> 8,
            Ok(Packet::PacketData(p)) => p.receiver_idx >> 8,
            Err(_) => return,
        };
        let Some(peer) = self.peers.get_mut(&index) else {
            return;
        };
        let src_ip = match from {
            Source::Udp(addr) => Some(addr.ip()),
            Source::Relay(id) => {
                // A relay carries its own container's peer, nobody else's.
                if self.relays.get(&id).is_none_or(|r| r.public != peer.public) {
                    tracing::debug!(peer = %peer.name, "vpn: dropped a datagram from another peer's relay");
                    return;
                }
                None
            }
        };
        let mut datagram: &[u8] = data;
        let mut syn_to = None;
        loop {
            let result = peer.tunn.decapsulate(src_ip, datagram, out);
            if proves_path && !matches!(result, TunnResult::Err(_)) {
                match from {
                    Source::Udp(addr) => {
                        peer.endpoint = Some(addr);
                        peer.udp_heard = Some(StdInstant::now());
                    }
                    Source::Relay(id) => peer.relay = Some(id),
                }
            }
            match result {
                TunnResult::WriteToNetwork(pkt) => {
                    send_via(&self.udp, &mut self.relays, from, pkt).await;
                    datagram = &[];
                }
                TunnResult::WriteToTunnelV4(pkt, src) => {
                    if src == peer.address {
                        syn_to = tcp_syn_port(pkt);
                        self.device.rx.push_back(pkt.to_vec());
                    } else {
                        tracing::debug!(peer = %peer.name, %src, "vpn: dropped a packet with a spoofed source");
                    }
                    break;
                }
                TunnResult::WriteToTunnelV6(..) | TunnResult::Done => break,
                TunnResult::Err(e) => {
                    tracing::debug!(peer = %peer.name, error = ?e, "vpn: packet refused");
                    break;
                }
            }
        }
        if let Some(port) = syn_to {
            self.listener_for_syn(port);
        }
    }

    /// A SYN for a target port waits in the stack's queue: a listening socket is ready for
    /// it when the stack runs (smoltcp has no accept backlog, so a burst of SYNs larger than
    /// the pool would otherwise be reset).
    fn listener_for_syn(&mut self, port: u16) {
        if !self.targets.contains_key(&port) {
            return;
        }
        let waiting = self.syns_waiting.entry(port).or_insert(0);
        *waiting += 1;
        let ready = self.listeners.iter().filter(|(_, p)| *p == port).count();
        if ready >= *waiting || self.conns.len() + self.listeners.len() >= MAX_CONNECTIONS {
            return;
        }
        let mut sock = Self::new_socket();
        if sock.listen(port).is_ok() {
            self.listeners.push((self.sockets.add(sock), port));
        }
    }

    async fn tick_timers(&mut self, out: &mut [u8]) {
        self.relays.retain(|_, r| !r.tx.is_closed());
        for peer in self.peers.values_mut() {
            if peer.relay.is_some_and(|id| !self.relays.contains_key(&id)) {
                peer.relay = None;
            }
            if let TunnResult::WriteToNetwork(pkt) = peer.tunn.update_timers(out) {
                transmit(&self.udp, &mut self.relays, peer, pkt).await;
            }
        }
    }

    /// Moves data between the stack and the bridges, runs the stack, and sends what it emitted.
    async fn process(&mut self, out: &mut [u8]) {
        for _ in 0..2 {
            self.accept();
            self.settle_dials();
            self.pump();
            self.iface.poll(now(), &mut self.device, &mut self.sockets);
            self.syns_waiting.clear();
            self.flush_tx(out).await;
        }
        self.reap();
    }

    /// Listening sockets that received a SYN become connections with a bridge each.
    fn accept(&mut self) {
        let mut i = 0;
        let mut accepted = false;
        while i < self.listeners.len() {
            let (handle, port) = self.listeners[i];
            let state = self.sockets.get::<tcp::Socket>(handle).state();
            if state == tcp::State::Listen {
                i += 1;
                continue;
            }
            self.listeners.swap_remove(i);
            accepted = true;
            let Some(target) = self.targets.get(&port).copied() else {
                self.sockets.get_mut::<tcp::Socket>(handle).abort();
                self.conns.push(Conn::closed(handle));
                continue;
            };
            let (to_up_tx, to_up_rx) = mpsc::channel::<Bytes>(32);
            let (from_up_tx, from_up_rx) = mpsc::channel::<Bytes>(32);
            let peer_ip = self
                .sockets
                .get::<tcp::Socket>(handle)
                .remote_endpoint()
                .map(|e| std::net::IpAddr::from(e.addr));
            tokio::spawn(bridge_to(
                target,
                peer_ip,
                to_up_rx,
                from_up_tx,
                self.notify.clone(),
            ));
            self.conns.push(Conn {
                handle,
                dialing: None,
                to_up: Some(to_up_tx),
                from_up: from_up_rx,
                pending: None,
                upstream_done: false,
            });
        }
        if accepted {
            self.refill_listeners();
        }
    }

    /// Outbound connections that got established (handed to their caller) or failed.
    fn settle_dials(&mut self) {
        let now = StdInstant::now();
        for conn in &mut self.conns {
            let Some(d) = &conn.dialing else { continue };
            let sock = self.sockets.get_mut::<tcp::Socket>(conn.handle);
            let state = sock.state();
            if d.reply.is_closed() {
                sock.abort();
                conn.dialing = None;
                continue;
            }
            let failed = match state {
                tcp::State::SynSent => now >= d.deadline,
                tcp::State::Established | tcp::State::CloseWait => false,
                _ => true,
            };
            if failed {
                sock.abort();
                if let Some(d) = conn.dialing.take() {
                    let _ = d.reply.send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "the service in the tunnel refused or did not answer",
                    )));
                }
                continue;
            }
            if state == tcp::State::SynSent {
                continue;
            }
            if let Some(d) = conn.dialing.take() {
                let (ours, theirs) = tokio::io::duplex(TCP_BUFFER);
                if d.reply.send(Ok(theirs)).is_ok() {
                    tokio::spawn(bridge(ours, d.to_up, d.from_up, self.notify.clone()));
                } else {
                    sock.abort();
                }
            }
        }
    }

    fn pump(&mut self) {
        for conn in &mut self.conns {
            if conn.dialing.is_some() {
                continue;
            }
            let sock = self.sockets.get_mut::<tcp::Socket>(conn.handle);
            // Peer -> upstream.
            if let Some(tx) = &conn.to_up {
                let mut closed = false;
                while sock.can_recv() {
                    match tx.try_reserve() {
                        Ok(permit) => match sock.recv(|b| {
                            let n = b.len().min(CHUNK);
                            (n, Bytes::copy_from_slice(&b[..n]))
                        }) {
                            Ok(chunk) => permit.send(chunk),
                            Err(_) => break,
                        },
                        Err(mpsc::error::TrySendError::Full(())) => break,
                        Err(mpsc::error::TrySendError::Closed(())) => {
                            closed = true;
                            break;
                        }
                    }
                }
                let peer_finished = !sock.may_recv()
                    && !matches!(
                        sock.state(),
                        tcp::State::Listen | tcp::State::SynReceived | tcp::State::SynSent
                    );
                if closed {
                    sock.abort();
                    conn.to_up = None;
                } else if peer_finished && !sock.can_recv() {
                    conn.to_up = None;
                }
            }
            // Upstream -> peer.
            loop {
                if conn.pending.is_none() {
                    match conn.from_up.try_recv() {
                        Ok(b) => conn.pending = Some(b),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            conn.upstream_done = true;
                            break;
                        }
                    }
                }
                let Some(p) = conn.pending.as_mut() else {
                    break;
                };
                if !sock.can_send() {
                    break;
                }
                match sock.send_slice(p) {
                    Ok(n) => {
                        p.advance(n);
                        if p.is_empty() {
                            conn.pending = None;
                        }
                        if n == 0 {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if conn.upstream_done && conn.pending.is_none() && sock.may_send() {
                sock.close();
            }
        }
    }

    fn reap(&mut self) {
        let sockets = &mut self.sockets;
        let before = self.conns.len();
        self.conns.retain(|c| {
            let state = sockets.get::<tcp::Socket>(c.handle).state();
            let done =
                c.dialing.is_none() && matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if done {
                sockets.remove(c.handle);
            }
            !done
        });
        if self.conns.len() < before {
            self.refill_listeners();
        }
    }

    async fn flush_tx(&mut self, out: &mut [u8]) {
        while let Some(pkt) = self.device.tx.pop_front() {
            let Some(dst) = ipv4_destination(&pkt) else {
                continue;
            };
            let Some(peer) = self.by_ip.get(&dst).and_then(|i| self.peers.get_mut(i)) else {
                continue;
            };
            if let TunnResult::WriteToNetwork(wire) = peer.tunn.encapsulate(&pkt, out) {
                transmit(&self.udp, &mut self.relays, peer, wire).await;
            }
        }
    }
}

impl Conn {
    /// A connection refused as it arrived (its socket aborted; reaped once closed).
    fn closed(handle: SocketHandle) -> Self {
        let (_, from_up) = mpsc::channel(1);
        Self {
            handle,
            dialing: None,
            to_up: None,
            from_up,
            pending: None,
            upstream_done: true,
        }
    }
}

/// Sends a datagram to a peer: over UDP only while UDP is known to work both ways (heard
/// within [`UDP_FRESH`]), otherwise over UDP and the peer's relay alike (WireGuard drops the
/// duplicate), so a blocked UDP path costs nothing and a working one is found by itself.
async fn transmit(udp: &UdpSocket, relays: &mut HashMap<u64, Relay>, peer: &mut Peer, pkt: &[u8]) {
    if let Some(ep) = peer.endpoint {
        let _ = udp.send_to(pkt, ep).await;
    }
    if peer.udp_heard.is_some_and(|t| t.elapsed() < UDP_FRESH) {
        return;
    }
    if let Some(id) = peer.relay
        && !relay_send(relays, id, pkt)
    {
        peer.relay = None;
    }
}

/// Answers a datagram the way it came.
async fn send_via(udp: &UdpSocket, relays: &mut HashMap<u64, Relay>, to: Source, pkt: &[u8]) {
    match to {
        Source::Udp(addr) => {
            let _ = udp.send_to(pkt, addr).await;
        }
        Source::Relay(id) => {
            relay_send(relays, id, pkt);
        }
    }
}

/// Queues a datagram on a relay (dropped when its queue is full, as UDP would); false once
/// the relay is gone.
fn relay_send(relays: &mut HashMap<u64, Relay>, id: u64, pkt: &[u8]) -> bool {
    let Some(r) = relays.get(&id) else {
        return false;
    };
    match r.tx.try_send(Bytes::copy_from_slice(pkt)) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => {
            relays.remove(&id);
            false
        }
    }
}

/// The destination port of an IPv4 TCP segment that opens a connection (SYN without ACK).
fn tcp_syn_port(pkt: &[u8]) -> Option<u16> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 6 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let tcp = pkt.get(ihl..)?;
    if tcp.len() < 20 {
        return None;
    }
    let (syn, ack) = (tcp[13] & 0x02 != 0, tcp[13] & 0x10 != 0);
    (syn && !ack).then(|| u16::from_be_bytes([tcp[2], tcp[3]]))
}

fn ipv4_destination(pkt: &[u8]) -> Option<Ipv4Addr> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]))
}

/// Carries one tunnel TCP connection to and from `target`; while it lasts, the edge knows
/// its local address as the tunnel peer `peer_ip` ([`super::tunnel_peer`]).
async fn bridge_to(
    target: SocketAddr,
    peer_ip: Option<std::net::IpAddr>,
    rx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    notify: Arc<Notify>,
) {
    let stream =
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            _ => {
                tracing::debug!(%target, "vpn: cannot reach the forward target");
                drop(tx);
                notify.notify_one();
                return;
            }
        };
    let _ = stream.set_nodelay(true);
    let _tunneled = match (stream.local_addr(), peer_ip) {
        (Ok(local), Some(ip)) => Some(super::Tunneled::register(local, ip)),
        _ => None,
    };
    bridge(stream, rx, tx, notify).await;
}

/// Moves bytes between a stream and one tunnel connection's channels until both sides end.
async fn bridge<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    mut rx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    notify: Arc<Notify>,
) {
    let (mut r, mut w) = tokio::io::split(stream);
    let up_notify = notify.clone();
    let up = async move {
        while let Some(chunk) = rx.recv().await {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
            // Room in the channel again: let the loop read more from the peer.
            up_notify.notify_one();
        }
        let _ = w.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                    notify.notify_one();
                }
            }
        }
        drop(tx);
        notify.notify_one();
    };
    tokio::join!(up, down);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syns_are_told_from_other_segments() {
        // IPv4 (IHL 5) + TCP with the given flags, to port 9000.
        let segment = |flags: u8| {
            let mut p = vec![0u8; 40];
            p[0] = 0x45;
            p[9] = 6;
            p[22..24].copy_from_slice(&9000u16.to_be_bytes());
            p[33] = flags;
            p
        };
        assert_eq!(tcp_syn_port(&segment(0x02)), Some(9000));
        assert_eq!(tcp_syn_port(&segment(0x12)), None, "SYN-ACK");
        assert_eq!(tcp_syn_port(&segment(0x10)), None, "ACK");
        let mut udp = segment(0x02);
        udp[9] = 17;
        assert_eq!(tcp_syn_port(&udp), None);
        assert_eq!(tcp_syn_port(&segment(0x02)[..30]), None, "cut short");
    }

    /// A TCP server on loopback that sends back what it is sent.
    async fn echo_server() -> SocketAddr {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// Two static ends on loopback: A (dialing, no ports) reaches B at `b_at`; B, on
    /// `ub`, carries `targets` and reaches A at `a_at` (A's own socket when `None`).
    /// Answers (A, B, B's tunnel address).
    async fn static_pair(
        ub: UdpSocket,
        b_at: SocketAddr,
        a_at: Option<SocketAddr>,
        targets: HashMap<u16, SocketAddr>,
    ) -> (Engine, Engine, Ipv4Addr) {
        let (ka, kb) = (keys::generate(), keys::generate());
        let ua = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ea = ua.local_addr().unwrap();
        let (ipa, ipb) = (Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 1));
        let a = Engine::new(
            ka.clone(),
            ua,
            Peers::Static(StaticPeer {
                name: "b".into(),
                public: *keys::public_of(&kb).as_bytes(),
                address: ipb,
                endpoint: b_at,
            }),
            ipa,
            24,
            HashMap::new(),
        );
        let b = Engine::new(
            kb,
            ub,
            Peers::Static(StaticPeer {
                name: "a".into(),
                public: *keys::public_of(&ka).as_bytes(),
                address: ipa,
                endpoint: a_at.unwrap_or(ea),
            }),
            ipb,
            24,
            targets,
        );
        (a, b, ipb)
    }

    /// Many SYNs reaching the listening end together (a burst of connections while it was
    /// busy: here held back by a UDP hop in between, then let go at once) each find a
    /// listening socket; smoltcp has no backlog and would reset those beyond the pool.
    #[tokio::test]
    async fn a_burst_of_new_connections_is_accepted_whole() {
        let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink_addr = sink.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = sink.accept().await {
                held.push(s);
            }
        });
        let ub = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let eb = ub.local_addr().unwrap();
        // The hop: A -> hop -> B and B -> hop -> A (once A was heard); A's datagrams are
        // held while `hold` is set.
        let hop = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let hop_at = hop.local_addr().unwrap();
        let (a, b, ipb) =
            static_pair(ub, hop_at, Some(hop_at), HashMap::from([(7000, sink_addr)])).await;
        let hold = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
        {
            let (hop, hold, held) = (hop.clone(), hold.clone(), held.clone());
            tokio::spawn(async move {
                let mut a_at = None;
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = hop.recv_from(&mut buf).await {
                    if from == eb {
                        if let Some(to) = a_at {
                            let _ = hop.send_to(&buf[..n], to).await;
                        }
                        continue;
                    }
                    a_at = Some(from);
                    if hold.load(std::sync::atomic::Ordering::SeqCst) {
                        held.lock().unwrap().push(buf[..n].to_vec());
                    } else {
                        let _ = hop.send_to(&buf[..n], eb).await;
                    }
                }
            });
        }
        let stop = CancellationToken::new();
        let (ta, ra) = mpsc::channel(64);
        let (_tb, rb) = mpsc::channel(4);
        tokio::spawn(a.run(ra, stop.clone()));
        tokio::spawn(b.run(rb, stop.clone()));
        let dial = |ta: mpsc::Sender<Command>| async move {
            let (reply, answer) = oneshot::channel();
            ta.send(Command::Connect {
                to: std::net::SocketAddrV4::new(ipb, 7000),
                reply,
            })
            .await
            .unwrap();
            answer.await.unwrap()
        };
        // The session first.
        dial(ta.clone()).await.expect("a first connection");
        let n = 4 * LISTEN_POOL;
        hold.store(true, std::sync::atomic::Ordering::SeqCst);
        let burst = tokio::spawn(futures::future::join_all((0..n).map(|_| dial(ta.clone()))));
        let t0 = std::time::Instant::now();
        while held.lock().unwrap().len() < n {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "the SYNs did not reach the hop: {} held",
                held.lock().unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hold.store(false, std::sync::atomic::Ordering::SeqCst);
        let all: Vec<Vec<u8>> = std::mem::take(&mut *held.lock().unwrap());
        for d in &all {
            hop.send_to(d, eb).await.unwrap();
        }
        let results = burst.await.unwrap();
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 0, "{failed} of {n} connections were refused");
        stop.cancel();
    }

    /// Two static ends on loopback: A dials B's listening port, which B carries to a local
    /// echo server; what A writes comes back. A port B does not listen on is refused.
    #[tokio::test]
    async fn a_connection_crosses_the_tunnel_both_ways() {
        let echo_addr = echo_server().await;
        let ub = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let eb = ub.local_addr().unwrap();
        let (a, b, ipb) = static_pair(ub, eb, None, HashMap::from([(7000, echo_addr)])).await;
        let stop = CancellationToken::new();
        let (ta, ra) = mpsc::channel(4);
        let (_tb, rb) = mpsc::channel(4);
        tokio::spawn(a.run(ra, stop.clone()));
        tokio::spawn(b.run(rb, stop.clone()));

        let dial = |port: u16| {
            let ta = ta.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                ta.send(Command::Connect {
                    to: std::net::SocketAddrV4::new(ipb, port),
                    reply,
                })
                .await
                .unwrap();
                answer.await.unwrap()
            }
        };
        // Several at once, as a browser opens them.
        let mut streams = Vec::new();
        for _ in 0..6 {
            streams.push(dial(7000).await.expect("connected through the tunnel"));
        }
        for (i, s) in streams.iter_mut().enumerate() {
            let msg = vec![b'a' + i as u8; 100_000];
            s.write_all(&msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
        let refused = dial(7001).await;
        assert!(refused.is_err(), "a port nobody listens on is refused");
        stop.cancel();
    }

    /// UDP lost both ways (each end's endpoint is a socket nobody reads): the two ends reach
    /// each other over a relay alone, while UDP is still tried.
    #[tokio::test]
    async fn a_relay_carries_the_tunnel_when_udp_is_lost() {
        let echo_addr = echo_server().await;
        let void = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let nowhere = void.local_addr().unwrap();
        let (ka, kb) = (keys::generate(), keys::generate());
        let (pa, pb) = (
            *keys::public_of(&ka).as_bytes(),
            *keys::public_of(&kb).as_bytes(),
        );
        let (ipa, ipb) = (Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 1));
        let end = |secret: StaticSecret,
                   peer: [u8; 32],
                   own: Ipv4Addr,
                   other: Ipv4Addr,
                   targets| async move {
            Engine::new(
                secret,
                UdpSocket::bind("127.0.0.1:0").await.unwrap(),
                Peers::Static(StaticPeer {
                    name: "other".into(),
                    public: peer,
                    address: other,
                    endpoint: nowhere,
                }),
                own,
                24,
                targets,
            )
        };
        let a = end(ka, pb, ipa, ipb, HashMap::new()).await;
        let b = end(kb, pa, ipb, ipa, HashMap::from([(7000, echo_addr)])).await;
        let (ia, ib) = (a.inbound(), b.inbound());
        let stop = CancellationToken::new();
        let (ta, ra) = mpsc::channel(4);
        let (tb, rb) = mpsc::channel(4);
        tokio::spawn(a.run(ra, stop.clone()));
        tokio::spawn(b.run(rb, stop.clone()));
        // One relay each way, wired to each other as a WebSocket would carry them.
        let (a_out, mut a_rx) = mpsc::channel(RELAY_QUEUE);
        let (b_out, mut b_rx) = mpsc::channel(RELAY_QUEUE);
        ta.send(Command::RelayOpen {
            id: 1,
            public: pb,
            tx: a_out,
        })
        .await
        .unwrap();
        tb.send(Command::RelayOpen {
            id: 2,
            public: pa,
            tx: b_out,
        })
        .await
        .unwrap();
        let carried = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = carried.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(d) = a_rx.recv() => { count.fetch_add(1, std::sync::atomic::Ordering::Relaxed); let _ = ib.try_send((2, d)); }
                    Some(d) = b_rx.recv() => { let _ = ia.try_send((1, d)); }
                    else => break,
                }
            }
        });
        let (reply, answer) = oneshot::channel();
        ta.send(Command::Connect {
            to: std::net::SocketAddrV4::new(ipb, 7000),
            reply,
        })
        .await
        .unwrap();
        let mut s = answer.await.unwrap().expect("connected over the relay");
        let msg = vec![b'r'; 200_000];
        s.write_all(&msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
        assert!(carried.load(std::sync::atomic::Ordering::Relaxed) > 100);
        let mut buf = [0u8; 2048];
        assert!(
            void.try_recv_from(&mut buf).is_ok(),
            "UDP was tried at the same time"
        );
        stop.cancel();
    }
}
