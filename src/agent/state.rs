//! What the agent keeps in its state directory (the container's volume): its WireGuard key
//! and, after enrolling, its credential and place in the network. Both files are 0600; a
//! restart reads them and needs no new token.

use std::path::{Path, PathBuf};

use boringtun::x25519::StaticSecret;
use serde::{Deserialize, Serialize};

use super::AgentError;
use crate::vpn::keys;

/// The server's answer to enrolling, kept as it came (`POST /api/v1/agent/enroll`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub container_id: String,
    /// `Authorization: Bearer dmag_...` from now on.
    pub credential: String,
    pub tunnel_address: String,
    pub subnet: String,
    pub server: SavedServer,
    pub heartbeat_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedServer {
    pub public_key: String,
    /// `host:port` (UDP).
    pub endpoint: String,
    pub tunnel_address: String,
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("agent.key")
}

fn saved_path(dir: &Path) -> PathBuf {
    dir.join("agent.json")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::State {
        path: path.display().to_string(),
        source,
    }
}

/// The state directory, made if missing and readable by its owner only.
pub fn prepare(dir: &Path) -> Result<(), AgentError> {
    crate::fsutil::private_dir(dir).map_err(io(dir))
}

/// The agent's WireGuard key, made on first start. The private key never leaves the volume.
pub fn key(dir: &Path) -> Result<StaticSecret, AgentError> {
    let path = key_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => keys::decode(&text).map(StaticSecret::from).ok_or_else(|| {
            AgentError::Corrupt(format!("{} is not a WireGuard key", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = keys::generate();
            crate::fsutil::write_private(&path, keys::encode(secret.as_bytes()).as_bytes())
                .map_err(io(&path))?;
            tracing::info!(path = %path.display(), "made the agent's WireGuard key");
            Ok(secret)
        }
        Err(e) => Err(io(&path)(e)),
    }
}

pub fn load(dir: &Path) -> Result<Option<Saved>, AgentError> {
    let path = saved_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AgentError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

pub fn save(dir: &Path, saved: &Saved) -> Result<(), AgentError> {
    let path = saved_path(dir);
    let bytes = serde_json::to_vec_pretty(saved).map_err(|e| AgentError::Corrupt(e.to_string()))?;
    crate::fsutil::write_private(&path, &bytes).map_err(io(&path))
}

/// Drops a credential the server no longer knows (the container was deleted).
pub fn forget(dir: &Path) -> Result<(), AgentError> {
    let path = saved_path(dir);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_and_credential_survive_a_restart_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("state");
        prepare(&d).unwrap();
        let k1 = key(&d).unwrap();
        let k2 = key(&d).unwrap();
        assert_eq!(k1.as_bytes(), k2.as_bytes());
        assert!(load(&d).unwrap().is_none());
        let s = Saved {
            container_id: "c".into(),
            credential: "dmag_x".into(),
            tunnel_address: "10.88.0.9".into(),
            subnet: "10.88.0.0/16".into(),
            server: SavedServer {
                public_key: "k".into(),
                endpoint: "127.0.0.1:1".into(),
                tunnel_address: "10.88.0.1".into(),
            },
            heartbeat_seconds: 5,
        };
        save(&d, &s).unwrap();
        assert_eq!(load(&d).unwrap().unwrap().credential, "dmag_x");
        for f in ["agent.key", "agent.json"] {
            let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
        }
        forget(&d).unwrap();
        assert!(load(&d).unwrap().is_none());
        forget(&d).unwrap();
    }
}
