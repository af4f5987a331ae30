//! OTLP spans: turns [`SpanRecord`]s into the SDK's `SpanData` with hooktel's own ids and times,
//! and a batch of them into the encoded `ExportTraceServiceRequest` that
//! [`OtlpClient`](crate::export::client::OtlpClient) sends, with the resource every span carries
//! (the conversion is opentelemetry-proto's own). One sidecar serves several agents: a batch
//! goes out as one resource per agent in it, the sidecar's plus `gen_ai.agent.name`.
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

use crate::model::agent::Agent;
use crate::model::ids::SpanKey;
use crate::model::semconv;
use crate::model::span::{SpanRecord, Status};

/// A batch as the encoded OTLP request: one resource per agent whose spans it holds (in the
/// order of `Agent::ALL`), one scope.
pub(crate) fn request(batch: &[SpanRecord], resource: &Resource) -> bytes::Bytes {
    let resource_spans = Agent::ALL
        .into_iter()
        .flat_map(|agent| {
            let spans: Vec<SpanData> = batch.iter().filter(|r| r.agent == agent).map(span_data).collect();
            if spans.is_empty() {
                return Vec::new();
            }
            let resource = ResourceAttributesWithSchema::from(&agent_resource(resource, agent));
            group_spans_by_resource_and_scope(spans, &resource)
        })
        .collect();
    bytes::Bytes::from(ExportTraceServiceRequest { resource_spans }.encode_to_vec())
}

/// The sidecar's resource with the agent's name (`gen_ai.agent.name`), unless the user set one in
/// `OTEL_RESOURCE_ATTRIBUTES` (what the user sets is never overridden).
fn agent_resource(resource: &Resource, agent: Agent) -> Resource {
    let key = opentelemetry::Key::from_static_str(semconv::AGENT_NAME);
    if resource.get(&key).is_some() {
        return resource.clone();
    }
    let attrs = resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
    let attrs = attrs.chain([KeyValue::new(key, agent.name())]);
    match resource.schema_url() {
        Some(url) => Resource::builder_empty().with_schema_url(attrs, url.to_owned()).build(),
        None => Resource::builder_empty().with_attributes(attrs).build(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

    fn attr(r: &ResourceSpans, key: &str) -> Option<String> {
        let attrs = &r.resource.as_ref()?.attributes;
        match attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn resource(attrs: &[(&'static str, &'static str)]) -> Resource {
        let attrs = attrs.iter().map(|(k, v)| KeyValue::new(*k, *v));
        Resource::builder_empty().with_schema_url(attrs, semconv::SCHEMA_URL).build()
    }

    /// Spans of two agents in one batch go out under two resources, each the sidecar's with its
    /// agent's name, each holding its agent's spans only.
    #[test]
    fn each_agent_has_a_resource_of_its_own() {
        let mut batch: Vec<SpanRecord> = (1..=3).map(crate::store::record::tests::span).collect();
        for (rec, agent) in batch.iter_mut().zip([Agent::Codex, Agent::ClaudeCode, Agent::Codex]) {
            rec.agent = agent;
        }
        let body = request(&batch, &resource(&[("service.name", "hooktel"), ("host.name", "ci-7")]));
        let req = ExportTraceServiceRequest::decode(body).unwrap();
        let agents: Vec<_> = req.resource_spans.iter().map(|r| attr(r, semconv::AGENT_NAME)).collect();
        assert_eq!(agents, [Some("claude-code".to_owned()), Some("codex".to_owned())]);
        for (r, want) in
            req.resource_spans.iter().zip([vec![batch[1].span_id], vec![batch[0].span_id, batch[2].span_id]])
        {
            assert_eq!(attr(r, "host.name").as_deref(), Some("ci-7"));
            assert_eq!(r.schema_url, semconv::SCHEMA_URL);
            let spans: Vec<_> = r.scope_spans.iter().flat_map(|s| &s.spans).map(|s| s.span_id.clone()).collect();
            assert_eq!(spans, want.iter().map(|id| id.to_bytes().to_vec()).collect::<Vec<_>>());
        }
        // a name the user gave the resource stays: what the user sets is never overridden
        let body = request(&batch, &resource(&[("gen_ai.agent.name", "fleet")]));
        let req = ExportTraceServiceRequest::decode(body).unwrap();
        assert!(req.resource_spans.iter().all(|r| attr(r, semconv::AGENT_NAME).as_deref() == Some("fleet")));
        assert_eq!(req.resource_spans.len(), 2);
    }
}
