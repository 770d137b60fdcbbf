//! ACME state: the account at each certificate authority and the certificates it issued
//! (private parts sealed by the caller before they get here).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::schema::{acme_accounts, acme_certificates};
use super::{Db, DbError, with_conn};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = acme_certificates)]
pub struct AcmeCertificateRow {
    pub name: String,
    pub directory: String,
    pub domains: String,
    pub chain_pem: String,
    /// Sealed.
    pub key_pem: String,
    pub issuer: String,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub issued_at: NaiveDateTime,
}

impl Db {
    /// The sealed account credentials at `directory`, if an account was made there.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, DbError> {
        with_conn!(self, conn => {
            Ok(acme_accounts::table
                .filter(acme_accounts::directory.eq(directory))
                .select(acme_accounts::credentials)
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// Keeps the (sealed) credentials of the account made at `directory`.
    pub async fn put_acme_account(
        &self,
        directory: &str,
        credentials: &str,
        now: NaiveDateTime,
    ) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(acme_accounts::table)
                .values((
                    acme_accounts::directory.eq(directory),
                    acme_accounts::credentials.eq(credentials),
                    acme_accounts::created_at.eq(now),
                ))
                .on_conflict(acme_accounts::directory)
                .do_update()
                .set(acme_accounts::credentials.eq(excluded(acme_accounts::credentials)))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    /// The certificate kept under `name`.
    pub async fn acme_certificate(
        &self,
        name: &str,
    ) -> Result<Option<AcmeCertificateRow>, DbError> {
        with_conn!(self, conn => {
            Ok(acme_certificates::table
                .filter(acme_certificates::name.eq(name))
                .select(AcmeCertificateRow::as_select())
                .first(&mut conn)
                .await
                .optional()?)
        })
    }

    /// Keeps `row` as the certificate under its name (replacing the one before).
    pub async fn put_acme_certificate(&self, row: &AcmeCertificateRow) -> Result<(), DbError> {
        use acme_certificates as c;
        with_conn!(self, conn => {
            diesel::insert_into(c::table)
                .values(row)
                .on_conflict(c::name)
                .do_update()
                .set((
                    c::directory.eq(excluded(c::directory)),
                    c::domains.eq(excluded(c::domains)),
                    c::chain_pem.eq(excluded(c::chain_pem)),
                    c::key_pem.eq(excluded(c::key_pem)),
                    c::issuer.eq(excluded(c::issuer)),
                    c::not_before.eq(excluded(c::not_before)),
                    c::not_after.eq(excluded(c::not_after)),
                    c::issued_at.eq(excluded(c::issued_at)),
                ))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }
}
