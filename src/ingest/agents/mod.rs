//! The seam where an agent's hook payloads become [`Event`]s: one parser per agent, each pure
//! (a payload and its receive time in, an event or a [`Rejected`] out), each deciding what of its
//! payloads is kept at rest. Claude Code's came first, Codex CLI's is beside it; Gemini CLI's comes.
//! Past this seam, an event names its agent ([`Agent`]) only so that its session log is read the
//! agent's way; nothing else there knows which agent spoke.

use serde_json::{Map, Value};

use crate::model::agent::Agent;
use crate::model::capture::Capture;
use crate::model::event::{Event, Kind};
use crate::model::payload::AGENT;

pub mod claude_code;
pub mod codex;
pub mod gemini;

/// An agent's parser: which agent a payload is from, the payload as an event, what of it is kept.
impl Agent {
    /// The agent a payload came from. Agents are told apart by how they reach hooktel, not by the
    /// payload's shape (Codex CLI's share Claude Code's layout): `hooktel hook --agent <name>` marks
    /// the payload (`hooktel_agent`); an unmarked one is Claude Code's.
    pub(crate) fn of_payload(payload: &Map<String, Value>) -> Result<Agent, Rejected> {
        match payload.get(AGENT) {
            None => Ok(Agent::ClaudeCode),
            Some(Value::String(name)) => Agent::named(name).ok_or(Rejected::UnknownAgent),
            Some(_) => Err(Rejected::UnknownAgent),
        }
    }

    /// The payload as an event.
    pub(crate) fn normalize(self, payload: &Map<String, Value>, at: u64, capture: Capture) -> Result<Event, Rejected> {
        match self {
            Agent::ClaudeCode => claude_code::normalize(payload, at, capture),
            Agent::Codex => codex::normalize(payload, at, capture),
            Agent::Gemini => gemini::normalize(payload, at, capture),
        }
    }

    /// Cut `payload` to what the capture level lets the journal keep of an event of `kind`.
    pub(crate) fn keep_at_rest(self, payload: &mut Map<String, Value>, capture: Capture, kind: &Kind) {
        match self {
            // Codex's payloads have Claude Code's layout: the same fields are kept
            Agent::ClaudeCode | Agent::Codex => claude_code::keep_at_rest(payload, capture, kind),
            Agent::Gemini => gemini::keep_at_rest(payload, capture, kind),
        }
    }
}

/// Why a payload was refused; `metric_label` is the bounded `reason` label.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Rejected {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("payload must be a JSON object")]
    NotObject,
    #[error("payload has no string field `{0}`")]
    MissingField(&'static str),
    #[error("field `session_id` is empty")]
    EmptySession,
    #[error("field `{0}` is longer than {1} bytes")]
    TooLong(&'static str, usize),
    #[error("field `{0}` is not a number in its range")]
    OutOfRange(&'static str),
    #[error("{0}")]
    TooBig(crate::ingest::shape::TooBig),
    #[error("field `hooktel_agent` names no agent hooktel reads (claude-code, codex, gemini-cli)")]
    UnknownAgent,
}

impl Rejected {
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Rejected::NotJson(_) => "malformed_json",
            Rejected::NotObject => "not_an_object",
            Rejected::MissingField(_) => "missing_field",
            Rejected::EmptySession => "empty_session_id",
            Rejected::TooLong(..) => "field_too_long",
            Rejected::OutOfRange(_) => "out_of_range",
            Rejected::TooBig(too_big) => too_big.metric_label(),
            Rejected::UnknownAgent => "unknown_agent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hook_clients_mark_names_the_agent() {
        let of = |v: Value| Agent::of_payload(v.as_object().unwrap());
        assert_eq!(of(json!({"session_id": "s"})), Ok(Agent::ClaudeCode));
        assert_eq!(of(json!({"hooktel_agent": "claude-code"})), Ok(Agent::ClaudeCode));
        assert_eq!(of(json!({"hooktel_agent": "codex"})), Ok(Agent::Codex));
        for other in [json!("unknown"), json!("Codex"), json!(true), json!(null)] {
            assert_eq!(of(json!({"hooktel_agent": other})), Err(Rejected::UnknownAgent));
        }
    }
}
