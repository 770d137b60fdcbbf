//! Instance settings an admin changed: one row per key, the value as JSON.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::schema::instance_settings;
use super::{Db, DbError, with_conn};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = instance_settings)]
pub struct SettingRow {
    pub key: String,
    /// JSON.
    pub value: String,
    pub updated_at: NaiveDateTime,
    pub updated_by: Option<String>,
}

impl Db {
    pub async fn instance_settings(&self) -> Result<Vec<SettingRow>, DbError> {
        with_conn!(self, conn => {
            Ok(instance_settings::table
                .select(SettingRow::as_select())
                .load(&mut conn)
                .await?)
        })
    }

    /// Sets (or replaces) one setting.
    pub async fn put_instance_setting(&self, row: &SettingRow) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::insert_into(instance_settings::table)
                .values(row)
                .on_conflict(instance_settings::key)
                .do_update()
                .set((
                    instance_settings::value.eq(excluded(instance_settings::value)),
                    instance_settings::updated_at.eq(excluded(instance_settings::updated_at)),
                    instance_settings::updated_by.eq(excluded(instance_settings::updated_by)),
                ))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }

    /// Forgets one setting (the config file's value holds again).
    pub async fn delete_instance_setting(&self, key: &str) -> Result<(), DbError> {
        with_conn!(self, conn => {
            diesel::delete(instance_settings::table.find(key))
                .execute(&mut conn)
                .await?;
            Ok(())
        })
    }
}
