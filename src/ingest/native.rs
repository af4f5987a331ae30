//! Claude Code's own OpenTelemetry, as received on `--otlp-listen` (OTLP/HTTP `/v1/logs`,
//! `/v1/metrics`, `/v1/traces`, protobuf or JSON): decoded, and what hooktel joins to a session
//! turned into payloads for the one ingest path, named `claude_code.<event>` and keyed by their
//! `session.id`: the log events `api_request`, `api_error`, `tool_decision`, `tool_result`; the beta
//! trace spans `llm_request`, `tool`, `tool.execution`, `tool.blocked_on_user`; the session counters
//! of [`SESSION_METRICS`]; and, for each session a logs or traces export holds records of, a
//! `claude_code.batch` at its oldest record (how late the session's batches come). And the copy
//! forwarded to hooktel's own endpoint: as received at capture `full`, else with its free-text
//! attributes cut to what the level lets out. Pure: no I/O.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use serde_json::{Map, Value};

use crate::ingest::agents::claude_code::{
    API_ERROR, API_REQUEST, METRIC, TELEMETRY_BATCH, TOOL_DECISION, TOOL_RESULT, TOOL_SPAN,
};
use crate::ingest::shape;
use crate::model::capture::{self, Capture};
pub(crate) use crate::model::otlp::{Encoding, Signal};
use crate::model::semconv;
use crate::model::time;

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

/// The elements of a body (see [`shape::MAX_ELEMENTS`]), counted on its bytes before it is
/// decoded, or why it is refused.
pub(crate) fn shape(body: &[u8], encoding: Encoding) -> Result<usize, shape::TooBig> {
    match encoding {
        Encoding::Protobuf => shape::protobuf(body),
        Encoding::Json => shape::json(body),
    }
}

/// The session events of a body: `(payload, time)` for each log record, span and data point hooktel
/// joins to the session it names.
pub(crate) fn events(body: &[u8], signal: Signal, encoding: Encoding) -> Result<Vec<(Value, u64)>, DecodeError> {
    match signal {
        Signal::Metrics => Ok(session_metrics(&decode::<ExportMetricsServiceRequest>(body, signal, encoding)?)),
        Signal::Traces => Ok(trace_spans(&decode::<ExportTraceServiceRequest>(body, signal, encoding)?)),
        Signal::Logs => Ok(log_events(&decode::<ExportLogsServiceRequest>(body, signal, encoding)?)),
    }
}

/// Attributes of Claude Code's telemetry that hold text someone wrote or a tool printed.
const PROMPTS: &[&str] = &["prompt", "prompt_text", "user_prompt"];
const COMMANDS: &[&str] = &["full_command", "bash_command", "command"];
const TEXT: &[&str] = &["tool_parameters", "tool_input", "error", "description", "output", "tool_result", "message"];

/// The body to forward at `capture`: as received at `full`; else decoded, its prompts removed, its
/// commands redacted like a hook's, other free text redacted and clipped (at `none`, all of it
/// removed), and encoded again as it came.
pub(crate) fn for_forwarding(
    body: &[u8],
    signal: Signal,
    encoding: Encoding,
    capture: Capture,
) -> Result<Vec<u8>, DecodeError> {
    if capture == Capture::Full {
        return Ok(body.to_vec());
    }
    let cut = |attrs: &mut Vec<KeyValue>| cut_attrs(attrs, capture);
    let encoded = |json: serde_json::Result<Vec<u8>>, proto: Vec<u8>| match encoding {
        Encoding::Protobuf => proto,
        Encoding::Json => json.unwrap_or_default(),
    };
    Ok(match signal {
        Signal::Logs => {
            let mut req: ExportLogsServiceRequest = decode(body, signal, encoding)?;
            for rl in &mut req.resource_logs {
                rl.resource.iter_mut().for_each(|r| cut(&mut r.attributes));
                for sl in &mut rl.scope_logs {
                    sl.log_records.iter_mut().for_each(|r| cut(&mut r.attributes));
                }
            }
            encoded(serde_json::to_vec(&req), req.encode_to_vec())
        }
        Signal::Traces => {
            let mut req: ExportTraceServiceRequest = decode(body, signal, encoding)?;
            for rs in &mut req.resource_spans {
                rs.resource.iter_mut().for_each(|r| cut(&mut r.attributes));
                for ss in &mut rs.scope_spans {
                    for span in &mut ss.spans {
                        cut(&mut span.attributes);
                        span.events.iter_mut().for_each(|e| cut(&mut e.attributes));
                    }
                }
            }
            encoded(serde_json::to_vec(&req), req.encode_to_vec())
        }
        // numbers under names and ids: nothing to cut
        Signal::Metrics => {
            let req: ExportMetricsServiceRequest = decode(body, signal, encoding)?;
            encoded(serde_json::to_vec(&req), req.encode_to_vec())
        }
    })
}

fn cut_attrs(attrs: &mut Vec<KeyValue>, capture: Capture) {
    attrs.retain_mut(|kv| {
        let key = kv.key.as_str();
        let Some(Any::StringValue(v)) = kv.value.as_mut().and_then(|v| v.value.as_mut()) else { return true };
        if PROMPTS.contains(&key) {
            return false;
        }
        let command = COMMANDS.contains(&key);
        if !command && !TEXT.contains(&key) {
            return true;
        }
        if capture == Capture::None {
            return false;
        }
        *v = if command { capture::redact_command(v) } else { capture::clip(&capture::redact_text(v), 256) };
        true
    });
}

/// The log events hooktel joins to a session.
const JOINED: &[&str] = &["api_request", "api_error", "tool_decision", "tool_result"];

/// Attributes of those events that hooktel reads, by their OTLP names, and the payload field each
/// becomes. Nothing else is kept (not the device's `user.id`, not prompts); the account's email and
/// uuid are kept past the parser only at a capture level that lets identity out.
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
    ("tool_use_id", "tool_use_id"),
    ("decision", "decision"),
    ("source", "decision_source"),
    ("user.email", "user_email"),
    ("user.account_uuid", "user_account_uuid"),
];

fn log_events(req: &ExportLogsServiceRequest) -> Vec<(Value, u64)> {
    let mut out = Vec::new();
    let mut batches = Batches::default();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                let at = if record.time_unix_nano > 0 { record.time_unix_nano } else { record.observed_time_unix_nano };
                batches.record(&record.attributes, at);
                let name =
                    attr(&record.attributes, "event.name").and_then(|v| v.as_str().map(str::to_owned)).or_else(|| {
                        match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                            Some(Any::StringValue(s)) => s.strip_prefix("claude_code.").map(str::to_owned),
                            _ => None,
                        }
                    });
                let Some(name) = name.filter(|n| JOINED.contains(&n.as_str())) else { continue };
                let Some(payload) = payload(&record.attributes, &format!("claude_code.{name}")) else { continue };
                if name.starts_with("tool_") && payload.get("tool_use_id").is_none() {
                    continue;
                }
                out.push((payload, at));
            }
        }
    }
    batches.into_events(out)
}

/// Most sessions one export is noted as a batch of: Claude Code's exports each hold one session's
/// records; past it, a made-up export's other sessions teach nothing.
const MAX_BATCH_SESSIONS: usize = 16;

/// The sessions an export holds records of (any record, joined or not: Claude Code's batch timer
/// starts at the first record after an export, often a `hook_execution_start`), each with its oldest
/// record's time. Sent as a `claude_code.batch` event per session: how long after that time the export
/// arrived is how long the session's batches take (Claude Code's export interval, `OTEL_LOGS_EXPORT_INTERVAL`).
#[derive(Default)]
struct Batches(Vec<(String, u64)>);

impl Batches {
    fn record(&mut self, attrs: &[KeyValue], at: u64) {
        let Some(Value::String(sid)) = attr(attrs, "session.id") else { return };
        if at == 0 {
            return;
        }
        if let Some((_, oldest)) = self.0.iter_mut().find(|(s, _)| *s == sid) {
            *oldest = (*oldest).min(at);
        } else if self.0.len() < MAX_BATCH_SESSIONS {
            self.0.push((sid, at));
        }
    }

    /// The batch events first, then `events`.
    fn into_events(self, events: Vec<(Value, u64)>) -> Vec<(Value, u64)> {
        let batch =
            |(sid, at): (String, u64)| (serde_json::json!({"session_id": sid, "hook_event_name": TELEMETRY_BATCH}), at);
        self.0.into_iter().map(batch).chain(events).collect()
    }
}

/// Claude Code's beta trace spans. A `claude_code.llm_request` says what an `api_request` event
/// says (request id, duration, time to first token, and also the try), so it times its chat span
/// the same way. A `claude_code.tool` span ties its own span id to its `tool_use_id`; its
/// `tool.blocked_on_user` child (no `tool_use_id` of its own, and often in another batch than its
/// parent) is the tool call's exact permission wait and decision, its `tool.execution` child the
/// execution time. Each becomes a payload; the spans themselves are dropped (hooktel has the turn,
/// model-call and tool spans), so no call is ever two spans.
fn trace_spans(req: &ExportTraceServiceRequest) -> Vec<(Value, u64)> {
    let mut out = Vec::new();
    let mut batches = Batches::default();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                // a span is queued for export when it ends
                batches.record(&span.attributes, span.end_time_unix_nano);
                let failed = attr(&span.attributes, "success") == Some(Value::Bool(false));
                let (name, otel_tool_span) = match span.name.as_str() {
                    "claude_code.llm_request" if failed => (API_ERROR, None),
                    "claude_code.llm_request" => (API_REQUEST, None),
                    "claude_code.tool" => (TOOL_SPAN, Some(&span.span_id)),
                    "claude_code.tool.execution" => (TOOL_RESULT, Some(&span.parent_span_id)),
                    "claude_code.tool.blocked_on_user" => (TOOL_DECISION, Some(&span.parent_span_id)),
                    _ => continue,
                };
                let Some(Value::Object(mut payload)) = payload(&span.attributes, name) else { continue };
                if let Some(id) = otel_tool_span.filter(|id| !id.is_empty()) {
                    payload.insert("otel_tool_span".into(), Value::String(hex(id)));
                }
                if name == TOOL_DECISION {
                    // the wait itself, measured by Claude Code (not from a start before 2020: a
                    // start of 0 made a wait of 56 years)
                    let took = (span.start_time_unix_nano >= time::EARLIEST_NS)
                        .then(|| span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / 1_000_000);
                    if let Some(wait) = payload.remove("duration_ms").or(took.map(Value::from)) {
                        payload.insert("wait_ms".into(), wait);
                    }
                }
                let keyed = ["request_id", "tool_use_id", "otel_tool_span"].iter().any(|k| payload.contains_key(*k));
                if keyed {
                    out.push((Value::Object(payload), span.end_time_unix_nano));
                }
            }
        }
    }
    batches.into_events(out)
}

/// Claude Code's per-session counters (`claude_code.lines_of_code.count` and the others of
/// [`SESSION_METRICS`]): one payload per data point that names its session, with the session
/// attribute it adds to (deltas, Claude Code's default) or sets (cumulative).
fn session_metrics(req: &ExportMetricsServiceRequest) -> Vec<(Value, u64)> {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as Number};
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                let Some(Data::Sum(sum)) = &metric.data else { continue };
                let cumulative = sum.aggregation_temporality == 2;
                for point in &sum.data_points {
                    let kind = attr(&point.attributes, "type");
                    let kind = kind.as_ref().and_then(Value::as_str).unwrap_or("");
                    let Some((_, _, target)) =
                        SESSION_METRICS.iter().find(|(m, t, _)| *m == metric.name && (t.is_empty() || *t == kind))
                    else {
                        continue;
                    };
                    let value = match point.value {
                        Some(Number::AsDouble(d)) => d,
                        Some(Number::AsInt(i)) => i as f64,
                        None => continue,
                    };
                    let Some(Value::Object(mut payload)) = payload(&point.attributes, METRIC) else { continue };
                    payload.insert("metric".into(), Value::String((*target).into()));
                    payload.insert("value".into(), Value::from(value));
                    payload.insert("cumulative".into(), Value::Bool(cumulative));
                    out.push((Value::Object(payload), point.time_unix_nano));
                }
            }
        }
    }
    out
}

/// Claude Code's session counters hooktel keeps on the session's root span: the metric, its `type`
/// attribute (any when empty), and the root's attribute. Tokens and cost are not among them: the
/// transcripts give those exactly, per model call.
const SESSION_METRICS: &[(&str, &str, &str)] = &[
    ("claude_code.lines_of_code.count", "added", semconv::SESSION_LINES_ADDED),
    ("claude_code.lines_of_code.count", "removed", semconv::SESSION_LINES_REMOVED),
    ("claude_code.commit.count", "", semconv::SESSION_COMMITS),
    ("claude_code.pull_request.count", "", semconv::SESSION_PULL_REQUESTS),
    ("claude_code.active_time.total", "user", semconv::SESSION_ACTIVE_USER_S),
    ("claude_code.active_time.total", "cli", semconv::SESSION_ACTIVE_CLI_S),
];

/// A span id as OTLP/JSON writes it: lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload of a session event named `name` from OTLP attributes: the [`FIELDS`] it has, under
/// their payload names; `None` without a session.
fn payload(attrs: &[KeyValue], name: &str) -> Option<Value> {
    let mut payload: Map<String, Value> =
        FIELDS.iter().filter_map(|(otlp, field)| Some(((*field).to_owned(), attr(attrs, otlp)?))).collect();
    if !payload.get("session_id").is_some_and(Value::is_string) {
        return None;
    }
    payload.insert("hook_event_name".into(), Value::String(name.into()));
    Some(Value::Object(payload))
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

    /// A count as Claude Code sends it: a number, or a number in a string.
    fn count(v: &Value) -> u64 {
        v.as_u64().or_else(|| v.as_str()?.parse().ok()).unwrap_or_else(|| panic!("not a count: {v}"))
    }

    fn bodies(fixture: &str) -> Vec<Vec<u8>> {
        let all: Vec<Value> = serde_json::from_str(fixture).unwrap();
        all.iter().map(|b| serde_json::to_vec(b).unwrap()).collect()
    }

    /// The captured export of a real session, in JSON and (re-encoded) in protobuf: its five
    /// api_request events with their session, request ids and timings, and its tool calls'
    /// decisions and results; user ids and prompts stay out.
    #[test]
    fn captured_logs_give_the_api_requests_and_tool_reports_in_both_encodings() {
        let mut json_events = Vec::new();
        let mut proto_events = Vec::new();
        for body in bodies(LOGS) {
            json_events.extend(events(&body, Signal::Logs, Encoding::Json).unwrap());
            let req: ExportLogsServiceRequest = serde_json::from_slice(&body).unwrap();
            proto_events.extend(events(&req.encode_to_vec(), Signal::Logs, Encoding::Protobuf).unwrap());
        }
        assert_eq!(json_events, proto_events);
        let named = |name: &str| json_events.iter().filter(|(p, _)| p["hook_event_name"] == name).count();
        assert_eq!((named(API_REQUEST), named(TOOL_DECISION), named(TOOL_RESULT)), (5, 4, 4));
        assert_eq!(json_events.len(), 13 + 4, "and one batch of the session per export");
        let (first, at) = json_events.iter().find(|(p, _)| p["hook_event_name"] == API_REQUEST).unwrap();
        assert_eq!(first["session_id"], "2cfb142e-3e2c-45c5-8192-58e43d4a510f");
        assert_eq!(first["request_id"], "req_011CMock235482140");
        assert_eq!((first["duration_ms"].as_u64(), first["ttft_ms"].as_u64()), (Some(490), Some(14)));
        assert_eq!(*at, 1_795_235_482_624_000_000);
        let result = json_events.iter().find(|(p, _)| p["hook_event_name"] == TOOL_RESULT).unwrap();
        assert_eq!(
            (result.0["tool_use_id"].as_str(), count(&result.0["duration_ms"])),
            (Some("toolu_01Mock25235482140"), 64)
        );
        let decision = json_events.iter().find(|(p, _)| p["hook_event_name"] == TOOL_DECISION).unwrap();
        assert_eq!(
            (decision.0["decision"].as_str(), decision.0["decision_source"].as_str()),
            (Some("accept"), Some("config"))
        );
        let text = serde_json::to_string(&json_events).unwrap();
        for kept_out in ["user.id", "969f1be3", "tool_parameters", "hello-from-bash"] {
            assert!(!text.contains(kept_out), "{kept_out}: {text}");
        }
    }

    /// Each export is a batch of its session, at its oldest record of any kind (the first body's is
    /// `managed_settings_resolved`, at start-up), before the events it joins; a made-up export of many
    /// sessions is a batch of `MAX_BATCH_SESSIONS` of them.
    #[test]
    fn each_export_is_a_batch_of_its_session_at_its_oldest_record() {
        let batches: Vec<Vec<(Value, u64)>> = bodies(LOGS)
            .iter()
            .map(|b| events(b, Signal::Logs, Encoding::Json).unwrap())
            .map(|evs| evs.into_iter().filter(|(p, _)| p["hook_event_name"] == TELEMETRY_BATCH).collect())
            .collect();
        let oldest: Vec<u64> = batches.iter().map(|b| b[0].1).collect();
        assert_eq!(
            oldest,
            [
                1_795_235_481_700_000_000,
                1_795_235_482_328_000_000,
                1_795_235_482_926_000_000,
                1_795_235_483_507_000_000
            ]
        );
        for b in &batches {
            assert_eq!(b.len(), 1);
            assert_eq!(b[0].0["session_id"], "2cfb142e-3e2c-45c5-8192-58e43d4a510f");
        }
        let first = events(&bodies(LOGS)[1], Signal::Logs, Encoding::Json).unwrap();
        assert_eq!(first[0].0["hook_event_name"], TELEMETRY_BATCH, "the batch comes before its events");

        let records: Vec<Value> = (0..100)
            .map(|i| {
                serde_json::json!({"timeUnixNano": (1000 + i).to_string(), "attributes": [
                    {"key": "session.id", "value": {"stringValue": format!("s{}", i % 50)}},
                    {"key": "event.name", "value": {"stringValue": "hook_execution_start"}}]})
            })
            .collect();
        let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]});
        let evs = events(body.to_string().as_bytes(), Signal::Logs, Encoding::Json).unwrap();
        assert_eq!(evs.len(), MAX_BATCH_SESSIONS);
        assert_eq!((evs[1].0["session_id"].as_str(), evs[1].1), (Some("s1"), 1001), "each at its oldest record");
    }

    /// The beta trace spans: each llm_request as the api_request it matches, with its try; each
    /// tool span's id with its tool_use_id; each execution and permission wait under the id of its
    /// tool span. Nothing of the interaction span (it holds the prompt).
    #[test]
    fn captured_traces_give_model_calls_and_tool_timings() {
        let mut spans = Vec::new();
        for body in bodies(TRACES) {
            spans.extend(events(&body, Signal::Traces, Encoding::Json).unwrap());
        }
        let named = |name: &str| spans.iter().filter(|(p, _)| p["hook_event_name"] == name).collect::<Vec<_>>();
        assert_eq!(named(API_REQUEST).len(), 5);
        let first = spans.iter().find(|(p, _)| p["request_id"] == "req_011CMock235482140").unwrap();
        assert_eq!((first.0["duration_ms"].as_u64(), first.0["attempt"].as_u64()), (Some(501), Some(1)));
        assert_eq!(first.1, 1_795_235_482_623_904_387);
        let tools = named(TOOL_SPAN);
        assert_eq!(tools.len(), 4);
        let bash = tools.iter().find(|(p, _)| p["tool_use_id"] == "toolu_01Mock25235482140").unwrap();
        assert_eq!(bash.0["otel_tool_span"], "d4acc8d2b06cf475");
        let waits = named(TOOL_DECISION);
        assert_eq!(waits.len(), 4);
        let bash_wait = waits.iter().find(|(p, _)| p["otel_tool_span"] == "d4acc8d2b06cf475").unwrap();
        assert_eq!((count(&bash_wait.0["wait_ms"]), bash_wait.0["decision"].as_str()), (21, Some("accept")));
        assert!(bash_wait.0.get("tool_use_id").is_none());
        let executions = named(TOOL_RESULT);
        assert_eq!(executions.len(), 4);
        let bash_run = executions.iter().find(|(p, _)| p["tool_use_id"] == "toolu_01Mock25235482140").unwrap();
        assert_eq!(
            (bash_run.0["otel_tool_span"].as_str(), count(&bash_run.0["duration_ms"])),
            (Some("d4acc8d2b06cf475"), 64)
        );
        let text = serde_json::to_string(&spans).unwrap();
        assert!(!text.contains("REDACTED") && !text.contains("echo hello"), "{text}");
    }

    /// The session counters of the captured metrics (here only the active time: the session wrote
    /// no code), added up over its delta exports; tokens and cost are not taken from here.
    #[test]
    fn captured_metrics_give_the_session_counters() {
        let mut points = Vec::new();
        for body in bodies(METRICS) {
            points.extend(events(&body, Signal::Metrics, Encoding::Json).unwrap());
        }
        assert_eq!(points.len(), 1, "{points:?}");
        let (p, _) = &points[0];
        assert_eq!(
            (p["hook_event_name"].as_str(), p["metric"].as_str()),
            (Some(METRIC), Some(semconv::SESSION_ACTIVE_CLI_S))
        );
        assert_eq!((p["value"].as_f64(), p["cumulative"].as_bool()), (Some(2.006), Some(false)));
    }

    /// What is forwarded follows the capture level: as received at `full`; below it no prompt,
    /// commands redacted, other free text redacted (at `none`, gone); the rest intact and decodable.
    #[test]
    fn the_forwarded_copy_is_cut_to_the_capture_level() {
        let body = serde_json::json!({"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "claude-code"}}]},
          "scopeLogs": [{"logRecords": [{"timeUnixNano": "1", "body": {"stringValue": "claude_code.tool_result"},
            "attributes": [
              {"key": "session.id", "value": {"stringValue": "s-1"}},
              {"key": "prompt", "value": {"stringValue": "SECRET-PROMPT"}},
              {"key": "full_command", "value": {"stringValue": "mysql -pSECRETPW db"}},
              {"key": "tool_parameters", "value": {"stringValue": "{\"command\":\"curl -H 'Authorization: Bearer SECRETTOKEN1234567890' x\"}"}},
              {"key": "duration_ms", "value": {"intValue": "64"}}]}]}]}]});
        let json = serde_json::to_vec(&body).unwrap();
        assert_eq!(for_forwarding(&json, Signal::Logs, Encoding::Json, Capture::Full).unwrap(), json);
        for capture in [Capture::Metadata, Capture::None] {
            for encoding in [Encoding::Json, Encoding::Protobuf] {
                let input = match encoding {
                    Encoding::Json => json.clone(),
                    Encoding::Protobuf => {
                        serde_json::from_slice::<ExportLogsServiceRequest>(&json).unwrap().encode_to_vec()
                    }
                };
                let out = for_forwarding(&input, Signal::Logs, encoding, capture).unwrap();
                let req: ExportLogsServiceRequest = decode(&out, Signal::Logs, encoding).unwrap();
                let attrs = &req.resource_logs[0].scope_logs[0].log_records[0].attributes;
                let text = format!("{attrs:?}");
                for secret in ["SECRET-PROMPT", "SECRETPW", "SECRETTOKEN"] {
                    assert!(!text.contains(secret), "{capture:?} {encoding:?}: {text}");
                }
                assert!(attr(attrs, "session.id").is_some() && attr(attrs, "duration_ms").is_some(), "{text}");
                assert_eq!(attr(attrs, "full_command").is_some(), capture == Capture::Metadata, "{text}");
            }
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
