//! TLS for every outgoing OTLP connection: one rustls client configuration per destination, with
//! rustls's default crypto provider, aws-lc-rs (its key exchange includes the post-quantum hybrid
//! X25519MLKEM768, which rustls does not offer with ring; it builds from C with `cc` alone). The server is checked against the platform's trust store
//! (`rustls-platform-verifier`: the keychain on macOS, the system bundle on Linux with
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), or against the CA file of
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` alone, as the Go and Java SDKs read that variable; mutual TLS
//! with `_CLIENT_CERTIFICATE` / `_CLIENT_KEY`. Files are read once, when the sidecar starts: a
//! missing or unreadable one stops it with the variable's name.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;

use crate::export::destination::TlsFiles;

/// A certificate setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    #[error("{var}: cannot read {path}: {error}")]
    Unreadable { var: String, path: String, error: std::io::Error },
    #[error("{var}: {path} holds no PEM certificate")]
    NoCertificate { var: String, path: String },
    #[error("{var}: {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { var: String, path: String },
    #[error("{var}: {path}: {problem}")]
    Invalid { var: String, path: String, problem: String },
    #[error("the platform's certificate store: {0} (set SSL_CERT_FILE, or OTEL_EXPORTER_OTLP_CERTIFICATE)")]
    Platform(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(var: &str, path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|error| TlsSetupError::Unreadable {
        var: var.to_owned(),
        path: path.display().to_string(),
        error,
    })
}

fn certificates(var: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(var, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate { var: var.to_owned(), path: path.display().to_string() });
    }
    Ok(certs)
}

/// The platform's verifier, made once per process: it reads the system's whole CA bundle, which
/// every destination without a CA file of its own shares.
fn platform_verifier() -> Result<Arc<rustls_platform_verifier::Verifier>, TlsSetupError> {
    static VERIFIER: std::sync::OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, String>> =
        std::sync::OnceLock::new();
    VERIFIER
        .get_or_init(|| rustls_platform_verifier::Verifier::new(provider()).map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(TlsSetupError::Platform)
}

/// The client configuration for a destination's `files`, offering `alpn` (`h2` for gRPC).
pub(crate) fn client_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<ClientConfig, TlsSetupError> {
    let provider = provider();
    let invalid = |var: &str, path: &Path, e: &dyn std::fmt::Display| TlsSetupError::Invalid {
        var: var.to_owned(),
        path: path.display().to_string(),
        problem: e.to_string(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Platform(e.to_string()))?;
    let builder = match &files.ca {
        Some((var, path)) => {
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certificates(var, path)?);
            if added == 0 {
                return Err(invalid(var, path, &"no usable CA certificate in it"));
            }
            let verifier =
                rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| invalid(var, path, &e))?;
            builder.with_webpki_verifier(verifier)
        }
        None => builder.dangerous().with_custom_certificate_verifier(platform_verifier()?),
    };
    let mut config = match &files.client {
        Some(((cert_var, cert_path), (key_var, key_path))) => {
            let chain = certificates(cert_var, cert_path)?;
            let key = PrivateKeyDer::from_pem_slice(&read(key_var, key_path)?)
                .map_err(|_| TlsSetupError::NoKey { var: key_var.clone(), path: key_path.display().to_string() })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| invalid(key_var, key_path, &e))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// What went wrong in a TLS handshake, as far as the fix differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsProblem {
    /// The server's certificate chains to no CA trusted here.
    Untrusted,
    /// The certificate is for another name.
    WrongName,
    /// The certificate has expired or is not valid yet.
    Expired,
    /// The other end does not speak TLS (an https URL to a plain port).
    NotTls,
    /// The server wants a client certificate, or refused the one sent.
    ClientCertificate,
    Other,
}

/// A rustls error, classified and described without secrets (rustls puts none in its errors).
pub(crate) fn problem(e: &rustls::Error) -> (TlsProblem, String) {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    let kind = match e {
        Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature | Cert::UnhandledCriticalExtension) => {
            TlsProblem::Untrusted
        }
        Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => TlsProblem::WrongName,
        Error::InvalidCertificate(
            Cert::Expired | Cert::ExpiredContext { .. } | Cert::NotValidYet | Cert::NotValidYetContext { .. },
        ) => TlsProblem::Expired,
        Error::InvalidMessage(_) => TlsProblem::NotTls,
        Error::AlertReceived(
            Alert::CertificateRequired | Alert::BadCertificate | Alert::UnknownCA | Alert::CertificateUnknown,
        ) => TlsProblem::ClientCertificate,
        _ => TlsProblem::Other,
    };
    let detail = match kind {
        TlsProblem::Untrusted => "the server's certificate is not signed by a CA trusted here".to_owned(),
        TlsProblem::WrongName => "the server's certificate is for another name".to_owned(),
        TlsProblem::Expired => "the server's certificate has expired or is not valid yet".to_owned(),
        TlsProblem::NotTls => "the server does not speak TLS (a plain-http port?)".to_owned(),
        TlsProblem::ClientCertificate => format!("the server refused the client certificate ({e})"),
        TlsProblem::Other => e.to_string(),
    };
    (kind, detail)
}

/// Why a TLS connection to `url` fails, if it does: a handshake with `config`, then a short wait
/// for the server's first word, which is where a TLS 1.3 server says that it refuses the client's
/// certificate (or that it wanted one). `None` when the connection stands (the failure was
/// elsewhere) or cannot be made at all (the call's own error says so).
pub(crate) async fn diagnose(
    config: Arc<ClientConfig>,
    url: &str,
    timeout: std::time::Duration,
) -> Option<rustls::Error> {
    use tokio::io::AsyncReadExt;
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let name = rustls::pki_types::ServerName::try_from(host.clone()).ok()?;
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
        let rustls_error =
            |e: std::io::Error| e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).cloned();
        let mut tls = match tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await {
            Ok(tls) => tls,
            Err(e) => return rustls_error(e),
        };
        let mut first = [0u8; 1];
        match tokio::time::timeout(std::time::Duration::from_millis(500), tls.read(&mut first)).await {
            Ok(Err(e)) => rustls_error(e),
            _ => None,
        }
    };
    tokio::time::timeout(timeout, connect).await.ok().flatten()
}
