//! OTLP: turns [`SpanRecord`]s into the SDK's `SpanData` with hooktel's own ids and times, and builds
//! `opentelemetry-otlp`'s exporter (http/protobuf or grpc) with the resource every span carries.
//!
//! A `Tracer` is never used: it would mint its own span ids.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{RetryPolicy, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;

use crate::model::ids::SpanKey;
use crate::model::semconv;
use crate::model::span::{SpanRecord, Status};

/// The OTLP wire protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    HttpProtobuf,
    Grpc,
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol hooktel does not speak.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported OTLP protocol {0:?}: use grpc or http/protobuf")]
pub(crate) struct UnsupportedProtocol(pub String);

impl Protocol {
    pub(crate) fn parse(s: &str) -> Result<Protocol, UnsupportedProtocol> {
        match s.trim() {
            "" | "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(UnsupportedProtocol(other.to_owned())),
        }
    }
}

/// Build the OTLP span exporter; endpoint, headers and timeout come from the standard
/// `OTEL_EXPORTER_OTLP_*` variables, read by `opentelemetry-otlp` itself.
pub(crate) fn build_exporter(
    protocol: Protocol,
    resource: &Resource,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
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

/// The resource every span and pushed metric carries: service name and `OTEL_RESOURCE_ATTRIBUTES`
/// (read by the SDK), plus the host and user that run the sidecar and `service.instance.id`, stable
/// for one sidecar (host, user and data directory) across restarts.
pub(crate) fn resource(service_name: &str, data_dir: &std::path::Path) -> Resource {
    let (host, user) = (host_name(), user_name());
    let instance =
        format!("{}:{}:{}", host.as_deref().unwrap_or(""), user.as_deref().unwrap_or(""), data_dir.display());
    let instance = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, instance.as_bytes());
    let mut attrs = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance.to_string()),
    ];
    if let Some(host) = host {
        attrs.push(KeyValue::new("host.name", host));
    }
    if let Some(user) = user {
        attrs.push(KeyValue::new("user.name", user));
    }
    let mut builder = Resource::builder().with_attributes(attrs);
    // OTEL_SERVICE_NAME wins (the SDK reads it); otherwise hooktel's default
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |s| s.is_empty()) {
        builder = builder.with_service_name(service_name.to_owned());
    }
    builder.build()
}

/// The user this process runs as, from the password database (`$USER` is unset under systemd and
/// in many containers), else `$USER`.
fn user_name() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `pwd` and `buf` outlive the call; getpwuid_r writes within `buf.len()` bytes and sets
    // `found` to `&pwd` or null; `pw_name` then points into `buf`, NUL-terminated.
    let from_db = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::getuid(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
            std::ffi::CStr::from_ptr(pwd.pw_name).to_str().ok().map(str::to_owned)
        } else {
            None
        }
    };
    from_db.filter(|u| !u.is_empty()).or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
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
        instrumentation_scope: InstrumentationScope::builder("hooktel").with_version(env!("CARGO_PKG_VERSION")).build(),
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

    #[test]
    fn protocols_parse() {
        assert_eq!(Protocol::parse("grpc"), Ok(Protocol::Grpc));
        assert_eq!(Protocol::parse("http/protobuf"), Ok(Protocol::HttpProtobuf));
        assert!(Protocol::parse("http/json").is_err());
    }
}
