//! The authoritative DNS server (hickory) for `<domain>`: SOA, NS, the apex A record and
//! `*.containers.<domain>`, all pointing at `public_ipv4`. Names in the zone that do not exist
//! get NXDOMAIN; names outside it get REFUSED. Records can be changed while it runs (container
//! services and ACME challenges need that).

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_server::Server;
pub use hickory_server::proto::rr::RecordType;
use hickory_server::proto::rr::rdata::{A, NS, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// TTL of the records we serve.
const TTL: u32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns: cannot listen on {addr} ({proto}): {source}")]
    Listen {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    #[error("dns: `{0}` is not a valid DNS name")]
    BadName(String),
}

/// Binds UDP and TCP on the same address. With port 0 (tests, benches) the kernel picks the
/// UDP port, and that port may already be taken for TCP by someone else: pick again, a few times.
async fn bind_pair(listen: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let mut attempts_left = if listen.port() == 0 { 20 } else { 1 };
    loop {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Listen {
                addr: listen,
                proto: "udp",
                source,
            })?;
        let addr = udp.local_addr().unwrap_or(listen);
        attempts_left -= 1;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp, addr)),
            Err(_) if attempts_left > 0 => continue,
            Err(source) => {
                return Err(DnsError::Listen {
                    addr,
                    proto: "tcp",
                    source,
                });
            }
        }
    }
}

/// A running DNS server and its zone.
pub struct Dns {
    zone: Zone,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// The zone's records, changed while the server runs (cheap to clone; every clone edits the
/// same zone). Container services and ACME challenges hold one.
#[derive(Clone)]
pub struct Zone {
    handler: Arc<InMemoryZoneHandler>,
    origin: Name,
    serial: Arc<AtomicU32>,
}

impl Dns {
    /// Binds UDP and TCP on `listen` and serves the zone for `domain`.
    pub async fn start(
        listen: SocketAddr,
        domain: &str,
        public_ipv4: Ipv4Addr,
    ) -> Result<Dns, DnsError> {
        let origin = Name::from_str(&format!("{}.", domain.trim_end_matches('.')))
            .map_err(|_| DnsError::BadName(domain.to_string()))?;
        let serial = u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(1);
        let zone = Arc::new(build_zone(&origin, public_ipv4, serial)?);

        let (udp, tcp, addr) = bind_pair(listen).await?;

        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        let shutdown = server.shutdown_token().clone();
        let task = tokio::spawn(async move {
            if let Err(e) = server.block_until_done().await {
                tracing::warn!(error = %e, "dns server ended with an error");
            }
        });
        tracing::info!(%addr, zone = %origin, "dns serving");
        Ok(Dns {
            zone: Zone {
                handler: zone,
                origin,
                serial: Arc::new(AtomicU32::new(serial)),
            },
            addr,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn origin(&self) -> &Name {
        &self.zone.origin
    }

    /// A handle on the zone's records.
    pub fn zone(&self) -> Zone {
        self.zone.clone()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            tracing::warn!("dns server did not stop within 3 s");
        }
    }
}

impl Zone {
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    fn next_serial(&self) -> u32 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn name_in_zone(&self, name: &str) -> Result<Name, DnsError> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let n = Name::from_str(&fqdn).map_err(|_| DnsError::BadName(name.to_string()))?;
        if !self.origin.zone_of(&n) {
            return Err(DnsError::BadName(name.to_string()));
        }
        Ok(n)
    }

    /// Replaces every record of `name` with type `rtype` by `rdatas`, in one step (a
    /// query never sees the name half-changed). An empty list removes them.
    pub async fn replace(
        &self,
        name: &str,
        rtype: RecordType,
        rdatas: Vec<RData>,
    ) -> Result<(), DnsError> {
        let n = self.name_in_zone(name)?;
        let key = RrKey::new(LowerName::new(&n), rtype);
        let serial = self.next_serial();
        let mut records = self.handler.records_mut().await;
        if rdatas.is_empty() {
            records.remove(&key);
            return Ok(());
        }
        let mut set = RecordSet::new(n.clone(), rtype, serial);
        for rdata in rdatas {
            set.insert(Record::from_rdata(n.clone(), TTL, rdata), serial);
        }
        records.insert(key, Arc::new(set));
        Ok(())
    }

    /// Points `name` (inside the zone) at `ip`, replacing its earlier A records.
    pub async fn set_a(&self, name: &str, ip: Ipv4Addr) -> Result<(), DnsError> {
        self.replace(name, RecordType::A, vec![RData::A(A(ip))])
            .await
    }

    /// Adds a TXT value to `name`, keeping the others (an ACME order for `example.com` and
    /// `*.example.com` needs two values at `_acme-challenge.example.com`).
    pub async fn add_txt(&self, name: &str, value: &str) -> Result<(), DnsError> {
        let n = self.name_in_zone(name)?;
        let rdata = RData::TXT(TXT::new(vec![value.to_string()]));
        self.handler
            .upsert(Record::from_rdata(n, TTL, rdata), self.next_serial())
            .await;
        Ok(())
    }

    /// Removes every record of `name` with type `rtype`.
    pub async fn remove(&self, name: &str, rtype: RecordType) -> Result<(), DnsError> {
        self.replace(name, rtype, Vec::new()).await
    }

    /// Removes one TXT value of `name`, keeping its others.
    pub async fn remove_txt(&self, name: &str, value: &str) -> Result<(), DnsError> {
        let n = self.name_in_zone(name)?;
        let key = RrKey::new(LowerName::new(&n), RecordType::TXT);
        let serial = self.next_serial();
        let mut records = self.handler.records_mut().await;
        let Some(old) = records.get(&key).cloned() else {
            return Ok(());
        };
        let mut set = RecordSet::new(n.clone(), RecordType::TXT, serial);
        for r in old.records_without_rrsigs() {
            let keep = match &r.data {
                RData::TXT(t) => !t.txt_data.iter().map(|d| &**d).eq([value.as_bytes()]),
                _ => true,
            };
            if keep {
                set.insert(r.clone(), serial);
            }
        }
        if set.is_empty() {
            records.remove(&key);
        } else {
            records.insert(key, Arc::new(set));
        }
        Ok(())
    }
}

fn build_zone(origin: &Name, ip: Ipv4Addr, serial: u32) -> Result<InMemoryZoneHandler, DnsError> {
    let child = |label: &str| {
        Name::from_str(label)
            .and_then(|l| l.append_domain(origin))
            .map_err(|_| DnsError::BadName(format!("{label}.{origin}")))
    };
    let ns = child("ns1")?;
    let hostmaster = child("hostmaster")?;
    let wildcard = child("*.containers")?;
    let mut zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(ns.clone(), hostmaster, serial, 3600, 600, 86400, TTL);
    let records = [
        Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)),
        Record::from_rdata(origin.clone(), TTL, RData::NS(NS(ns.clone()))),
        Record::from_rdata(origin.clone(), TTL, RData::A(A(ip))),
        Record::from_rdata(ns, TTL, RData::A(A(ip))),
        Record::from_rdata(wildcard, TTL, RData::A(A(ip))),
    ];
    for r in records {
        zone.upsert_mut(r, serial);
    }
    Ok(zone)
}
