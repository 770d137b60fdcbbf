//! What the instance admin reads and changes: every account, and the audit log.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::accounts::User;
use super::schema::{audit_events, sessions, users};
use super::{Db, DbError, like_prefix, one_row, with_conn};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: String,
    pub at: NaiveDateTime,
    pub kind: String,
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub ip: String,
    pub detail: String,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Events of this kind (or of kinds starting with it and a `.`: `admin`).
    pub kind: Option<String>,
    /// Events this user did or that were about them.
    pub user: Option<String>,
    /// Older than this (the page before).
    pub before: Option<NaiveDateTime>,
    pub limit: i64,
}

impl Db {
    pub async fn insert_audit(&self, row: &AuditRow) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(audit_events::table)
                .values(row)
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    /// Audit events, newest first.
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, DbError> {
        let kind = q.kind.clone();
        let family = q.kind.as_deref().map(|k| like_prefix(&format!("{k}.")));
        let user = q.user.clone();
        with_conn!(self, conn => {
            let mut query = audit_events::table.into_boxed();
            if let (Some(k), Some(f)) = (&kind, &family) {
                query = query.filter(audit_events::kind.eq(k.clone()).or(audit_events::kind.like(f.clone()).escape('\\')));
            }
            if let Some(u) = &user {
                query = query.filter(audit_events::actor_id.eq(u.clone()).or(audit_events::target.eq(u.clone())));
            }
            if let Some(b) = q.before {
                query = query.filter(audit_events::at.lt(b));
            }
            Ok(query
                .order((audit_events::at.desc(), audit_events::id.desc()))
                .limit(q.limit)
                .select(AuditRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Accounts whose username, name or email starts with `prefix` (every account for an
    /// empty one), by username.
    pub async fn all_users(
        &self,
        prefix: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<User>, DbError> {
        let pattern = like_prefix(&prefix.to_lowercase());
        with_conn!(self, conn => {
            Ok(users::table
                .filter(
                    users::username_lower
                        .like(&pattern)
                        .escape('\\')
                        .or(users::email_lower.like(&pattern).escape('\\'))
                        .or(users::display_name.like(&pattern).escape('\\')),
                )
                .order(users::username_lower.asc())
                .limit(limit)
                .offset(offset)
                .select(User::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Disables (`Some(when)`) or enables (`None`) an account; disabling ends its sessions.
    pub async fn set_user_disabled(
        &self,
        id: &str,
        when: Option<NaiveDateTime>,
    ) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            let n = diesel::update(users::table.find(id))
                .set(users::disabled_at.eq(when))
                .execute(&mut conn)
                .await?;
            if when.is_some() {
                diesel::delete(sessions::table.filter(sessions::user_id.eq(id)))
                    .execute(&mut conn)
                    .await?;
            }
            n
        });
        one_row(n)
    }

    pub async fn set_user_admin(&self, id: &str, admin: bool) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(users::table.find(id))
                .set(users::is_admin.eq(admin))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    pub async fn count_admins(&self) -> Result<i64, DbError> {
        with_conn!(self, conn => {
            Ok(users::table
                .filter(users::is_admin.eq(true))
                .filter(users::disabled_at.is_null())
                .count()
                .get_result(&mut conn)
                .await?)
        })
    }

    /// Ends every session of an account.
    pub async fn end_sessions_of(&self, id: &str) -> Result<usize, DbError> {
        with_conn!(self, conn => {
            Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(id)))
                .execute(&mut conn)
                .await?)
        })
    }

    /// The database's own clock (to compare with the server's).
    pub async fn database_time(&self) -> Result<NaiveDateTime, DbError> {
        #[derive(QueryableByName)]
        struct Now {
            #[diesel(sql_type = diesel::sql_types::Text)]
            now: String,
        }
        let text = match self {
            Db::Sqlite(_) => "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS now",
            Db::Pg(_) => {
                "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS now"
            }
        };
        let now = with_conn!(self, conn => {
            diesel::sql_query(text).get_result::<Now>(&mut conn).await?.now
        });
        NaiveDateTime::parse_from_str(&now, "%Y-%m-%d %H:%M:%S%.f")
            .map_err(|e| DbError::Portable(format!("database time `{now}`: {e}")))
    }

    /// The database's size in bytes (PostgreSQL: this database; SQLite: its pages).
    pub async fn size_bytes(&self) -> Result<i64, DbError> {
        #[derive(QueryableByName)]
        struct Size {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let text = match self {
            Db::Sqlite(_) => {
                "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()"
            }
            Db::Pg(_) => "SELECT pg_database_size(current_database())::bigint AS n",
        };
        with_conn!(self, conn => {
            Ok(diesel::sql_query(text).get_result::<Size>(&mut conn).await?.n)
        })
    }
}
