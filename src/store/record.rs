//! The stored form of a finished span: plain serde data, no OpenTelemetry types. One codec for the
//! export spool and the local store's `record` column.
//!
//! A number that is not finite is never written (JSON has no form for it: it became `null`, which
//! no longer read back as a number); a `null` where such a number was (as written before) reads
//! back as the attribute left out. A batch is decoded record by record: one that cannot be decoded
//! is set aside and counted, never taking its batch with it.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{KeyValue, Value};
use serde::{Deserialize, Serialize};

use crate::model::agent::Agent;
use crate::model::ids::{SessionId, SpanKey};
use crate::model::semconv;
use crate::model::span::{
    ChatCall, SpanEvent, SpanLink, SpanRecord, SpanUsage, Status, Subject, TeamMember, ToolRun, TurnOutcome,
};

/// A span as stored: plain data, no OpenTelemetry types.
#[derive(Serialize, Deserialize)]
struct Stored {
    trace: [u8; 16],
    span: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    key: SpanKey,
    start: u64,
    end: u64,
    attrs: Attrs,
    /// (name, time, attributes)
    events: Vec<(String, u64, Attrs)>,
    dropped_events: u32,
    error: Option<String>,
    ok: bool,
    project: String,
    /// Absent in records written before the repository was a typed fact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    repo: String,
    /// Empty in records written before the typed fields existed: their attributes hold all.
    #[serde(default)]
    session: String,
    #[serde(default)]
    incomplete: bool,
    #[serde(default)]
    usage: Option<SpanUsage>,
    #[serde(default)]
    tool: Option<ToolRun>,
    #[serde(default)]
    turn: Option<TurnOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chat: Option<ChatCall>,
    /// (trace, span, kind)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    links: Vec<([u8; 16], [u8; 8], String)>,
    /// Absent in records written before the team was a typed fact: their attributes hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team: Option<TeamMember>,
    /// Absent in records written before the subject was a typed fact: their attributes hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Subject>,
    /// The agent's name; absent for Claude Code's, and in records written before the agent was a
    /// typed fact (read as Claude Code's, as is a name this version does not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
}

type Attrs = Vec<(String, Attr)>;

#[derive(Serialize, Deserialize)]
enum Attr {
    S(String),
    I(i64),
    /// `None`: a `null`, which is what a number that was not finite was written as.
    F(Option<f64>),
    B(bool),
    /// A list of strings (a root's `hooktel.pull_requests`).
    A(Vec<String>),
}

/// The attributes as stored; a float that is not finite is left out (JSON cannot hold it).
fn to_attrs(kvs: &[KeyValue]) -> Attrs {
    kvs.iter()
        .filter_map(|kv| {
            let v = match &kv.value {
                Value::Bool(b) => Attr::B(*b),
                Value::I64(i) => Attr::I(*i),
                Value::F64(f) if !f.is_finite() => return None,
                Value::F64(f) => Attr::F(Some(*f)),
                Value::Array(opentelemetry::Array::String(items)) => {
                    Attr::A(items.iter().map(|s| s.as_str().to_owned()).collect())
                }
                other => Attr::S(other.as_str().into_owned()),
            };
            Some((kv.key.as_str().to_owned(), v))
        })
        .collect()
}

fn from_attrs(attrs: Attrs) -> Vec<KeyValue> {
    attrs
        .into_iter()
        .filter_map(|(k, v)| {
            Some(match v {
                Attr::S(s) => KeyValue::new(k, s),
                Attr::I(i) => KeyValue::new(k, i),
                Attr::F(f) => KeyValue::new(k, f?),
                Attr::B(b) => KeyValue::new(k, b),
                Attr::A(items) => {
                    let items = items.into_iter().map(Into::into).collect();
                    KeyValue::new(k, Value::Array(opentelemetry::Array::String(items)))
                }
            })
        })
        .collect()
}

/// Move `session.id` out of an older record's attributes (and drop its twin
/// `gen_ai.conversation.id`): the typed field now carries both.
fn take_legacy_session(attrs: &mut Vec<KeyValue>) -> String {
    let session =
        attrs.iter().find(|kv| kv.key.as_str() == semconv::SESSION_ID).map(|kv| kv.value.as_str().into_owned());
    if session.is_some() {
        attrs.retain(|kv| !matches!(kv.key.as_str(), semconv::SESSION_ID | semconv::CONVERSATION_ID));
    }
    session.unwrap_or_default()
}

/// A batch of spans as one blob.
pub(crate) fn encode(spans: &[SpanRecord]) -> Vec<u8> {
    let stored: Vec<Stored> = spans
        .iter()
        .map(|r| Stored {
            trace: r.trace_id.to_bytes(),
            span: r.span_id.to_bytes(),
            parent: r.parent.map(|p| p.to_bytes()),
            name: r.name.clone(),
            key: r.key,
            start: r.start,
            end: r.end,
            attrs: to_attrs(&r.attrs),
            events: r.events.iter().map(|e| (e.name.clone(), e.at, to_attrs(&e.attrs))).collect(),
            dropped_events: r.dropped_events,
            error: match &r.status {
                Status::Error(m) => Some(m.clone()),
                _ => None,
            },
            ok: r.status == Status::Ok,
            project: r.project.clone(),
            repo: r.repo.clone(),
            session: r.session_id.to_string(),
            incomplete: r.incomplete,
            // a cost that is not finite would be written as `null` and not read back
            usage: r.usage.clone().map(|u| SpanUsage { cost: if u.cost.is_finite() { u.cost } else { 0.0 }, ..u }),
            tool: r.tool,
            turn: r.turn.clone(),
            chat: r.chat.clone(),
            links: r.links.iter().map(|l| (l.trace_id.to_bytes(), l.span_id.to_bytes(), l.kind.clone())).collect(),
            team: r.team.clone(),
            subject: r.subject.clone(),
            agent: (r.agent != Agent::ClaudeCode).then(|| r.agent.name().to_owned()),
        })
        .collect();
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// What a blob held: the spans that decode, and how many records could not be decoded.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) spans: Vec<SpanRecord>,
    /// Records set aside: damaged, or written by a version whose records this one cannot read.
    pub(crate) set_aside: usize,
}

/// The spans of a blob written by [`encode`], record by record: a record that cannot be decoded is
/// set aside (counted in [`Decoded::set_aside`]) and the others kept. An error only when the blob
/// is not a list of records at all (never an empty batch).
pub(crate) fn decode(blob: &[u8]) -> serde_json::Result<Decoded> {
    // the whole batch at once when it is sound (the replay's speed); else each record on its own
    let (stored, set_aside) = match serde_json::from_slice::<Vec<Stored>>(blob) {
        Ok(stored) => (stored, 0),
        Err(_) => {
            let records: Vec<serde_json::Value> = serde_json::from_slice(blob)?;
            let n = records.len();
            let stored: Vec<Stored> = records.into_iter().filter_map(|r| serde_json::from_value(r).ok()).collect();
            let set_aside = n - stored.len();
            (stored, set_aside)
        }
    };
    Ok(Decoded { spans: spans_of(stored), set_aside })
}

fn spans_of(stored: Vec<Stored>) -> Vec<SpanRecord> {
    stored
        .into_iter()
        .map(|s| {
            let mut attrs = from_attrs(s.attrs);
            // an older record kept the session and incompleteness as attributes
            let session = if s.session.is_empty() { take_legacy_session(&mut attrs) } else { s.session };
            let team = s.team.or_else(|| take_legacy_team(&mut attrs));
            let subject = s.subject.or_else(|| take_legacy_subject(s.key, &mut attrs));
            SpanRecord {
                trace_id: TraceId::from_bytes(s.trace),
                span_id: SpanId::from_bytes(s.span),
                parent: s.parent.map(SpanId::from_bytes),
                name: s.name,
                key: s.key,
                start: s.start,
                end: s.end,
                session_id: SessionId::from(session),
                agent: s.agent.as_deref().and_then(Agent::named).unwrap_or_default(),
                attrs,
                events: s
                    .events
                    .into_iter()
                    .map(|(name, at, attrs)| SpanEvent { name, at, attrs: from_attrs(attrs) })
                    .collect(),
                dropped_events: s.dropped_events,
                status: match (s.error, s.ok) {
                    (Some(m), _) => Status::Error(m),
                    (None, true) => Status::Ok,
                    _ => Status::Unset,
                },
                project: s.project,
                repo: s.repo,
                incomplete: s.incomplete,
                usage: s.usage,
                tool: s.tool,
                turn: s.turn,
                chat: s.chat,
                links: s
                    .links
                    .into_iter()
                    .map(|(t, sp, kind)| SpanLink {
                        trace_id: TraceId::from_bytes(t),
                        span_id: SpanId::from_bytes(sp),
                        kind,
                    })
                    .collect(),
                team,
                subject,
            }
        })
        .collect()
}

/// Move a tool's or an agent's name out of an older record's attributes into the typed fact.
fn take_legacy_subject(key: SpanKey, attrs: &mut Vec<KeyValue>) -> Option<Subject> {
    let get = |k: &str| attrs.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.as_str().into_owned());
    let subject = match key {
        SpanKey::Tool => Subject::Tool(get(semconv::TOOL_NAME)?),
        SpanKey::Subagent if get(semconv::AGENT_KIND).as_deref() == Some("teammate") => {
            Subject::Teammate(get(semconv::AGENT_NAME)?)
        }
        SpanKey::Subagent => Subject::Subagent(get(semconv::AGENT_NAME)?),
        _ => return None,
    };
    attrs.retain(|kv| !matches!(kv.key.as_str(), semconv::TOOL_NAME | semconv::AGENT_NAME | semconv::AGENT_KIND));
    Some(subject)
}

/// Move `hooktel.team.name` and `.agent` out of an older record's attributes into the typed fact.
fn take_legacy_team(attrs: &mut Vec<KeyValue>) -> Option<TeamMember> {
    let get = |key: &str| attrs.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned());
    let team = get(semconv::TEAM_NAME)?;
    let agent = get(semconv::TEAM_AGENT).unwrap_or_default();
    attrs.retain(|kv| !matches!(kv.key.as_str(), semconv::TEAM_NAME | semconv::TEAM_AGENT));
    Some(TeamMember { team, agent })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn span(i: u8) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId::from_bytes([i; 16]),
            span_id: SpanId::from_bytes([i; 8]),
            parent: Some(SpanId::from_bytes([9; 8])),
            name: format!("execute_tool T{i}"),
            key: SpanKey::Tool,
            start: 1,
            end: 2,
            attrs: vec![
                KeyValue::new("a", "b"),
                KeyValue::new("n", 3_i64),
                KeyValue::new("f", 0.5),
                KeyValue::new("t", true),
                KeyValue::new("l", Value::Array(opentelemetry::Array::String(vec!["u1".into(), "u2".into()]))),
            ],
            events: vec![SpanEvent { name: "E".into(), at: 1, attrs: vec![KeyValue::new("x", 1_i64)] }],
            dropped_events: 2,
            status: Status::Error("boom".into()),
            project: "p".into(),
            repo: "github.com/acme/widgets".into(),
            session_id: "s-1".into(),
            agent: if i == 2 { Agent::Codex } else { Agent::ClaudeCode },
            incomplete: i % 2 == 0,
            usage: Some(SpanUsage { cost: 0.25, models: vec!["m".into()], ..SpanUsage::default() }),
            tool: Some(ToolRun {
                status: crate::model::span::ToolStatus::Denied,
                duration_ms: Some(7),
                pull_request: Some(crate::model::pull_request::Forge::GitLab),
            }),
            turn: None,
            chat: (i == 1).then(|| ChatCall {
                response_id: "msg_1".into(),
                request_id: "req_1".into(),
                finish_reason: Some("end_turn".into()),
            }),
            links: if i == 2 {
                vec![SpanLink {
                    trace_id: TraceId::from_bytes([7; 16]),
                    span_id: SpanId::from_bytes([7; 8]),
                    kind: "forked_from".into(),
                }]
            } else {
                Vec::new()
            },
            team: (i == 1).then(|| TeamMember { team: "session-859c7e3e".into(), agent: "researcher".into() }),
            subject: Some(Subject::Tool(format!("T{i}"))),
        }
    }

    /// A record written when the team was still two attributes reads back with the typed fact, and
    /// without the attributes twice.
    #[test]
    fn an_older_records_team_attributes_become_its_team() {
        let mut old = span(3);
        old.attrs.push(KeyValue::new(semconv::TEAM_NAME, "session-859c7e3e"));
        old.attrs.push(KeyValue::new(semconv::TEAM_AGENT, "team-lead"));
        let read = decode(&encode(&[old])).unwrap().spans.remove(0);
        let member = read.team.clone().unwrap();
        assert_eq!((member.team.as_str(), member.role()), ("session-859c7e3e", crate::model::span::TeamRole::Lead));
        let names: Vec<String> = read.attributes().iter().map(|kv| kv.key.to_string()).collect();
        assert_eq!(names.iter().filter(|n| *n == semconv::TEAM_NAME).count(), 1, "{names:?}");
        // and its tool's name, kept as an attribute then, is the span's subject now
        let mut old = span(4);
        old.subject = None;
        old.attrs.push(KeyValue::new(semconv::TOOL_NAME, "Bash"));
        let read = decode(&encode(&[old])).unwrap().spans.remove(0);
        assert_eq!(read.subject, Some(Subject::Tool("Bash".into())));
        assert_eq!(read.attributes().iter().filter(|kv| kv.key.as_str() == semconv::TOOL_NAME).count(), 1);
    }

    #[test]
    fn batches_round_trip() {
        let batch: Vec<_> = (0..3).map(span).collect();
        assert_eq!(decode(&encode(&batch)).unwrap().spans, batch);
        assert!(decode(b"not a batch").is_err());
    }

    /// A float that is not finite was written as `null` and made its record, its batch and every
    /// view of the local store undecodable: it is not written now, and such a record reads back
    /// without it.
    #[test]
    fn a_float_that_is_not_finite_never_poisons_its_record() {
        fn poisoned_twin() -> SpanRecord {
            let mut poisoned = span(1);
            poisoned.attrs.push(KeyValue::new("hooktel.session.active_time.user_s", f64::INFINITY));
            poisoned.attrs.push(KeyValue::new("nan", f64::NAN));
            poisoned.usage.as_mut().unwrap().cost = f64::INFINITY;
            poisoned
        }
        let blob = encode(&[poisoned_twin()]);
        let text = String::from_utf8_lossy(&blob);
        assert!(!text.contains(r#"{"F":null}"#) && !text.contains(r#""cost":null"#), "{text}");
        let read = decode(&blob).unwrap();
        assert_eq!((read.spans.len(), read.set_aside), (1, 0));
        assert_eq!(read.spans[0].attrs, span(1).attrs, "the others kept");
        assert_eq!(read.spans[0].usage.as_ref().unwrap().cost, 0.0);
        // and what delivery counts before it encodes
        let mut counted = poisoned_twin();
        assert_eq!(counted.drop_non_finite(), 3);
        assert_eq!((counted.attrs, counted.usage.unwrap().cost), (span(1).attrs, 0.0));
        // as the code before wrote it
        let old = String::from_utf8(encode(&[span(1)])).unwrap().replace(r#"{"F":0.5}"#, r#"{"F":null}"#);
        let read = decode(old.as_bytes()).unwrap();
        assert_eq!((read.spans.len(), read.set_aside), (1, 0));
        assert!(read.spans[0].attr("f").is_none() && read.spans[0].attr("n").is_some());
    }

    /// One record that cannot be decoded is set aside, counted; its neighbours are kept.
    #[test]
    fn a_bad_record_is_set_aside_and_its_neighbours_kept() {
        let batch: Vec<_> = (0..3).map(span).collect();
        let mut records: Vec<serde_json::Value> = serde_json::from_slice(&encode(&batch)).unwrap();
        records[1]["start"] = serde_json::Value::Null;
        let read = decode(&serde_json::to_vec(&records).unwrap()).unwrap();
        assert_eq!(read.set_aside, 1);
        assert_eq!(read.spans, vec![batch[0].clone(), batch[2].clone()]);
        records.push(serde_json::json!("not a record"));
        assert_eq!(decode(&serde_json::to_vec(&records).unwrap()).unwrap().set_aside, 2);
    }

    /// Records written before the typed fields kept the session as attributes: they still decode,
    /// and still leave the process with one `session.id`.
    #[test]
    fn older_records_decode_with_their_session() {
        let legacy = br#"[{"trace":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"span":[2,2,2,2,2,2,2,2],"parent":null,
            "name":"claude-code session","key":"Root","start":1,"end":2,
            "attrs":[["session.id",{"S":"s-9"}],["gen_ai.conversation.id",{"S":"s-9"}],["hooktel.incomplete",{"B":true}]],
            "events":[],"dropped_events":0,"error":null,"ok":false,"project":"p"}]"#;
        let spans = decode(legacy).unwrap().spans;
        assert_eq!((&*spans[0].session_id, spans[0].agent), ("s-9", Agent::ClaudeCode));
        let attrs = spans[0].attributes();
        assert_eq!(attrs.iter().filter(|kv| kv.key.as_str() == "session.id").count(), 1);
        assert_eq!(spans[0].attr("gen_ai.conversation.id").as_deref(), Some("s-9"));
        assert_eq!(spans[0].attr("hooktel.incomplete").as_deref(), Some("true"));
    }
}
