//! Backups, restores and moving to another database.
//!
//! A backup is one gzip'd tar archive (mode 0600: it holds keys) with a versioned manifest
//! (`manifest.json`), every table's rows in the backend-neutral form of [`crate::db::portable`]
//! (`tables/<table>.jsonl`, read from one consistent snapshot while the server runs), and the
//! data directory's keys (`files/`: the secrets key that seals TOTP seeds and ACME keys, the
//! VPN server key, the self-signed certificate). A backup of either backend restores into
//! either backend. `restore` refuses a database that holds anything unless told to replace
//! it; `copy` moves an instance's database into another (SQLite to PostgreSQL, say) and
//! checks every table's digest on both sides.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::portable::TableDump;
use crate::db::{Db, DbError};

/// What `manifest.json` says it is.
const FORMAT: &str = "demiurge-backup";
/// The archive layout's version; a restore refuses a newer one.
const VERSION: u32 = 1;
/// The data directory's files a backup carries (files, or folders taken whole).
const KEPT: [&str; 3] = ["secrets.key", "vpn", "tls"];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0} is not a Demiurge backup ({1})")]
    NotABackup(String, String),
    #[error(
        "the database already holds an instance ({0}); restore into an empty one, or pass --force to replace everything in it"
    )]
    NotEmpty(String),
    #[error(
        "the copy differs from the original in table `{0}` ({1}); the target was left as it is for a look"
    )]
    Mismatch(String, String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> BackupError {
    BackupError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    /// The version of Demiurge that made it.
    pub demiurge: String,
    /// The backend it was taken from (`sqlite` or `postgres`).
    pub source: String,
    pub tables: Vec<TableDump>,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the data directory.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What a backup or restore did, for the command's last line.
#[derive(Debug, Clone)]
pub struct Summary {
    pub rows: u64,
    pub tables: usize,
    pub files: usize,
    pub bytes: u64,
    pub took: Duration,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A scratch folder beside `near` (same file system), removed when dropped.
fn scratch(near: &Path) -> Result<tempfile::TempDir, BackupError> {
    let dir = near
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".demiurge-backup-")
        .tempdir_in(dir)
        .or_else(|_| tempfile::tempdir())
        .map_err(|e| file_err(dir, e))
}

/// Every file under `root/rel` (a file, or a folder walked whole), relative to `root`.
fn files_under(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let full = root.join(rel);
    if full.is_file() {
        out.push(rel.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(&full) {
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            files_under(root, &rel.join(n), out);
        }
    }
}

/// Writes a backup of `db` and `data_dir` to `file` (atomically: a partial file never has
/// the final name).
pub async fn backup(db: &Db, data_dir: &Path, file: &Path) -> Result<Summary, BackupError> {
    let t0 = Instant::now();
    let work = scratch(file)?;
    let tables_dir = work.path().join("tables");
    std::fs::create_dir_all(&tables_dir).map_err(|e| file_err(&tables_dir, e))?;
    let tables = db.dump(&tables_dir).await?;
    let file = file.to_path_buf();
    let data_dir = data_dir.to_path_buf();
    let source = db.backend().to_string();
    let work_path = work.path().to_path_buf();
    let summary = tokio::task::spawn_blocking(move || {
        let mut kept = Vec::new();
        for k in KEPT {
            files_under(&data_dir, Path::new(k), &mut kept);
        }
        let mut files = Vec::new();
        for rel in &kept {
            let bytes = std::fs::read(data_dir.join(rel)).map_err(|e| file_err(rel, e))?;
            files.push(FileEntry {
                path: rel.to_string_lossy().to_string(),
                bytes: bytes.len() as u64,
                sha256: hex(&Sha256::digest(&bytes)),
            });
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            created_at: Utc::now(),
            demiurge: env!("CARGO_PKG_VERSION").into(),
            source,
            tables,
            files,
        };
        let partial = file.with_extension("partial");
        let out = crate::fsutil::create_private(&partial).map_err(|e| file_err(&partial, e))?;
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| file_err(&partial, e))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(manifest.created_at.timestamp().max(0) as u64);
        header.set_cksum();
        tar.append_data(&mut header, "manifest.json", json.as_slice())
            .map_err(|e| file_err(&partial, e))?;
        for t in &manifest.tables {
            let name = format!("{}.jsonl", t.name);
            tar.append_path_with_name(
                work_path.join("tables").join(&name),
                format!("tables/{name}"),
            )
            .map_err(|e| file_err(&partial, e))?;
        }
        for f in &manifest.files {
            tar.append_path_with_name(data_dir.join(&f.path), format!("files/{}", f.path))
                .map_err(|e| file_err(&partial, e))?;
        }
        let gz = tar.into_inner().map_err(|e| file_err(&partial, e))?;
        let out = gz.finish().map_err(|e| file_err(&partial, e))?;
        out.sync_all().map_err(|e| file_err(&partial, e))?;
        std::fs::rename(&partial, &file).map_err(|e| file_err(&file, e))?;
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        Ok::<_, BackupError>(Summary {
            rows: manifest.tables.iter().map(|t| t.rows).sum(),
            tables: manifest.tables.len(),
            files: manifest.files.len(),
            bytes,
            took: Duration::ZERO,
        })
    })
    .await
    .map_err(|e| file_err(Path::new("backup"), e))??;
    drop(work);
    Ok(Summary {
        took: t0.elapsed(),
        ..summary
    })
}

/// Unpacks `file` into `into`; returns its manifest, checked.
fn unpack(file: &Path, into: &Path) -> Result<Manifest, BackupError> {
    let shown = file.display().to_string();
    let f = std::fs::File::open(file).map_err(|e| file_err(file, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    // Entries land inside `into` only (the tar crate refuses `..` and absolute paths).
    archive
        .unpack(into)
        .map_err(|e| BackupError::NotABackup(shown.clone(), e.to_string()))?;
    let mut json = String::new();
    std::fs::File::open(into.join("manifest.json"))
        .and_then(|mut f| f.read_to_string(&mut json))
        .map_err(|_| BackupError::NotABackup(shown.clone(), "no manifest.json".into()))?;
    let manifest: Manifest = serde_json::from_str(&json)
        .map_err(|e| BackupError::NotABackup(shown.clone(), format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::NotABackup(
            shown,
            format!("format `{}`", manifest.format),
        ));
    }
    if manifest.version > VERSION {
        return Err(BackupError::NotABackup(
            shown,
            format!(
                "archive version {} is newer than this Demiurge reads ({VERSION}); restore it with Demiurge {} or later",
                manifest.version, manifest.demiurge
            ),
        ));
    }
    for f in &manifest.files {
        let bytes = std::fs::read(into.join("files").join(&f.path))
            .map_err(|e| BackupError::NotABackup(shown.clone(), format!("{}: {e}", f.path)))?;
        if hex(&Sha256::digest(&bytes)) != f.sha256 {
            return Err(BackupError::NotABackup(
                shown,
                format!("{} is damaged", f.path),
            ));
        }
    }
    Ok(manifest)
}

/// A short account of what a database holds, for a refusal.
fn holding(counts: &BTreeMap<String, u64>) -> String {
    let n = |t: &str| counts.get(t).copied().unwrap_or(0);
    format!(
        "{} accounts, {} organizations, {} projects",
        n("users"),
        n("organizations"),
        n("projects")
    )
}

/// Restores `file` into `db` (migrated) and `data_dir`. A database that holds anything is
/// refused unless `force`, which replaces it.
pub async fn restore(
    db: &Db,
    data_dir: &Path,
    file: &Path,
    force: bool,
) -> Result<(Manifest, Summary), BackupError> {
    let t0 = Instant::now();
    let counts = db.row_counts().await?;
    if !force && counts.values().any(|n| *n > 0) {
        return Err(BackupError::NotEmpty(holding(&counts)));
    }
    let work = scratch(data_dir)?;
    let (f, w) = (file.to_path_buf(), work.path().to_path_buf());
    let manifest = tokio::task::spawn_blocking(move || unpack(&f, &w))
        .await
        .map_err(|e| file_err(file, e))??;
    db.load(&work.path().join("tables"), &manifest.tables, force)
        .await?;
    let after = db.row_counts().await?;
    for t in &manifest.tables {
        let got = after.get(&t.name).copied().unwrap_or(0);
        if got != t.rows {
            return Err(BackupError::Mismatch(
                t.name.clone(),
                format!("{got} rows, the backup has {}", t.rows),
            ));
        }
    }
    for f in &manifest.files {
        let to = data_dir.join(&f.path);
        if let Some(parent) = to.parent() {
            crate::fsutil::private_dir(parent).map_err(|e| file_err(parent, e))?;
        }
        let bytes =
            std::fs::read(work.path().join("files").join(&f.path)).map_err(|e| file_err(&to, e))?;
        crate::fsutil::write_private(&to, &bytes).map_err(|e| file_err(&to, e))?;
    }
    let summary = Summary {
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        tables: manifest.tables.len(),
        files: manifest.files.len(),
        bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        took: t0.elapsed(),
    };
    Ok((manifest, summary))
}

/// Copies every row of `source` into `target` (migrated, and empty), then checks that each
/// table has the same rows on both sides (by digest).
pub async fn copy(source: &Db, target: &Db, scratch_near: &Path) -> Result<Summary, BackupError> {
    let t0 = Instant::now();
    let counts = target.row_counts().await?;
    if counts.values().any(|n| *n > 0) {
        return Err(BackupError::NotEmpty(holding(&counts)));
    }
    let work = scratch(scratch_near)?;
    let (from, to) = (work.path().join("from"), work.path().join("to"));
    for d in [&from, &to] {
        std::fs::create_dir_all(d).map_err(|e| file_err(d, e))?;
    }
    let tables = source.dump(&from).await?;
    target.load(&from, &tables, false).await?;
    let copied = target.dump(&to).await?;
    for t in &tables {
        match copied.iter().find(|c| c.name == t.name) {
            Some(c) if c.rows == t.rows && c.digest == t.digest => {}
            Some(c) => {
                return Err(BackupError::Mismatch(
                    t.name.clone(),
                    format!(
                        "{} rows against {}, digests {} and {}",
                        c.rows,
                        t.rows,
                        &c.digest[..12],
                        &t.digest[..12]
                    ),
                ));
            }
            None => return Err(BackupError::Mismatch(t.name.clone(), "missing".into())),
        }
    }
    Ok(Summary {
        rows: tables.iter().map(|t| t.rows).sum(),
        tables: tables.len(),
        files: 0,
        bytes: 0,
        took: t0.elapsed(),
    })
}

/// What the scheduler last did, for the admin page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleState {
    pub every: Option<Duration>,
    pub dir: Option<PathBuf>,
    pub last_at: Option<DateTime<Utc>>,
    pub last_file: Option<String>,
    pub last_bytes: Option<u64>,
    pub last_error: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
}

/// Backups taken every `every` into `dir`, keeping the newest `keep`.
pub struct Scheduler {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The scheduler's state, shared with the app.
#[derive(Clone, Default)]
pub struct ScheduleStatus(std::sync::Arc<std::sync::RwLock<ScheduleState>>);

impl ScheduleStatus {
    pub fn snapshot(&self) -> ScheduleState {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut ScheduleState)) {
        if let Ok(mut s) = self.0.write() {
            f(&mut s);
        }
    }
}

/// The archives in `dir` that the scheduler made, oldest first.
fn scheduled_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("demiurge-") && n.ends_with(".tar.gz"))
        })
        .collect();
    // The names carry the time (UTC, fixed width), so their order is their age.
    files.sort();
    files
}

impl Scheduler {
    pub fn start(
        db: Db,
        data_dir: PathBuf,
        dir: PathBuf,
        every: Duration,
        keep: usize,
        status: ScheduleStatus,
    ) -> Scheduler {
        let stop = tokio_util::sync::CancellationToken::new();
        let cancelled = stop.clone();
        status.update(|s| {
            s.every = Some(every);
            s.dir = Some(dir.clone());
        });
        let task = tokio::spawn(async move {
            loop {
                let next = Utc::now() + chrono::Duration::from_std(every).unwrap_or_default();
                status.update(|s| s.next_at = Some(next));
                tokio::select! {
                    _ = cancelled.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = Utc::now();
                let file = dir.join(format!(
                    "demiurge-{}.tar.gz",
                    now.format("%Y%m%dT%H%M%S%.3fZ")
                ));
                let result = match crate::fsutil::private_dir(&dir) {
                    Ok(()) => backup(&db, &data_dir, &file).await,
                    Err(e) => Err(file_err(&dir, e)),
                };
                match result {
                    Ok(summary) => {
                        tracing::info!(file = %file.display(), bytes = summary.bytes, rows = summary.rows, "backup taken");
                        let files = scheduled_files(&dir);
                        for old in files.iter().take(files.len().saturating_sub(keep)) {
                            if let Err(e) = std::fs::remove_file(old) {
                                tracing::warn!(file = %old.display(), error = %e, "an old backup could not be removed");
                            }
                        }
                        status.update(|s| {
                            s.last_at = Some(now);
                            s.last_file = Some(file.display().to_string());
                            s.last_bytes = Some(summary.bytes);
                            s.last_error = None;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the scheduled backup failed");
                        status.update(|s| s.last_error = Some(e.to_string()));
                    }
                }
            }
        });
        Scheduler { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            tracing::warn!("a backup in progress did not end within 10 s");
        }
    }
}
