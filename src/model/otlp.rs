//! The OTLP vocabulary both ends share: the three signals and how a body is encoded. The receiver
//! of Claude Code's own telemetry (`ingest::native`) and every sender (`export`) speak it, so it
//! lives here, below both.

use std::sync::Arc;

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Signal {
    Logs,
    Metrics,
    Traces,
}

impl Signal {
    /// The signal an OTLP/HTTP path is for.
    pub(crate) fn of_path(path: &str) -> Option<Signal> {
        match path {
            "/v1/logs" => Some(Signal::Logs),
            "/v1/metrics" => Some(Signal::Metrics),
            "/v1/traces" => Some(Signal::Traces),
            _ => None,
        }
    }

    /// `logs`, `metrics`, `traces`: the bounded `signal` label, and the last part of its HTTP path.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
        }
    }

    /// The path OTLP/HTTP appends to a base endpoint: `v1/traces`, ...
    pub(crate) fn http_path(self) -> &'static str {
        match self {
            Signal::Logs => "v1/logs",
            Signal::Metrics => "v1/metrics",
            Signal::Traces => "v1/traces",
        }
    }

    /// The gRPC method of the signal's export service.
    pub(crate) fn grpc_path(self) -> &'static str {
        match self {
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        }
    }
}

/// How an OTLP/HTTP body is encoded, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub(crate) fn of_content_type(content_type: &str) -> Option<Encoding> {
        match content_type.split(';').next()?.trim().to_ascii_lowercase().as_str() {
            "application/x-protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// The body of a successful export's answer (an empty `Export*ServiceResponse`).
    pub(crate) fn empty_response(self) -> (&'static str, &'static [u8]) {
        match self {
            Encoding::Protobuf => (self.content_type(), b""),
            Encoding::Json => (self.content_type(), b"{}"),
        }
    }
}

/// A body of Claude Code's telemetry to forward, already cut to the capture level: what the
/// receiver hands the forwarder.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) signal: Signal,
    pub(crate) encoding: Encoding,
    pub(crate) body: bytes::Bytes,
    /// Its bytes in the queue's budget (one permit a byte), given back when the body is dropped
    /// (sent, or failed).
    pub(crate) queued: tokio::sync::OwnedSemaphorePermit,
}

/// The receiver's side of the forwarding queue: bounded by bodies and by bytes (a body is held
/// until it is sent or has failed), so that a collector that never answers cannot grow the sidecar.
#[derive(Clone, Debug)]
pub(crate) struct ForwardQueue {
    tx: tokio::sync::mpsc::Sender<Forward>,
    bytes: Arc<tokio::sync::Semaphore>,
}

impl ForwardQueue {
    /// A queue of at most `max_bodies` bodies and `max_bytes` bytes, and its receiving end.
    pub(crate) fn new(max_bodies: usize, max_bytes: usize) -> (ForwardQueue, tokio::sync::mpsc::Receiver<Forward>) {
        let (tx, rx) = tokio::sync::mpsc::channel(max_bodies);
        (ForwardQueue { tx, bytes: Arc::new(tokio::sync::Semaphore::new(max_bytes)) }, rx)
    }

    /// Queue a body; false (not queued) when the queue is full, by count or by bytes.
    pub(crate) fn offer(&self, signal: Signal, encoding: Encoding, body: bytes::Bytes) -> bool {
        let Ok(bytes) = u32::try_from(body.len()) else { return false };
        let Ok(queued) = self.bytes.clone().try_acquire_many_owned(bytes) else { return false };
        self.tx.try_send(Forward { signal, encoding, body, queued }).is_ok()
    }
}
