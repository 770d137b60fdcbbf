//! The first run: an instance with no account is claimed only with a one-time setup code,
//! which `demiurge serve` prints in its log and `demiurge admin setup-code` prints again. It
//! lives in the data directory (`setup-code`, mode 0600) until the first account exists; then
//! it is deleted. Without it, the first visitor to reach a new server would become its admin.

use std::path::{Path, PathBuf};

use rand::Rng;

/// Where the code is kept.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("setup-code")
}

/// A fresh code: five groups of four characters (Crockford's base32: no I, L, O or U), about
/// 100 bits, easy to read from a log and type.
fn fresh() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rng();
    let chars: Vec<char> = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The code of an instance that has no account yet: the stored one, or a new one stored.
pub fn ensure(data_dir: &Path) -> std::io::Result<String> {
    let file = path(data_dir);
    match std::fs::read_to_string(&file) {
        Ok(code) if !code.trim().is_empty() => Ok(code.trim().to_string()),
        _ => {
            let code = fresh();
            crate::fsutil::write_private(&file, code.as_bytes())?;
            Ok(code)
        }
    }
}

/// The instance has its first account: the code is spent.
pub fn spend(data_dir: &Path) {
    let file = path(data_dir);
    if let Err(e) = std::fs::remove_file(&file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %file.display(), error = %e, "the spent setup code could not be removed");
    }
}

/// Whether `given` is the stored code (their SHA-256 hashes are compared, so the time taken
/// says nothing about how much of it was right; case, spaces and dashes do not matter).
pub fn matches(data_dir: &Path, given: &str) -> bool {
    let Ok(stored) = std::fs::read_to_string(path(data_dir)) else {
        return false;
    };
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | ' ' | '\t' | '\n' | '\r'))
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let stored = norm(stored.trim());
    !stored.is_empty() && super::tokens::hash(&stored) == super::tokens::hash(&norm(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_kept_until_spent_and_compared_loosely() {
        let dir = tempfile::tempdir().unwrap();
        let code = ensure(dir.path()).unwrap();
        assert_eq!(code.len(), 24, "{code}");
        assert_eq!(ensure(dir.path()).unwrap(), code, "the same code again");
        assert!(matches(dir.path(), &code));
        assert!(matches(dir.path(), &code.to_lowercase().replace('-', " ")));
        assert!(!matches(dir.path(), "0000-0000-0000-0000-0000"));
        assert!(!matches(dir.path(), ""));
        spend(dir.path());
        assert!(!matches(dir.path(), &code));
        assert_ne!(
            ensure(dir.path()).unwrap(),
            code,
            "a new instance, a new code"
        );
    }
}
