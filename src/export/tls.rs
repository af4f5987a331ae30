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
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| TlsSetupError::Platform(e.to_string()))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
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

/// The last TLS failure seen on a connection of one client: with TLS 1.3 a server refuses a client
/// certificate *after* the handshake, by an alert the HTTP/2 connection task reads, while the
/// gRPC call in flight only learns that it was cancelled. The connections record it here, and the
/// call's failure is explained by it.
#[derive(Clone, Default)]
pub(crate) struct LastFailure(Arc<std::sync::Mutex<Option<rustls::Error>>>);

impl LastFailure {
    /// The failure recorded since the last call, taken.
    pub(crate) fn take(&self) -> Option<rustls::Error> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn record(&self, e: &std::io::Error) {
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(tls.clone());
        }
    }
}

/// A connector whose connections record their TLS failures in a [`LastFailure`].
#[derive(Clone)]
pub(crate) struct Watched<C> {
    pub(crate) inner: C,
    pub(crate) failures: LastFailure,
}

impl<C> tower_service::Service<http::Uri> for Watched<C>
where
    C: tower_service::Service<http::Uri>,
    C::Future: Send + 'static,
    C::Response: Send,
{
    type Response = WatchedIo<C::Response>;
    type Error = C::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let (connecting, failures) = (self.inner.call(uri), self.failures.clone());
        Box::pin(async move { Ok(WatchedIo { io: connecting.await?, failures }) })
    }
}

/// A connection that records the TLS failure it ends with.
pub(crate) struct WatchedIo<T> {
    io: T,
    failures: LastFailure,
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for WatchedIo<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let read = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if let std::task::Poll::Ready(Err(e)) = &read {
            self.failures.record(e);
        }
        read
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for WatchedIo<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
