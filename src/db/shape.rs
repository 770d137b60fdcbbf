//! The schema as the database itself has it (tables, columns with their type and
//! nullability, primary keys, indexes), in one backend-neutral form, so that the SQLite and
//! PostgreSQL migrations can be checked to build the same thing.

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text};
use diesel_async::RunQueryDsl;

use super::portable::NameRow;
use super::{Db, DbError, with_conn};

/// A column: its type in a backend-neutral word, and whether it may be NULL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnShape {
    pub kind: String,
    pub nullable: bool,
}

/// An index other than the primary key's: its columns in order, and whether it is unique.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexShape {
    pub columns: Vec<String>,
    pub unique: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableShape {
    pub columns: BTreeMap<String, ColumnShape>,
    pub primary_key: Vec<String>,
    pub indexes: BTreeSet<IndexShape>,
}

/// Every table of ours (the migrations' bookkeeping left out), by name.
pub type SchemaShape = BTreeMap<String, TableShape>;

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Integer)]
    required: i32,
    /// The column's place in the primary key (1-based; 0: not in it).
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct IndexRow {
    /// Comma-separated, in the index's order.
    #[diesel(sql_type = Text)]
    cols: String,
    #[diesel(sql_type = Integer)]
    is_unique: i32,
    #[diesel(sql_type = Integer)]
    is_primary: i32,
}

const SQLITE_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
    AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' ORDER BY name";
const SQLITE_COLUMNS: &str =
    "SELECT name, type AS kind, \"notnull\" AS required, pk FROM pragma_table_info(?)";
const SQLITE_INDEXES: &str = "SELECT \
    (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno)) AS cols, \
    il.\"unique\" AS is_unique, (il.origin = 'pk') AS is_primary \
    FROM pragma_index_list(?) il";

const PG_TABLES: &str = "SELECT table_name::text AS name FROM information_schema.tables \
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
    AND table_name <> '__diesel_schema_migrations' ORDER BY 1";
const PG_COLUMNS: &str = "SELECT c.column_name::text AS name, c.data_type::text AS kind, \
    (c.is_nullable = 'NO')::int AS required, \
    COALESCE((SELECT k.ord::int FROM pg_index ix \
        JOIN pg_class t ON t.oid = ix.indrelid \
        JOIN pg_namespace n ON n.oid = t.relnamespace \
        CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
        WHERE ix.indisprimary AND n.nspname = current_schema() AND t.relname = c.table_name \
          AND a.attname = c.column_name), 0) AS pk \
    FROM information_schema.columns c \
    WHERE c.table_schema = current_schema() AND c.table_name = $1";
const PG_INDEXES: &str = "SELECT \
    (SELECT string_agg(a.attname, ',' ORDER BY k.ord) \
        FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS cols, \
    ix.indisunique::int AS is_unique, ix.indisprimary::int AS is_primary \
    FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid \
    JOIN pg_namespace n ON n.oid = t.relnamespace \
    WHERE n.nspname = current_schema() AND t.relname = $1";

/// One backend-neutral word for a column type (`TIMESTAMP` and `timestamp without time
/// zone` are both `timestamp`).
fn kind(declared: &str) -> String {
    let k = declared.trim().to_ascii_lowercase();
    match k.as_str() {
        "timestamp without time zone" => "timestamp".into(),
        "bytea" => "blob".into(),
        "double precision" | "double" | "float" => "real".into(),
        "int" | "int4" => "integer".into(),
        "int8" => "bigint".into(),
        "bool" => "boolean".into(),
        "character varying" | "varchar" => "text".into(),
        _ => k,
    }
}

fn table_of(sqlite: bool, mut columns: Vec<ColumnRow>, indexes: Vec<IndexRow>) -> TableShape {
    // SQLite's `INTEGER PRIMARY KEY` is the 64-bit rowid: PostgreSQL's `bigint`.
    if sqlite && columns.iter().filter(|c| c.pk > 0).count() == 1 {
        for c in columns.iter_mut().filter(|c| c.pk > 0) {
            if c.kind.eq_ignore_ascii_case("integer") {
                c.kind = "bigint".into();
            }
        }
    }
    let mut pk: Vec<(i32, String)> = columns
        .iter()
        .filter(|c| c.pk > 0)
        .map(|c| (c.pk, c.name.clone()))
        .collect();
    pk.sort();
    TableShape {
        primary_key: pk.into_iter().map(|(_, n)| n).collect(),
        columns: columns
            .into_iter()
            .map(|c| {
                (
                    c.name,
                    ColumnShape {
                        kind: kind(&c.kind),
                        nullable: c.required == 0,
                    },
                )
            })
            .collect(),
        indexes: indexes
            .into_iter()
            .filter(|i| i.is_primary == 0)
            .map(|i| IndexShape {
                columns: i.cols.split(',').map(str::to_string).collect(),
                unique: i.is_unique != 0,
            })
            .collect(),
    }
}

impl Db {
    /// The schema as this database has it now.
    pub async fn shape(&self) -> Result<SchemaShape, DbError> {
        let (tables_q, columns_q, indexes_q) = match self {
            Db::Sqlite(_) => (SQLITE_TABLES, SQLITE_COLUMNS, SQLITE_INDEXES),
            Db::Pg(_) => (PG_TABLES, PG_COLUMNS, PG_INDEXES),
        };
        let mut out = SchemaShape::new();
        with_conn!(self, conn => {
            let tables: Vec<NameRow> = diesel::sql_query(tables_q).load(&mut conn).await?;
            for t in tables {
                let columns: Vec<ColumnRow> = diesel::sql_query(columns_q)
                    .bind::<Text, _>(&t.name)
                    .load(&mut conn)
                    .await?;
                let indexes: Vec<IndexRow> = diesel::sql_query(indexes_q)
                    .bind::<Text, _>(&t.name)
                    .load(&mut conn)
                    .await?;
                let sqlite = matches!(self, Db::Sqlite(_));
                out.insert(t.name, table_of(sqlite, columns, indexes));
            }
        });
        Ok(out)
    }
}
