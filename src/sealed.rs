//! Secrets the server must read back (TOTP seeds, ACME account and certificate keys): sealed
//! with ChaCha20-Poly1305 under a key kept in the data directory (`secrets.key`, mode 0600),
//! never in the database. A copy of the database alone (a backup, a dump, a replica) does not
//! give anyone second factors or the instance's certificates; the key must be backed up beside
//! it. Each sealed value is bound to its row (the row's key is the associated data), so it
//! cannot be moved to another row.
//!
//! Stored form: `sealed1:` + base64url(nonce ‖ ciphertext ‖ tag). A value without the prefix
//! was written before sealing existed and is read as it is.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// What every sealed value starts with.
pub const PREFIX: &str = "sealed1:";
const KEY_FILE: &str = "secrets.key";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the secrets key {0}: {1}")]
    Key(String, String),
    #[error("a sealed secret does not open with this server's key (was secrets.key replaced?)")]
    Open,
    #[error("sealing failed")]
    Seal,
}

pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    /// The key in `data_dir`, made (32 random bytes, 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SealError> {
        let path = data_dir.join(KEY_FILE);
        let shown = path.display().to_string();
        let rng = SystemRandom::new();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = vec![0u8; 32];
                rng.fill(&mut b)
                    .map_err(|_| SealError::Key(shown.clone(), "no randomness".into()))?;
                crate::fsutil::write_private(&path, &b)
                    .map_err(|e| SealError::Key(shown.clone(), e.to_string()))?;
                tracing::info!(path = %shown, "generated the secrets key");
                b
            }
            Err(e) => return Err(SealError::Key(shown, e.to_string())),
        };
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| SealError::Key(shown, "not a 32-byte key".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng,
        })
    }

    /// Seals `plain` for the row `owner`.
    pub fn seal(&self, plain: &str, owner: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Seal)?;
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The plain value of what [`Self::seal`] stored for `owner` (or of a value stored
    /// before sealing existed).
    pub fn open(&self, stored: &str, owner: &str) -> Result<String, SealError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let raw = URL_SAFE_NO_PAD.decode(b64).map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)
    }

    /// Whether `stored` is sealed (not a value from before sealing).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_row_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::load_or_create(dir.path()).unwrap();
        let sealed = s.seal("JBSWY3DPEHPK3PXP", "user-1").unwrap();
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("JBSWY3DP"));
        assert_eq!(s.open(&sealed, "user-1").unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(s.open(&sealed, "user-2").is_err(), "bound to its row");
        let again = Sealer::load_or_create(dir.path()).unwrap();
        assert_eq!(
            again.open(&sealed, "user-1").unwrap(),
            "JBSWY3DPEHPK3PXP",
            "the key persists"
        );
        let other = tempfile::tempdir().unwrap();
        assert!(
            Sealer::load_or_create(other.path())
                .unwrap()
                .open(&sealed, "user-1")
                .is_err()
        );
        assert_eq!(
            s.open("PLAINOLD", "user-1").unwrap(),
            "PLAINOLD",
            "older rows read as they are"
        );
    }
}
