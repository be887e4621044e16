//! Certificates to a rustls `ServerConfig`: TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`,
//! and a self-signed development certificate when the configured one is missing; and the
//! `ClientConfig`s the gateway talks to identity providers and `https://` upstreams with.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::{TlsConfig, UpstreamTlsConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read certificate chain: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("{path}: cannot read private key: {reason}")]
    PrivateKey { path: PathBuf, reason: String },
    #[error("cannot generate a development certificate in {path}: {reason}")]
    SelfSigned { path: PathBuf, reason: String },
    #[error("{path}: cannot read CA certificates: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("certificate and key do not form a usable TLS config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("server_name is not a DNS name or an IP address: {0}")]
    ServerName(String),
}

/// The listener's TLS config and the certificate it presents.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// The end-entity certificate, for the names it is valid for.
    pub leaf: CertificateDer<'static>,
}

impl ServerTls {
    /// Whether the certificate is valid for `host` (a DNS name, wildcards as in RFC 6125, or
    /// an IP address), as a client would judge it.
    pub fn names(&self, host: &str) -> bool {
        let Ok(certificate) = webpki::EndEntityCert::try_from(&self.leaf) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host)
            .is_ok_and(|name| certificate.verify_is_valid_for_subject_name(&name).is_ok())
    }
}

/// Builds the server config, generating a dev certificate first when allowed and missing.
pub fn server_config(tls: &TlsConfig) -> Result<ServerTls, TlsError> {
    if tls.self_signed_if_missing && !tls.cert.exists() && !tls.key.exists() {
        write_self_signed(&tls.cert, &tls.key)?;
    }
    let chain = load_chain(&tls.cert)?;
    let leaf = chain[0].clone();
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| TlsError::PrivateKey {
        path: tls.key.clone(),
        reason: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        leaf,
    })
}

/// The system's trusted roots, read once (reading them parses every file of the store).
static SYSTEM_ROOTS: std::sync::LazyLock<Vec<CertificateDer<'static>>> = std::sync::LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    if !found.errors.is_empty() {
        tracing::warn!(
            errors = found.errors.len(),
            "some system CA certificates could not be read"
        );
    }
    found.certs
});

/// A client config that verifies servers against the system's roots plus `ca_file`'s
/// certificates (a private CA). There is no way to skip verification.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(SYSTEM_ROOTS.iter().cloned());
    if ignored > 0 {
        tracing::debug!(ignored, "system CA certificates rustls cannot use");
    }
    if let Some(path) = ca_file {
        for cert in load_ca_file(path)? {
            roots.add(cert).map_err(|e| ca_error(path, e.to_string()))?;
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client config for a route's `https://` upstreams: their certificates verified against
/// `ca_file` alone when given (a private CA should not share trust with every public one), else
/// the system's roots; the gateway's own certificate for mutual TLS. HTTP/1.1 only, as every
/// upstream request is; there is no way to skip verification.
pub fn upstream_client_config(tls: &UpstreamTlsConfig) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            for cert in load_ca_file(path)? {
                roots.add(cert).map_err(|e| ca_error(path, e.to_string()))?;
            }
        }
        None => {
            roots.add_parsable_certificates(SYSTEM_ROOTS.iter().cloned());
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let config = match &tls.client_cert {
        Some(client) => {
            let key = PrivateKeyDer::from_pem_file(&client.key).map_err(|e| TlsError::PrivateKey {
                path: client.key.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(load_chain(&client.cert)?, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ca_error(path, e.to_string()))?;
    match certs.is_empty() {
        true => Err(ca_error(path, "it holds no certificate".into())),
        false => Ok(certs),
    }
}

fn ca_error(path: &Path, reason: String) -> TlsError {
    TlsError::CaFile {
        path: path.to_path_buf(),
        reason,
    }
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    match chain.is_empty() {
        true => Err(error("no PEM certificate in the file".into())),
        false => Ok(chain),
    }
}

/// Writes a self-signed certificate for localhost; the key file is created with mode 0600.
fn write_self_signed(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let error = |reason: String| TlsError::SelfSigned {
        path: cert_path.to_path_buf(),
        reason,
    };
    let names = [
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| error(e.to_string()))?;
    write_new_file(key_path, generated.signing_key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| error(e.to_string()))?;
    write_new_file(cert_path, generated.cert.pem().as_bytes(), 0o644).map_err(|e| error(e.to_string()))?;
    tracing::warn!(
        cert = %cert_path.display(),
        "GENERATED A SELF-SIGNED DEVELOPMENT CERTIFICATE for localhost: browsers will not trust it; \
         configure a real certificate and self_signed_if_missing = false in production"
    );
    Ok(())
}

/// Writes to a temporary file beside `path`, then renames it: never a half-written file.
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let result = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match result.and_then(|()| fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&temporary);
            Err(e)
        }
    }
}
