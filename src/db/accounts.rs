//! Users and their sign-in sessions.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{api_tokens, recovery_codes, sessions, totp, users};
use super::{Db, DbError, one_row, with_conn};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub username_lower: String,
    pub email: String,
    pub email_lower: String,
    pub display_name: String,
    /// PHC string (`$argon2id$...`); None for accounts that sign in only another way.
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub created_at: NaiveDateTime,
    /// The owner of `email` has proven it.
    pub email_verified: bool,
    /// Disabled by an instance admin: no sign-in, no session, no token works.
    pub disabled_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub username_lower: &'a str,
    pub email: &'a str,
    pub email_lower: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
    pub created_at: NaiveDateTime,
    pub email_verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// Public id (for listing and revoking); not the secret token.
    pub id: String,
    /// SHA-256 of the secret token; the token itself is never stored.
    pub token_hash: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub user_agent: String,
    pub ip: String,
    /// Signed in with a password but not yet with the second factor: not usable.
    pub pending_second_factor: bool,
}

/// A personal access token (sent as `Authorization: Bearer`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// SHA-256 of the secret; the secret itself is shown once and never stored.
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

/// A user's TOTP enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp)]
pub struct TotpRow {
    pub user_id: String,
    pub secret: String,
    pub enabled: bool,
    pub last_step: i64,
    pub created_at: NaiveDateTime,
}

impl Db {
    /// Starts (or restarts, while not yet enabled) a TOTP enrolment.
    pub async fn put_pending_totp(&self, row: &TotpRow) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::delete(totp::table.filter(totp::user_id.eq(&row.user_id)).filter(totp::enabled.eq(false)))
                .execute(&mut conn)
                .await?;
            diesel::insert_into(totp::table)
                .values(row)
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "an enabled TOTP"))?;
            Ok(())
        })
    }

    /// TOTP rows whose secret is not sealed yet (written before sealing existed).
    pub async fn unsealed_totp(&self, sealed_prefix: &str) -> Result<Vec<TotpRow>, DbError> {
        let pattern = format!("{sealed_prefix}%");
        with_conn!(self, conn => {
            Ok(totp::table
                .filter(totp::secret.not_like(&pattern))
                .select(TotpRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Replaces a TOTP row's stored secret (with its sealed form) if it is still `was`.
    pub async fn reseal_totp(&self, user_id: &str, was: &str, sealed: &str) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::update(totp::table.find(user_id).filter(totp::secret.eq(was)))
                .set(totp::secret.eq(sealed))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn totp_of(&self, user_id: &str) -> Result<Option<TotpRow>, DbError> {
        with_conn!(self, conn => {
            Ok(totp::table.find(user_id).select(TotpRow::as_select()).first(&mut conn).await.optional()?)
        })
    }

    /// Records `step` as used if it is newer than the last one; false means a replay.
    pub async fn claim_totp_step(&self, user_id: &str, step: i64) -> Result<bool, DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(totp::table.find(user_id).filter(totp::last_step.lt(step)))
                .set(totp::last_step.eq(step))
                .execute(&mut conn)
                .await?
        });
        Ok(n == 1)
    }

    /// Turns an enrolment on and stores the recovery codes (hashes), replacing old ones.
    pub async fn enable_totp(
        &self,
        user_id: &str,
        code_hashes: &[(String, String)],
    ) -> Result<(), DbError> {
        use diesel_async::AsyncConnection;
        with_conn!(self, conn => {
            conn.transaction::<_, DbError, _>(async |conn| {
                {
                    diesel::update(totp::table.find(user_id)).set(totp::enabled.eq(true)).execute(conn).await?;
                    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
                        .execute(conn)
                        .await?;
                    for (id, hash) in code_hashes {
                        diesel::insert_into(recovery_codes::table)
                            .values((
                                recovery_codes::id.eq(id),
                                recovery_codes::user_id.eq(user_id),
                                recovery_codes::code_hash.eq(hash),
                            ))
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                }
            })
            .await
        })
    }

    pub async fn disable_totp(&self, user_id: &str) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::delete(totp::table.find(user_id)).execute(&mut conn).await?;
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    /// Uses up a recovery code; false if there is no such unused code.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
        now: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(
                recovery_codes::table
                    .filter(recovery_codes::user_id.eq(user_id))
                    .filter(recovery_codes::code_hash.eq(hash))
                    .filter(recovery_codes::used_at.is_null()),
            )
            .set(recovery_codes::used_at.eq(Some(now)))
            .execute(&mut conn)
            .await?
        });
        Ok(n == 1)
    }

    pub async fn unused_recovery_codes(&self, user_id: &str) -> Result<i64, DbError> {
        with_conn!(self, conn => {
            Ok(recovery_codes::table
                .filter(recovery_codes::user_id.eq(user_id))
                .filter(recovery_codes::used_at.is_null())
                .count()
                .get_result(&mut conn)
                .await?)
        })
    }

    /// Marks a session as having passed the second factor.
    pub async fn complete_session(&self, id: &str) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::update(sessions::table.find(id))
                .set(sessions::pending_second_factor.eq(false))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn insert_api_token(&self, t: &ApiToken) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(api_tokens::table)
                .values(t)
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "a token with this name"))?;
            Ok(())
        })
    }

    /// The token with this hash and its user, if it has not expired.
    pub async fn api_token_with_user(
        &self,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<(ApiToken, User)>, DbError> {
        with_conn!(self, conn => {
            Ok(api_tokens::table
                .inner_join(users::table)
                .filter(api_tokens::token_hash.eq(token_hash))
                .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
                .select((ApiToken::as_select(), User::as_select()))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn touch_api_token(&self, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::update(api_tokens::table.find(id))
                .set(api_tokens::last_used_at.eq(Some(now)))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn api_tokens_of(&self, user_id: &str) -> Result<Vec<ApiToken>, DbError> {
        with_conn!(self, conn => {
            Ok(api_tokens::table
                .filter(api_tokens::user_id.eq(user_id))
                .order(api_tokens::created_at.desc())
                .select(ApiToken::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Deletes one of `user_id`'s tokens; NotFound if it has no such token.
    pub async fn delete_api_token(&self, user_id: &str, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(api_tokens::table.filter(api_tokens::id.eq(id)).filter(api_tokens::user_id.eq(user_id)))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    /// Deletes every token of `user_id` (after a password reset); returns how many.
    pub async fn delete_api_tokens_of(&self, user_id: &str) -> Result<usize, DbError> {
        with_conn!(self, conn => {
            Ok(diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(user_id)))
                .execute(&mut conn)
                .await?)
        })
    }

    pub async fn count_users(&self) -> Result<i64, DbError> {
        with_conn!(self, conn => Ok(users::table.count().get_result(&mut conn).await?))
    }

    /// Inserts a user. The first user of an instance becomes its admin (a race between two
    /// first sign-ups makes neither admin, never both).
    pub async fn insert_user(&self, new: &NewUser<'_>) -> Result<User, DbError> {
        let what = "an account with this username or email";
        let user = with_conn!(self, conn => {
            diesel::insert_into(users::table)
                .values(new)
                .returning(User::as_returning())
                .get_result(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, what))?
        });
        if self.count_users().await? == 1 && !user.is_admin {
            with_conn!(self, conn => {
                diesel::update(users::table.filter(users::id.eq(&user.id)))
                    .set(users::is_admin.eq(true))
                    .execute(&mut conn)
                    .await?
            });
            return Ok(User {
                is_admin: true,
                ..user
            });
        }
        Ok(user)
    }

    /// A user by username or email (either, case-insensitively; pass it lowercased).
    pub async fn user_by_login(&self, login_lower: &str) -> Result<Option<User>, DbError> {
        with_conn!(self, conn => {
            Ok(users::table
                .filter(users::username_lower.eq(login_lower).or(users::email_lower.eq(login_lower)))
                .select(User::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, DbError> {
        with_conn!(self, conn => {
            Ok(users::table
                .find(id)
                .select(User::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn set_display_name(&self, user_id: &str, name: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(users::table.find(user_id))
                .set(users::display_name.eq(name))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(users::table.find(user_id))
                .set(users::password_hash.eq(Some(hash)))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    pub async fn insert_session(&self, s: &Session) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(sessions::table).values(s).execute(&mut conn).await?;
            Ok(())
        })
    }

    /// The session with this token hash and its user, if it has not passed `expires_at`.
    pub async fn session_with_user(
        &self,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<(Session, User)>, DbError> {
        with_conn!(self, conn => {
            Ok(sessions::table
                .inner_join(users::table)
                .filter(sessions::token_hash.eq(token_hash))
                .filter(sessions::expires_at.gt(now))
                .select((Session::as_select(), User::as_select()))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn touch_session(&self, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::update(sessions::table.find(id))
                .set(sessions::last_seen_at.eq(now))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<Session>, DbError> {
        with_conn!(self, conn => {
            Ok(sessions::table
                .filter(sessions::user_id.eq(user_id))
                .order(sessions::created_at.desc())
                .select(Session::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Deletes one of `user_id`'s sessions; NotFound if it has no such session.
    pub async fn delete_session(&self, user_id: &str, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(sessions::table.filter(sessions::id.eq(id)).filter(sessions::user_id.eq(user_id)))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    /// Deletes every session of `user_id` except `keep` (after a password change, say).
    pub async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<usize, DbError> {
        with_conn!(self, conn => {
            let base = sessions::table.filter(sessions::user_id.eq(user_id));
            Ok(match keep {
                Some(k) => diesel::delete(base.filter(sessions::id.ne(k))).execute(&mut conn).await?,
                None => diesel::delete(base).execute(&mut conn).await?,
            })
        })
    }
}
