//! The VPN event loop: one task owns the UDP socket, every peer's WireGuard tunnel (boringtun)
//! and a userspace TCP/IP stack (smoltcp) holding the server's tunnel address. TCP connections
//! that peers open to the server's port 80 are bridged to `forward_to` (the edge), so the whole
//! HTTP surface answers inside the tunnel. No root, no TUN device.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::device::QueueDevice;
use super::keys;
use crate::db::Db;

/// TCP port inside the tunnel that reaches the HTTP front door.
pub const HTTP_PORT: u16 = 80;
/// Most TCP connections carried at once; further SYNs are refused until some close.
const MAX_CONNECTIONS: usize = 512;
const TCP_BUFFER: usize = 64 * 1024;
const CHUNK: usize = 16 * 1024;
/// WireGuard timers want a tick every 100-250 ms.
const TIMER_TICK: Duration = Duration::from_millis(100);
/// Peers are re-read from the database this often (and on a handshake from an unknown key).
const RELOAD_EVERY: Duration = Duration::from_secs(30);
const RELOAD_MIN_GAP: Duration = Duration::from_millis(500);

pub enum Command {
    /// Re-read peers from the database now.
    Reload,
}

struct Peer {
    name: String,
    address: Ipv4Addr,
    tunn: Box<Tunn>,
    endpoint: Option<SocketAddr>,
}

struct Conn {
    handle: SocketHandle,
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
    db: Db,
    subnet: Ipv4Net,
    forward_to: SocketAddr,
    peers: HashMap<u32, Peer>,
    by_key: HashMap<[u8; 32], u32>,
    by_ip: HashMap<Ipv4Addr, u32>,
    next_index: u32,
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    listeners: Vec<SocketHandle>,
    conns: Vec<Conn>,
    notify: Arc<Notify>,
    last_reload: Option<StdInstant>,
}

fn now() -> Instant {
    Instant::now()
}

impl Engine {
    pub fn new(
        secret: StaticSecret,
        udp: UdpSocket,
        db: Db,
        subnet: Ipv4Net,
        server_ip: Ipv4Addr,
        forward_to: SocketAddr,
    ) -> Self {
        let public = keys::public_of(&secret);
        let mut device = QueueDevice::default();
        let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
        cfg.random_seed = rand::random();
        let mut iface = Interface::new(cfg, &mut device, now());
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(server_ip), subnet.prefix_len()));
        });
        let mut engine = Self {
            secret,
            public,
            udp,
            db,
            subnet,
            forward_to,
            peers: HashMap::new(),
            by_key: HashMap::new(),
            by_ip: HashMap::new(),
            next_index: 1,
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            listeners: Vec::new(),
            conns: Vec::new(),
            notify: Arc::new(Notify::new()),
            last_reload: None,
        };
        engine.add_listener();
        engine
    }

    fn add_listener(&mut self) {
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        if sock.listen(HTTP_PORT).is_ok() {
            sock.set_nagle_enabled(false);
            sock.set_timeout(Some(smoltcp::time::Duration::from_secs(120)));
            sock.set_keep_alive(Some(smoltcp::time::Duration::from_secs(30)));
            self.listeners.push(self.sockets.add(sock));
        }
    }

    /// Reads the peers from the database: adds new ones, drops removed ones, keeps the
    /// sessions of unchanged ones.
    pub async fn reload_peers(&mut self) {
        self.last_reload = Some(StdInstant::now());
        let rows = match self.db.vpn_peers().await {
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
            if !self.subnet.contains(&address) {
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
            self.peers.insert(
                index,
                Peer {
                    name: row.name,
                    address,
                    tunn: Box::new(tunn),
                    endpoint: None,
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
        let mut timers = tokio::time::interval(TIMER_TICK);
        timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reload = tokio::time::interval(RELOAD_EVERY);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.reset();
        let notify = self.notify.clone();
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
                        self.on_datagram(n, &buf, from, &mut out).await;
                        // Take whatever else is already queued before running the stack.
                        for _ in 0..64 {
                            match self.udp.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.on_datagram(n, &buf, from, &mut out).await,
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "vpn: udp receive failed"),
                },
                _ = notify.notified() => {}
                _ = timers.tick() => self.tick_timers(&mut out).await,
                _ = reload.tick() => self.reload_peers().await,
                Some(cmd) = commands.recv() => match cmd {
                    Command::Reload => self.reload_peers().await,
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

    async fn on_datagram(&mut self, n: usize, buf: &[u8], from: SocketAddr, out: &mut [u8]) {
        let data = &buf[..n];
        let index = match Tunn::parse_incoming_packet(data) {
            Ok(Packet::HandshakeInit(init)) => {
                let Ok(half) = parse_handshake_anon(&self.secret, &self.public, &init) else {
                    return;
                };
                if !self.by_key.contains_key(&half.peer_static_public) {
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
                        tracing::debug!(%from, "vpn: handshake from an unknown key");
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
        let mut datagram: &[u8] = data;
        loop {
            match peer.tunn.decapsulate(Some(from.ip()), datagram, out) {
                TunnResult::WriteToNetwork(pkt) => {
                    peer.endpoint = Some(from);
                    let _ = self.udp.send_to(pkt, from).await;
                    datagram = &[];
                }
                TunnResult::WriteToTunnelV4(pkt, src) => {
                    peer.endpoint = Some(from);
                    if src == peer.address {
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
    }

    async fn tick_timers(&mut self, out: &mut [u8]) {
        for peer in self.peers.values_mut() {
            if let TunnResult::WriteToNetwork(pkt) = peer.tunn.update_timers(out)
                && let Some(ep) = peer.endpoint
            {
                let _ = self.udp.send_to(pkt, ep).await;
            }
        }
    }

    /// Moves data between the stack and the bridges, runs the stack, and sends what it emitted.
    async fn process(&mut self, out: &mut [u8]) {
        for _ in 0..2 {
            self.accept();
            self.pump();
            self.iface.poll(now(), &mut self.device, &mut self.sockets);
            self.flush_tx(out).await;
        }
        self.reap();
    }

    /// Listening sockets that received a SYN become connections with a bridge each.
    fn accept(&mut self) {
        let mut i = 0;
        while i < self.listeners.len() {
            let handle = self.listeners[i];
            let state = self.sockets.get::<tcp::Socket>(handle).state();
            if state == tcp::State::Listen {
                i += 1;
                continue;
            }
            self.listeners.swap_remove(i);
            let (to_up_tx, to_up_rx) = mpsc::channel::<Bytes>(32);
            let (from_up_tx, from_up_rx) = mpsc::channel::<Bytes>(32);
            let peer_ip = self
                .sockets
                .get::<tcp::Socket>(handle)
                .remote_endpoint()
                .map(|e| std::net::IpAddr::from(e.addr));
            tokio::spawn(bridge(
                self.forward_to,
                peer_ip,
                to_up_rx,
                from_up_tx,
                self.notify.clone(),
            ));
            self.conns.push(Conn {
                handle,
                to_up: Some(to_up_tx),
                from_up: from_up_rx,
                pending: None,
                upstream_done: false,
            });
        }
        if self.listeners.is_empty() && self.conns.len() < MAX_CONNECTIONS {
            self.add_listener();
        }
    }

    fn pump(&mut self) {
        for conn in &mut self.conns {
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
        self.conns.retain(|c| {
            let state = sockets.get::<tcp::Socket>(c.handle).state();
            let done = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if done {
                sockets.remove(c.handle);
            }
            !done
        });
    }

    async fn flush_tx(&mut self, out: &mut [u8]) {
        while let Some(pkt) = self.device.tx.pop_front() {
            let Some(dst) = ipv4_destination(&pkt) else {
                continue;
            };
            let Some(peer) = self.by_ip.get(&dst).and_then(|i| self.peers.get_mut(i)) else {
                continue;
            };
            let Some(ep) = peer.endpoint else { continue };
            if let TunnResult::WriteToNetwork(wire) = peer.tunn.encapsulate(&pkt, out) {
                let _ = self.udp.send_to(wire, ep).await;
            }
        }
    }
}

fn ipv4_destination(pkt: &[u8]) -> Option<Ipv4Addr> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]))
}

/// Carries one tunnel TCP connection to and from `target`; while it lasts, the edge knows
/// its local address as the tunnel peer `peer_ip` ([`super::tunnel_peer`]).
async fn bridge(
    target: SocketAddr,
    peer_ip: Option<std::net::IpAddr>,
    mut rx: mpsc::Receiver<Bytes>,
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
    let (mut r, mut w) = stream.into_split();
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
