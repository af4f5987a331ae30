//! One OTLP sender for everything that leaves the machine (spans, the metrics push, Claude Code's
//! telemetry forwarded): OTLP/HTTP over reqwest, gRPC over tonic, both on the destination's rustls
//! configuration ([`tls`](crate::export::tls)), with its headers, compression and timeout, and
//! `User-Agent: hooktel/<version>`. What is worth trying again (no connection, unavailable,
//! throttled, timed out) is tried a few times. Every outcome is typed: [`Accepted`], with what the
//! backend refused of it (OTLP partial success), or a [`SendError`] with its bounded metric label,
//! whether the data is worth keeping, and the fix to print. No header value, URL credential or
//! query string reaches an error's text.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;

use crate::export::destination::{Compression, Destination, Protocol};
use crate::export::tls::{self, TlsProblem};
use crate::model::otlp::{Encoding, Signal};
use crate::model::redact;

/// `User-Agent` of every request (gRPC appends tonic's own).
pub(crate) const USER_AGENT: &str = concat!("hooktel/", env!("CARGO_PKG_VERSION"));

/// Tries per send: the first and two more for what is worth trying again; longer outages are the
/// caller's (the export spool, the next push).
const TRIES: u32 = 3;

/// Most of an answer's body read: an OTLP answer is a few bytes, an error page a few KiB.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Longest `Retry-After` honoured between tries; beyond it the caller's backoff takes over.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// An encoded `Export*ServiceRequest` of the destination's signal.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    Protobuf(Bytes),
    /// OTLP/JSON (as Claude Code may send it, forwarded); re-encoded as protobuf for gRPC.
    Json(Bytes),
}

/// A request the backend took; `rejected` items of it it refused (partial success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) rejected: u64,
    /// The backend's reason for the rejected part, cleaned for a log line.
    pub(crate) message: String,
}

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    #[error("TLS: {detail}")]
    Tls { problem: TlsProblem, detail: String },
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer in time: {0}")]
    Timeout(String),
    #[error("credentials refused ({0})")]
    Unauthorized(String),
    #[error("nothing takes OTLP at this address ({0})")]
    NotFound(String),
    #[error("asked to slow down ({0})")]
    Throttled(String, Option<Duration>),
    #[error("unavailable ({0})")]
    Unavailable(String),
    #[error("server error ({0})")]
    Server(String),
    #[error("the data was refused as invalid ({0})")]
    Rejected(String),
    #[error("{0}")]
    Other(String),
}

impl SendError {
    /// The bounded `reason` label of `hooktel_export_failures_total`.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            SendError::Tls { .. } => "tls",
            SendError::Connect(_) | SendError::Unavailable(_) => "unavailable",
            SendError::Timeout(_) => "timeout",
            SendError::Unauthorized(_) => "unauthorized",
            SendError::NotFound(_) => "not_found",
            SendError::Throttled(..) => "throttled",
            SendError::Server(_) => "server_error",
            SendError::Rejected(_) => "rejected",
            SendError::Other(_) => "other",
        }
    }

    /// Worth trying again within a send.
    fn retryable(&self) -> bool {
        matches!(
            self,
            SendError::Connect(_) | SendError::Timeout(_) | SendError::Throttled(..) | SendError::Unavailable(_)
        )
    }

    /// Whether data that failed this way should be kept for later: everything but a refusal of the
    /// data itself. Wrong credentials, a wrong path, a certificate problem are fixed by the user,
    /// and the data must still be there then.
    pub(crate) fn keeps_data(&self) -> bool {
        !matches!(self, SendError::Rejected(_))
    }

    /// Nothing changes until the user does something: the credentials, the path or TLS are wrong.
    pub(crate) fn needs_the_user(&self) -> bool {
        matches!(self, SendError::Tls { .. } | SendError::Unauthorized(_) | SendError::NotFound(_))
    }

    /// What to do about it, naming the variables to check.
    pub(crate) fn fix(&self, dest: &Destination) -> String {
        let s = dest.signal.label().to_ascii_uppercase();
        match self {
            SendError::Tls { problem: TlsProblem::Untrusted | TlsProblem::Expired, .. } => format!(
                "trust the server's CA: OTEL_EXPORTER_OTLP_{s}_CERTIFICATE or OTEL_EXPORTER_OTLP_CERTIFICATE (a PEM file), \
                 or add it to the system's store (SSL_CERT_FILE)"
            ),
            SendError::Tls { problem: TlsProblem::WrongName, .. } => {
                "use the host name the certificate was issued for in the endpoint".to_owned()
            }
            SendError::Tls { problem: TlsProblem::NotTls, .. } => {
                "the port speaks plain HTTP: use http:// in the endpoint, or the backend's TLS port".to_owned()
            }
            SendError::Tls { problem: TlsProblem::ClientCertificate, .. } => format!(
                "the server wants mutual TLS: set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY \
                 (or the _{s}_ ones) to a certificate its CA signed"
            ),
            SendError::Tls { .. } => "check the endpoint's TLS setup".to_owned(),
            SendError::Unauthorized(_) => format!(
                "check the credentials in {} (name=value, comma-separated, values percent-encoded: a space is %20); \
                 data is kept and sent once they are accepted",
                dest.headers_var
            ),
            SendError::NotFound(_) => format!(
                "check the endpoint's path: OTEL_EXPORTER_OTLP_ENDPOINT is a base URL (/{} is appended), \
                 OTEL_EXPORTER_OTLP_{s}_ENDPOINT is used as is; and the protocol (OTEL_EXPORTER_OTLP_PROTOCOL)",
                dest.signal.http_path()
            ),
            SendError::Connect(_) | SendError::Unavailable(_) => {
                "is the backend up and reachable from here? check the endpoint's host and port".to_owned()
            }
            SendError::Timeout(_) => format!("check the network, or raise OTEL_EXPORTER_OTLP_{s}_TIMEOUT (ms)"),
            SendError::Throttled(..) => "the backend is rate-limiting: data is kept and retried".to_owned(),
            SendError::Server(_) => "the backend failed: see its status page".to_owned(),
            SendError::Rejected(_) => "the backend refused the data itself: please report it".to_owned(),
            SendError::Other(_) => "check the endpoint and protocol".to_owned(),
        }
    }

    fn from_http(code: u16, retry_after: Option<Duration>, said: &str) -> SendError {
        let status = match said {
            "" => format!("HTTP {code}"),
            said => format!("HTTP {code}: {said}"),
        };
        match code {
            401 | 403 => SendError::Unauthorized(status),
            404 | 405 | 300..=399 => SendError::NotFound(status),
            429 => SendError::Throttled(status, retry_after),
            408 | 504 => SendError::Timeout(status),
            502 | 503 => SendError::Unavailable(status),
            500..=599 => SendError::Server(status),
            _ => SendError::Rejected(status),
        }
    }

    fn from_grpc(status: &tonic::Status, said: &str) -> SendError {
        if let Some(transport) = transport_failure(status) {
            return transport;
        }
        use tonic::Code;
        let text = match said {
            "" => format!("gRPC {:?}", status.code()),
            said => format!("gRPC {:?}: {said}", status.code()),
        };
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => SendError::Unauthorized(text),
            Code::Unimplemented => SendError::NotFound(text),
            Code::ResourceExhausted => SendError::Throttled(text, None),
            Code::DeadlineExceeded => SendError::Timeout(text),
            Code::Unavailable | Code::Cancelled | Code::Aborted | Code::OutOfRange | Code::DataLoss => {
                SendError::Unavailable(text)
            }
            Code::Internal | Code::Unknown => SendError::Server(text),
            _ => SendError::Rejected(text),
        }
    }
}

/// A connection-level failure found in an error's chain: TLS (a rustls error, bare or inside an
/// I/O error), no connection, or a timeout. `None` when the chain holds none of them.
fn transport_failure(e: &(dyn std::error::Error + 'static)) -> Option<SendError> {
    let mut io = None;
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(rustls_error) = err.downcast_ref::<rustls::Error>() {
            let (problem, detail) = tls::problem(rustls_error);
            return Some(SendError::Tls { problem, detail });
        }
        if let Some(io_error) = err.downcast_ref::<std::io::Error>() {
            io.get_or_insert(io_error);
            // an I/O error's `source()` skips the error it wraps: descend into that one itself
            if let Some(inner) = io_error.get_ref() {
                cur = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        cur = err.source();
    }
    let io = io?;
    Some(match io.kind() {
        std::io::ErrorKind::TimedOut => SendError::Timeout(io.to_string()),
        _ => SendError::Connect(io.to_string()),
    })
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("{var}: the header {name:?} cannot be sent over gRPC (its value must be ASCII)")]
    GrpcHeader { var: String, name: String },
    #[error("the HTTP client for {url}: {error}")]
    Http { url: String, error: String },
}

/// A sender for one destination. Cheap to clone (one allocation holds it and its connection pool).
#[derive(Clone)]
pub(crate) struct OtlpClient(std::sync::Arc<Inner>);

struct Inner {
    dest: Destination,
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    Http(reqwest::Client),
    /// The channel, and (over https) its TLS configuration, to explain a call cut off after the
    /// handshake.
    Grpc(tonic::client::Grpc<tonic::transport::Channel>, Option<std::sync::Arc<rustls::ClientConfig>>),
}

impl OtlpClient {
    /// The client for `dest`: its TLS files read and checked now, its connections made lazily.
    pub(crate) fn new(dest: Destination) -> Result<OtlpClient, SetupError> {
        let https = dest.url.starts_with("https://");
        let transport = match dest.protocol {
            Protocol::HttpProtobuf => {
                let mut builder = reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .timeout(dest.timeout)
                    .connect_timeout(dest.timeout)
                    // a redirect would change POST to GET and may carry the credentials elsewhere
                    .redirect(reqwest::redirect::Policy::none());
                if https {
                    builder = builder.tls_backend_preconfigured(tls::client_config(&dest.tls, &[b"http/1.1"])?);
                }
                let client =
                    builder.build().map_err(|e| SetupError::Http { url: dest.shown(), error: e.to_string() })?;
                Transport::Http(client)
            }
            Protocol::Grpc => {
                for (name, value) in &dest.headers {
                    if tonic::metadata::MetadataValue::<tonic::metadata::Ascii>::try_from(value.as_str()).is_err() {
                        return Err(SetupError::GrpcHeader { var: dest.headers_var.clone(), name: name.clone() });
                    }
                }
                let endpoint = tonic::transport::Endpoint::from_shared(dest.url.clone())
                    .and_then(|e| e.user_agent(USER_AGENT))
                    .map(|e| e.connect_timeout(dest.timeout))
                    .map_err(|e| SetupError::Http { url: dest.shown(), error: e.to_string() })?;
                let tls_config = if https { Some(tls::client_config(&dest.tls, &[])?) } else { None };
                let channel = match &tls_config {
                    Some(config) => {
                        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
                        http.enforce_http(false);
                        http.set_nodelay(true);
                        // hyper-rustls offers h2 by ALPN itself
                        let https = hyper_rustls::HttpsConnectorBuilder::new()
                            .with_tls_config(config.clone())
                            .https_only()
                            .enable_http2()
                            .wrap_connector(http);
                        endpoint.connect_with_connector_lazy(https)
                    }
                    // plain gRPC (h2c): tonic's own connector
                    None => endpoint.connect_lazy(),
                };
                let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_ANSWER_BYTES);
                if dest.compression == Compression::Gzip {
                    grpc = grpc
                        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                Transport::Grpc(grpc, tls_config.map(std::sync::Arc::new))
            }
        };
        Ok(OtlpClient(std::sync::Arc::new(Inner { dest, transport })))
    }

    pub(crate) fn destination(&self) -> &Destination {
        &self.0.dest
    }

    /// Send `body`, trying again (a few times, with backoff) what is worth it.
    pub(crate) async fn send(&self, body: Body) -> Result<Accepted, SendError> {
        let mut attempt = 0;
        loop {
            let outcome = self.send_once(&body).await;
            attempt += 1;
            match outcome {
                Err(e) if e.retryable() && attempt < TRIES => {
                    let backoff = Duration::from_millis(250 << attempt);
                    let wait = match &e {
                        SendError::Throttled(_, Some(after)) => (*after).min(MAX_RETRY_AFTER),
                        _ => backoff,
                    };
                    tracing::debug!(endpoint = %self.0.dest.shown(), error = %e, ?wait, "OTLP send failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// One try.
    pub(crate) async fn send_once(&self, body: &Body) -> Result<Accepted, SendError> {
        match &self.0.transport {
            Transport::Http(client) => self.http(client, body).await,
            Transport::Grpc(grpc, tls_config) => {
                let sent = self.grpc(grpc.clone(), body).await;
                // With TLS 1.3 a server refuses a client certificate *after* the handshake, by an
                // alert only the HTTP/2 connection task reads: the call learns no more than that it
                // was cut off. A fresh handshake that waits for the server's verdict tells why.
                match (sent, tls_config) {
                    (Err(e @ (SendError::Unavailable(_) | SendError::Connect(_))), Some(config)) => {
                        match tls::diagnose(config.clone(), &self.0.dest.url, self.0.dest.timeout).await {
                            Some(tls_error) => {
                                let (problem, detail) = tls::problem(&tls_error);
                                Err(SendError::Tls { problem, detail })
                            }
                            None => Err(e),
                        }
                    }
                    (sent, _) => sent,
                }
            }
        }
    }

    /// An empty export: what `hooktel doctor` sends to check the whole path (TLS, credentials,
    /// path), once, without retries.
    pub(crate) async fn probe(&self) -> Result<Accepted, SendError> {
        self.send_once(&Body::Protobuf(Bytes::new())).await
    }

    async fn http(&self, client: &reqwest::Client, body: &Body) -> Result<Accepted, SendError> {
        let (encoding, bytes) = match body {
            Body::Protobuf(b) => (Encoding::Protobuf, b.clone()),
            Body::Json(b) => (Encoding::Json, b.clone()),
        };
        let mut req = client.post(&self.0.dest.url).header(http::header::CONTENT_TYPE, encoding.content_type());
        let bytes = match self.0.dest.compression {
            Compression::Gzip => {
                req = req.header(http::header::CONTENT_ENCODING, "gzip");
                Bytes::from(gzip(&bytes))
            }
            Compression::None => bytes,
        };
        for (name, value) in &self.0.dest.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let mut resp = req.body(bytes).send().await.map_err(|e| self.reqwest_failure(&e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer_encoding = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Encoding::of_content_type);
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) => break,
                // the status is what counts; a body cut short is not a failure
                Err(_) => break,
            }
        }
        answer.truncate(MAX_ANSWER_BYTES);
        if status.is_success() {
            return Ok(partial_success(self.0.dest.signal, answer_encoding, &answer, &self.0.dest));
        }
        let said = self.clean(&error_message(answer_encoding, &answer));
        Err(SendError::from_http(status.as_u16(), retry_after, &said))
    }

    async fn grpc(
        &self,
        mut grpc: tonic::client::Grpc<tonic::transport::Channel>,
        body: &Body,
    ) -> Result<Accepted, SendError> {
        let bytes = match body {
            Body::Protobuf(b) => b.to_vec(),
            Body::Json(b) => json_to_protobuf(self.0.dest.signal, b)
                .map_err(|e| SendError::Rejected(format!("an OTLP/JSON body that cannot be re-encoded: {e}")))?,
        };
        let mut req = tonic::Request::new(bytes);
        req.set_timeout(self.0.dest.timeout);
        for (name, value) in &self.0.dest.headers {
            let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_str()),
            ) else {
                continue; // checked when the client was made
            };
            req.metadata_mut().insert(key, value);
        }
        let path = http::uri::PathAndQuery::from_static(self.0.dest.signal.grpc_path());
        let deadline = tokio::time::Instant::now() + self.0.dest.timeout;
        let timed_out = || SendError::Timeout(format!("{:?}", self.0.dest.timeout));
        match tokio::time::timeout_at(deadline, grpc.ready()).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(transport_failure(&e).unwrap_or_else(|| SendError::Connect(e.to_string()))),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, grpc.unary(req, path, RawCodec)).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(resp)) => {
                Ok(partial_success(self.0.dest.signal, Some(Encoding::Protobuf), &resp.into_inner(), &self.0.dest))
            }
            Ok(Err(status)) => Err(SendError::from_grpc(&status, &self.clean(status.message()))),
        }
    }

    fn reqwest_failure(&self, e: &reqwest::Error) -> SendError {
        if e.is_timeout() {
            return SendError::Timeout(format!("{:?}", self.0.dest.timeout));
        }
        match transport_failure(e) {
            Some(failure) => failure,
            // reqwest's own text names the URL: say only what kind of failure it was
            None if e.is_connect() => SendError::Connect("connection failed".into()),
            None if e.is_builder() => SendError::Other(
                "the endpoint is not a URL that can be sent to (in a user name or password, write / ? # @ as %2F %3F %23 %40)"
                    .into(),
            ),
            None if e.is_request() => SendError::Other("the request could not be sent (the other end hung up?)".into()),
            None => SendError::Other("the HTTP exchange failed".into()),
        }
    }

    /// A backend's words, safe for a log line: no header value (a backend may echo the key it
    /// refused), no credential or key of the URL, no control character, at most 200 characters.
    fn clean(&self, said: &str) -> String {
        clean(said, &self.0.dest)
    }
}

fn clean(said: &str, dest: &Destination) -> String {
    let said: String = said.chars().filter(|c| !c.is_control()).collect();
    redact::text(&said, &dest.secrets()).chars().take(200).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4 + 64), flate2::Compression::fast());
    // writing to a Vec cannot fail
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// An OTLP/JSON request of `signal` as protobuf.
fn json_to_protobuf(signal: Signal, json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    Ok(match signal {
        Signal::Traces => serde_json::from_slice::<ExportTraceServiceRequest>(json)?.encode_to_vec(),
        Signal::Metrics => serde_json::from_slice::<ExportMetricsServiceRequest>(json)?.encode_to_vec(),
        Signal::Logs => serde_json::from_slice::<ExportLogsServiceRequest>(json)?.encode_to_vec(),
    })
}

/// What a successful answer says was refused of the request (partial success). An answer that
/// cannot be read refused nothing: the request was taken.
fn partial_success(signal: Signal, encoding: Option<Encoding>, answer: &[u8], dest: &Destination) -> Accepted {
    if answer.is_empty() {
        return Accepted::default();
    }
    let (rejected, message) = match encoding {
        Some(Encoding::Json) => {
            let v: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
            let p = &v["partialSuccess"];
            let key = match signal {
                Signal::Traces => "rejectedSpans",
                Signal::Metrics => "rejectedDataPoints",
                Signal::Logs => "rejectedLogRecords",
            };
            // int64 is a string in OTLP/JSON, a number from lenient encoders
            let n = p[key].as_u64().or_else(|| p[key].as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
            (n, p["errorMessage"].as_str().unwrap_or_default().to_owned())
        }
        _ => {
            let p = match signal {
                Signal::Traces => ExportTraceServiceResponse::decode(answer)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| (p.rejected_spans, p.error_message)),
                Signal::Metrics => ExportMetricsServiceResponse::decode(answer)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| (p.rejected_data_points, p.error_message)),
                Signal::Logs => ExportLogsServiceResponse::decode(answer)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| (p.rejected_log_records, p.error_message)),
            };
            p.map(|(n, m)| (n.max(0) as u64, m)).unwrap_or_default()
        }
    };
    Accepted { rejected, message: clean(&message, dest) }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The message of an error answer: a `google.rpc.Status` (protobuf or JSON), else its text.
fn error_message(encoding: Option<Encoding>, answer: &[u8]) -> String {
    match encoding {
        Some(Encoding::Protobuf) => RpcStatus::decode(answer).map(|s| s.message).unwrap_or_default(),
        Some(Encoding::Json) => serde_json::from_slice::<serde_json::Value>(answer)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        None => String::from_utf8_lossy(answer).lines().next().unwrap_or_default().to_owned(),
    }
}

/// gRPC messages as the bytes they already are: the request is encoded by the caller, the answer
/// decoded per signal ([`partial_success`]).
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_grpc_failures_are_classified_and_only_refused_data_is_let_go() {
        let http = |code| SendError::from_http(code, None, "");
        assert_eq!(http(401).metric_label(), "unauthorized");
        assert_eq!(http(403).metric_label(), "unauthorized");
        assert_eq!(http(404).metric_label(), "not_found");
        assert_eq!(http(429).metric_label(), "throttled");
        assert_eq!(http(503).metric_label(), "unavailable");
        assert_eq!(http(504).metric_label(), "timeout");
        assert_eq!(http(500).metric_label(), "server_error");
        assert_eq!(http(400).metric_label(), "rejected");
        assert!(http(401).keeps_data() && http(404).keeps_data() && !http(400).keeps_data());
        assert!(http(503).retryable() && !http(401).retryable() && !http(500).retryable());
        let grpc = |code| SendError::from_grpc(&tonic::Status::new(code, "x"), "x");
        assert_eq!(grpc(tonic::Code::Unauthenticated).metric_label(), "unauthorized");
        assert_eq!(grpc(tonic::Code::PermissionDenied).metric_label(), "unauthorized");
        assert_eq!(grpc(tonic::Code::Unimplemented).metric_label(), "not_found");
        assert_eq!(grpc(tonic::Code::DeadlineExceeded).metric_label(), "timeout");
        assert_eq!(grpc(tonic::Code::InvalidArgument).metric_label(), "rejected");
    }

    #[test]
    fn a_tls_failure_is_found_inside_the_io_error_that_carries_it() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        // as hyper-util hands it over: an I/O error around the I/O error around the TLS error
        let io = std::io::Error::other(io);
        let e = transport_failure(&io).unwrap();
        assert!(matches!(e, SendError::Tls { problem: TlsProblem::Untrusted, .. }), "{e:?}");
        assert_eq!(e.metric_label(), "tls");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(transport_failure(&refused).unwrap().metric_label(), "unavailable");
    }

    #[test]
    fn partial_success_is_read_from_protobuf_and_json_answers() {
        let dest = crate::export::destination::Destination::resolve(&|_| None, Signal::Traces).unwrap();
        let proto = ExportTraceServiceResponse {
            partial_success: Some(opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let got = partial_success(Signal::Traces, Some(Encoding::Protobuf), &proto, &dest);
        assert_eq!(got, Accepted { rejected: 3, message: "too old".into() });
        let json = br#"{"partialSuccess":{"rejectedDataPoints":"7","errorMessage":"bad\nunit"}}"#;
        let got = partial_success(Signal::Metrics, Some(Encoding::Json), json, &dest);
        assert_eq!(got, Accepted { rejected: 7, message: "badunit".into() });
        assert_eq!(partial_success(Signal::Logs, None, b"", &dest), Accepted::default());
    }

    #[test]
    fn a_backend_that_echoes_the_key_does_not_put_it_in_a_log_line() {
        let vars =
            |k: &str| (k == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "Authorization=Basic%20c2VjcmV0a2V5".to_owned());
        let dest = crate::export::destination::Destination::resolve(&vars, Signal::Traces).unwrap();
        let said = clean("invalid credentials: Basic c2VjcmV0a2V5\u{1b}[31m", &dest);
        assert_eq!(said, "invalid credentials: ***[31m");
        assert_eq!(clean("key c2VjcmV0a2V5 is revoked", &dest), "key *** is revoked");
    }
}
