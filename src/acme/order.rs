//! One ACME order: prove each name (HTTP-01 or DNS-01), finalize with a fresh key, download
//! the chain. Challenge answers are always taken down again, whatever the outcome.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    Order, OrderStatus, RetryPolicy,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;

use super::{Challenges, Job, Proof};
use crate::dns::Zone;

/// How long the CA may take to validate, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// A certificate as the server keeps and serves it.
#[derive(Clone)]
pub(super) struct Issued {
    pub chain_pem: String,
    /// In the clear: sealed before it is stored.
    pub key_pem: String,
    pub key: Arc<CertifiedKey>,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// How the CA names it for renewal information (RFC 9773), when it carries an AKI.
    pub ari_id: Option<CertificateIdentifier<'static>>,
}

impl Issued {
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, String> {
        let key = crate::edge::certs::certified_key_from_pem(chain_pem, key_pem)
            .map_err(|e| e.to_string())?;
        let leaf: CertificateDer<'static> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .next()
            .ok_or("no certificate in the chain")?
            .map_err(|e| format!("the chain does not read: {e}"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("the certificate does not parse: {e}"))?;
        let time = |t: x509_parser::time::ASN1Time| {
            DateTime::<Utc>::from_timestamp(t.timestamp(), 0).ok_or("a date out of range")
        };
        let not_before = time(cert.validity().not_before)?;
        let not_after = time(cert.validity().not_after)?;
        let issuer = cert.issuer().to_string();
        let ari_id = CertificateIdentifier::try_from(&leaf)
            .ok()
            .map(CertificateIdentifier::into_owned);
        Ok(Self {
            chain_pem: chain_pem.to_string(),
            key_pem: key_pem.to_string(),
            key,
            issuer,
            not_before,
            not_after,
            ari_id,
        })
    }
}

/// What an order put up, to take down again.
#[derive(Default)]
struct Posted {
    tokens: Vec<String>,
    txt: Vec<(String, String)>,
}

pub(super) async fn run(
    account: &Account,
    job: &Job,
    current: Option<&Issued>,
    challenges: &Challenges,
    zone: Option<&Zone>,
    dns_addr: Option<SocketAddr>,
) -> Result<Issued, String> {
    let identifiers: Vec<Identifier> = job
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let plain = NewOrder::new(&identifiers);
    // A renewal names the certificate it replaces (RFC 9773), when the CA knows ARI.
    let replacing = current.and_then(|c| c.ari_id.clone());
    let mut order = match replacing {
        Some(id) => match account.new_order(&plain.replaces(id)).await {
            Err(instant_acme::Error::Unsupported(_)) => {
                account.new_order(&NewOrder::new(&identifiers)).await
            }
            other => other,
        },
        None => account.new_order(&plain).await,
    }
    .map_err(|e| format!("new order: {e}"))?;
    let mut posted = Posted::default();
    let result = prove_and_finish(&mut order, job, challenges, zone, dns_addr, &mut posted).await;
    for token in &posted.tokens {
        challenges.remove(token);
    }
    if let Some(zone) = zone {
        for (name, value) in &posted.txt {
            if let Err(e) = zone.remove_txt(name, value).await {
                tracing::warn!(error = %e, record = %name, "an ACME TXT record could not be removed");
            }
        }
    }
    result
}

async fn prove_and_finish(
    order: &mut Order,
    job: &Job,
    challenges: &Challenges,
    zone: Option<&Zone>,
    dns_addr: Option<SocketAddr>,
    posted: &mut Posted,
) -> Result<Issued, String> {
    let kind = match job.proof {
        Proof::Http01 => ChallengeType::Http01,
        Proof::Dns01 => ChallengeType::Dns01,
    };
    let mut authorizations = order.authorizations();
    while let Some(a) = authorizations.next().await {
        let mut a = a.map_err(|e| format!("authorization: {e}"))?;
        let name = a.identifier().to_string();
        match a.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => return Err(format!("the authorization for {name} is {other:?}")),
        }
        let mut challenge = a
            .challenge(kind.clone())
            .ok_or_else(|| format!("the CA offers no {kind:?} challenge for {name}"))?;
        let answer = challenge.key_authorization();
        match job.proof {
            Proof::Http01 => {
                challenges.put(&challenge.token, answer.as_str());
                posted.tokens.push(challenge.token.clone());
            }
            Proof::Dns01 => {
                let zone = zone.ok_or("DNS-01 needs this server's DNS")?;
                let record = format!("_acme-challenge.{}", name.trim_start_matches("*."));
                let value = answer.dns_value();
                zone.add_txt(&record, &value)
                    .await
                    .map_err(|e| e.to_string())?;
                posted.txt.push((record.clone(), value.clone()));
                if let Some(addr) = dns_addr {
                    check_txt(addr, &record, &value).await?;
                }
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge for {name}: {e}"))?;
    }
    let status = order
        .poll_ready(&POLL)
        .await
        .map_err(|e| format!("validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(why_invalid(order).await);
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain_pem = order
        .poll_certificate(&POLL)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    Issued::from_pem(&chain_pem, &key_pem)
}

/// The CA's reasons for an invalid order, from its challenges.
async fn why_invalid(order: &mut Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut a)) = authorizations.next().await {
        let name = a.identifier().to_string();
        if let Ok(state) = a.refresh().await {
            for c in &state.challenges {
                if let Some(e) = &c.error {
                    reasons.push(format!("{name}: {e}"));
                }
            }
        }
    }
    if reasons.is_empty() {
        "the CA found the order invalid".into()
    } else {
        format!("the CA could not validate {}", reasons.join("; "))
    }
}

/// Asks our own DNS server for the TXT record, as the CA will, before telling it to look.
async fn check_txt(dns: SocketAddr, name: &str, value: &str) -> Result<(), String> {
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::{Name, RData, RecordType};
    use std::str::FromStr;
    let target = if dns.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), dns.port())
    } else {
        dns
    };
    let fqdn = Name::from_str(&format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| format!("{name}: {e}"))?;
    let mut query = Message::query();
    query.add_query(Query::query(fqdn, RecordType::TXT));
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let socket = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..10 {
        socket
            .send_to(&bytes, target)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await
            && let Ok(answer) = Message::from_vec(&buf[..n])
            && answer.answers.iter().any(|r| match &r.data {
                RData::TXT(t) => t.txt_data.iter().map(|d| &**d).eq([value.as_bytes()]),
                _ => false,
            })
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "our DNS server at {target} does not answer the TXT record {name}"
    ))
}
