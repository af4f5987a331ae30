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

use crate::metrics::Metrics;
use crate::session::{SpanRecord, Status};

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

/// Where finished spans go: an OTLP exporter, or nowhere yet (local mode).
pub enum Sink {
    Otlp(Box<opentelemetry_otlp::SpanExporter>),
    /// No OTLP endpoint configured: spans are counted and dropped (the local store is not built yet).
    Local,
}

/// Export batches until the channel closes; then export what is left and shut the exporter down.
pub async fn run(mut rx: mpsc::Receiver<Vec<SpanRecord>>, sink: Sink, metrics: Arc<Metrics>) {
    let mut batch: Vec<SpanRecord> = Vec::new();
    loop {
        let more = if batch.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(BATCH_DELAY, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    export(&sink, std::mem::take(&mut batch), &metrics).await;
                    continue;
                }
            }
        };
        match more {
            Some(spans) => {
                batch.extend(spans);
                while batch.len() >= MAX_BATCH {
                    let rest = batch.split_off(MAX_BATCH);
                    export(&sink, std::mem::replace(&mut batch, rest), &metrics).await;
                }
            }
            None => break,
        }
    }
    if !batch.is_empty() {
        export(&sink, batch, &metrics).await;
    }
    if let Sink::Otlp(exporter) = sink {
        let _ = exporter.shutdown_with_timeout(Duration::from_secs(2));
    }
}

async fn export(sink: &Sink, batch: Vec<SpanRecord>, metrics: &Metrics) {
    let n = batch.len() as u64;
    let exporter = match sink {
        Sink::Otlp(e) => e,
        Sink::Local => {
            metrics.spans_dropped.with_label_values(&["no_exporter"]).inc_by(n);
            tracing::debug!(spans = n, "No OTLP endpoint configured; spans not exported");
            return;
        }
    };
    let data = batch.into_iter().map(span_data).collect();
    let result = tokio::time::timeout(EXPORT_DEADLINE, exporter.export(data)).await;
    let reason = match result {
        Ok(Ok(())) => {
            metrics.spans_exported.inc_by(n);
            tracing::debug!(spans = n, "Exported spans");
            return;
        }
        Ok(Err(e)) => failure_reason(&e.to_string()),
        Err(_) => "timeout",
    };
    metrics.export_failures.with_label_values(&[reason]).inc();
    metrics.spans_dropped.with_label_values(&["export_failed"]).inc_by(n);
    tracing::error!(spans = n, reason, "OTLP export failed; spans lost");
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
