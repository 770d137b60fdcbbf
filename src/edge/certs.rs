//! TLS certificates for the edge: a store that picks a certificate by SNI while the server runs
//! (ACME certificates are swapped in as they are issued; open connections keep theirs), and
//! the self-signed certificate used until then, generated once and kept in `data_dir/tls/`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("tls: {path}: {message}")]
    File { path: String, message: String },
    #[error("tls: cannot generate a certificate: {0}")]
    Generate(String),
}

/// Certificates by host name; `*.example.com` entries match one label. Names in the map have
/// a certificate a CA issued; the fallback (self-signed until the first issuance) serves the
/// rest.
#[derive(Default)]
pub struct CertStore {
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    fallback: RwLock<Option<Arc<CertifiedKey>>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.by_name.read().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("CertStore").field("names", &names).finish()
    }
}

impl CertStore {
    /// Serves `key`, issued by a CA, for each of `names` from now on.
    pub fn insert_issued(&self, names: &[String], key: Arc<CertifiedKey>) {
        if let Ok(mut map) = self.by_name.write() {
            for n in names {
                map.insert(n.to_ascii_lowercase(), key.clone());
            }
        }
    }

    /// Served when no name matches (and to clients that send no SNI).
    pub fn set_fallback(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut f) = self.fallback.write() {
            *f = Some(key);
        }
    }

    /// Whether `host` (as a client sent it, perhaps with a port) has a certificate a CA
    /// issued: then plain HTTP for it is redirected to HTTPS.
    pub fn covers(&self, host: &str) -> bool {
        let host = super::strip_port(host.trim()).trim_end_matches('.');
        !host.is_empty() && self.issued(&host.to_ascii_lowercase()).is_some()
    }

    fn issued(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.by_name.read().ok()?;
        if let Some(k) = map.get(name) {
            return Some(k.clone());
        }
        let (_, parent) = name.split_once('.')?;
        map.get(&format!("*.{parent}")).cloned()
    }

    fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(k) = sni.and_then(|n| self.issued(&n.to_ascii_lowercase())) {
            return Some(k);
        }
        self.fallback.read().ok().and_then(|f| f.clone())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

/// The names the self-signed certificate covers.
pub fn self_signed_names(domain: &str) -> Vec<String> {
    let mut names = vec![
        domain.to_string(),
        format!("*.{domain}"),
        format!("*.containers.{domain}"),
    ];
    if domain != "localhost" {
        names.push("localhost".into());
    }
    names
}

/// Loads `dir/self-signed.{crt,key}`, or makes them (key file mode 0600).
pub fn load_or_create_self_signed(
    dir: &Path,
    domain: &str,
) -> Result<Arc<CertifiedKey>, CertError> {
    let crt = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    let marker = dir.join("self-signed.names");
    let names = self_signed_names(domain);
    let wanted = names.join(",");
    let current = std::fs::read_to_string(&marker).unwrap_or_default();
    if !(crt.is_file() && key.is_file() && current.trim() == wanted) {
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| CertError::Generate(e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        crate::fsutil::write_private(&key, generated.signing_key.serialize_pem().as_bytes())
            .map_err(|e| file_err(&key, e))?;
        std::fs::write(&crt, generated.cert.pem()).map_err(|e| file_err(&crt, e))?;
        std::fs::write(&marker, &wanted).map_err(|e| file_err(&marker, e))?;
        tracing::info!(path = %crt.display(), "generated a self-signed certificate");
    }
    load_pem(&crt, &key)
}

/// A certificate chain and its key from PEM text (as an ACME CA sends the chain).
pub fn certified_key_from_pem(chain: &str, key: &str) -> Result<Arc<CertifiedKey>, CertError> {
    let bad = |m: String| CertError::File {
        path: "(pem)".into(),
        message: m,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("no certificate in the chain".into()));
    }
    let der = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| bad(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// A certificate chain and its key from PEM files.
pub fn load_pem(crt: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(crt)
        .map_err(|e| file_err(crt, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(crt, e))?;
    if chain.is_empty() {
        return Err(CertError::File {
            path: crt.display().to_string(),
            message: "no certificate in file".into(),
        });
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| file_err(key, e))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

fn file_err(path: &Path, e: impl fmt::Display) -> CertError {
    CertError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}
