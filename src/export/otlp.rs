//! OTLP spans: turns [`SpanRecord`]s into the SDK's `SpanData` with hooktel's own ids and times,
//! and a batch of them into the encoded `ExportTraceServiceRequest` that
//! [`OtlpClient`](crate::export::client::OtlpClient) sends, with the resource every span carries
//! (the conversion is opentelemetry-proto's own).
//!
//! A `Tracer` is never used: it would mint its own span ids.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use opentelemetry_sdk::Resource;
use prost::Message;

use crate::model::ids::SpanKey;
use crate::model::semconv;
use crate::model::span::{SpanRecord, Status};

/// A batch as the encoded OTLP request: one resource, one scope.
pub(crate) fn request(batch: &[SpanRecord], resource: &Resource) -> bytes::Bytes {
    let spans = batch.iter().map(span_data).collect();
    let req = ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(spans, &ResourceAttributesWithSchema::from(resource)),
    };
    bytes::Bytes::from(req.encode_to_vec())
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// A finished span as the OpenTelemetry SDK's export type, with every attribute it carries out.
pub(crate) fn span_data(rec: &SpanRecord) -> SpanData {
    let span_context = SpanContext::new(rec.trace_id, rec.span_id, TraceFlags::SAMPLED, false, TraceState::default());
    let events = rec
        .events
        .iter()
        .map(|e| opentelemetry::trace::Event::new(e.name.clone(), time(e.at), e.attrs.clone(), 0))
        .collect();
    let status = match &rec.status {
        Status::Unset => opentelemetry::trace::Status::Unset,
        Status::Ok => opentelemetry::trace::Status::Ok,
        Status::Error(msg) => opentelemetry::trace::Status::error(msg.clone()),
    };
    SpanData {
        span_context,
        parent_span_id: rec.parent.unwrap_or(opentelemetry::trace::SpanId::INVALID),
        parent_span_is_remote: false,
        // a model call goes out to Anthropic's API; everything else happens in Claude Code
        span_kind: if rec.key == SpanKey::Chat { SpanKind::Client } else { SpanKind::Internal },
        name: Cow::Owned(rec.name.clone()),
        start_time: time(rec.start),
        end_time: time(rec.end),
        attributes: rec.attributes(),
        dropped_attributes_count: 0,
        events: span_events(events, rec.dropped_events),
        links: span_links(&rec.links),
        status,
        instrumentation_scope: InstrumentationScope::builder("hooktel")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(semconv::SCHEMA_URL)
            .build(),
    }
}

/// Links to spans of other traces, each with its relation as `hooktel.link.kind`.
fn span_links(links: &[crate::model::span::SpanLink]) -> SpanLinks {
    let mut out = SpanLinks::default();
    out.links = links
        .iter()
        .map(|l| {
            let context = SpanContext::new(l.trace_id, l.span_id, TraceFlags::SAMPLED, true, TraceState::default());
            opentelemetry::trace::Link::new(context, vec![KeyValue::new(semconv::LINK_KIND, l.kind.clone())], 0)
        })
        .collect();
    out
}

fn span_events(events: Vec<opentelemetry::trace::Event>, dropped: u32) -> SpanEvents {
    let mut e = SpanEvents::default();
    e.events = events;
    e.dropped_count = dropped;
    e
}
