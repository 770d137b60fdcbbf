//! Group commit: one task takes the appends of every project and writes each batch in one
//! transaction. Whatever arrives while a transaction commits forms the next batch, so under
//! load many appends share one commit, and alone an append waits for nothing but its own.

use std::collections::BTreeMap;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::GatewayMetrics;
use crate::db::Db;
use crate::db::docs::NewUpdate;

/// Most appends per transaction.
const MAX_BATCH: usize = 4096;
/// Appends queued before senders wait.
const QUEUE: usize = 16 * 1024;

struct Append {
    row: NewUpdate,
    done: oneshot::Sender<Result<(), String>>,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Append>,
}

impl Writer {
    pub(crate) fn start(db: Db, metrics: GatewayMetrics) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, metrics, rx));
        Self { tx }
    }

    /// Queues one update; the receiver answers once it is committed (or failed).
    pub(crate) async fn append(&self, row: NewUpdate) -> oneshot::Receiver<Result<(), String>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(a)) = self.tx.send(Append { row, done }).await {
            let _ = a.done.send(Err("the writer stopped".into()));
        }
        rx
    }
}

async fn run(db: Db, metrics: GatewayMetrics, mut rx: mpsc::Receiver<Append>) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (rows, dones): (Vec<NewUpdate>, Vec<_>) =
            batch.drain(..).map(|a| (a.row, a.done)).unzip();
        let t = Instant::now();
        let result = db.append_updates(&rows).await;
        metrics.append_seconds.observe(t.elapsed().as_secs_f64());
        metrics.append_batch.observe(rows.len() as f64);
        match result {
            Ok(()) => {
                for d in dones {
                    let _ = d.send(Ok(()));
                }
            }
            Err(e) => {
                // One project's failure (say, deleted under us) must not fail the others:
                // write each project's rows on their own.
                tracing::warn!(error = %e, rows = rows.len(), "a batch of appends failed; retrying per project");
                let mut by_project: BTreeMap<String, (Vec<NewUpdate>, Vec<_>)> = BTreeMap::new();
                for (row, done) in rows.into_iter().zip(dones) {
                    let e = by_project.entry(row.project_id.clone()).or_default();
                    e.0.push(row);
                    e.1.push(done);
                }
                for (project, (rows, dones)) in by_project {
                    let r = db.append_updates(&rows).await.map_err(|e| e.to_string());
                    if let Err(e) = &r {
                        tracing::error!(project = %project, error = %e, "appends failed");
                    }
                    for d in dones {
                        let _ = d.send(r.clone());
                    }
                }
            }
        }
    }
}
