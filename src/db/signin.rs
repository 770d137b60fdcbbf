//! Sign-in methods beyond the password: email links, linked provider identities, passkeys,
//! and the server-side state of ceremonies that span requests.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::accounts::User;
use super::schema::{ceremonies, email_links, identities, passkeys, sign_in_reviews, users};
use super::{Db, DbError, one_row, with_conn};

/// A one-time link sent by email.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_links)]
pub struct EmailLink {
    pub id: String,
    /// SHA-256 of the secret in the link.
    pub token_hash: String,
    /// `sign_in`, `reset_password` or `verify_email`.
    pub purpose: String,
    pub user_id: String,
    /// Where it was sent.
    pub email: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

/// An account at an external provider linked to a user.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = identities)]
pub struct Identity {
    pub id: String,
    pub user_id: String,
    /// The provider's id in the configuration.
    pub provider: String,
    /// The provider's stable id of the person (`sub`).
    pub subject: String,
    pub email: Option<String>,
    pub display: String,
    pub created_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
}

/// The state of a ceremony between two requests.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ceremonies)]
pub struct Ceremony {
    /// SHA-256 of the handle the client holds.
    pub handle_hash: String,
    pub kind: String,
    pub user_id: Option<String>,
    /// JSON, shaped by `kind`.
    pub state: String,
    pub expires_at: NaiveDateTime,
}

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// base64url credential id.
    pub credential_id: String,
    /// The webauthn-rs credential as JSON (public key and counter; nothing secret).
    pub passkey: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

impl Db {
    pub async fn insert_email_link(&self, link: &EmailLink) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(email_links::table).values(link).execute(&mut conn).await?;
            Ok(())
        })
    }

    /// Uses up the unexpired, unused link with this hash and purpose (atomically: of two
    /// concurrent redemptions exactly one wins). Returns it with its user.
    pub async fn redeem_email_link(
        &self,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<(EmailLink, User)>, DbError> {
        let claimed = with_conn!(self, conn => {
            diesel::update(
                email_links::table
                    .filter(email_links::token_hash.eq(token_hash))
                    .filter(email_links::used_at.is_null())
                    .filter(email_links::expires_at.gt(now)),
            )
            .set(email_links::used_at.eq(Some(now)))
            .execute(&mut conn)
            .await?
        });
        if claimed != 1 {
            return Ok(None);
        }
        with_conn!(self, conn => {
            Ok(email_links::table
                .inner_join(users::table)
                .filter(email_links::token_hash.eq(token_hash))
                .select((EmailLink::as_select(), User::as_select()))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// The unexpired, unused link with this hash and its user (without using it).
    pub async fn email_link_unused_with_user(
        &self,
        token_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Option<(EmailLink, User)>, DbError> {
        with_conn!(self, conn => {
            Ok(email_links::table
                .inner_join(users::table)
                .filter(email_links::token_hash.eq(token_hash))
                .filter(email_links::used_at.is_null())
                .filter(email_links::expires_at.gt(now))
                .select((EmailLink::as_select(), User::as_select()))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// Drops every unused link of a user for a purpose (a newer one replaces them).
    pub async fn delete_email_links(&self, user_id: &str, purpose: &str) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::delete(
                email_links::table
                    .filter(email_links::user_id.eq(user_id))
                    .filter(email_links::purpose.eq(purpose)),
            )
            .execute(&mut conn)
            .await?;
            Ok(())
        })
    }

    pub async fn set_email_verified(
        &self,
        user_id: &str,
        email_lower: &str,
    ) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(users::table.find(user_id).filter(users::email_lower.eq(email_lower)))
                .set(users::email_verified.eq(true))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    pub async fn user_by_email(&self, email_lower: &str) -> Result<Option<User>, DbError> {
        with_conn!(self, conn => {
            Ok(users::table
                .filter(users::email_lower.eq(email_lower))
                .select(User::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn insert_identity(&self, i: &Identity) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(identities::table)
                .values(i)
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "this provider account is already linked"))?;
            Ok(())
        })
    }

    /// The identity at `provider` with this subject, and its user.
    pub async fn identity_with_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<(Identity, User)>, DbError> {
        with_conn!(self, conn => {
            Ok(identities::table
                .inner_join(users::table)
                .filter(identities::provider.eq(provider))
                .filter(identities::subject.eq(subject))
                .select((Identity::as_select(), User::as_select()))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    pub async fn touch_identity(&self, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::update(identities::table.find(id))
                .set(identities::last_login_at.eq(Some(now)))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>, DbError> {
        with_conn!(self, conn => {
            Ok(identities::table
                .filter(identities::user_id.eq(user_id))
                .order(identities::created_at.asc())
                .select(Identity::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    pub async fn delete_identity(&self, user_id: &str, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(identities::table.filter(identities::id.eq(id)).filter(identities::user_id.eq(user_id)))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }

    /// Asks the account's owner to review its passkeys and provider accounts (after a
    /// password reset); asking again keeps the first time.
    pub async fn ask_sign_in_review(
        &self,
        user_id: &str,
        at: NaiveDateTime,
    ) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(sign_in_reviews::table)
                .values((sign_in_reviews::user_id.eq(user_id), sign_in_reviews::asked_at.eq(at)))
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    /// When the account's owner was asked to review its sign-in methods, if they have not
    /// answered yet.
    pub async fn sign_in_review(&self, user_id: &str) -> Result<Option<NaiveDateTime>, DbError> {
        with_conn!(self, conn => {
            Ok(sign_in_reviews::table
                .find(user_id)
                .select(sign_in_reviews::asked_at)
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// The owner answered the review; whether one was pending.
    pub async fn end_sign_in_review(&self, user_id: &str) -> Result<bool, DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(sign_in_reviews::table.find(user_id))
                .execute(&mut conn)
                .await?
        });
        Ok(n > 0)
    }

    /// Stores a ceremony, and drops the expired ones of any user while at it.
    pub async fn insert_ceremony(&self, c: &Ceremony, now: NaiveDateTime) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::delete(ceremonies::table.filter(ceremonies::expires_at.le(now)))
                .execute(&mut conn)
                .await?;
            diesel::insert_into(ceremonies::table).values(c).execute(&mut conn).await?;
            Ok(())
        })
    }

    /// Takes (reads and deletes) an unexpired ceremony of this kind: a ceremony is used once.
    pub async fn take_ceremony(
        &self,
        handle_hash: &str,
        kind: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Ceremony>, DbError> {
        let found: Option<Ceremony> = with_conn!(self, conn => {
            diesel::delete(
                ceremonies::table
                    .filter(ceremonies::handle_hash.eq(handle_hash))
                    .filter(ceremonies::kind.eq(kind)),
            )
            .returning(Ceremony::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
        });
        Ok(found.filter(|c| c.expires_at > now))
    }

    pub async fn insert_passkey(&self, p: &PasskeyRow) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(passkeys::table)
                .values(p)
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "a passkey with this name, or this passkey"))?;
            Ok(())
        })
    }

    pub async fn passkeys_of(&self, user_id: &str) -> Result<Vec<PasskeyRow>, DbError> {
        with_conn!(self, conn => {
            Ok(passkeys::table
                .filter(passkeys::user_id.eq(user_id))
                .order(passkeys::created_at.asc())
                .select(PasskeyRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// The passkey with this credential id, and its user.
    pub async fn passkey_with_user(
        &self,
        credential_id: &str,
    ) -> Result<Option<(PasskeyRow, User)>, DbError> {
        with_conn!(self, conn => {
            Ok(passkeys::table
                .inner_join(users::table)
                .filter(passkeys::credential_id.eq(credential_id))
                .select((PasskeyRow::as_select(), User::as_select()))
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// After a sign-in: the new counter state and the time.
    pub async fn update_passkey(
        &self,
        id: &str,
        passkey: &str,
        now: NaiveDateTime,
    ) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::update(passkeys::table.find(id))
                .set((passkeys::passkey.eq(passkey), passkeys::last_used_at.eq(Some(now))))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    pub async fn rename_passkey(&self, user_id: &str, id: &str, name: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::update(passkeys::table.filter(passkeys::id.eq(id)).filter(passkeys::user_id.eq(user_id)))
                .set(passkeys::name.eq(name))
                .execute(&mut conn)
                .await
                .map_err(|e| DbError::conflict_as(e, "a passkey with this name"))?
        });
        one_row(n)
    }

    /// Removes every passkey of an account; how many there were.
    pub async fn delete_passkeys_of(&self, user_id: &str) -> Result<usize, DbError> {
        with_conn!(self, conn => {
            Ok(diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id)))
                .execute(&mut conn)
                .await?)
        })
    }

    pub async fn delete_passkey(&self, user_id: &str, id: &str) -> Result<(), DbError> {
        let n = with_conn!(self, conn => {
            diesel::delete(passkeys::table.filter(passkeys::id.eq(id)).filter(passkeys::user_id.eq(user_id)))
                .execute(&mut conn)
                .await?
        });
        one_row(n)
    }
}
