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
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
    /// More hashes are running and waiting than the server allows.
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
}

/// How many hashes may run at once, and wait: each holds 19 MiB while it runs, so a burst
/// of sign-ins must not start them all. Set once by [`limit_concurrency`]; until then, two
/// per core.
struct Gate {
    running: tokio::sync::Semaphore,
    /// Hashes waiting for a turn, at most `max_waiting`.
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

static GATE: std::sync::OnceLock<Gate> = std::sync::OnceLock::new();

fn gate() -> &'static Gate {
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Gate::new(cores * 2)
    })
}

impl Gate {
    fn new(at_once: usize) -> Self {
        let at_once = at_once.max(1);
        Self {
            running: tokio::sync::Semaphore::new(at_once),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: at_once * 4,
        }
    }
}

/// Sets how many hashes run at once (a few times that may wait; past them, [`HashError::Busy`]).
/// Has effect only before the first hash.
pub fn limit_concurrency(at_once: usize) {
    let _ = GATE.set(Gate::new(at_once));
}

/// Runs `work` on the blocking pool once the gate lets it.
async fn gated<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    use std::sync::atomic::Ordering;
    let g = gate();
    let permit = match g.running.try_acquire() {
        Ok(p) => p,
        Err(_) => {
            if g.waiting.fetch_add(1, Ordering::AcqRel) >= g.max_waiting {
                g.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(HashError::Busy);
            }
            let p = g.running.acquire().await;
            g.waiting.fetch_sub(1, Ordering::AcqRel);
            p.map_err(|e| HashError::Failed(e.to_string()))?
        }
    };
    let out = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HashError::Failed(e.to_string()));
    drop(permit);
    out
}

/// Hashes on the blocking pool (about 20 ms of CPU in release builds).
pub async fn hash(password: &str) -> Result<String, HashError> {
    let pw = password.as_bytes().to_vec();
    gated(move || {
        Argon2::default()
            .hash_password(&pw)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Failed(e.to_string()))
    })
    .await?
}

/// Verifies on the blocking pool. A malformed stored hash verifies as false.
pub async fn verify(password: &str, phc: &str) -> Result<bool, HashError> {
    let pw = password.as_bytes().to_vec();
    let phc = phc.to_string();
    gated(move || Argon2::default().verify_password(&pw, phc.as_str()).is_ok()).await
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
        assert!(verify("correct horse battery", &h).await.unwrap());
        assert!(!verify("wrong horse battery", &h).await.unwrap());
        assert!(!verify("x", "not a phc string").await.unwrap());
    }
}
