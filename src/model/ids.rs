//! Identity: the trace id *is* the session, and every span id is derived from (session, kind, key).
//!
//! Nothing here is random: a replay or a duplicate delivery of the same events yields the same ids,
//! so a backend can recognise a span it has already stored. This module must never mint an id of its
//! own for a session; it only maps the `session_id` Claude Code chose.

use opentelemetry::trace::{SpanId, TraceId};
use uuid::Uuid;

/// Namespace for session ids that are not UUIDs (e.g. `served:<id>`): UUIDv5(NS, session_id).
/// Fixed forever: changing it would move every such session to a new trace id.
const NON_UUID_SESSION_NS: Uuid = Uuid::from_u128(0x6f3c_1d2a_8b4e_4c7f_9a15_2e6b_0d9c_4a71);

/// A session, by the id its agent chose, as the agent spelled it: the one type wherever hooktel names
/// a session (events, spans, usage, the journal). Cheap to clone (one shared allocation), compared
/// by its text; [`session_key`] is its identity as a number, where a map of many must not hold text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(from = "String", into = "String")]
pub struct SessionId(std::sync::Arc<str>);

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SessionId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SessionId {
    fn from(id: &str) -> SessionId {
        SessionId(id.into())
    }
}

impl From<String> for SessionId {
    fn from(id: String) -> SessionId {
        SessionId(id.into())
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.0.to_string()
    }
}

/// As an attribute value, without copying the text.
impl From<SessionId> for opentelemetry::Value {
    fn from(id: SessionId) -> opentelemetry::Value {
        opentelemetry::Value::String(id.0.into())
    }
}

impl PartialEq<str> for SessionId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SessionId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl std::borrow::Borrow<str> for SessionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The session as a UUID: itself when it parses, else its deterministic UUIDv5.
pub(crate) fn session_uuid(session_id: &str) -> Uuid {
    Uuid::parse_str(session_id).unwrap_or_else(|_| Uuid::new_v5(&NON_UUID_SESSION_NS, session_id.as_bytes()))
}

/// A session's identity as a number (its UUID's): equal for every spelling of one UUID.
pub(crate) fn session_key(session_id: &str) -> u128 {
    session_uuid(session_id).as_u128()
}

/// The trace id of a session: the 16 bytes of its UUID, so its hex is the UUID without dashes.
pub fn trace_id(session_id: &str) -> TraceId {
    TraceId::from_bytes(*session_uuid(session_id).as_bytes())
}

/// What a span stands for; part of its id so a tool call and a turn with equal keys never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SpanKey {
    /// The session root: one per session.
    Root,
    /// A resumed stretch of an ended session, keyed by the time it resumed.
    Segment,
    Turn,
    Tool,
    Subagent,
    Compaction,
    /// A model call: one API response (`message.id` + `requestId`) of a transcript.
    Chat,
    /// A custom event imported from an old event log, as a zero-length span.
    Custom,
    /// A task of an agent team's (or a session's) task list, from TaskCreated to TaskCompleted.
    Task,
}

impl SpanKey {
    /// The kind's name, as in span ids and the local store.
    pub fn tag(self) -> &'static str {
        match self {
            SpanKey::Root => "root",
            SpanKey::Segment => "segment",
            SpanKey::Turn => "turn",
            SpanKey::Tool => "tool",
            SpanKey::Subagent => "subagent",
            SpanKey::Compaction => "compaction",
            SpanKey::Chat => "chat",
            SpanKey::Custom => "custom",
            SpanKey::Task => "task",
        }
    }
}

/// The span id of (session, kind, key): the first 8 bytes of UUIDv5(session UUID, "kind:key").
pub fn span_id(session_id: &str, kind: SpanKey, key: &str) -> SpanId {
    let ns = session_uuid(session_id);
    let name = format!("{}:{}", kind.tag(), key);
    let bytes = Uuid::new_v5(&ns, name.as_bytes()).into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    if id == [0; 8] {
        id[7] = 1; // the all-zero span id is invalid in OTLP
    }
    SpanId::from_bytes(id)
}

/// The agent team a session leads, should it start one (and its own task list's name): Claude Code
/// names it `session-<first 8 characters of the session id>`.
pub(crate) fn own_team(session_id: &str) -> String {
    format!("session-{}", session_id.get(..8).unwrap_or(session_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_sessions_keep_their_bytes() {
        let sid = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
        assert_eq!(format!("{}", trace_id(sid)), "2cfb142e3e2c45c5819258e43d4a510f");
    }

    #[test]
    fn non_uuid_sessions_map_deterministically() {
        let a = trace_id("served:abc");
        assert_eq!(a, trace_id("served:abc"));
        assert_ne!(a, trace_id("served:abd"));
        assert_ne!(a, TraceId::INVALID);
    }

    #[test]
    fn span_ids_are_stable_and_distinct() {
        let s = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
        let t = span_id(s, SpanKey::Tool, "toolu_1");
        assert_eq!(t, span_id(s, SpanKey::Tool, "toolu_1"));
        assert_ne!(t, span_id(s, SpanKey::Turn, "toolu_1"));
        assert_ne!(t, span_id("3f6c2a8e-9b1d-4e7a-8c5f-2d4b6a1e9c07", SpanKey::Tool, "toolu_1"));
        assert_ne!(t, SpanId::INVALID);
    }
}
