//! The fan-out load generator for `bench/collab.mjs`: `n` y-websocket clients in one room, each
//! sending one small Yjs update a second, timing how long each update of the others takes to
//! reach it. Written in Rust so that the load generator is not what saturates first: it reads
//! every frame the server sends to every client (one Node thread tops out near 40,000 frames a
//! second, well under what a thousand-client room takes). The same program drives both servers.
//!
//!   collab_load URL N SECONDS OBSERVERS
//!
//! Connects the clients, prints `ready`, waits for a line on stdin, runs for SECONDS, then prints
//! one JSON line: latency percentiles (ms), updates delivered and expected, dropped clients.
//! Observers (an even sample of OBSERVERS clients, all of them when N is smaller) time every
//! update they receive; every client reads and parses every frame either way.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yrs::updates::encoder::Encode;
use yrs::{Map, Text, Transact};

#[derive(Default)]
struct Tally {
    lat_us: Mutex<Vec<u32>>,
    delivered: AtomicU64,
    sent: AtomicU64,
    sent_by_observers: AtomicU64,
    dropped: AtomicUsize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench target with `--bench`: this one only runs from collab.mjs.
    if args.len() != 4 {
        eprintln!(
            "collab_load: run by bench/collab.sh (usage: collab_load URL N SECONDS OBSERVERS)"
        );
        return;
    }
    let url = args[0].clone();
    let parse = |s: &str| {
        s.parse::<usize>()
            .unwrap_or_else(|_| panic!("not a number: {s}"))
    };
    let (n, secs, observers) = (
        parse(&args[1]),
        parse(&args[2]),
        parse(&args[3]).min(parse(&args[1])),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(run(url, n, secs as u64, observers));
}

async fn run(url: String, n: usize, secs: u64, observers: usize) {
    let u = url::Url::parse(&url).expect("a ws:// URL");
    let addr = format!(
        "{}:{}",
        u.host_str().expect("a host"),
        u.port().expect("a port")
    );
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let epoch = Instant::now();
    let tally = Arc::new(Tally::default());
    let (go_tx, go_rx) = tokio::sync::watch::channel(None);
    let mut tasks = Vec::new();
    for i in 0..n {
        let observer = (i + 1) * observers / n > i * observers / n;
        let mut stream = open(&addr, &path).await;
        // Each client's text, created before the run (as a browser would have it already).
        let doc = yrs::Doc::new();
        let texts = doc.get_or_insert_map("texts");
        let text = {
            let mut txn = doc.transact_mut();
            let text = texts.insert(&mut txn, format!("c{i}"), yrs::TextPrelim::new(""));
            let msg = frame(2, &update_message(txn.encode_update_v1()));
            drop(txn);
            stream
                .write_all(&msg)
                .await
                .expect("the first update is sent");
            text
        };
        let (tally, mut go) = (tally.clone(), go_rx.clone());
        tasks.push(tokio::spawn(async move {
            // Reading from the start: the server's replies and the others' texts.
            let mut buf = bytes::BytesMut::with_capacity(16 * 1024);
            let stop = loop {
                tokio::select! {
                    g = go.wait_for(|g| g.is_some()) => match g.map(|g| *g) {
                        Ok(Some(stop)) => break stop,
                        _ => return,
                    },
                    r = stream.read_buf(&mut buf) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(_) => { parse(&mut buf, |_, _| {}); }
                    },
                }
            };
            let client = Client {
                i,
                n,
                observer,
                epoch,
                stop,
                doc,
                text,
            };
            client.run(stream, buf, tally).await;
        }));
    }
    println!("ready");
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    })
    .await;
    // Updates stop at `stop`; the clients read on for 300 ms more.
    let _ = go_tx.send(Some(
        tokio::time::Instant::now() + Duration::from_secs(secs),
    ));
    tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(300)).await;
    for t in &tasks {
        t.abort();
    }
    let mut lat = std::mem::take(&mut *tally.lat_us.lock().expect("the tally"));
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    let sent = tally.sent.load(Ordering::Relaxed);
    let out = serde_json::json!({
        "p50": pct(0.5),
        "p99": pct(0.99),
        "p999": pct(0.999),
        "max": pct(1.0),
        "delivered": tally.delivered.load(Ordering::Relaxed),
        // Each observer should see every update but its own.
        "expected": observers as u64 * sent - tally.sent_by_observers.load(Ordering::Relaxed),
        "sent": sent,
        "dropped": tally.dropped.load(Ordering::Relaxed),
    });
    println!("{out}");
}

/// Connects and upgrades; anything but a 101 ends the run.
async fn open(addr: &str, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("the server takes connections");
    s.set_nodelay(true).expect("nodelay");
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .expect("the request is sent");
    // Byte by byte to the end of the head, so no frame is read with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).await.is_err() {
            break;
        }
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "no upgrade: {}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A masked client frame (RFC 6455 requires the mask; its value does not matter here).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x5a, 0x17, 0xc3, 0x88];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

fn update_message(update: Vec<u8>) -> Vec<u8> {
    yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1()
}

struct Client {
    i: usize,
    n: usize,
    observer: bool,
    epoch: Instant,
    /// No updates from then on.
    stop: tokio::time::Instant,
    doc: yrs::Doc,
    text: yrs::TextRef,
}

impl Client {
    async fn run(self, mut s: TcpStream, mut buf: bytes::BytesMut, tally: Arc<Tally>) {
        let Client {
            i,
            n,
            observer,
            epoch,
            stop,
            doc,
            text,
        } = self;
        let start =
            tokio::time::Instant::now() + Duration::from_micros(1_000_000 * i as u64 / n as u64);
        let mut ticks = tokio::time::interval_at(start, Duration::from_secs(1));
        loop {
            tokio::select! {
                at = ticks.tick() => {
                    if at >= stop {
                        continue;
                    }
                    let mark = format!("@{i}:{}#", epoch.elapsed().as_micros());
                    let update = {
                        let mut txn = doc.transact_mut();
                        let len = text.len(&txn);
                        text.insert(&mut txn, len, &mark);
                        txn.encode_update_v1()
                    };
                    if s.write_all(&frame(2, &update_message(update))).await.is_err() {
                        break;
                    }
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    if observer {
                        tally.sent_by_observers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                r = s.read_buf(&mut buf) => {
                    match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let mut pongs = Vec::new();
                    let closed = parse(&mut buf, |op, payload| match op {
                        2 if observer => marks(payload, i, epoch, &tally),
                        9 => pongs.push(frame(10, payload)),
                        _ => {}
                    });
                    for p in pongs {
                        if s.write_all(&p).await.is_err() {
                            break;
                        }
                    }
                    if closed {
                        break;
                    }
                }
            }
        }
        tally.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Takes every whole frame off `buf`; true once the server closed.
fn parse(buf: &mut bytes::BytesMut, mut on: impl FnMut(u8, &[u8])) -> bool {
    loop {
        if buf.len() < 2 {
            return false;
        }
        let op = buf[0] & 0x0f;
        let (len, head) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            126 | 127 => return false,
            n => (n as usize, 2),
        };
        if buf.len() < head + len {
            return false;
        }
        let f = buf.split_to(head + len);
        if op == 8 {
            return true;
        }
        on(op, &f[head..]);
    }
}

/// Every `@<client>:<micros>#` of another client in `payload`, timed.
fn marks(payload: &[u8], me: usize, epoch: Instant, tally: &Tally) {
    let now = epoch.elapsed().as_micros() as u64;
    let mut lat = Vec::new();
    let mut at = 0;
    while let Some(p) = payload[at..].iter().position(|b| *b == b'@') {
        at += p + 1;
        let num = |from: usize, end: u8| {
            let len = payload[from..].iter().position(|b| !b.is_ascii_digit())?;
            (payload.get(from + len) == Some(&end) && len > 0).then(|| {
                let v = std::str::from_utf8(&payload[from..from + len])
                    .ok()?
                    .parse::<u64>()
                    .ok()?;
                Some((v, from + len + 1))
            })?
        };
        let Some((who, next)) = num(at, b':') else {
            continue;
        };
        let Some((t, next)) = num(next, b'#') else {
            continue;
        };
        at = next;
        if who as usize != me {
            lat.push(now.saturating_sub(t) as u32);
        }
    }
    if !lat.is_empty() {
        tally
            .delivered
            .fetch_add(lat.len() as u64, Ordering::Relaxed);
        if let Ok(mut l) = tally.lat_us.lock() {
            l.extend(lat);
        }
    }
}
