//! DNS answer round trip over UDP: demiurge's built-in authoritative server beside PowerDNS
//! (the program it replaces), same zone, same query, same client, in one run.
//!
//!   cargo bench --bench dns          (needs `pdns_server`: apt-get install pdns-server pdns-backend-bind)

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

/// A DNS query (id 0x4242, RD) for `name` type A.
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn roundtrip(sock: &UdpSocket, to: SocketAddr, q: &[u8], buf: &mut [u8]) -> usize {
    sock.send_to(q, to).expect("send");
    loop {
        let (n, from) = sock.recv_from(buf).expect("answer within the timeout");
        if from == to && n >= 12 && buf[..2] == q[..2] {
            // ANCOUNT must be 1: the same answer from both servers.
            assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 1, "one answer record");
            return n;
        }
    }
}

fn free_port() -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    s.local_addr().expect("addr").port()
}

/// The server process, and its config folder (kept until the process is gone).
struct Pdns {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Pdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_pdns(port: u16) -> Pdns {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("bench.test.zone"),
        "$TTL 60\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\n@ IN A 127.0.0.1\n\
         ns1 IN A 127.0.0.1\n*.containers IN A 127.0.0.1\n",
    )
    .expect("zone");
    std::fs::write(
        dir.path().join("named.conf"),
        format!("zone \"bench.test\" {{ type master; file \"{d}/bench.test.zone\"; }};\n"),
    )
    .expect("named.conf");
    std::fs::write(
        dir.path().join("pdns.conf"),
        format!(
            "launch=bind\nbind-config={d}/named.conf\nlocal-address=127.0.0.1\nlocal-port={port}\n\
             socket-dir={d}\ndaemon=no\nguardian=no\ndisable-syslog=yes\nwebserver=no\napi=no\nloglevel=3\n"
        ),
    )
    .expect("pdns.conf");
    let child = Command::new("pdns_server")
        .arg(format!("--config-dir={d}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "pdns_server: {e}; install it with apt-get install pdns-server pdns-backend-bind"
            )
        });
    Pdns { child, _dir: dir }
}

fn wait_answering(sock: &UdpSocket, to: SocketAddr, q: &[u8]) {
    let mut buf = [0u8; 512];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if sock.send_to(q, to).is_ok() && sock.recv_from(&mut buf).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{to} does not answer DNS");
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ours = rt
        .block_on(demiurge::dns::Dns::start(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            "bench.test",
            Ipv4Addr::LOCALHOST,
        ))
        .expect("start demiurge dns");
    let ours_addr = ours.addr();
    let pdns_port = free_port();
    let _pdns = start_pdns(pdns_port);
    let pdns_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, pdns_port));

    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("client socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let q = query("svc-1.containers.bench.test");
    wait_answering(&sock, ours_addr, &q);
    wait_answering(&sock, pdns_addr, &q);

    let mut buf = [0u8; 512];
    let mut g = c.benchmark_group("dns_udp_roundtrip_wildcard_a");
    g.bench_function("demiurge", |b| {
        b.iter(|| roundtrip(&sock, ours_addr, &q, &mut buf))
    });
    g.bench_function("powerdns", |b| {
        b.iter(|| roundtrip(&sock, pdns_addr, &q, &mut buf))
    });
    g.finish();
    rt.block_on(ours.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
