//! OTLP export: turns [`SpanRecord`]s into `SpanData` with hooktel's own ids and times and hands
//! them to `opentelemetry-otlp`'s exporter (http/protobuf or grpc), in batches.
//!
//! A `Tracer` is never used: it would mint its own span ids. The exporter retries what is
//! retryable (5xx, 429 with Retry-After, unavailable) with backoff; what still fails is counted.
//! `SpanExporter::export` is never called concurrently (one task owns it).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{RetryPolicy, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc;

use crate::local::LocalStore;
use crate::metrics::Metrics;
use crate::session::{SpanRecord, Status};
use crate::span_spool::SpanSpool;

/// Spans per export call: large enough to amortise a request, small enough to stay far below
/// receivers' default 4 MiB gRPC message limit even with full capture.
const MAX_BATCH: usize = 512;

/// How long spans wait for a batch to fill before they go out anyway.
const BATCH_DELAY: Duration = Duration::from_millis(200);

/// Upper bound on one export call including the exporter's own retries, so a hung collector
/// cannot hold the pipeline forever.
const EXPORT_DEADLINE: Duration = Duration::from_secs(30);

/// The OTLP wire protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    Grpc,
}

impl Protocol {
    pub fn parse(s: &str) -> Result<Protocol, String> {
        match s.trim() {
            "" | "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(format!("unsupported OTLP protocol {other:?}: use grpc or http/protobuf")),
        }
    }
}

/// Build the OTLP span exporter; endpoint, headers and timeout come from the standard
/// `OTEL_EXPORTER_OTLP_*` variables, read by `opentelemetry-otlp` itself.
pub fn build_exporter(protocol: Protocol, resource: &Resource) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    // three quick retries (about 2 s in all); a longer outage is the spool's job
    let retry = RetryPolicy::recommended();
    let mut exporter = match protocol {
        Protocol::HttpProtobuf => {
            opentelemetry_otlp::SpanExporter::builder().with_http().with_retry_policy(retry).build()?
        }
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder().with_tonic().with_retry_policy(retry).build()?,
    };
    exporter.set_resource(resource);
    Ok(exporter)
}

/// The resource every span carries: service name and `OTEL_RESOURCE_ATTRIBUTES` (read by the SDK),
/// plus the host and user that ran the session.
pub fn resource(service_name: &str) -> Resource {
    let mut attrs = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    if let Some(host) = host_name() {
        attrs.push(KeyValue::new("host.name", host));
    }
    if let Some(user) = std::env::var("USER").ok().or_else(|| std::env::var("USERNAME").ok()) {
        attrs.push(KeyValue::new("user.name", user));
    }
    let mut builder = Resource::builder().with_attributes(attrs);
    // OTEL_SERVICE_NAME wins (the SDK reads it); otherwise hooktel's default
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |s| s.is_empty()) {
        builder = builder.with_service_name(service_name.to_owned());
    }
    builder.build()
}

fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok().filter(|s| !s.is_empty())
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// A finished span as the OpenTelemetry SDK's export type.
pub fn span_data(rec: SpanRecord) -> SpanData {
    let span_context = SpanContext::new(rec.trace_id, rec.span_id, TraceFlags::SAMPLED, false, TraceState::default());
    let events =
        rec.events.into_iter().map(|e| opentelemetry::trace::Event::new(e.name, time(e.at), e.attrs, 0)).collect();
    let status = match rec.status {
        Status::Unset => opentelemetry::trace::Status::Unset,
        Status::Ok => opentelemetry::trace::Status::Ok,
        Status::Error(msg) => opentelemetry::trace::Status::error(msg),
    };
    SpanData {
        span_context,
        parent_span_id: rec.parent.unwrap_or(opentelemetry::trace::SpanId::INVALID),
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Owned(rec.name),
        start_time: time(rec.start),
        end_time: time(rec.end),
        attributes: rec.attrs,
        dropped_attributes_count: 0,
        events: span_events(events, rec.dropped_events),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: InstrumentationScope::builder("hooktel").with_version(env!("CARGO_PKG_VERSION")).build(),
    }
}

fn span_events(events: Vec<opentelemetry::trace::Event>, dropped: u32) -> SpanEvents {
    let mut e = SpanEvents::default();
    e.events = events;
    e.dropped_count = dropped;
    e
}

/// Where finished spans go: an OTLP exporter, or the local SQLite store when no collector is
/// configured (behind a mutex only so the exporter can hold it across awaits; never locked across one).
pub enum Sink {
    Otlp(Box<opentelemetry_otlp::SpanExporter>),
    Local(std::sync::Mutex<LocalStore>),
}

/// First wait before probing a collector that failed; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The exporter's view of the collector.
struct Delivery {
    sink: Sink,
    /// Behind a mutex only so `Delivery` can be shared across awaits; it is never locked across one.
    spool: Option<std::sync::Mutex<SpanSpool>>,
    metrics: Arc<Metrics>,
    /// `None` while the collector answers; else when to probe it again, and the wait after that.
    down: Option<(tokio::time::Instant, Duration)>,
}

/// Export batches until the channel closes; then export what is left and shut the exporter down.
/// While the collector fails, batches go to the spool and the oldest spooled batch probes it with
/// backoff; once it answers, the spool is replayed oldest first.
pub async fn run(mut rx: mpsc::Receiver<Vec<SpanRecord>>, sink: Sink, spool: Option<SpanSpool>, metrics: Arc<Metrics>) {
    let mut d = Delivery { sink, spool: spool.map(std::sync::Mutex::new), metrics, down: None };
    d.show_spool();
    d.replay().await;
    let mut batch: Vec<SpanRecord> = Vec::new();
    loop {
        let wait = if batch.is_empty() { d.probe_in() } else { Some(BATCH_DELAY) };
        let more = match wait {
            None => rx.recv().await,
            Some(w) => match tokio::time::timeout(w, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    if !batch.is_empty() {
                        d.deliver(std::mem::take(&mut batch)).await;
                    }
                    d.replay().await;
                    continue;
                }
            },
        };
        match more {
            Some(spans) => {
                batch.extend(spans);
                while batch.len() >= MAX_BATCH {
                    let rest = batch.split_off(MAX_BATCH);
                    d.deliver(std::mem::replace(&mut batch, rest)).await;
                }
            }
            None => break,
        }
    }
    if !batch.is_empty() {
        d.deliver(batch).await;
    }
    if let Sink::Otlp(exporter) = &d.sink {
        let _ = exporter.shutdown_with_timeout(Duration::from_secs(2));
    }
}

impl Delivery {
    /// How long until the collector should be probed, when it is down.
    fn probe_in(&self) -> Option<Duration> {
        self.down
            .map(|(at, _)| at.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(10)))
    }

    /// Export a fresh batch, or spool it while the collector is down or when the export fails.
    async fn deliver(&mut self, batch: Vec<SpanRecord>) {
        if self.down.is_some() && self.spool.is_some() {
            self.keep(&batch);
            return;
        }
        match self.export(&batch).await {
            Ok(()) => self.replay().await,
            Err("rejected") => self.drop_spans(batch.len(), "rejected"),
            Err(_) => {
                self.mark_down();
                self.keep(&batch);
            }
        }
    }

    /// Replay spooled batches, oldest first, until the spool is empty or an export fails.
    async fn replay(&mut self) {
        if self.down.is_some_and(|(at, _)| at > tokio::time::Instant::now()) {
            return;
        }
        loop {
            let Some(spool) = &self.spool else { return };
            let oldest = tokio::task::block_in_place(|| lock(spool).oldest());
            let (id, spans) = match oldest {
                Ok(Some(b)) => b,
                Ok(None) => {
                    self.down = None;
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "Reading the export spool failed");
                    break;
                }
            };
            match self.export(&spans).await {
                Ok(()) => {
                    self.down = None;
                    if let Some(spool) = &self.spool {
                        let _ = tokio::task::block_in_place(|| lock(spool).remove(id));
                    }
                }
                Err("rejected") => {
                    if let Some(spool) = &self.spool {
                        let _ = tokio::task::block_in_place(|| lock(spool).remove(id));
                    }
                    self.metrics.spool_dropped.with_label_values(&["export", "rejected"]).inc();
                }
                Err(_) => {
                    self.mark_down();
                    break;
                }
            }
        }
        self.show_spool();
    }

    fn mark_down(&mut self) {
        let wait = match self.down {
            Some((_, w)) => (w * 2).min(MAX_BACKOFF),
            None => FIRST_BACKOFF,
        };
        self.down = Some((tokio::time::Instant::now() + wait, wait));
    }

    /// Put a batch in the spool (or count it lost when there is none or it fails).
    fn keep(&mut self, batch: &[SpanRecord]) {
        let Some(spool) = &self.spool else {
            self.drop_spans(batch.len(), "export_failed");
            return;
        };
        match tokio::task::block_in_place(|| lock(spool).push(batch, crate::pipeline::now_ns())) {
            Ok(0) => {}
            Ok(dropped) => {
                self.metrics.spool_dropped.with_label_values(&["export", "full"]).inc_by(dropped);
                self.metrics.spans_dropped.with_label_values(&["spool_full"]).inc_by(dropped);
                tracing::error!(spans = dropped, "Export spool full; dropped the oldest spans");
            }
            Err(e) => {
                self.metrics.spool_dropped.with_label_values(&["export", "write_failed"]).inc_by(batch.len() as u64);
                self.drop_spans(batch.len(), "spool_failed");
                tracing::error!(error = %e, spans = batch.len(), "Cannot write the export spool; spans lost");
            }
        }
        self.show_spool();
    }

    fn drop_spans(&self, n: usize, reason: &str) {
        self.metrics.spans_dropped.with_label_values(&[reason]).inc_by(n as u64);
        tracing::error!(spans = n, reason, "Spans lost");
    }

    fn show_spool(&self) {
        if let Some(spool) = &self.spool {
            let held = tokio::task::block_in_place(|| lock(spool).held());
            let depth = crate::spool::Depth { events: held.batches, bytes: held.bytes, oldest_at: held.oldest_at };
            self.metrics.spool_depth("export", &depth);
        }
    }

    /// One export call; `Err` carries the failure's bounded reason.
    async fn export(&self, batch: &[SpanRecord]) -> Result<(), &'static str> {
        let n = batch.len() as u64;
        let exporter = match &self.sink {
            Sink::Otlp(e) => e,
            Sink::Local(store) => {
                let stored = tokio::task::block_in_place(|| {
                    store.lock().unwrap_or_else(|e| e.into_inner()).insert(batch, crate::pipeline::now_ns())
                });
                return match stored {
                    Ok(()) => {
                        self.metrics.spans_stored.inc_by(n);
                        Ok(())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, spans = n, "Cannot write the local store; spans lost");
                        self.drop_spans(batch.len(), "store_failed");
                        Ok(())
                    }
                };
            }
        };
        let data = batch.iter().cloned().map(span_data).collect();
        let reason = match tokio::time::timeout(EXPORT_DEADLINE, exporter.export(data)).await {
            Ok(Ok(())) => {
                self.metrics.spans_exported.inc_by(n);
                tracing::debug!(spans = n, "Exported spans");
                return Ok(());
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, spans = n, "OTLP export failed");
                failure_reason(&e.to_string())
            }
            Err(_) => "timeout",
        };
        self.metrics.export_failures.with_label_values(&[reason]).inc();
        Err(reason)
    }
}

fn lock(spool: &std::sync::Mutex<SpanSpool>) -> std::sync::MutexGuard<'_, SpanSpool> {
    spool.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bounded label for an export error. The exporter's errors are strings, so this reads them.
fn failure_reason(msg: &str) -> &'static str {
    let m = msg.to_ascii_lowercase();
    if m.contains("429") || m.contains("resource exhausted") || m.contains("resourceexhausted") {
        "throttled"
    } else if m.contains("timed out") || m.contains("timeout") || m.contains("deadline") {
        "timeout"
    } else if m.contains("connect") || m.contains("unavailable") || m.contains("refused") || m.contains("dns") {
        "unavailable"
    } else if m.contains("status code 5") || m.contains("internal") || m.contains(" 50") {
        "server_error"
    } else if m.contains("status code 4") || m.contains("invalid") {
        "rejected"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse() {
        assert_eq!(Protocol::parse("grpc"), Ok(Protocol::Grpc));
        assert_eq!(Protocol::parse("http/protobuf"), Ok(Protocol::HttpProtobuf));
        assert!(Protocol::parse("http/json").is_err());
    }

    #[test]
    fn failure_reasons_are_bounded() {
        assert_eq!(failure_reason("error sending request: Connection refused"), "unavailable");
        assert_eq!(failure_reason("HTTP export failed. Status code 503"), "server_error");
        assert_eq!(failure_reason("weird"), "other");
    }
}
