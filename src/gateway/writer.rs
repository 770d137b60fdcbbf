//! Group commit: one task takes the appends of every project and writes each batch in one
//! transaction. Whatever arrives while a transaction commits forms the next batch, so under
//! load many appends share one commit. An append may also say how long it can wait (a client's
//! change is held for merging anyway, see `Project::merge_wait`): the batch then stays open
//! until its earliest such deadline, less what a commit takes, gathering more appends into the
//! one commit. An append that cannot wait (an event, whose caller waits on it) goes at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::GatewayMetrics;
use crate::db::docs::NewUpdate;
use crate::db::{Db, DbError};

/// Most appends per transaction.
const MAX_BATCH: usize = 4096;
/// Appends queued before senders wait.
const QUEUE: usize = 16 * 1024;

struct Append {
    row: NewUpdate,
    /// Committed by then, it delays nothing.
    by: Instant,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// Why an update did not reach the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The database refused the project's rows (shared by every update of the batch).
    #[error("{0}")]
    Db(#[source] Arc<DbError>),
    #[error("the update log's writer has stopped")]
    Stopped,
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

    /// Queues one update, to be committed by `by` if it can be; the receiver answers once it
    /// is committed (or failed).
    pub(crate) async fn append(
        &self,
        row: NewUpdate,
        by: Instant,
    ) -> oneshot::Receiver<Result<(), WriteError>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(a)) = self.tx.send(Append { row, by, done }).await {
            let _ = a.done.send(Err(WriteError::Stopped));
        }
        rx
    }
}

async fn run(db: Db, metrics: GatewayMetrics, mut rx: mpsc::Receiver<Append>) {
    let mut batch = Vec::with_capacity(64);
    // What the last commit took: the batch closes this long (twice, plus a millisecond) before
    // its earliest deadline.
    let mut commit_time = Duration::ZERO;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let margin = commit_time * 2 + Duration::from_millis(1);
        while let Some(by) = batch.iter().map(|a| a.by).min() {
            let close_at = by.checked_sub(margin).unwrap_or(by);
            if batch.len() >= MAX_BATCH || Instant::now() >= close_at {
                break;
            }
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
                _ = tokio::time::sleep_until(close_at.into()) => break,
            }
        }
        let (rows, dones): (Vec<NewUpdate>, Vec<_>) =
            batch.drain(..).map(|a| (a.row, a.done)).unzip();
        let t = Instant::now();
        let result = db.append_updates(&rows).await;
        commit_time = t.elapsed();
        metrics.append_seconds.observe(commit_time.as_secs_f64());
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
                    let r = db
                        .append_updates(&rows)
                        .await
                        .map_err(|e| WriteError::Db(Arc::new(e)));
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::gateway::GatewayError;

    /// A refused write keeps the database's error as its cause, down to diesel's.
    #[test]
    fn a_refused_write_keeps_its_cause() {
        let db = DbError::Query(diesel::result::Error::NotFound);
        let e = GatewayError::Store(WriteError::Db(Arc::new(db)));
        let mut chain = Vec::new();
        let mut at: Option<&dyn std::error::Error> = Some(&e);
        while let Some(err) = at {
            chain.push(err.to_string());
            at = err.source();
        }
        assert_eq!(chain.len(), 4, "{chain:?}");
        assert!(chain[3].contains("Record not found"), "{chain:?}");
        assert!(WriteError::Stopped.source().is_none());
    }
}
