//! Claude Code's own OpenTelemetry, as received on `--otlp-listen` (OTLP/HTTP `/v1/logs`,
//! `/v1/metrics`, `/v1/traces`, protobuf or JSON): decoded, and the log events hooktel joins to a
//! session (`api_request`, `api_error`) turned into payloads for the one ingest path, named
//! `claude_code.<event>` and keyed by their `session.id`. Metrics and traces are decoded (so a
//! malformed body is refused) and counted. Pure: no I/O.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use serde_json::{Map, Value};

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    pub(crate) fn label(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
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

    /// The body of a successful export's answer (an empty `Export*ServiceResponse`).
    pub(crate) fn empty_response(self) -> (&'static str, &'static [u8]) {
        match self {
            Encoding::Protobuf => ("application/x-protobuf", b""),
            Encoding::Json => ("application/json", b"{}"),
        }
    }
}

/// A body that is not the OTLP message its path names.
#[derive(Debug, thiserror::Error)]
#[error("not an OTLP {signal} request ({encoding:?}): {reason}")]
pub(crate) struct DecodeError {
    signal: &'static str,
    encoding: Encoding,
    reason: String,
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    signal: Signal,
    encoding: Encoding,
) -> Result<T, DecodeError> {
    let err = |reason: String| DecodeError { signal: signal.label(), encoding, reason };
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| err(e.to_string())),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| err(e.to_string())),
    }
}

/// The session events of a body: `(payload, time)` for each `api_request` and `api_error` log
/// record that names its session. A body of another signal is only checked to decode.
pub(crate) fn events(body: &[u8], signal: Signal, encoding: Encoding) -> Result<Vec<(Value, u64)>, DecodeError> {
    match signal {
        Signal::Metrics => decode::<ExportMetricsServiceRequest>(body, signal, encoding).map(|_| Vec::new()),
        Signal::Traces => decode::<ExportTraceServiceRequest>(body, signal, encoding).map(|_| Vec::new()),
        Signal::Logs => Ok(log_events(&decode::<ExportLogsServiceRequest>(body, signal, encoding)?)),
    }
}

/// The log events hooktel joins to a session.
const JOINED: &[&str] = &["api_request", "api_error"];

/// Attributes of those events that hooktel reads, by their OTLP names, and the payload field each
/// becomes. Nothing else is kept (not `user.id`, not prompts).
const FIELDS: &[(&str, &str)] = &[
    ("session.id", "session_id"),
    ("prompt.id", "prompt_id"),
    ("agent_id", "agent_id"),
    ("request_id", "request_id"),
    ("model", "model"),
    ("duration_ms", "duration_ms"),
    ("ttft_ms", "ttft_ms"),
    ("attempt", "attempt"),
    ("error", "error"),
    ("status_code", "status_code"),
];

fn log_events(req: &ExportLogsServiceRequest) -> Vec<(Value, u64)> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                let name =
                    attr(&record.attributes, "event.name").and_then(|v| v.as_str().map(str::to_owned)).or_else(|| {
                        match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                            Some(Any::StringValue(s)) => s.strip_prefix("claude_code.").map(str::to_owned),
                            _ => None,
                        }
                    });
                let Some(name) = name.filter(|n| JOINED.contains(&n.as_str())) else { continue };
                let mut payload = Map::new();
                for (otlp, field) in FIELDS {
                    if let Some(v) = attr(&record.attributes, otlp) {
                        payload.insert((*field).to_owned(), v);
                    }
                }
                if !payload.get("session_id").is_some_and(Value::is_string) {
                    continue;
                }
                payload.insert("hook_event_name".into(), Value::String(format!("claude_code.{name}")));
                let at = if record.time_unix_nano > 0 { record.time_unix_nano } else { record.observed_time_unix_nano };
                out.push((Value::Object(payload), at));
            }
        }
    }
    out
}

/// An attribute's value as JSON (scalars only).
fn attr(attrs: &[KeyValue], key: &str) -> Option<Value> {
    let v = attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match v {
        Any::StringValue(s) => Value::String(s.clone()),
        Any::IntValue(i) => Value::from(*i),
        Any::DoubleValue(d) => serde_json::Number::from_f64(*d).map(Value::Number)?,
        Any::BoolValue(b) => Value::Bool(*b),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGS: &str = include_str!("../../tests/fixtures/otel/captured-2.1.329/otlp-logs.http-json.json");
    const METRICS: &str = include_str!("../../tests/fixtures/otel/captured-2.1.329/otlp-metrics.http-json.json");
    const TRACES: &str = include_str!("../../tests/fixtures/otel/captured-2.1.329/otlp-traces.http-json.json");

    fn bodies(fixture: &str) -> Vec<Vec<u8>> {
        let all: Vec<Value> = serde_json::from_str(fixture).unwrap();
        all.iter().map(|b| serde_json::to_vec(b).unwrap()).collect()
    }

    /// The captured export of a real session: its five api_request events, in JSON and (re-encoded)
    /// in protobuf, with their session, request ids and timings; user ids and prompts stay out.
    #[test]
    fn captured_logs_give_the_api_requests_in_both_encodings() {
        let mut json_events = Vec::new();
        let mut proto_events = Vec::new();
        for body in bodies(LOGS) {
            json_events.extend(events(&body, Signal::Logs, Encoding::Json).unwrap());
            let req: ExportLogsServiceRequest = serde_json::from_slice(&body).unwrap();
            proto_events.extend(events(&req.encode_to_vec(), Signal::Logs, Encoding::Protobuf).unwrap());
        }
        assert_eq!(json_events, proto_events);
        assert_eq!(json_events.len(), 5);
        let (first, at) = &json_events[0];
        assert_eq!(first["hook_event_name"], "claude_code.api_request");
        assert_eq!(first["session_id"], "2cfb142e-3e2c-45c5-8192-58e43d4a510f");
        assert_eq!(first["request_id"], "req_011CMock235482140");
        assert_eq!((first["duration_ms"].as_u64(), first["ttft_ms"].as_u64()), (Some(490), Some(14)));
        assert_eq!(*at, 1_795_235_482_624_000_000);
        let text = serde_json::to_string(&json_events).unwrap();
        assert!(!text.contains("user.id") && !text.contains("969f1be3"), "{text}");
        for body in bodies(METRICS) {
            assert!(events(&body, Signal::Metrics, Encoding::Json).unwrap().is_empty());
        }
        for body in bodies(TRACES) {
            assert!(events(&body, Signal::Traces, Encoding::Json).unwrap().is_empty());
        }
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(events(b"{not json", Signal::Logs, Encoding::Json).is_err());
        assert!(events(&[0xff, 0xff, 0xff], Signal::Traces, Encoding::Protobuf).is_err());
        assert_eq!(Encoding::of_content_type("application/x-protobuf"), Some(Encoding::Protobuf));
        assert_eq!(Encoding::of_content_type("Application/JSON; charset=utf-8"), Some(Encoding::Json));
        assert_eq!(Encoding::of_content_type("text/plain"), None);
    }
}
