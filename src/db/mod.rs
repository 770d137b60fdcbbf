//! The database face: one [`Db`] handle over SQLite (embedded default) or PostgreSQL.
//!
//! Query code is written once in the `with_conn!` macro, which expands it for each backend
//! (so it is type-checked per backend). Nothing outside this module sees a connection type.

pub mod accounts;
pub mod acme;
pub mod admin;
pub mod containers;
pub mod docs;
pub mod orgs;
pub mod portable;
mod schema;
pub mod settings;
pub mod shape;
pub mod signin;
pub mod vpn_peers;

use std::path::Path;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;

use crate::config::{DatabaseUrl, redact_url};

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, Detached>;

/// Runs SQLite's blocking calls on the server runtime's blocking pool, and lets a caller
/// that goes away (a client that disconnects, a request whose other extractor failed) simply
/// stop waiting. The default runner blocks in `Drop` until the call ends, which panics on the
/// HTTP workers' single-threaded runtimes. Detaching is safe: the connection is behind a
/// mutex, so the next user waits for the call to end, and a connection left inside an
/// unfinished transaction counts as broken and is not reused.
pub struct Detached(tokio::runtime::Handle);

static RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

impl diesel_async::sync_connection_wrapper::SpawnBlocking for Detached {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures::future::BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        let running = self.0.spawn_blocking(task);
        async move { running.await.map_err(|e| Box::new(e) as Box<_>) }.boxed()
    }

    fn get_runtime() -> Self {
        use tokio::runtime::{Handle, RuntimeFlavor};
        // A multi-threaded runtime: the current one, else the one that opened the database
        // (the server's), not the single-threaded one of whichever HTTP worker happens to
        // open a pooled connection.
        Detached(match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => h,
            current => RUNTIME
                .get()
                .cloned()
                .or_else(|| current.ok())
                .unwrap_or_else(fallback_runtime),
        })
    }
}

/// Only reached outside any runtime (never in the server): a small runtime of our own.
fn fallback_runtime() -> tokio::runtime::Handle {
    static OWN: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    match OWN.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .ok()
    }) {
        Some(rt) => rt.handle().clone(),
        None => panic!("cannot start a Tokio runtime for SQLite"),
    }
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {target}: {message}")]
    Open { target: String, message: String },
    #[error("database connection pool: {0}")]
    Pool(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database migration failed: {0}")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("dump or load: {0}")]
    Portable(String),
}

impl DbError {
    /// A connection could not be had from the pool (the pool's error kept as the source).
    pub(crate) fn pool<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Self::Pool(Box::new(e))
    }

    /// Maps a unique-constraint violation to `Conflict(what)`, other errors unchanged.
    fn conflict_as(e: diesel::result::Error, what: &'static str) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Self::Conflict(what),
            diesel::result::Error::NotFound => Self::NotFound,
            other => Self::Query(other),
        }
    }
}

#[derive(Clone)]
pub enum Db {
    Sqlite(Pool<SqliteConn>),
    Pg(Pool<AsyncPgConnection>),
}

/// Expands one query body for each backend: `with_conn!(db, conn => { ... })`.
macro_rules! with_conn {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => {
                #[allow(unused_mut)]
                let mut $conn = pool.get().await.map_err($crate::db::DbError::pool)?;
                $body
            }
            $crate::db::Db::Pg(pool) => {
                #[allow(unused_mut)]
                let mut $conn = pool.get().await.map_err($crate::db::DbError::pool)?;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

impl Db {
    /// Opens the pool (creating the SQLite file and its folder if needed). Does not migrate.
    pub async fn connect(
        url: &DatabaseUrl,
        max_connections: Option<usize>,
    ) -> Result<Self, DbError> {
        match url {
            DatabaseUrl::Sqlite(path) => Self::connect_sqlite(path, max_connections).await,
            DatabaseUrl::Postgres(url) => Self::connect_pg(url, max_connections).await,
        }
    }

    async fn connect_sqlite(path: &Path, max: Option<usize>) -> Result<Self, DbError> {
        if let Ok(h) = tokio::runtime::Handle::try_current()
            && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            let _ = RUNTIME.set(h);
        }
        let target = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Open {
                target: target.clone(),
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let mut cfg = ManagerConfig::<SqliteConn>::default();
        // A pooled SQLite connection is a file handle: it cannot drop like a network one, so
        // taking it from the pool skips the default `SELECT 1` (a trip to the blocking pool and
        // back on every checkout). One left mid-transaction still counts as broken.
        cfg.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
        cfg.custom_setup = Box::new(|url: &str| {
            let url = url.to_string();
            async move {
                let mut conn = SqliteConn::establish(&url).await?;
                // WAL lets readers run beside the writer; busy_timeout lets a second process
                // (`demiurge admin ...` while the server runs) wait for the lock.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            }
            .boxed()
        });
        let mgr = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(target.clone(), cfg);
        let pool = build_pool(Pool::builder(mgr), max.unwrap_or(8), &target)?;
        open_first(&pool)
            .await
            .map_err(|message| DbError::Open { target, message })?;
        Ok(Self::Sqlite(pool))
    }

    async fn connect_pg(url: &str, max: Option<usize>) -> Result<Self, DbError> {
        let target = redact_url(url);
        let mgr = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let pool = build_pool(Pool::builder(mgr), max.unwrap_or(16), &target)?;
        open_first(&pool).await.map_err(|m| DbError::Open {
            target,
            message: scrub(&m, url),
        })?;
        Ok(Self::Pg(pool))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Pg(_) => "postgres",
        }
    }

    /// Applies pending embedded migrations; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, DbError> {
        // The harness blocks (block_in_place), so it needs the multi-threaded runtime.
        macro_rules! run {
            ($pool:expr, $migrations:expr) => {{
                let conn = $pool.get().await.map_err(DbError::pool)?;
                tokio::task::block_in_place(move || {
                    AsyncMigrationHarness::new(conn)
                        .run_pending_migrations($migrations)
                        .map(|v| v.len())
                        .map_err(DbError::Migration)
                })
            }};
        }
        match self {
            Self::Sqlite(pool) => run!(pool, SQLITE_MIGRATIONS),
            Self::Pg(pool) => run!(pool, PG_MIGRATIONS),
        }
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_conn!(self, conn => {
            conn.batch_execute("SELECT 1").await?;
            Ok(())
        })
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close(),
            Self::Pg(p) => p.close(),
        }
    }
}

/// A LIKE pattern (escape `\\`) for values starting with `prefix`, its wildcards taken
/// literally.
pub(crate) fn like_prefix(prefix: &str) -> String {
    format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// `Ok` when a statement touched a row, `NotFound` when it touched none.
pub(crate) fn one_row(n: usize) -> Result<(), DbError> {
    if n == 0 {
        Err(DbError::NotFound)
    } else {
        Ok(())
    }
}

/// The pool settings both backends share.
fn build_pool<M: deadpool::managed::Manager>(
    builder: deadpool::managed::PoolBuilder<M>,
    max: usize,
    target: &str,
) -> Result<deadpool::managed::Pool<M>, DbError> {
    builder
        .max_size(max)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Open {
            target: target.to_string(),
            message: e.to_string(),
        })
}

/// Opens one connection now, so a bad path or server fails at start, not at first use.
async fn open_first<M: deadpool::managed::Manager>(
    pool: &deadpool::managed::Pool<M>,
) -> Result<(), String>
where
    M::Error: std::fmt::Display,
{
    pool.get().await.map(drop).map_err(|e| e.to_string())
}

/// Removes a connection URL (and its password) from an error text.
fn scrub(message: &str, url: &str) -> String {
    let mut m = message.replace(url, "<database url>");
    if let Ok(u) = url::Url::parse(url)
        && let Some(pw) = u.password()
        && !pw.is_empty()
    {
        m = m.replace(pw, "***");
    }
    m
}
