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

pub struct CredentialCache {
    map: RwLock<HashMap<String, Entry>>,
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
        let e = map.get(token_hash)?;
        (e.fetched.elapsed() < TTL).then(|| (e.user.clone(), e.cred.clone()))
    }

    pub fn put(&self, token_hash: &str, user: User, cred: Cred, fetched: Instant) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= SWEEP_AT {
                map.retain(|_, e| e.fetched.elapsed() < TTL);
            }
            map.insert(
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
            && let Some(e) = map.get_mut(token_hash)
        {
            e.cred = cred;
        }
    }

    /// Drops every entry of `user_id`.
    pub fn forget_user(&self, user_id: &str) {
        if let Ok(mut map) = self.map.write() {
            map.retain(|_, e| e.user.id != user_id);
        }
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
