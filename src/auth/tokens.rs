//! Secret tokens (sessions now; magic links and API tokens later): 256 random bits, given to
//! the client once, stored only as a SHA-256 hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A new token and the hash to store.
pub fn new_token() -> (String, String) {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = hash(&token);
    (token, hash)
}

/// A new token that starts with `prefix` (`dmen_`, `dmag_`: what it is shows in a log or a
/// leaked file), and the hash to store (of the whole token).
pub fn new_prefixed_token(prefix: &str) -> (String, String) {
    let token = format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let hash = hash(&token);
    (token, hash)
}

pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short random public identifier (hex).
pub fn public_id() -> String {
    rand::random::<[u8; 12]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
