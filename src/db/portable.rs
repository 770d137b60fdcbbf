//! Every table's rows in one backend-neutral form, for backups, restores and `db copy`.
//!
//! A dump is one JSON object per row (`<table>.jsonl` in a folder), read inside one snapshot
//! (SQLite: one read transaction; PostgreSQL: `REPEATABLE READ`), so a dump taken while the
//! server writes is consistent. Values are canonical whatever the backend: booleans as
//! `true`/`false`, timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`, binary data as lowercase hex.
//! A load inserts them in foreign-key order inside one transaction (all or nothing) and
//! moves PostgreSQL's identity sequences past the loaded ids. Each table's digest (SHA-256
//! over its rows' canonical forms, in any order) tells whether two databases hold the same.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Db, DbError, with_conn};

/// Our tables, parents before children (the order rows are loaded in).
pub const TABLES: [&str; 29] = [
    "users",
    "sessions",
    "api_tokens",
    "totp",
    "recovery_codes",
    "email_links",
    "identities",
    "ceremonies",
    "passkeys",
    "organizations",
    "roles",
    "org_members",
    "projects",
    "project_members",
    "invitations",
    "doc_updates",
    "doc_snapshots",
    "doc_history",
    "sign_in_reviews",
    "vpn_peers",
    "acme_accounts",
    "acme_certificates",
    "audit_events",
    "instance_settings",
    "containers",
    "container_routes",
    "container_enrollments",
    "project_visits",
    "container_images",
];

/// A load sends rows in statements of about this many bytes of JSON.
const LOAD_BYTES: usize = 4 << 20;

/// How a column's values are written in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Text,
    Integer,
    Real,
    Bool,
    Timestamp,
    Blob,
}

impl Kind {
    fn of(declared: &str) -> Kind {
        let d = declared.to_ascii_lowercase();
        if d.contains("blob") || d == "bytea" {
            Kind::Blob
        } else if d.contains("bool") {
            Kind::Bool
        } else if d.contains("timestamp") || d.contains("datetime") {
            Kind::Timestamp
        } else if d.contains("int") {
            Kind::Integer
        } else if d.contains("real") || d.contains("double") || d.contains("float") {
            Kind::Real
        } else {
            Kind::Text
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

/// One dumped table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDump {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: u64,
    /// Hex SHA-256 over the sorted SHA-256s of the rows' canonical JSON.
    pub digest: String,
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    j: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Integer)]
    identity: i32,
}

#[derive(QueryableByName)]
pub(super) struct NameRow {
    #[diesel(sql_type = Text)]
    pub(super) name: String,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn io(e: std::io::Error) -> DbError {
    DbError::Portable(e.to_string())
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

const SQLITE_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
    AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'";
const PG_TABLES: &str = "SELECT table_name::text AS name FROM information_schema.tables \
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
    AND table_name <> '__diesel_schema_migrations'";
const SQLITE_COLUMNS: &str = "SELECT name, type AS kind, 0 AS identity FROM pragma_table_info(?)";
const PG_COLUMNS: &str = "SELECT column_name::text AS name, data_type::text AS kind, \
    (CASE WHEN is_identity = 'YES' THEN 1 ELSE 0 END)::int AS identity \
    FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 \
    ORDER BY ordinal_position";

/// The tables present, checked against [`TABLES`]: a table we do not know of would be left
/// out of a dump, so it is an error.
fn check_tables(present: Vec<String>) -> Result<Vec<&'static str>, DbError> {
    if let Some(unknown) = present.iter().find(|t| !TABLES.contains(&t.as_str())) {
        return Err(DbError::Portable(format!(
            "table `{unknown}` is not in db::portable::TABLES (it would be left out)"
        )));
    }
    Ok(TABLES
        .iter()
        .copied()
        .filter(|t| present.iter().any(|p| p == t))
        .collect())
}

fn columns_of(rows: Vec<ColumnRow>) -> (Vec<Column>, Vec<String>) {
    let identity = rows
        .iter()
        .filter(|r| r.identity == 1)
        .map(|r| r.name.clone())
        .collect();
    let cols = rows
        .into_iter()
        .map(|r| Column {
            kind: Kind::of(&r.kind),
            name: r.name,
        })
        .collect();
    (cols, identity)
}

/// The query that reads every row of `table` as a JSON object.
fn select_json(table: &str, cols: &[Column], pg: bool) -> String {
    let fields: Vec<String> = cols
        .iter()
        .map(|c| {
            let q = quote(&c.name);
            let v = match (c.kind, pg) {
                (Kind::Blob, false) => {
                    format!("CASE WHEN {q} IS NULL THEN NULL ELSE lower(hex({q})) END")
                }
                (Kind::Blob, true) => format!("encode({q}, 'hex')"),
                _ => q,
            };
            format!("'{}', {v}", c.name.replace('\'', "''"))
        })
        .collect();
    if pg {
        format!(
            "SELECT json_build_object({})::text AS j FROM {}",
            fields.join(", "),
            quote(table)
        )
    } else {
        format!(
            "SELECT json_object({}) AS j FROM {}",
            fields.join(", "),
            quote(table)
        )
    }
}

/// A row as either backend gave it, in the canonical form.
fn canonical(raw: &str, cols: &[Column]) -> Result<Value, DbError> {
    let mut obj: Map<String, Value> = serde_json::from_str(raw)
        .map_err(|e| DbError::Portable(format!("a row does not read as JSON: {e}")))?;
    for c in cols {
        let Some(v) = obj.get_mut(&c.name) else {
            continue;
        };
        match (c.kind, &*v) {
            (Kind::Bool, Value::Number(n)) => *v = Value::Bool(n.as_i64() != Some(0)),
            (Kind::Timestamp, Value::String(s)) => *v = Value::String(canonical_time(s)?),
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

fn canonical_time(s: &str) -> Result<String, DbError> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .map_err(|e| DbError::Portable(format!("timestamp `{s}`: {e}")))?;
    Ok(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

/// Writes one table's rows and sums up its digest as they go.
struct TableWriter {
    out: BufWriter<std::fs::File>,
    hashes: Vec<[u8; 32]>,
}

impl TableWriter {
    fn create(dir: &Path, table: &str) -> Result<Self, DbError> {
        let f = std::fs::File::create(dir.join(format!("{table}.jsonl"))).map_err(io)?;
        Ok(Self {
            out: BufWriter::new(f),
            hashes: Vec::new(),
        })
    }

    fn row(&mut self, row: &Value) -> Result<(), DbError> {
        let line = row.to_string();
        self.hashes.push(Sha256::digest(line.as_bytes()).into());
        self.out.write_all(line.as_bytes()).map_err(io)?;
        self.out.write_all(b"\n").map_err(io)
    }

    fn finish(mut self, name: &str, columns: Vec<Column>) -> Result<TableDump, DbError> {
        self.out.flush().map_err(io)?;
        self.hashes.sort_unstable();
        let mut all = Sha256::new();
        for h in &self.hashes {
            all.update(h);
        }
        Ok(TableDump {
            name: name.to_string(),
            columns,
            rows: self.hashes.len() as u64,
            digest: hex(&all.finalize()),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rows of `<table>.jsonl` in statements of about [`LOAD_BYTES`].
fn batches(dir: &Path, table: &str) -> Result<Vec<Vec<Value>>, DbError> {
    let path = dir.join(format!("{table}.jsonl"));
    let f = std::fs::File::open(&path).map_err(io)?;
    let mut out = Vec::new();
    let (mut batch, mut bytes) = (Vec::new(), 0usize);
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(io)?;
        if line.is_empty() {
            continue;
        }
        bytes += line.len();
        batch.push(
            serde_json::from_str(&line)
                .map_err(|e| DbError::Portable(format!("{}: {e}", path.display())))?,
        );
        if bytes >= LOAD_BYTES {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    Ok(out)
}

/// The insert of a batch of canonical rows into `table` (columns as the dump names them).
fn insert_sql(
    table: &str,
    dumped: &[Column],
    target: &[Column],
    pg: bool,
) -> Result<String, DbError> {
    for c in dumped {
        if !target.iter().any(|t| t.name == c.name) {
            return Err(DbError::Portable(format!(
                "column {table}.{} is not in this database (a dump from a newer version?)",
                c.name
            )));
        }
    }
    let names: Vec<String> = dumped.iter().map(|c| quote(&c.name)).collect();
    if pg {
        Ok(format!(
            "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM json_populate_recordset(NULL::{t}, $1::json)",
            t = quote(table),
            cols = names.join(", ")
        ))
    } else {
        let values: Vec<String> = dumped
            .iter()
            .map(|c| {
                let path = format!(
                    "json_extract(value, '$.\"{}\"')",
                    c.name.replace('\'', "''")
                );
                match c.kind {
                    Kind::Blob => format!("unhex({path})"),
                    _ => path,
                }
            })
            .collect();
        Ok(format!(
            "INSERT INTO {} ({}) SELECT {} FROM json_each(?)",
            quote(table),
            names.join(", "),
            values.join(", ")
        ))
    }
}

/// PostgreSQL reads `bytea` from text as `\x<hex>`.
fn for_pg(mut rows: Vec<Value>, cols: &[Column]) -> Vec<Value> {
    for row in &mut rows {
        for c in cols.iter().filter(|c| c.kind == Kind::Blob) {
            if let Some(Value::String(s)) = row.get_mut(&c.name) {
                *s = format!("\\x{s}");
            }
        }
    }
    rows
}

impl Db {
    /// Dumps every table into `dir` (one `<table>.jsonl` each) from one consistent snapshot.
    pub async fn dump(&self, dir: &Path) -> Result<Vec<TableDump>, DbError> {
        let dir = dir.to_path_buf();
        match self {
            Db::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                conn.spawn_blocking(move |c| {
                    use diesel::Connection;
                    // A read transaction: every table is read from the same snapshot.
                    Ok(c.transaction::<_, DbError, _>(|c| sqlite::dump(c, &dir)))
                })
                .await?
            }
            Db::Pg(pool) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                conn.build_transaction()
                    .repeatable_read()
                    .read_only()
                    .run::<_, DbError, _>(async |c| {
                        let present = diesel::sql_query(PG_TABLES)
                            .load::<NameRow>(c)
                            .await?
                            .into_iter()
                            .map(|r| r.name)
                            .collect();
                        let mut out = Vec::new();
                        for table in check_tables(present)? {
                            let (cols, _) = columns_of(
                                diesel::sql_query(PG_COLUMNS)
                                    .bind::<Text, _>(table)
                                    .load::<ColumnRow>(c)
                                    .await?,
                            );
                            let mut w = TableWriter::create(&dir, table)?;
                            let mut rows = diesel::sql_query(select_json(table, &cols, true))
                                .load_stream::<JsonRow>(c)
                                .await?;
                            while let Some(r) = rows.try_next().await? {
                                w.row(&canonical(&r.j, &cols)?)?;
                            }
                            drop(rows);
                            out.push(w.finish(table, cols)?);
                        }
                        Ok(out)
                    })
                    .await
            }
        }
    }

    /// Rows in each of our tables.
    pub async fn row_counts(&self) -> Result<BTreeMap<String, u64>, DbError> {
        let tables = match self {
            Db::Sqlite(_) => SQLITE_TABLES,
            Db::Pg(_) => PG_TABLES,
        };
        let mut out = BTreeMap::new();
        with_conn!(self, conn => {
            let present: Vec<String> = diesel::sql_query(tables)
                .load::<NameRow>(&mut conn)
                .await?
                .into_iter()
                .map(|r| r.name)
                .collect();
            for t in check_tables(present)? {
                let n = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {}", quote(t)))
                    .get_result::<CountRow>(&mut conn)
                    .await?
                    .n;
                out.insert(t.to_string(), n as u64);
            }
        });
        Ok(out)
    }

    /// Whether no table of ours has a row.
    pub async fn is_empty(&self) -> Result<bool, DbError> {
        Ok(self.row_counts().await?.values().all(|n| *n == 0))
    }

    /// Loads a dump made by [`Db::dump`] (in `dir`, described by `tables`) in one
    /// transaction; with `replace`, every row already here is deleted first (in the same
    /// transaction). The database must be migrated to at least the dump's version.
    pub async fn load(
        &self,
        dir: &Path,
        tables: &[TableDump],
        replace: bool,
    ) -> Result<(), DbError> {
        let dir = dir.to_path_buf();
        let tables = tables.to_vec();
        for t in &tables {
            if !TABLES.contains(&t.name.as_str()) {
                return Err(DbError::Portable(format!(
                    "table `{}` is not known to this version",
                    t.name
                )));
            }
        }
        match self {
            Db::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                conn.spawn_blocking(move |c| {
                    use diesel::Connection;
                    Ok(c.transaction::<_, DbError, _>(|c| sqlite::load(c, &dir, &tables, replace)))
                })
                .await?
            }
            Db::Pg(pool) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                conn.transaction::<_, DbError, _>(async |c| {
                    if replace {
                        let all: Vec<String> = TABLES.iter().map(|t| quote(t)).collect();
                        diesel::sql_query(format!("TRUNCATE {} RESTART IDENTITY", all.join(", ")))
                            .execute(c)
                            .await?;
                    }
                    for t in &tables {
                        let (target, identity) = columns_of(
                            diesel::sql_query(PG_COLUMNS)
                                .bind::<Text, _>(&t.name)
                                .load::<ColumnRow>(c)
                                .await?,
                        );
                        let sql = insert_sql(&t.name, &t.columns, &target, true)?;
                        let loaded = tokio::task::block_in_place(|| batches(&dir, &t.name))?;
                        for batch in loaded {
                            let rows = for_pg(batch, &t.columns);
                            diesel::sql_query(&sql)
                                .bind::<Text, _>(Value::Array(rows).to_string())
                                .execute(c)
                                .await?;
                        }
                        // Ids made after the load continue past the loaded ones.
                        for col in identity {
                            diesel::sql_query(format!(
                                "SELECT setval(pg_get_serial_sequence('{t}', '{col}'), GREATEST(COALESCE(MAX({qc}), 0), 1), COALESCE(MAX({qc}), 0) > 0) FROM {qt}",
                                t = t.name,
                                qc = quote(&col),
                                qt = quote(&t.name),
                            ))
                            .execute(c)
                            .await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
        }
    }
}

/// The SQLite side, on the blocking pool (diesel's synchronous API).
mod sqlite {
    use std::path::Path;

    use diesel::RunQueryDsl;
    use diesel::SqliteConnection;
    use diesel::sql_types::Text;
    use serde_json::Value;

    use super::*;

    pub(super) fn dump(c: &mut SqliteConnection, dir: &Path) -> Result<Vec<TableDump>, DbError> {
        let present = diesel::sql_query(SQLITE_TABLES)
            .load::<NameRow>(c)?
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut out = Vec::new();
        for table in check_tables(present)? {
            let (cols, _) = columns_of(
                diesel::sql_query(SQLITE_COLUMNS)
                    .bind::<Text, _>(table)
                    .load::<ColumnRow>(c)?,
            );
            let mut w = TableWriter::create(dir, table)?;
            let rows = diesel::sql_query(select_json(table, &cols, false))
                .load_iter::<JsonRow, diesel::connection::DefaultLoadingMode>(c)?;
            for r in rows {
                w.row(&canonical(&r?.j, &cols)?)?;
            }
            out.push(w.finish(table, cols)?);
        }
        Ok(out)
    }

    pub(super) fn load(
        c: &mut SqliteConnection,
        dir: &Path,
        tables: &[TableDump],
        replace: bool,
    ) -> Result<(), DbError> {
        if replace {
            for t in TABLES.iter().rev() {
                diesel::sql_query(format!("DELETE FROM {}", quote(t))).execute(c)?;
            }
        }
        for t in tables {
            let (target, _) = columns_of(
                diesel::sql_query(SQLITE_COLUMNS)
                    .bind::<Text, _>(&t.name)
                    .load::<ColumnRow>(c)?,
            );
            let sql = insert_sql(&t.name, &t.columns, &target, false)?;
            for batch in batches(dir, &t.name)? {
                diesel::sql_query(&sql)
                    .bind::<Text, _>(Value::Array(batch).to_string())
                    .execute(c)?;
            }
        }
        Ok(())
    }
}
