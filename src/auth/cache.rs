//! A short-lived in-memory cache of authenticated credentials, so a request with a valid
//! session or token does not cost a database round trip.
//!
//! Every change made through [`super::Auth`] (revoking, signing out, a new password) drops the
//! user's entries at once. Changes made by another process (`demiurge admin reset-password`, a
//! second node later) are seen within [`TTL`].

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::db::accounts::{ApiToken, Session, User};

/// How long an entry is trusted without asking the database again.
pub const TTL: Duration = Duration::from_secs(5);
/// Past this many entries, stale ones are swept on insert.
const SWEEP_AT: usize = 50_000;

#[derive(Debug, Clone)]
pub enum Cred {
    Session(Session),
    Token(ApiToken),
}

struct Entry {
    user: User,
    cred: Cred,
    fetched: Instant,
}

/// The entries, and when a user's entries were last dropped.
#[derive(Default)]
struct Table {
    entries: HashMap<String, Entry>,
    /// A row read from the database before this may predate a revocation: it is not kept.
    last_forget: Option<Instant>,
}

pub struct CredentialCache {
    map: RwLock<Table>,
    /// Bumped whenever a user's credentials change (long-lived connections re-check theirs).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self {
            map: RwLock::default(),
            changes: tokio::sync::watch::channel(0).0,
        }
    }
}

impl CredentialCache {
    /// A fresh entry for this token hash.
    pub fn get(&self, token_hash: &str) -> Option<(User, Cred)> {
        let map = self.map.read().ok()?;
        let e = map.entries.get(token_hash)?;
        (e.fetched.elapsed() < TTL).then(|| (e.user.clone(), e.cred.clone()))
    }

    /// Keeps what was read from the database at `fetched`, unless some user's entries were
    /// dropped since (a revocation may have removed this very row after it was read).
    pub fn put(&self, token_hash: &str, user: User, cred: Cred, fetched: Instant) {
        if let Ok(mut map) = self.map.write() {
            if map.last_forget.is_some_and(|t| fetched <= t) {
                return;
            }
            if map.entries.len() >= SWEEP_AT {
                map.entries.retain(|_, e| e.fetched.elapsed() < TTL);
            }
            map.entries.insert(
                token_hash.to_string(),
                Entry {
                    user,
                    cred,
                    fetched,
                },
            );
        }
    }

    /// Keeps an entry's credential current (a new last-seen time) without renewing it.
    pub fn update(&self, token_hash: &str, cred: Cred) {
        if let Ok(mut map) = self.map.write()
            && let Some(e) = map.entries.get_mut(token_hash)
        {
            e.cred = cred;
        }
    }

    /// Drops every entry of `user_id`.
    pub fn forget_user(&self, user_id: &str) {
        if let Ok(mut map) = self.map.write() {
            map.entries.retain(|_, e| e.user.id != user_id);
            map.last_forget = Some(Instant::now());
        }
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            username: id.into(),
            username_lower: id.into(),
            email: format!("{id}@example.test"),
            email_lower: format!("{id}@example.test"),
            display_name: id.into(),
            password_hash: None,
            is_admin: false,
            created_at: chrono::Utc::now().naive_utc(),
            email_verified: false,
            disabled_at: None,
        }
    }

    fn token() -> Cred {
        let t = chrono::Utc::now().naive_utc();
        Cred::Token(ApiToken {
            id: "t".into(),
            user_id: "u".into(),
            name: "t".into(),
            token_hash: "h".into(),
            created_at: t,
            last_used_at: None,
            expires_at: None,
        })
    }

    /// A row read before a revocation dropped the user's entries is not cached: it may be the
    /// very row the revocation deleted.
    #[test]
    fn a_read_from_before_a_revocation_is_not_kept() {
        let cache = CredentialCache::default();
        let read_at = Instant::now();
        cache.forget_user("u");
        cache.put("h", user("u"), token(), read_at);
        assert!(cache.get("h").is_none());
        cache.put("h", user("u"), token(), Instant::now());
        assert!(cache.get("h").is_some(), "a read after it is");
    }
}
