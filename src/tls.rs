//! Certificates for SIP over TLS and HTTPS: read and checked once at start, so
//! that a wrong path, an expired format or a key that does not match its
//! certificate stops the server with one clear line instead of failing every
//! handshake later.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its key as read from PEM files.
#[derive(Clone)]
pub struct Certified {
    /// Ready for a rustls acceptor.
    pub config: Arc<ServerConfig>,
}

impl std::fmt::Debug for Certified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certified").finish_non_exhaustive()
    }
}

/// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM private key: PKCS#8,
/// PKCS#1 or SEC1) and checks that they belong together.
pub fn load(cert: &Path, key: &Path) -> Result<Certified, String> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
    };
    let cert_pem = read(cert, "certificate")?;
    let key_pem = read(key, "private key")?;
    let config = server_config(&cert_pem, &key_pem)
        .map_err(|e| format!("certificate {} with key {}: {e}", cert.display(), key.display()))?;
    Ok(Certified { config })
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no client
/// certificates) from PEM text.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the file".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("not a PEM private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("unusable certificate or key: {e}"))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_files_are_refused_with_a_reason() {
        let err = |cert: &[u8], key: &[u8]| server_config(cert, key).err().unwrap_or_default();
        assert!(err(b"", b"").contains("no certificate"), "{}", err(b"", b""));
        let not_pem = err(b"hello", b"world");
        assert!(not_pem.contains("no certificate"), "{not_pem}");
        let bad_body = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(err(bad_body, b"").contains("PEM"), "{}", err(bad_body, b""));
    }

    #[test]
    fn missing_files_name_the_path() {
        let e = load(Path::new("/nonexistent/cert.pem"), Path::new("/nonexistent/key.pem"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    }
}
