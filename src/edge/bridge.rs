//! Bridges from the edge's proxy to container services: one Unix socket per person and
//! service, whose connections each open one connection through the tunnel.
//!
//! Pingora (0.9) pools an upstream connection only when it can check the socket's peer
//! against the upstream's address, which a connection through our userspace tunnel (a
//! "virtual" stream) never passes: every request then paid a new TCP handshake through
//! the tunnel. Through a bridge the proxy holds real Unix sockets, pools them like any
//! upstream, and a kept-alive connection keeps its tunnel connection.
//!
//! A bridge belongs to one [`Forward::group`] (one person's ticket, one service) and ends,
//! with every connection through it, when the person loses access (`Forward::revoked`) or
//! after [`IDLE`] without connections. The sockets live in a directory only the server's
//! user may enter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::{Forward, ServiceDial};

/// A bridge without connections for this long ends (the proxy drops idle pooled
/// connections after 30 s).
pub const IDLE: Duration = Duration::from_secs(90);

/// Every live bridge of the edge, by group.
#[derive(Debug)]
pub struct Bridges {
    dir: PathBuf,
    next: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Bridge>>>,
    /// The edge's start: bridges' clocks count from it.
    epoch: Instant,
}

#[derive(Debug)]
struct Bridge {
    path: PathBuf,
    to: SocketAddr,
    /// Cancelled when the bridge ends (access lost, idle, or the edge stopping).
    stop: CancellationToken,
    /// When it was last handed out (milliseconds since the epoch).
    used: AtomicU64,
}

impl Bridges {
    /// Makes the private directory the sockets live in.
    pub fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!(
            "demiurge-edge-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Self {
            dir,
            next: AtomicU64::new(0),
            live: Mutex::default(),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The socket of `f`'s bridge, made (and listening) if it has none that is live.
    pub fn path(self: &Arc<Self>, f: &Forward) -> std::io::Result<PathBuf> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = live.get(&f.group)
            && b.to == f.to
            && !b.stop.is_cancelled()
        {
            b.used.store(self.now_ms(), Ordering::Relaxed);
            return Ok(b.path.clone());
        }
        live.retain(|_, b| !b.stop.is_cancelled());
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{n}.sock"));
        let listener = UnixListener::bind(&path)?;
        let bridge = Arc::new(Bridge {
            path: path.clone(),
            to: f.to,
            stop: f.revoked.child_token(),
            used: AtomicU64::new(self.now_ms()),
        });
        if let Some(old) = live.insert(f.group, bridge.clone()) {
            // Its service moved (the container enrolled again): the old one goes.
            old.stop.cancel();
        }
        tokio::spawn(run(self.clone(), bridge, listener, f.dial.clone()));
        Ok(path)
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Accepts the proxy's connections until the bridge ends, each bridged to its own
/// connection through the tunnel.
async fn run(
    bridges: Arc<Bridges>,
    bridge: Arc<Bridge>,
    listener: UnixListener,
    dial: Arc<dyn ServiceDial>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut check = tokio::time::interval(IDLE / 3);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = bridge.stop.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((uds, _)) = accepted else { continue };
                bridge.used.store(bridges.now_ms(), Ordering::Relaxed);
                open.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(carry(uds, bridge.to, dial.clone(), bridge.stop.clone(), open.clone()));
            }
            _ = check.tick() => {
                let quiet = bridges.now_ms().saturating_sub(bridge.used.load(Ordering::Relaxed));
                if open.load(Ordering::Acquire) == 0 && quiet > millis(IDLE) {
                    // Cancelled under the lock, so no one is handed this path after it.
                    let live = bridges.live.lock().unwrap_or_else(|e| e.into_inner());
                    if bridges.now_ms().saturating_sub(bridge.used.load(Ordering::Relaxed)) > millis(IDLE) {
                        bridge.stop.cancel();
                        drop(live);
                        break;
                    }
                }
            }
        }
    }
    drop(listener);
    remove(&bridge.path);
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// One connection: the proxy's Unix socket to a new connection through the tunnel, until
/// either side closes or the bridge ends.
async fn carry(
    mut uds: tokio::net::UnixStream,
    to: SocketAddr,
    dial: Arc<dyn ServiceDial>,
    stop: CancellationToken,
    open: Arc<AtomicUsize>,
) {
    let done = async {
        let mut up = match dial.dial(to).await {
            Ok(up) => up,
            Err(e) => {
                tracing::debug!(%to, error = %e, "edge: cannot reach the container service");
                return;
            }
        };
        let _ = tokio::io::copy_bidirectional(&mut uds, &mut up).await;
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = done => {}
    }
    open.fetch_sub(1, Ordering::AcqRel);
}
