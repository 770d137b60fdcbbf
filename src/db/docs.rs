//! Project documents: the update log, the compacted snapshot, and named history points.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::{doc_history, doc_snapshots, doc_updates};
use super::{Db, DbError, with_conn};

/// One update to append.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = doc_updates)]
pub struct NewUpdate {
    pub project_id: String,
    pub seq: i64,
    pub data: Vec<u8>,
    pub created_at: NaiveDateTime,
}

/// A history point without its data.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize, utoipa::ToSchema)]
#[diesel(table_name = doc_history)]
pub struct HistoryPoint {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub seq: i64,
    pub automatic: bool,
    pub created_by: Option<String>,
    /// Stored in UTC; answered as RFC 3339 with its `Z`.
    #[serde(serialize_with = "as_utc")]
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub created_at: NaiveDateTime,
}

fn as_utc<S: serde::Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&at.and_utc(), s)
}

/// Rows per INSERT statement on PostgreSQL (at most 65535 bound values; 4 per row).
const ROWS_PER_INSERT: usize = 1000;

impl Db {
    /// Appends updates (of any projects) in one transaction: all are stored or none.
    pub async fn append_updates(&self, rows: &[NewUpdate]) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self {
            // One trip to the blocking pool for the whole batch: row by row through the async
            // wrapper would cost a thread hop per row.
            Db::Sqlite(pool) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                let rows = rows.to_vec();
                conn.spawn_blocking(move |c| {
                    use diesel::Connection;
                    c.transaction(|c| {
                        for row in &rows {
                            diesel::RunQueryDsl::execute(
                                diesel::insert_into(doc_updates::table).values(row),
                                c,
                            )?;
                        }
                        Ok(())
                    })
                })
                .await?;
                Ok(())
            }
            Db::Pg(pool) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                conn.transaction::<_, DbError, _>(async |conn| {
                    for chunk in rows.chunks(ROWS_PER_INSERT) {
                        diesel::insert_into(doc_updates::table)
                            .values(chunk)
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    /// The project's snapshot (seq it covers, state), if it has one.
    pub async fn snapshot_of(&self, project_id: &str) -> Result<Option<(i64, Vec<u8>)>, DbError> {
        with_conn!(self, conn => {
            Ok(doc_snapshots::table
                .find(project_id)
                .select((doc_snapshots::seq, doc_snapshots::data))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// The log entries after `seq`, in order.
    pub async fn updates_after(
        &self,
        project_id: &str,
        seq: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, DbError> {
        with_conn!(self, conn => {
            Ok(doc_updates::table
                .filter(doc_updates::project_id.eq(project_id))
                .filter(doc_updates::seq.gt(seq))
                .order(doc_updates::seq.asc())
                .select((doc_updates::seq, doc_updates::data))
                .load(&mut conn)
                .await?)
        })
    }

    /// Replaces the snapshot with `data` (covering every update up to `seq`) and drops those
    /// updates from the log, in one transaction.
    pub async fn compact(
        &self,
        project_id: &str,
        seq: i64,
        data: &[u8],
        now: NaiveDateTime,
    ) -> Result<usize, DbError> {
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::delete(doc_snapshots::table.find(project_id))
                    .execute(conn)
                    .await?;
                diesel::insert_into(doc_snapshots::table)
                    .values((
                        doc_snapshots::project_id.eq(project_id),
                        doc_snapshots::seq.eq(seq),
                        doc_snapshots::data.eq(data),
                        doc_snapshots::created_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                Ok(diesel::delete(
                    doc_updates::table
                        .filter(doc_updates::project_id.eq(project_id))
                        .filter(doc_updates::seq.le(seq)),
                )
                .execute(conn)
                .await?)
            })
            .await
        })
    }

    /// Rows in the log of a project (for tests and status).
    pub async fn log_length(&self, project_id: &str) -> Result<i64, DbError> {
        with_conn!(self, conn => {
            Ok(doc_updates::table
                .filter(doc_updates::project_id.eq(project_id))
                .count()
                .get_result(&mut conn)
                .await?)
        })
    }

    /// Saves a history point; keeps at most `keep_automatic` automatic points per project.
    pub async fn insert_history_point(
        &self,
        point: &HistoryPoint,
        data: &[u8],
        keep_automatic: usize,
    ) -> Result<(), DbError> {
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                diesel::insert_into(doc_history::table)
                    .values((
                        doc_history::id.eq(&point.id),
                        doc_history::project_id.eq(&point.project_id),
                        doc_history::name.eq(&point.name),
                        doc_history::seq.eq(point.seq),
                        doc_history::data.eq(data),
                        doc_history::automatic.eq(point.automatic),
                        doc_history::created_by.eq(&point.created_by),
                        doc_history::created_at.eq(point.created_at),
                    ))
                    .execute(conn)
                    .await?;
                if point.automatic {
                    let old: Vec<String> = doc_history::table
                        .filter(doc_history::project_id.eq(&point.project_id))
                        .filter(doc_history::automatic.eq(true))
                        .order((doc_history::created_at.desc(), doc_history::id.desc()))
                        .offset(i64::try_from(keep_automatic).unwrap_or(i64::MAX))
                        .select(doc_history::id)
                        .load(conn)
                        .await?;
                    if !old.is_empty() {
                        diesel::delete(doc_history::table.filter(doc_history::id.eq_any(old)))
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(())
            })
            .await
        })
    }

    /// A project's history points, newest first.
    pub async fn history_points(&self, project_id: &str) -> Result<Vec<HistoryPoint>, DbError> {
        with_conn!(self, conn => {
            Ok(doc_history::table
                .filter(doc_history::project_id.eq(project_id))
                .order((doc_history::created_at.desc(), doc_history::id.desc()))
                .select(HistoryPoint::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// One history point's document state.
    pub async fn history_data(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<(HistoryPoint, Vec<u8>)>, DbError> {
        with_conn!(self, conn => {
            Ok(doc_history::table
                .filter(doc_history::project_id.eq(project_id))
                .filter(doc_history::id.eq(id))
                .select((HistoryPoint::as_select(), doc_history::data))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }
}
