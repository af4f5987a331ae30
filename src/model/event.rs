//! The events every agent's parser produces and the session state machine consumes: the contract
//! between `ingest` (which turns payloads into them) and `pipeline` (which pairs them into spans).
//! What an event does to the span tree ([`Kind`]), and the facts of a tool call, an API request and
//! Claude Code's tool telemetry it may carry.

use opentelemetry::KeyValue;

use crate::model::agent::Agent;
use crate::model::budget::Held;
use crate::model::ids::SessionId;
use crate::model::pull_request::PullRequest;
use crate::model::span::ToolStatus;

/// One hook event, ready for the session state machine.
#[derive(Clone, Debug)]
pub struct Event {
    /// The agent whose hook (or telemetry) it was: whose session log `transcript_path` is.
    pub(crate) source: Agent,
    pub(crate) session_id: SessionId,
    /// `hook_event_name` as sent, including names hooktel does not know.
    pub(crate) name: String,
    /// When the hook fired, Unix nanoseconds (the client's stamp, or the sidecar's receive time).
    pub(crate) at: u64,
    pub(crate) prompt_id: Option<String>,
    /// Set when the event fired inside a subagent.
    pub(crate) agent_id: Option<String>,
    pub(crate) agent_type: Option<String>,
    pub(crate) cwd: Option<String>,
    pub(crate) transcript_path: Option<String>,
    /// The agent team it names (`team_name`, or the team of a teammate an `Agent` call spawned).
    pub(crate) team: Option<String>,
    /// The teammate it names (`teammate_name`, or the teammate an `Agent` call spawned).
    pub(crate) teammate: Option<String>,
    /// The session leading `team`, from the team's file (`enrich`): a pane teammate's lead.
    pub(crate) team_lead: Option<String>,
    /// Claude Code ran the hook with agent teams on (`hooktel_agent_teams`, set by the hook client).
    pub(crate) agent_teams: bool,
    /// Claude Code ran the hook with its telemetry on (`hooktel_native_telemetry`, set by the hook
    /// client).
    pub(crate) native_telemetry: bool,
    pub(crate) kind: Kind,
    /// Attributes describing this event: on its span event, or on the span it opens or closes.
    pub(crate) attrs: Vec<KeyValue>,
    /// The payload as accepted (after cutting), for the journal; empty when not kept.
    pub(crate) raw: bytes::Bytes,
    /// A custom event (`POST /v1/events`, `hooktel emit`) rather than a hook event.
    pub(crate) custom: bool,
    /// Its bytes of the memory budget from its admission until the pipeline has applied it (the
    /// ingest queue is bounded by bytes, not only by count).
    pub(crate) held: Held,
}

impl Event {
    /// Claude Code's own telemetry rather than a hook.
    pub(crate) fn native(&self) -> bool {
        matches!(
            self.kind,
            Kind::ModelCall(_) | Kind::ToolTiming(_) | Kind::SessionCounter { .. } | Kind::TelemetryBatch
        )
    }

    /// About the bytes it holds: its payload for the journal, its attributes, its fields.
    pub(crate) fn bytes(&self) -> usize {
        let attrs: usize = self.attrs.iter().map(|kv| kv.key.as_str().len() + kv.value.as_str().len() + 64).sum();
        let fields = [&self.prompt_id, &self.agent_id, &self.agent_type, &self.cwd, &self.transcript_path];
        1024 + self.raw.len()
            + self.name.len()
            + attrs
            + fields.iter().map(|f| f.as_ref().map_or(0, String::len)).sum::<usize>()
    }
}

/// What an event does to the span tree.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    SessionStart {
        source: String,
    },
    SessionEnd {
        reason: String,
    },
    PromptSubmit {
        prompt: Option<String>,
    },
    /// Stop (failure = None) or StopFailure (failure = the error's kind, `message` the API error's
    /// text as the capture level lets it out: `last_assistant_message`, e.g. `API Error: 400 ...`).
    TurnEnd {
        failure: Option<String>,
        message: Option<String>,
    },
    ToolStart(ToolCall),
    ToolEnd(ToolCall, ToolOutcome),
    /// `parent_tool_use_id` is the `Agent` call that spawned it, when known (from `meta.json`).
    SubagentStart {
        parent_tool_use_id: Option<String>,
    },
    SubagentStop {
        parent_tool_use_id: Option<String>,
    },
    CompactStart {
        trigger: String,
    },
    CompactEnd {
        trigger: String,
    },
    /// A permission prompt; carries no `tool_use_id`, so it is matched by tool name.
    PermissionRequest {
        tool_name: String,
    },
    /// TaskCreated (`created`) or TaskCompleted: one task of a task list; `subject` as the capture
    /// level lets it out.
    Task {
        created: bool,
        task_id: String,
        subject: Option<String>,
    },
    /// Claude Code's own telemetry about one API request (`api_request`, or `api_error`).
    ModelCall(ApiCall),
    /// Claude Code's own telemetry about one tool call.
    ToolTiming(ToolTiming),
    /// One of Claude Code's session counters (`native::SESSION_METRICS`): the root's attribute it
    /// adds to, or sets when the metric is cumulative.
    SessionCounter {
        attr: &'static str,
        value: f64,
        cumulative: bool,
    },
    /// One export (batch) of Claude Code's telemetry arrived with records of the session; the event's
    /// time is its oldest record's, so its delay tells how long the session's batches take to come.
    TelemetryBatch,
    /// PreSkillShellCommand: a shell command written into a skill, about to run while the skill's
    /// prompt is rendered. No event ends it, so it is no span: a span event on the innermost open
    /// span, with the skill's name and the command summarised as a Bash call's input is (redacted and
    /// clipped by default).
    SkillShellCommand,
    /// A model call starts (Gemini CLI's `BeforeModel`): it times the chat span of the response
    /// the agent's log records next.
    ModelStart,
    /// The model call started last ends (Gemini CLI's `AfterModel` with a finish reason).
    ModelEnd {
        finish_reason: String,
    },
    /// An event that changes nothing and is no span event (a streamed chunk's `AfterModel`).
    Nothing,
    /// Everything else, known or not: a span event on the innermost open span.
    Other,
}

/// A tool call as its Pre/Post events describe it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ToolCall {
    pub(crate) name: String,
    pub(crate) call_id: String,
    /// Span attributes from the input (a redacted summary by default) and the output (full capture).
    pub(crate) attrs: Vec<KeyValue>,
    /// `duration_ms` from PostToolUse*, when Claude Code sent it.
    pub(crate) duration_ms: Option<u64>,
    /// For an `Agent` call: the subagent its response names (`tool_response.agentId`).
    pub(crate) spawned_agent: Option<String>,
    /// For an `Agent` call that spawned a teammate (`status: teammate_spawned`): its name.
    pub(crate) spawned_teammate: Option<String>,
    /// For a Bash call's PostToolUse: the pull request its command opened (noted from its output
    /// before the output was cut or dropped: `payload::PULL_REQUEST`).
    pub(crate) pull_request: Option<PullRequest>,
}

/// One API request as Claude Code's telemetry reports it: when it ended (the event's time), how long
/// it took, and, for `api_error`, why it failed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiCall {
    /// Anthropic's request id: the transcript's `requestId` of the response it produced.
    pub(crate) request_id: Option<String>,
    pub(crate) model: String,
    pub(crate) duration_ms: u64,
    /// Time to the first token.
    pub(crate) ttft_ms: Option<u64>,
    /// 1 for the first try; more for a retry (when the event says: 2.1.329's do not).
    pub(crate) attempt: Option<u64>,
    /// `api_error`: the error's text (as the capture level lets it out) and HTTP status.
    pub(crate) error: Option<String>,
    pub(crate) status_code: Option<String>,
    /// The account the report names (its email, else its uuid), when the capture level lets it out.
    pub(crate) user: Option<String>,
}

/// Claude Code's telemetry about one tool call: the beta `claude_code.tool` span that is the call
/// (its span id, to tie `tool.blocked_on_user` to it), the permission decision and wait, the
/// execution time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ToolTiming {
    pub(crate) tool_use_id: Option<String>,
    /// Claude Code's own span id of the tool call (16 hex digits).
    pub(crate) otel_tool_span: Option<String>,
    pub(crate) decision: Option<String>,
    pub(crate) decision_source: Option<String>,
    /// The permission wait as Claude Code measured it (`tool.blocked_on_user`); without it, a
    /// decision's time gives the wait since the call started.
    pub(crate) wait_ms: Option<u64>,
    pub(crate) execution_ms: Option<u64>,
}

/// How a tool call ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ToolOutcome {
    Ok,
    Error(String),
    Interrupted,
    Denied(String),
}

impl ToolOutcome {
    /// The tool call's status on its span and in metrics.
    pub(crate) fn status(&self) -> ToolStatus {
        match self {
            ToolOutcome::Ok => ToolStatus::Ok,
            ToolOutcome::Error(_) => ToolStatus::Error,
            ToolOutcome::Interrupted => ToolStatus::Interrupted,
            ToolOutcome::Denied(_) => ToolStatus::Denied,
        }
    }
}
