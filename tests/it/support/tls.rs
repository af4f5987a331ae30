//! Hosted backends on loopback: a CA made at run time ([`TestCa`]), and an OTLP receiver over TLS
//! ([`Backend`]) that behaves as a vendor's intake does: it serves OTLP/HTTP under a path prefix and
//! gRPC on the same port (HTTP/2 negotiated by ALPN), optionally asks for a client certificate
//! (mutual TLS), demands an auth header shape (else 401 / UNAUTHENTICATED), can demand gzip, can
//! refuse every credential for a while, and answers with partial success when told to. It records
//! every request (path, headers, whether it came compressed) and decodes what it takes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::{spans_of, temp_dir, wait_for_spans, Span, TempDir};

/// A certificate authority made for one test, its files in a directory of its own.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    cert: rcgen::Certificate,
    dir: TempDir,
}

/// A certificate and its key, as PEM files.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = temp_dir("ca");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        TestCa { issuer: rcgen::Issuer::new(params, key), cert, dir }
    }

    /// The CA certificate (PEM): for `OTEL_EXPORTER_OTLP_CERTIFICATE` or `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A certificate for `names` (server or client use), valid now unless `expired`.
    pub fn issue(&self, tag: &str, names: &[&str], expired: bool) -> Issued {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or(tag));
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued {
            cert: self.dir.path().join(format!("{tag}.pem")),
            key: self.dir.path().join(format!("{tag}-key.pem")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}

/// One request as the backend received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The HTTP path (`/otlp/v1/traces`) or the gRPC method.
    pub path: String,
    pub grpc: bool,
    pub headers: HashMap<String, String>,
    /// Whether the body came gzip-compressed (`Content-Encoding: gzip`, or a compressed gRPC frame).
    pub gzip: bool,
    /// The request's protobuf bytes, decompressed.
    pub body: Vec<u8>,
    /// What the backend answered: the HTTP status; for gRPC 200, or 1000 + the gRPC status code.
    pub answered: u16,
}

/// How the backend behaves.
#[derive(Clone)]
pub struct BackendBuilder {
    name: &'static str,
    server: Option<(PathBuf, PathBuf)>,
    client_ca: Option<CertificateDer<'static>>,
    prefix: String,
    /// Header name (lowercase) and the value it must have.
    auth: Vec<(String, String)>,
    /// What a request with wrong credentials gets: 401 or 403.
    refusal: u16,
    require_gzip: bool,
    /// HTTP status of a successful export (Datadog answers 202).
    ok_status: u16,
    /// OTLP/HTTP only: a gRPC request is refused (most hosted intakes take no gRPC).
    http_only: bool,
    /// Headers one signal must carry besides `auth` (Honeycomb's metrics dataset).
    signal_auth: Vec<(&'static str, String, String)>,
    /// Cumulative metrics are refused (Datadog's intake).
    delta_only: bool,
    /// A resource attribute every span's resource must carry (Arize's project).
    required_resource: Option<String>,
}

/// What the backend shares with its server task.
#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    spans: Mutex<Vec<Span>>,
    /// Refuse this many more requests' credentials even when right (an expired key, then renewed).
    refuse_credentials: AtomicUsize,
    /// Spans to report as rejected in each answer (partial success).
    reject_spans: AtomicU64,
}

/// An OTLP backend behind TLS on 127.0.0.1.
pub struct Backend {
    pub addr: std::net::SocketAddr,
    pub name: &'static str,
    state: Arc<State>,
    _thread: std::thread::JoinHandle<()>,
}

impl Backend {
    /// A backend named after the vendor it stands for.
    pub fn builder(name: &'static str) -> BackendBuilder {
        BackendBuilder {
            name,
            server: None,
            client_ca: None,
            prefix: String::new(),
            auth: Vec::new(),
            refusal: 401,
            require_gzip: false,
            ok_status: 200,
            http_only: false,
            signal_auth: Vec::new(),
            delta_only: false,
            required_resource: None,
        }
    }

    /// `https://localhost:<port>`: the certificates name `localhost`.
    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn spans(&self) -> Vec<Span> {
        self.state.spans.lock().unwrap().clone()
    }

    /// The metrics requests it took, decoded.
    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.received()
            .iter()
            .filter(|r| {
                (200..300).contains(&r.answered)
                    && (r.path.ends_with("/v1/metrics") || r.path.contains("MetricsService"))
            })
            .filter_map(|r| ExportMetricsServiceRequest::decode(r.body.as_slice()).ok())
            .collect()
    }

    /// Refuse the next `n` requests' credentials, right or not.
    pub fn refuse_credentials(&self, n: usize) {
        self.state.refuse_credentials.store(n, Ordering::SeqCst);
    }

    /// Answer every trace export with `n` spans rejected (partial success).
    pub fn reject_spans(&self, n: u64) {
        self.state.reject_spans.store(n, Ordering::SeqCst);
    }

    /// Wait until `done(spans)` holds; panics with what was received after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        wait_for_spans(
            timeout,
            &format!("{}: {what}", self.name),
            || self.spans(),
            done,
            |spans| {
                let got: Vec<_> = self.received().iter().map(|r| (r.path.clone(), r.answered)).collect();
                format!("{} spans; requests: {got:?}", spans.len())
            },
        )
    }
}

impl BackendBuilder {
    /// Serve TLS with this certificate and key (PEM files).
    pub fn server_cert(mut self, issued: &Issued) -> Self {
        self.server = Some((issued.cert.clone(), issued.key.clone()));
        self
    }

    /// Ask for a client certificate signed by `ca` (mutual TLS); refuse the handshake without one.
    pub fn client_ca(mut self, ca: &TestCa) -> Self {
        self.client_ca = Some(ca.ca_der());
        self
    }

    /// OTLP/HTTP only under `prefix` + `/v1/<signal>`; everything else is 404.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Every request must carry `header: value`, else the refusal status.
    pub fn auth(mut self, header: &str, value: &str) -> Self {
        self.auth.push((header.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn refusal(mut self, status: u16) -> Self {
        self.refusal = status;
        self
    }

    pub fn require_gzip(mut self) -> Self {
        self.require_gzip = true;
        self
    }

    pub fn http_only(mut self) -> Self {
        self.http_only = true;
        self
    }

    /// Requests of `signal` (`traces`, `metrics`, `logs`) must also carry `header: value`.
    pub fn signal_auth(mut self, signal: &'static str, header: &str, value: &str) -> Self {
        self.signal_auth.push((signal, header.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn delta_only(mut self) -> Self {
        self.delta_only = true;
        self
    }

    pub fn require_resource(mut self, key: &str) -> Self {
        self.required_resource = Some(key.to_owned());
        self
    }

    pub fn ok_status(mut self, status: u16) -> Self {
        self.ok_status = status;
        self
    }

    pub fn start(self) -> Backend {
        let state = Arc::new(State::default());
        let tls = self.server.as_ref().map(|(cert, key)| {
            let chain: Vec<_> = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = match &self.client_ca {
                Some(ca) => {
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add(ca.clone()).unwrap();
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                        .build()
                        .unwrap();
                    builder.with_client_cert_verifier(verifier)
                }
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_single_cert(chain, key).unwrap();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let s = state.clone();
        let behaviour = Arc::new(self.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (s, behaviour, tls) = (s.clone(), behaviour.clone(), tls.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let (s, behaviour) = (s.clone(), behaviour.clone());
                            async move { Ok::<_, std::convert::Infallible>(answer(req, &s, &behaviour).await) }
                        });
                        let builder =
                            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                        match tls {
                            Some(acceptor) => {
                                // a failed handshake (no client certificate, an untrusted CA) ends here
                                let Ok(stream) = acceptor.accept(stream).await else { return };
                                let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                            }
                            None => {
                                let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                            }
                        }
                    });
                }
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("backend started");
        Backend { addr, name: self.name, state, _thread: thread }
    }
}

type Answer = hyper::Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>;

fn http_answer(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", content_type.parse().unwrap());
    r
}

/// A gRPC answer: the message framed, then the status in trailers (or trailers only, on error).
fn grpc_answer(code: u32, message: &str, body: Option<Vec<u8>>) -> Answer {
    let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = Vec::new();
    if let Some(body) = body {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
        frames.push(Ok(Frame::data(Bytes::from(framed))));
    }
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("grpc-status", code.to_string().parse().unwrap());
    if !message.is_empty() {
        trailers.insert("grpc-message", message.parse().unwrap());
    }
    frames.push(Ok(Frame::trailers(trailers)));
    let mut r = hyper::Response::new(StreamBody::new(tokio_stream::iter(frames)).boxed());
    r.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
    r
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).ok()?;
    Some(out)
}

async fn answer(req: hyper::Request<hyper::body::Incoming>, state: &State, b: &BackendBuilder) -> Answer {
    let path = req.uri().path().to_owned();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let grpc = headers.get("content-type").is_some_and(|c| c.starts_with("application/grpc"));
    let raw = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let (gzip, body) = if grpc {
        let compressed = raw.first() == Some(&1);
        let message = raw.get(5..).unwrap_or_default();
        (compressed, if compressed { gunzip(message).unwrap_or_default() } else { message.to_vec() })
    } else {
        let compressed = headers.get("content-encoding").is_some_and(|e| e == "gzip");
        (compressed, if compressed { gunzip(&raw).unwrap_or_default() } else { raw.to_vec() })
    };

    const METHODS: [(&str, &str); 3] = [
        ("traces", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        ("metrics", "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"),
        ("logs", "/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
    ];
    let signal = METHODS
        .into_iter()
        .find(|(s, method)| if grpc { path == *method } else { path == format!("{}/v1/{s}", b.prefix) })
        .map(|(s, _)| s);
    let credentials_ok = b.auth.iter().all(|(k, v)| headers.get(k) == Some(v))
        && b.signal_auth.iter().filter(|(sig, _, _)| Some(*sig) == signal).all(|(_, k, v)| headers.get(k) == Some(v))
        && state.refuse_credentials.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err();
    if grpc && b.http_only {
        let r = http_answer(415, "text/plain", b"gRPC is not supported: use http/protobuf\n".to_vec());
        state.received.lock().unwrap().push(Received { path, grpc, headers, gzip, body, answered: 415 });
        return r;
    }
    let (status, reply) = match (signal, credentials_ok, !b.require_gzip || gzip) {
        (None, _, _) if grpc => (12, grpc_answer(12, "unknown service", None)),
        (None, _, _) => (404, http_answer(404, "text/plain", b"404 page not found\n".to_vec())),
        (_, false, _) if grpc => (16, grpc_answer(16, "invalid API key", None)),
        (_, false, _) => {
            let said =
                serde_json::json!({"message": "Invalid credentials. Confirm that you've configured the correct host."});
            (b.refusal, http_answer(b.refusal, "application/json", said.to_string().into_bytes()))
        }
        (_, _, false) if grpc => (3, grpc_answer(3, "this intake takes gzip only", None)),
        (_, _, false) => (415, http_answer(415, "text/plain", b"gzip only\n".to_vec())),
        (Some(signal), true, true) => {
            let rejected = state.reject_spans.load(Ordering::SeqCst);
            let response = match signal {
                "traces" => match ExportTraceServiceRequest::decode(body.as_slice()) {
                    Ok(decoded) if !has_resource(&decoded, b.required_resource.as_deref()) => None,
                    Ok(decoded) => {
                        state.spans.lock().unwrap().extend(spans_of(&decoded));
                        let partial = (rejected > 0).then(|| ExportTracePartialSuccess {
                            rejected_spans: rejected as i64,
                            error_message: "span too old".into(),
                        });
                        Some(ExportTraceServiceResponse { partial_success: partial }.encode_to_vec())
                    }
                    Err(_) => None,
                },
                "metrics" => ExportMetricsServiceRequest::decode(body.as_slice())
                    .ok()
                    .filter(|m| !b.delta_only || !cumulative(m))
                    .map(|_| ExportMetricsServiceResponse { partial_success: None }.encode_to_vec()),
                _ => Some(ExportLogsServiceResponse { partial_success: None }.encode_to_vec()),
            };
            match (response, grpc) {
                (Some(r), true) => (200, grpc_answer(0, "", Some(r))),
                (Some(r), false) => (b.ok_status, http_answer(b.ok_status, "application/x-protobuf", r)),
                (None, true) => (3, grpc_answer(3, "not an OTLP request", None)),
                (None, false) => (400, http_answer(400, "text/plain", b"bad request\n".to_vec())),
            }
        }
    };
    // a gRPC error (HTTP 200 with a grpc-status) is recorded as 1000 + its code
    let answered = if grpc && status != 200 { 1000 + status } else { status };
    state.received.lock().unwrap().push(Received { path, grpc, headers, gzip, body, answered });
    reply
}

/// Whether a metrics request holds a cumulative sum or histogram.
fn cumulative(m: &ExportMetricsServiceRequest) -> bool {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    m.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics).any(|m| match &m.data {
        Some(Data::Sum(s)) => s.aggregation_temporality == 2,
        Some(Data::Histogram(h)) => h.aggregation_temporality == 2,
        _ => false,
    })
}

/// Whether every resource of the request carries `key` (or nothing is required).
fn has_resource(req: &ExportTraceServiceRequest, key: Option<&str>) -> bool {
    let Some(key) = key else { return true };
    req.resource_spans
        .iter()
        .all(|rs| rs.resource.as_ref().is_some_and(|r| r.attributes.iter().any(|kv| kv.key == key)))
}
