//! Passwords: argon2id at OWASP parameters (m = 19456 KiB, t = 2, p = 1), PHC strings, hashed
//! and verified on the blocking pool, and the password policy.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Shortest password accepted.
pub const MIN_CHARS: usize = 10;
/// Longest password accepted (bytes): hashing cost must not be the client's to choose.
pub const MAX_BYTES: usize = 1024;

const COMMON: &str = include_str!("common_passwords.txt");

/// Why a password is refused (shown to the user).
pub fn policy_violation(password: &str, username: &str, email: &str) -> Option<String> {
    if password.chars().count() < MIN_CHARS {
        return Some(format!("use at least {MIN_CHARS} characters"));
    }
    if password.len() > MAX_BYTES {
        return Some(format!("use at most {MAX_BYTES} bytes"));
    }
    let lower = password.to_lowercase();
    if COMMON.lines().any(|c| c.trim() == lower) {
        return Some("this password is among the most common ones; choose another".into());
    }
    if lower == username.to_lowercase() || lower == email.to_lowercase() {
        return Some("the password must differ from the username and email".into());
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return Some("a password of one repeated character is too easy to guess".into());
    }
    None
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes on the blocking pool (about 20 ms of CPU in release builds).
pub async fn hash(password: &str) -> Result<String, HashError> {
    let pw = password.as_bytes().to_vec();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(&pw)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// Verifies on the blocking pool. A malformed stored hash verifies as false.
pub async fn verify(password: &str, phc: &str) -> bool {
    let pw = password.as_bytes().to_vec();
    let phc = phc.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default().verify_password(&pw, phc.as_str()).is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A real hash of a random password, verified against when an account does not exist, so a
/// failed login costs the same time either way.
pub fn dummy_hash() -> String {
    let pw: [u8; 16] = rand::random();
    Argon2::default()
        .hash_password(&pw)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(policy_violation("short", "u", "e@x").is_some());
        assert!(
            policy_violation("Password123", "u", "e@x").is_some(),
            "common, any case"
        );
        assert!(policy_violation("alice-the-user", "Alice-The-User", "e@x").is_some());
        assert!(policy_violation("aaaaaaaaaaaa", "u", "e@x").is_some());
        assert!(policy_violation(&"x".repeat(2000), "u", "e@x").is_some());
        assert!(policy_violation("correct horse battery", "u", "e@x").is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn hash_is_argon2id_phc_and_verifies() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h).await);
        assert!(!verify("wrong horse battery", &h).await);
        assert!(!verify("x", "not a phc string").await);
    }
}
