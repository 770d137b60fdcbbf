//! The instance's own settings: its name and whether anyone may sign up. The config file
//! (`[server] name`, `[auth] open_signup`) gives the values; an admin's change on the admin
//! page is stored in the database and overrides the file's value until it is set back to
//! it. One handle, shared by everything that shows the name or decides on sign-up, with a
//! watch for the UI, so a change shows at once everywhere without a restart.

use std::sync::Arc;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use tokio::sync::watch;

use crate::config::Config;
use crate::db::settings::SettingRow;
use crate::db::{Db, DbError};

const NAME: &str = "name";
const OPEN_SIGNUP: &str = "open_signup";

/// The longest instance name.
pub const NAME_MAX: usize = 64;

/// The settings in force, and where each comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    /// Shown in the page title and header, mails, authenticator apps and passkey prompts.
    pub name: String,
    /// Anyone may create an account (when off, only the first account, people holding an
    /// invitation, and accounts an admin makes).
    pub open_signup: bool,
    /// The config file's values.
    pub configured_name: String,
    pub configured_open_signup: bool,
    /// When and by whom each admin-set value was set (none: the config file's value).
    pub name_set: Option<(NaiveDateTime, Option<String>)>,
    pub open_signup_set: Option<(NaiveDateTime, Option<String>)>,
}

/// A change an admin asks for; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub name: Option<String>,
    pub open_signup: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The shared handle (cheap to clone).
#[derive(Clone)]
pub struct Instance {
    db: Db,
    current: Arc<watch::Sender<InstanceSettings>>,
    /// The name alone, for the UI (which does not know this crate's types).
    name: Arc<watch::Sender<String>>,
}

impl Instance {
    /// The config file's values; [`Instance::load`] applies what the database holds.
    pub fn new(db: Db, cfg: &Config) -> Self {
        let s = InstanceSettings {
            name: cfg.server.name.clone(),
            open_signup: cfg.auth.open_signup,
            configured_name: cfg.server.name.clone(),
            configured_open_signup: cfg.auth.open_signup,
            name_set: None,
            open_signup_set: None,
        };
        Self {
            db,
            name: Arc::new(watch::Sender::new(s.name.clone())),
            current: Arc::new(watch::Sender::new(s)),
        }
    }

    /// Reads the admin-set values from the database (at start, before anyone is served).
    pub async fn load(&self) -> Result<(), DbError> {
        let rows = self.db.instance_settings().await?;
        let mut s = self.current.borrow().clone();
        for row in rows {
            let when = Some((row.updated_at, row.updated_by.clone()));
            match row.key.as_str() {
                NAME => match serde_json::from_str::<String>(&row.value) {
                    Ok(v) if valid_name(&v).is_ok() => {
                        s.name = v;
                        s.name_set = when;
                    }
                    _ => {
                        tracing::warn!(value = %row.value, "instance setting `name` is not a valid name; the config file's holds")
                    }
                },
                OPEN_SIGNUP => match serde_json::from_str::<bool>(&row.value) {
                    Ok(v) => {
                        s.open_signup = v;
                        s.open_signup_set = when;
                    }
                    Err(_) => {
                        tracing::warn!(value = %row.value, "instance setting `open_signup` is not true or false; the config file's holds")
                    }
                },
                other => tracing::warn!(key = other, "unknown instance setting ignored"),
            }
        }
        self.publish(s);
        Ok(())
    }

    pub fn settings(&self) -> InstanceSettings {
        self.current.borrow().clone()
    }

    pub fn name(&self) -> String {
        self.current.borrow().name.clone()
    }

    pub fn open_signup(&self) -> bool {
        self.current.borrow().open_signup
    }

    /// The name, following every change.
    pub fn watch_name(&self) -> watch::Receiver<String> {
        self.name.subscribe()
    }

    fn publish(&self, s: InstanceSettings) {
        self.name.send_if_modified(|n| {
            let changed = *n != s.name;
            if changed {
                n.clone_from(&s.name);
            }
            changed
        });
        self.current.send_replace(s);
    }

    /// Applies an admin's change (authorised by the caller). A value equal to the config
    /// file's makes the setting follow the config file again.
    pub(crate) async fn change(
        &self,
        change: &SettingsChange,
        by: &str,
    ) -> Result<InstanceSettings, SettingsError> {
        let name = change.name.as_deref().map(valid_name).transpose()?;
        let at = Utc::now().naive_utc().trunc_subsecs(6);
        let mut s = self.settings();
        if let Some(n) = name {
            if n == s.configured_name {
                self.db.delete_instance_setting(NAME).await?;
                s.name_set = None;
            } else {
                self.put(NAME, serde_json::Value::from(n.clone()), at, by)
                    .await?;
                s.name_set = Some((at, Some(by.to_string())));
            }
            s.name = n;
        }
        if let Some(open) = change.open_signup {
            if open == s.configured_open_signup {
                self.db.delete_instance_setting(OPEN_SIGNUP).await?;
                s.open_signup_set = None;
            } else {
                self.put(OPEN_SIGNUP, serde_json::Value::from(open), at, by)
                    .await?;
                s.open_signup_set = Some((at, Some(by.to_string())));
            }
            s.open_signup = open;
        }
        self.publish(s.clone());
        Ok(s)
    }

    async fn put(
        &self,
        key: &str,
        value: serde_json::Value,
        at: NaiveDateTime,
        by: &str,
    ) -> Result<(), DbError> {
        self.db
            .put_instance_setting(&SettingRow {
                key: key.into(),
                value: value.to_string(),
                updated_at: at,
                updated_by: Some(by.into()),
            })
            .await
    }
}

/// A name is 1 to [`NAME_MAX`] characters (after trimming), none of them control characters.
fn valid_name(name: &str) -> Result<String, SettingsError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > NAME_MAX {
        return Err(SettingsError::Invalid(format!(
            "name: 1 to {NAME_MAX} characters"
        )));
    }
    if n.chars().any(char::is_control) {
        return Err(SettingsError::Invalid("name: no control characters".into()));
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(valid_name("  Acme  ").unwrap(), "Acme");
        assert!(valid_name("   ").is_err());
        assert!(valid_name(&"x".repeat(65)).is_err());
        assert!(valid_name(&"é".repeat(64)).is_ok());
        assert!(valid_name("a\u{7}b").is_err());
    }
}
