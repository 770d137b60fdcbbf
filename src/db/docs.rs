//! The update log of project documents.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::doc_updates;
use super::{Db, DbError, with_conn};

impl Db {
    /// Appends one update; `seq` must be the next number for the project.
    pub async fn append_update(
        &self,
        project_id: &str,
        seq: i64,
        data: &[u8],
        now: NaiveDateTime,
    ) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(doc_updates::table)
                .values((
                    doc_updates::project_id.eq(project_id),
                    doc_updates::seq.eq(seq),
                    doc_updates::data.eq(data),
                    doc_updates::created_at.eq(now),
                ))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    /// Every update of a project, in order.
    pub async fn updates_of(&self, project_id: &str) -> Result<Vec<(i64, Vec<u8>)>, DbError> {
        with_conn!(self, conn => {
            Ok(doc_updates::table
                .filter(doc_updates::project_id.eq(project_id))
                .order(doc_updates::seq.asc())
                .select((doc_updates::seq, doc_updates::data))
                .load(&mut conn)
                .await?)
        })
    }
}
