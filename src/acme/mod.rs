//! Certificates from an ACME certificate authority (RFC 8555), obtained and renewed by the
//! server itself: the main domain by HTTP-01 (answered by the app at
//! `/.well-known/acme-challenge/`), and `*.containers.<domain>` by DNS-01, answered from our own
//! authoritative zone (the TXT record is added, checked against our DNS server, then removed).
//!
//! The account and every certificate are kept in the database, their private keys sealed with
//! the data directory's secrets key, so they survive a restart (a restart orders nothing) and
//! move with a backup. A certificate is renewed when a third of its lifetime is left (minus a
//! little jitter), or inside the window the CA suggests through ACME Renewal Information
//! (RFC 9773) when it offers it. A failed order is retried after `[acme] retry_after`, doubling
//! with each further failure up to six hours, so a CA that is down is never hammered. A new
//! certificate is swapped into the edge's [`CertStore`] while connections stay open; the
//! self-signed one serves only until the first issuance.

mod challenges;
mod order;
mod schedule;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use instant_acme::{Account, AccountCredentials, NewAccount};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::db::acme::AcmeCertificateRow;
use crate::dns::Zone;
use crate::edge::CertStore;
use crate::sealed::Sealer;

pub use self::challenges::Challenges;
use self::order::Issued;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("acme: database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("acme: {0}")]
    Seal(#[from] crate::sealed::SealError),
    #[error("acme: the stored certificate `{name}` cannot be used: {message}")]
    Stored { name: String, message: String },
    #[error("acme: metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What ACME needs from the configuration.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub domain: String,
    pub email: String,
    /// The CA's directory URL.
    pub directory: String,
    /// A root the directory's HTTPS is checked against (a private CA); `None`: the system's.
    pub ca_root: Option<PathBuf>,
    /// Also `*.containers.<domain>` by DNS-01.
    pub wildcard: bool,
    pub retry_after: Duration,
}

/// One certificate the server keeps, and how its names are proven.
#[derive(Debug, Clone)]
struct Job {
    /// The row's name: `main` or `containers`.
    name: &'static str,
    domains: Vec<String>,
    proof: Proof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    Http01,
    Dns01,
}

/// What the API, the admin page and the metrics show of one certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateState {
    pub name: &'static str,
    pub domains: Vec<String>,
    /// `pending` (none issued yet), `issuing`, `valid`, `failing` (the last attempt failed;
    /// a valid certificate may still be served) or `expired`.
    pub state: &'static str,
    pub issuer: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    pub issued_at: Option<DateTime<Utc>>,
    /// When the next order (renewal or retry) is due.
    pub next_attempt: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Whether the CA offered a renewal window (ARI) for the current certificate.
    pub ari: bool,
}

/// The certificates' states, shared with the app (empty while ACME is off).
#[derive(Clone, Default)]
pub struct AcmeStatus(Arc<RwLock<Vec<CertificateState>>>);

impl AcmeStatus {
    pub fn snapshot(&self) -> Vec<CertificateState> {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, state: CertificateState) {
        if let Ok(mut all) = self.0.write() {
            match all.iter_mut().find(|s| s.name == state.name) {
                Some(s) => *s = state,
                None => all.push(state),
            }
        }
    }
}

struct Metrics {
    not_after: GaugeVec,
    next_attempt: GaugeVec,
    orders: IntCounterVec,
}

impl Metrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let not_after = GaugeVec::new(
            Opts::new(
                "certificate_not_after_seconds",
                "When the served ACME certificate expires (Unix time), by certificate",
            ),
            &["certificate"],
        )?;
        let next_attempt = GaugeVec::new(
            Opts::new(
                "certificate_next_attempt_seconds",
                "When the next ACME order (renewal or retry) is due (Unix time), by certificate",
            ),
            &["certificate"],
        )?;
        let orders = IntCounterVec::new(
            Opts::new(
                "acme_orders_total",
                "ACME orders by certificate and result (issued, failed)",
            ),
            &["certificate", "result"],
        )?;
        registry.register(Box::new(not_after.clone()))?;
        registry.register(Box::new(next_attempt.clone()))?;
        registry.register(Box::new(orders.clone()))?;
        Ok(Self {
            not_after,
            next_attempt,
            orders,
        })
    }
}

/// The running certificate manager.
pub struct Acme {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// Everything an order needs, owned by the manager's task.
struct Manager {
    settings: AcmeSettings,
    db: Db,
    sealer: Arc<Sealer>,
    certs: Arc<CertStore>,
    challenges: Arc<Challenges>,
    zone: Option<Zone>,
    dns_addr: Option<SocketAddr>,
    status: AcmeStatus,
    metrics: Metrics,
    account: Option<Account>,
    /// The CA no longer knows the stored account: the next order makes a new one.
    account_gone: bool,
}

/// One job's place in the schedule.
struct Slot {
    job: Job,
    state: CertificateState,
    /// The certificate being served, for ARI and the `replaces` of its renewal.
    current: Option<Issued>,
    due: DateTime<Utc>,
}

/// The longest one order may take before it counts as failed.
const ORDER_DEADLINE: Duration = Duration::from_secs(180);

impl Acme {
    /// Serves the stored certificates at once (before any network), then obtains and renews
    /// them in the background. `zone` and `dns_addr` are our DNS server's (DNS-01).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        settings: AcmeSettings,
        db: Db,
        sealer: Arc<Sealer>,
        certs: Arc<CertStore>,
        challenges: Arc<Challenges>,
        zone: Option<Zone>,
        dns_addr: Option<SocketAddr>,
        status: AcmeStatus,
        registry: &Registry,
    ) -> Result<Acme, AcmeError> {
        let metrics = Metrics::new(registry)?;
        let mut jobs = vec![Job {
            name: "main",
            domains: vec![settings.domain.clone()],
            proof: Proof::Http01,
        }];
        if settings.wildcard && zone.is_some() {
            jobs.push(Job {
                name: "containers",
                domains: vec![format!("*.containers.{}", settings.domain)],
                proof: Proof::Dns01,
            });
        }
        let mut manager = Manager {
            settings,
            db,
            sealer,
            certs,
            challenges,
            zone,
            dns_addr,
            status,
            metrics,
            account: None,
            account_gone: false,
        };
        let mut slots = Vec::new();
        for job in jobs {
            slots.push(manager.load(job).await?);
        }
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move { manager.run(slots, stop).await });
        Ok(Acme { shutdown, task })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        if tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            tracing::warn!("acme did not stop within 3 s");
        }
    }
}

impl Manager {
    /// The job's stored certificate, served now if it is still valid.
    async fn load(&mut self, job: Job) -> Result<Slot, AcmeError> {
        let now = Utc::now();
        let mut slot = Slot {
            state: CertificateState {
                name: job.name,
                domains: job.domains.clone(),
                state: "pending",
                issuer: None,
                not_before: None,
                not_after: None,
                issued_at: None,
                next_attempt: Some(now),
                last_error: None,
                failures: 0,
                ari: false,
            },
            job,
            current: None,
            due: now,
        };
        let row = self.db.acme_certificate(slot.job.name).await?;
        let usable = row.filter(|r| {
            r.directory == self.settings.directory
                && r.domains == slot.job.domains.join(",")
                && r.not_after.and_utc() > now
        });
        if let Some(row) = usable {
            let key = self.sealer_open(&row.key_pem, slot.job.name)?;
            let issued =
                Issued::from_pem(&row.chain_pem, &key).map_err(|message| AcmeError::Stored {
                    name: slot.job.name.to_string(),
                    message,
                })?;
            tracing::info!(
                certificate = slot.job.name,
                not_after = %issued.not_after,
                "serving the stored certificate"
            );
            self.install(&slot.job, &issued);
            slot.due = schedule::renew_at(issued.not_before, issued.not_after);
            slot.state.issued_at = Some(row.issued_at.and_utc());
            self.describe(&mut slot.state, &issued);
            slot.current = Some(issued);
        }
        slot.state.next_attempt = Some(slot.due);
        self.publish(&slot.state);
        Ok(slot)
    }

    fn sealer_open(&self, stored: &str, owner: &str) -> Result<String, AcmeError> {
        if !Sealer::is_sealed(stored) {
            return Err(AcmeError::Stored {
                name: owner.to_string(),
                message: "its key is not sealed".into(),
            });
        }
        Ok(self.sealer.open(stored, owner)?)
    }

    fn describe(&self, state: &mut CertificateState, issued: &Issued) {
        state.state = "valid";
        state.issuer = Some(issued.issuer.clone());
        state.not_before = Some(issued.not_before);
        state.not_after = Some(issued.not_after);
        self.metrics
            .not_after
            .with_label_values(&[state.name])
            .set(issued.not_after.timestamp() as f64);
    }

    fn publish(&self, state: &CertificateState) {
        if let Some(at) = state.next_attempt {
            self.metrics
                .next_attempt
                .with_label_values(&[state.name])
                .set(at.timestamp() as f64);
        }
        self.status.set(state.clone());
    }

    /// Serves `issued` for the job's names from now on (connections already open keep theirs).
    fn install(&self, job: &Job, issued: &Issued) {
        self.certs.insert_issued(&job.domains, issued.key.clone());
        if job.name == "main" {
            // Clients that name no host (or an address) get the real certificate too.
            self.certs.set_fallback(issued.key.clone());
        }
    }

    async fn run(mut self, mut slots: Vec<Slot>, stop: CancellationToken) {
        loop {
            let Some(next) = slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.due)
                .map(|(i, _)| i)
            else {
                return;
            };
            let wait = (slots[next].due - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let slot = &mut slots[next];
            // Before renewing, ask the CA whether it suggests another time (ARI).
            if let Some(current) = &slot.current
                && slot.state.failures == 0
                && let Some(when) = self.ari_window(current).await
            {
                slot.state.ari = true;
                if when > Utc::now() + chrono::Duration::seconds(1) {
                    slot.due = when;
                    slot.state.next_attempt = Some(when);
                    self.publish(&slot.state);
                    continue;
                }
            }
            slot.state.state = "issuing";
            self.publish(&slot.state);
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(ORDER_DEADLINE, self.order(slot)) => {
                    r.unwrap_or_else(|_| Err(format!("the order took longer than {} s", ORDER_DEADLINE.as_secs())))
                }
            };
            let now = Utc::now();
            match result {
                Ok((issued, issued_at)) => {
                    self.metrics
                        .orders
                        .with_label_values(&[slot.job.name, "issued"])
                        .inc();
                    tracing::info!(
                        certificate = slot.job.name,
                        names = %slot.job.domains.join(","),
                        not_after = %issued.not_after,
                        "certificate issued"
                    );
                    self.install(&slot.job, &issued);
                    slot.due = schedule::renew_at(issued.not_before, issued.not_after);
                    slot.state.failures = 0;
                    slot.state.last_error = None;
                    slot.state.ari = false;
                    slot.state.issued_at = Some(issued_at);
                    self.describe(&mut slot.state, &issued);
                    slot.current = Some(issued);
                }
                Err(e) => {
                    self.metrics
                        .orders
                        .with_label_values(&[slot.job.name, "failed"])
                        .inc();
                    slot.state.failures = slot.state.failures.saturating_add(1);
                    let wait =
                        schedule::retry_after(self.settings.retry_after, slot.state.failures);
                    tracing::warn!(
                        certificate = slot.job.name,
                        error = %e,
                        failures = slot.state.failures,
                        retry_in_s = wait.as_secs_f64(),
                        "certificate order failed; will retry"
                    );
                    slot.due = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    slot.state.last_error = Some(e);
                    slot.state.state = match &slot.current {
                        Some(c) if c.not_after <= now => "expired",
                        _ => "failing",
                    };
                }
            }
            slot.state.next_attempt = Some(slot.due);
            self.publish(&slot.state);
        }
    }

    /// When the CA suggests renewing `current` (a random time inside its window), if it
    /// offers ACME Renewal Information.
    async fn ari_window(&mut self, current: &Issued) -> Option<DateTime<Utc>> {
        let id = current.ari_id.as_ref()?;
        let account = self.account().await.ok()?;
        match account.renewal_info(id).await {
            Ok((info, _retry_after)) => {
                let start = DateTime::<Utc>::from_timestamp(
                    info.suggested_window.start.unix_timestamp(),
                    0,
                )?;
                let end =
                    DateTime::<Utc>::from_timestamp(info.suggested_window.end.unix_timestamp(), 0)?;
                Some(schedule::inside(start, end))
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::debug!(error = %e, "no renewal information from the CA");
                None
            }
        }
    }

    /// The account at the configured CA: the stored one, else a new one (stored at once).
    async fn account(&mut self) -> Result<Account, String> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let directory = self.settings.directory.clone();
        let builder = || match &self.settings.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        };
        let stored = if self.account_gone {
            None
        } else {
            self.db
                .acme_account(&directory)
                .await
                .map_err(|e| e.to_string())?
        };
        let account = match stored {
            Some(sealed) => {
                let json = self
                    .sealer_open(&sealed, &directory)
                    .map_err(|e| e.to_string())?;
                let creds: AccountCredentials = serde_json::from_str(&json)
                    .map_err(|e| format!("the stored ACME account does not read: {e}"))?;
                builder()
                    .map_err(|e| ca_error(&directory, e))?
                    .from_credentials(creds)
                    .await
                    .map_err(|e| ca_error(&directory, e))?
            }
            None => {
                let contact = format!("mailto:{}", self.settings.email.trim());
                let (account, creds) = builder()
                    .map_err(|e| ca_error(&directory, e))?
                    .create(
                        &NewAccount {
                            contact: &[&contact],
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| ca_error(&directory, e))?;
                let json = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
                let sealed = self
                    .sealer
                    .seal(&json, &directory)
                    .map_err(|e| e.to_string())?;
                self.db
                    .put_acme_account(&directory, &sealed, Utc::now().naive_utc())
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(directory = %directory, id = account.id(), "ACME account created");
                self.account_gone = false;
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    /// One order for the slot's job: proves every name, finalizes, stores the certificate.
    /// Returns it and when it was stored.
    async fn order(&mut self, slot: &Slot) -> Result<(Issued, DateTime<Utc>), String> {
        let account = self.account().await?;
        let issued = order::run(
            &account,
            &slot.job,
            slot.current.as_ref(),
            &self.challenges,
            self.zone.as_ref(),
            self.dns_addr,
        )
        .await
        .inspect_err(|e| {
            if e.contains("accountDoesNotExist") {
                // The CA forgot us (a reset test CA): make a new account next time.
                self.account = None;
                self.account_gone = true;
            }
        })?;
        // Whole milliseconds: what every database keeps of a time, so a restart reads the same.
        let issued_at = Utc::now().trunc_subsecs(3);
        let row = AcmeCertificateRow {
            name: slot.job.name.to_string(),
            directory: self.settings.directory.clone(),
            domains: slot.job.domains.join(","),
            chain_pem: issued.chain_pem.clone(),
            key_pem: self
                .sealer
                .seal(&issued.key_pem, slot.job.name)
                .map_err(|e| e.to_string())?,
            issuer: issued.issuer.clone(),
            not_before: issued.not_before.naive_utc(),
            not_after: issued.not_after.naive_utc(),
            issued_at: issued_at.naive_utc(),
        };
        self.db
            .put_acme_certificate(&row)
            .await
            .map_err(|e| format!("the certificate was issued but could not be stored: {e}"))?;
        Ok((issued, issued_at))
    }
}

fn ca_error(directory: &str, e: instant_acme::Error) -> String {
    format!("the CA at {directory}: {e}")
}
