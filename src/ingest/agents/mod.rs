//! The seam where an agent's hook payloads become [`Event`]s: one parser per agent, each pure
//! (a payload and its receive time in, an event or a [`Rejected`] out), each deciding what of its
//! payloads is kept at rest. Claude Code's is the first; Codex CLI's and Gemini CLI's come beside it.
//! Past this seam, an event names its agent ([`Agent`]) only so that its session log is read the
//! agent's way; nothing else there knows which agent spoke.

use serde_json::{Map, Value};

use crate::model::agent::Agent;
use crate::model::capture::Capture;
use crate::model::event::{Event, Kind};

pub mod claude_code;

/// An agent's parser: which agent a payload is from, the payload as an event, what of it is kept.
impl Agent {
    /// The agent a payload came from. Claude Code's is the only parser yet; the next agents are told
    /// apart by how they reach hooktel (their hook command's argument or their HTTP route), since
    /// Codex CLI's payloads share Claude Code's layout.
    pub(crate) fn of_payload(_payload: &Map<String, Value>) -> Agent {
        Agent::ClaudeCode
    }

    /// The payload as an event.
    pub(crate) fn normalize(self, payload: &Map<String, Value>, at: u64, capture: Capture) -> Result<Event, Rejected> {
        match self {
            Agent::ClaudeCode => claude_code::normalize(payload, at, capture),
        }
    }

    /// Cut `payload` to what the capture level lets the journal keep of an event of `kind`.
    pub(crate) fn keep_at_rest(self, payload: &mut Map<String, Value>, capture: Capture, kind: &Kind) {
        match self {
            Agent::ClaudeCode => claude_code::keep_at_rest(payload, capture, kind),
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
        }
    }
}
