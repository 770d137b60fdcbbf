//! WireGuard keys: the server's static key kept in `data_dir/vpn/server.key`, and the base64
//! text form that `wg` and wg-quick use.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use boringtun::x25519::{PublicKey, StaticSecret};

use super::VpnError;

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("vpn").join("server.key")
}

pub fn generate() -> StaticSecret {
    StaticSecret::from(rand::random::<[u8; 32]>())
}

pub fn encode(bytes: &[u8; 32]) -> String {
    STANDARD.encode(bytes)
}

pub fn decode(text: &str) -> Option<[u8; 32]> {
    let v = STANDARD.decode(text.trim()).ok()?;
    v.try_into().ok()
}

pub fn public_of(secret: &StaticSecret) -> PublicKey {
    PublicKey::from(secret)
}

/// Loads the server key, creating it (mode 0600) on first use.
pub fn load_or_create(data_dir: &Path) -> Result<StaticSecret, VpnError> {
    let path = key_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => decode(&text).map(StaticSecret::from).ok_or_else(|| {
            VpnError::Key(format!(
                "{} does not hold a base64 WireGuard key",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate();
            crate::fsutil::write_private(&path, encode(secret.as_bytes()).as_bytes())
                .map_err(|e| VpnError::Key(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated the VPN server key");
            Ok(secret)
        }
        Err(e) => Err(VpnError::Key(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}
