//! Test support: a real OTLP receiver (HTTP/protobuf and gRPC) that collects the spans sent to it,
//! the captured session, and (from `process.rs` and `rng.rs`, shared with the benches) a launcher for
//! the built `hooktel` binary and a random generator. Every wait has a timeout.
#![allow(dead_code)]

pub mod claude;
pub mod cli_run;
pub mod codex;
pub mod gemini;
pub mod mock_api;
pub mod phoenix;
mod process;
pub mod prom_translate;
pub mod prometheus;
pub mod rng;
pub mod tls;

pub use process::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

/// The real captured Claude Code 2.1.329 session (`tests/fixtures/hooks/captured/NN-*.json`), in
/// firing order.
pub fn captured_session() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hooks/captured");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The captured session's id and its subagent's id.
pub const CAPTURED_SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
pub const CAPTURED_AGENT: &str = "a7ca175cf2fd2156a";

/// The captured session's transcripts (main, subagent, meta) copied into `dir/projects/`; returns
/// the main transcript's path.
pub fn copy_captured_transcripts(dir: &std::path::Path) -> std::path::PathBuf {
    let (sid, agent) = (CAPTURED_SESSION, CAPTURED_AGENT);
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj");
    let dst = dir.join("projects/-home-dev-proj");
    std::fs::create_dir_all(dst.join(sid).join("subagents")).unwrap();
    for rel in [
        format!("{sid}.jsonl"),
        format!("{sid}/subagents/agent-{agent}.jsonl"),
        format!("{sid}/subagents/agent-{agent}.meta.json"),
    ] {
        std::fs::copy(src.join(&rel), dst.join(&rel)).unwrap();
    }
    dst.join(format!("{sid}.jsonl"))
}

/// The captured session's payloads, in firing order, pointed at the transcript copy `transcript`.
pub fn captured_session_at(transcript: &std::path::Path) -> Vec<serde_json::Value> {
    let agent_transcript = transcript.with_extension("").join(format!("subagents/agent-{CAPTURED_AGENT}.jsonl"));
    captured_session()
        .iter()
        .map(|bytes| {
            let mut p: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            p["transcript_path"] = transcript.to_str().unwrap().into();
            if p.get("agent_transcript_path").is_some() {
                p["agent_transcript_path"] = agent_transcript.to_str().unwrap().into();
            }
            p
        })
        .collect()
}

/// One span as the receiver got it, flattened for assertions.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent: String,
    pub name: String,
    pub attrs: HashMap<String, String>,
    pub resource: HashMap<String, String>,
    /// 0 unset, 1 ok, 2 error (OTLP's StatusCode).
    pub status: i32,
    pub status_message: String,
    pub events: Vec<(String, HashMap<String, String>)>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// OTLP's SpanKind: 1 internal, 3 client.
    pub kind: i32,
    /// Links: (trace id, span id, attributes).
    pub links: Vec<(String, String, HashMap<String, String>)>,
    /// The schema URLs of its resource and of its instrumentation scope.
    pub resource_schema_url: String,
    pub scope_schema_url: String,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

fn flatten(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

pub fn spans_of(req: &ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs.resource.as_ref().map(|r| flatten(&r.attributes)).unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push(Span {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    attrs: flatten(&s.attributes),
                    resource: resource.clone(),
                    status: s.status.as_ref().map(|st| st.code).unwrap_or(0),
                    status_message: s.status.as_ref().map(|st| st.message.clone()).unwrap_or_default(),
                    events: s.events.iter().map(|e| (e.name.clone(), flatten(&e.attributes))).collect(),
                    kind: s.kind,
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id), flatten(&l.attributes)))
                        .collect(),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    resource_schema_url: rs.schema_url.clone(),
                    scope_schema_url: ss.schema_url.clone(),
                });
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

#[derive(Default)]
struct Shared {
    spans: Mutex<Vec<Span>>,
    /// Requests to refuse (HTTP 503 / gRPC UNAVAILABLE) before accepting again.
    refuse_next: AtomicUsize,
    requests: AtomicUsize,
    /// OTLP/HTTP logs and metrics bodies (by path) as received: what the sidecar forwards.
    forwarded: Mutex<Vec<(String, Vec<u8>)>>,
}

/// An OTLP trace receiver on 127.0.0.1, running on its own thread and runtime.
pub struct Receiver {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _thread: std::thread::JoinHandle<()>,
}

struct Grpc(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.requests.fetch_add(1, Ordering::SeqCst);
        if take_refusal(&self.0) {
            return Err(tonic::Status::unavailable("test receiver refusing"));
        }
        self.0.spans.lock().unwrap().extend(spans_of(request.get_ref()));
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

struct GrpcMetrics(Arc<Shared>);

#[tonic::async_trait]
impl MetricsService for GrpcMetrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.requests.fetch_add(1, Ordering::SeqCst);
        let body = request.get_ref().encode_to_vec();
        self.0.forwarded.lock().unwrap().push(("/v1/metrics".into(), body));
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

impl Shared {
    fn last_metrics(&self) -> Option<ExportMetricsServiceRequest> {
        let forwarded = self.forwarded.lock().unwrap();
        let (_, body) = forwarded.iter().rev().find(|(path, _)| path == "/v1/metrics")?;
        ExportMetricsServiceRequest::decode(body.as_slice()).ok()
    }
}

fn take_refusal(s: &Shared) -> bool {
    s.refuse_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

impl Receiver {
    pub fn start(protocol: Protocol) -> Receiver {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                match protocol {
                    Protocol::Grpc => {
                        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                        tonic::transport::Server::builder()
                            .add_service(TraceServiceServer::new(Grpc(s.clone())))
                            .add_service(MetricsServiceServer::new(GrpcMetrics(s)))
                            .serve_with_incoming(incoming)
                            .await
                            .unwrap();
                    }
                    Protocol::Http => serve_http(listener, s).await,
                }
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("receiver started");
        Receiver { protocol, addr, shared, _thread: thread }
    }

    /// The value for OTEL_EXPORTER_OTLP_ENDPOINT.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The value for OTEL_EXPORTER_OTLP_PROTOCOL.
    pub fn protocol_name(&self) -> &'static str {
        match self.protocol {
            Protocol::Http => "http/protobuf",
            Protocol::Grpc => "grpc",
        }
    }

    /// The last metrics push received (OTLP/HTTP or gRPC), decoded.
    pub fn last_metrics(&self) -> Option<ExportMetricsServiceRequest> {
        self.shared.last_metrics()
    }

    /// The logs and metrics bodies received (path, bytes), in order.
    pub fn forwarded(&self) -> Vec<(String, Vec<u8>)> {
        self.shared.forwarded.lock().unwrap().clone()
    }

    pub fn spans(&self) -> Vec<Span> {
        self.shared.spans.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Refuse the next `n` export requests as unavailable.
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse_next.store(n, Ordering::SeqCst);
    }

    /// Wait until `done(spans)` holds; panics with the spans seen after `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        wait_for_spans(
            timeout,
            what,
            || self.spans(),
            done,
            |spans| {
                let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.trace_id)).collect();
                format!("{} spans: {names:?}", spans.len())
            },
        )
    }
}

async fn serve_http(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    use http_body_util::{BodyExt, Full};
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move {
                    shared.requests.fetch_add(1, Ordering::SeqCst);
                    let path = req.uri().path().to_owned();
                    let path_ok = path == "/v1/traces";
                    if req.method() == hyper::Method::GET && path == "/metrics" {
                        // the last metrics push, translated as a Collector would, for Prometheus
                        let text = shared.last_metrics().map(|m| prom_translate::exposition(&m)).unwrap_or_default();
                        return Ok(hyper::Response::new(Full::new(bytes::Bytes::from(text))));
                    }
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut resp = hyper::Response::new(Full::new(bytes::Bytes::new()));
                    if path == "/v1/logs" || path == "/v1/metrics" {
                        // what the sidecar forwards of Claude Code's own telemetry: kept as it came
                        shared.forwarded.lock().unwrap().push((path, body.to_vec()));
                    } else if !path_ok {
                        *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                    } else if take_refusal(&shared) {
                        *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                    } else {
                        match ExportTraceServiceRequest::decode(body) {
                            Ok(req) => {
                                shared.spans.lock().unwrap().extend(spans_of(&req));
                                let ok = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
                                resp = hyper::Response::new(Full::new(bytes::Bytes::from(ok)));
                                resp.headers_mut().insert("content-type", "application/x-protobuf".parse().unwrap());
                            }
                            Err(_) => *resp.status_mut() = hyper::StatusCode::BAD_REQUEST,
                        }
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The launcher's parts that need a [`Receiver`] (the rest is in `process.rs`, which the benches share
/// without the receiver).
impl SidecarBuilder {
    /// Export to `receiver` (without it: local mode).
    pub fn exporting_to(self, receiver: &Receiver) -> SidecarBuilder {
        self.exporting(receiver.endpoint(), receiver.protocol_name())
    }

    /// Start a receiver speaking `protocol`, then the sidecar exporting to it; returns both.
    pub fn start_exporting(self, protocol: Protocol) -> (Receiver, Sidecar) {
        let receiver = Receiver::start(protocol);
        let sidecar = self.exporting_to(&receiver).start();
        (receiver, sidecar)
    }
}

impl Sidecar {
    /// Start `hooktel serve --listen 127.0.0.1:0` exporting to `receiver` (or in local mode), with
    /// `extra_env`; a `HOOKTEL_DATA_DIR` there is the test's directory, as [`SidecarBuilder::data_dir`].
    pub fn start(receiver: Option<&Receiver>, extra_env: &[(&str, &str)]) -> Sidecar {
        let mut builder = Sidecar::builder();
        if let Some(r) = receiver {
            builder = builder.exporting_to(r);
        }
        for (k, v) in extra_env {
            builder =
                if *k == "HOOKTEL_DATA_DIR" { builder.data_dir(std::path::Path::new(v)) } else { builder.env(k, v) };
        }
        builder.start()
    }
}

/// An address of this machine beyond loopback (the one its default route leaves from), to reach a
/// sidecar as another host would. Panics when there is none: the token tests need one.
pub fn lan_ip() -> std::net::IpAddr {
    for probe in ["10.255.255.254:9", "192.0.2.1:9", "[fd00::1]:9"] {
        let bind = if probe.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
        let Ok(socket) = std::net::UdpSocket::bind(bind) else { continue };
        // connecting a UDP socket sends nothing: it only picks the route and so the local address
        if socket.connect(probe).is_ok() {
            if let Ok(local) = socket.local_addr() {
                if !local.ip().is_loopback() && !local.ip().is_unspecified() {
                    return local.ip();
                }
            }
        }
    }
    panic!("this machine has no address beyond loopback to test the token from");
}

/// One raw HTTP/1.1 request with exactly the given header lines (and `Content-Length`,
/// `Connection: close`): the status code and the answer's body. For what a well-behaved client would
/// never send.
pub fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let status = String::from_utf8_lossy(&resp[..12.min(resp.len())]).get(9..12).and_then(|c| c.parse().ok());
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |p| p + 4);
    (status.unwrap_or(0), resp[at..].to_vec())
}

/// Wait until `done` holds of what `spans()` returns; after `timeout`, panic with `what` and what
/// `describe` says of the last spans seen.
pub fn wait_for_spans(
    timeout: Duration,
    what: &str,
    spans: impl Fn() -> Vec<Span>,
    done: impl Fn(&[Span]) -> bool,
    describe: impl Fn(&[Span]) -> String,
) -> Vec<Span> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = spans();
        if done(&seen) {
            return seen;
        }
        assert!(Instant::now() <= deadline, "timed out waiting for {what}; {}", describe(&seen));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every span's parent is in the same trace (or it is that trace's one root).
pub fn assert_tree(spans: &[Span], trace_id: &str) {
    let mine: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    assert!(!mine.is_empty(), "no spans in trace {trace_id}");
    let roots: Vec<_> = mine.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(
        roots.len(),
        1,
        "exactly one root in {trace_id}: {:?}",
        roots.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let ids: std::collections::HashSet<&str> = mine.iter().map(|s| s.span_id.as_str()).collect();
    for s in &mine {
        assert!(
            s.parent.is_empty() || ids.contains(s.parent.as_str()),
            "dangling parent of {} ({})",
            s.name,
            s.span_id
        );
        assert!(s.attr("session.id").is_some(), "{} lacks session.id", s.name);
    }
    let mut seen = std::collections::HashSet::new();
    for s in &mine {
        assert!(seen.insert(&s.span_id), "span {} ({}) exported twice", s.name, s.span_id);
    }
}

/// A pinned agent CLI: the path in `var`, else `bin` under `target/test-deps/<package_dir>`, where
/// `scripts/install-test-deps.sh` puts it; `name` names it when it is missing.
pub fn pinned_cli(var: &str, package_dir: &str, bin: &str, name: &str) -> std::path::PathBuf {
    let path = std::env::var_os(var).filter(|p| !p.is_empty()).map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-deps")
            .join(package_dir)
            .join("node_modules/.bin")
            .join(bin)
    });
    assert!(
        path.is_file(),
        "the {name} CLI is not installed at {}: run scripts/install-test-deps.sh (or set {var} to the {bin} binary)",
        path.display()
    );
    path
}
