//! HTTP-01 answers: the key authorization for each token of an order in progress, served by
//! the app at `/.well-known/acme-challenge/<token>` (over plain HTTP, never redirected).

use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
pub struct Challenges {
    tokens: RwLock<HashMap<String, String>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.tokens.read().map(|t| t.len()).unwrap_or(0);
        f.debug_struct("Challenges").field("pending", &n).finish()
    }
}

impl Challenges {
    /// The answer for `token`, while its order is in progress.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.tokens.read().ok()?.get(token).cloned()
    }

    pub(super) fn put(&self, token: &str, key_authorization: &str) {
        if let Ok(mut t) = self.tokens.write() {
            t.insert(token.to_string(), key_authorization.to_string());
        }
    }

    pub(super) fn remove(&self, token: &str) {
        if let Ok(mut t) = self.tokens.write() {
            t.remove(token);
        }
    }
}
