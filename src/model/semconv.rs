//! Attribute names, in one place, and the attribute sets of the span kinds that both the live path
//! (`pipeline::sessions`) and the importer (`backfill::transcripts`) build, so the two cannot drift.
//! The attributes of a span's typed facts are derived in `model::span`.
//!
//! OpenTelemetry GenAI conventions where they exist (`gen_ai.*`, taken from
//! `opentelemetry-semantic-conventions`), the VCS ones for a pull request (`vcs.*`, `url.full`),
//! `hooktel.*` for the rest. These names are the contract
//! dashboards and searches rely on; tests spell them out literally.

use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute;

use crate::model::agent::Agent;
use crate::model::capture::{self, Capture, FULL_MAX};
use crate::model::pull_request::PullRequest;

pub(crate) const SESSION_ID: &str = attribute::SESSION_ID;
// opentelemetry-semantic-conventions marks the gen_ai.* names deprecated only because they moved to
// the GenAI conventions' own repository; the names are unchanged and current there.
#[allow(deprecated)]
pub(crate) const CONVERSATION_ID: &str = attribute::GEN_AI_CONVERSATION_ID;
#[allow(deprecated)]
pub(crate) const OPERATION_NAME: &str = attribute::GEN_AI_OPERATION_NAME;
#[allow(deprecated)]
pub(crate) const PROVIDER_NAME: &str = attribute::GEN_AI_PROVIDER_NAME;
#[allow(deprecated)]
pub(crate) const AGENT_NAME: &str = attribute::GEN_AI_AGENT_NAME;
#[allow(deprecated)]
pub(crate) const AGENT_ID: &str = attribute::GEN_AI_AGENT_ID;
#[allow(deprecated)]
pub(crate) const TOOL_NAME: &str = attribute::GEN_AI_TOOL_NAME;
#[allow(deprecated)]
pub(crate) const TOOL_CALL_ID: &str = attribute::GEN_AI_TOOL_CALL_ID;
#[allow(deprecated)]
pub(crate) const REQUEST_MODEL: &str = attribute::GEN_AI_REQUEST_MODEL;
#[allow(deprecated)]
pub(crate) const RESPONSE_MODEL: &str = attribute::GEN_AI_RESPONSE_MODEL;
#[allow(deprecated)]
pub(crate) const RESPONSE_ID: &str = attribute::GEN_AI_RESPONSE_ID;
#[allow(deprecated)]
pub(crate) const RESPONSE_FINISH_REASONS: &str = attribute::GEN_AI_RESPONSE_FINISH_REASONS;
#[allow(deprecated)]
pub(crate) const USAGE_INPUT_TOKENS: &str = attribute::GEN_AI_USAGE_INPUT_TOKENS;
#[allow(deprecated)]
pub(crate) const USAGE_OUTPUT_TOKENS: &str = attribute::GEN_AI_USAGE_OUTPUT_TOKENS;
#[allow(deprecated)]
pub(crate) const USAGE_CACHE_READ_INPUT_TOKENS: &str = attribute::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS;
#[allow(deprecated)]
pub(crate) const USAGE_CACHE_CREATION_INPUT_TOKENS: &str = attribute::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS;
pub(crate) const ERROR_TYPE: &str = attribute::ERROR_TYPE;
#[allow(deprecated)]
pub(crate) const TOOL_TYPE: &str = attribute::GEN_AI_TOOL_TYPE;
#[allow(deprecated)]
pub(crate) const TOKEN_TYPE: &str = attribute::GEN_AI_TOKEN_TYPE;
pub(crate) const SERVER_ADDRESS: &str = attribute::SERVER_ADDRESS;
pub(crate) const SERVER_PORT: &str = attribute::SERVER_PORT;
pub(crate) const USER_ID: &str = attribute::USER_ID;
/// A model call's cost in USD where Langfuse reads it (its OTel ingestion maps it to the
/// generation's cost, instead of pricing the tokens with its own table). Not an OpenTelemetry name:
/// the GenAI conventions define no cost attribute.
pub(crate) const USAGE_COST: &str = "gen_ai.usage.cost";
/// `error.type`'s value when no class of the error is known (the conventions' fallback).
pub(crate) const ERROR_OTHER: &str = "_OTHER";
/// The version of the conventions hooktel's names follow, on its resource and scope (spans and the
/// metrics push).
pub(crate) const SCHEMA_URL: &str = opentelemetry_semantic_conventions::SCHEMA_URL;

pub(crate) const INCOMPLETE: &str = "hooktel.incomplete";
pub(crate) const IMPORTED: &str = "hooktel.imported";
pub(crate) const CUSTOM: &str = "hooktel.custom";
pub(crate) const CWD: &str = "hooktel.cwd";
pub(crate) const PROJECT: &str = "hooktel.project";
pub(crate) const TRANSCRIPT_PATH: &str = "hooktel.transcript_path";
pub(crate) const RESUMED: &str = "hooktel.resumed";
pub(crate) const SESSION_SOURCE: &str = "hooktel.session.source";
pub(crate) const SESSION_END_REASON: &str = "hooktel.session.end_reason";
pub(crate) const PROMPT_ID: &str = "hooktel.prompt.id";
pub(crate) const PROMPT: &str = "hooktel.prompt";
pub(crate) const TURN_OUTCOME: &str = "hooktel.turn.outcome";
pub(crate) const TOOL_STATUS: &str = "hooktel.tool.status";
pub(crate) const TOOL_DURATION_MS: &str = "hooktel.tool.duration_ms";
pub(crate) const TOOL_OUTPUT: &str = "hooktel.tool.output";
pub(crate) const TOOL_RESPONSE_BYTES: &str = "hooktel.tool.response_bytes";
pub(crate) const PAYLOAD_BYTES: &str = "hooktel.payload_bytes";
/// The MCP server of a tool call (`mcp__<server>__<tool>`) or of an elicitation. The MCP conventions
/// name no server attribute (only `server.address` for a networked transport), hence `hooktel.*`.
pub(crate) const MCP_SERVER: &str = "hooktel.mcp.server";
/// The MCP conventions' method (`tools/call` for a tool call), set on the `execute_tool` span as the
/// conventions ask when a GenAI span already traces the call.
#[allow(deprecated)]
pub(crate) const MCP_METHOD_NAME: &str = attribute::MCP_METHOD_NAME;
pub(crate) const ERROR_DETAILS: &str = "hooktel.error.details";
/// The span event of a Bash call that opened a pull request, and the attribute of the session's root
/// (or resumed segment) listing the pull requests opened in it: URLs are no span contexts, so this
/// list, not a span link, is what a trace search by a pull request's URL finds.
pub(crate) const PULL_REQUEST_EVENT: &str = "hooktel.pull_request";
pub(crate) const PULL_REQUESTS: &str = "hooktel.pull_requests";
/// The OpenTelemetry VCS conventions' attributes of a change (pull request, merge request).
pub(crate) const URL_FULL: &str = attribute::URL_FULL;
pub(crate) const VCS_CHANGE_ID: &str = attribute::VCS_CHANGE_ID;
pub(crate) const VCS_CHANGE_STATE: &str = attribute::VCS_CHANGE_STATE;
/// Where a session works in version control (`model::checkout`): OpenTelemetry's VCS conventions
/// (development stability) for the repository and its head, `hooktel.*` for what they lack.
pub(crate) const VCS_REPOSITORY_URL_FULL: &str = attribute::VCS_REPOSITORY_URL_FULL;
pub(crate) const VCS_REPOSITORY_NAME: &str = attribute::VCS_REPOSITORY_NAME;
pub(crate) const VCS_OWNER_NAME: &str = attribute::VCS_OWNER_NAME;
pub(crate) const VCS_PROVIDER_NAME: &str = attribute::VCS_PROVIDER_NAME;
pub(crate) const VCS_REF_HEAD_NAME: &str = attribute::VCS_REF_HEAD_NAME;
pub(crate) const VCS_REF_HEAD_TYPE: &str = attribute::VCS_REF_HEAD_TYPE;
pub(crate) const VCS_REF_HEAD_REVISION: &str = attribute::VCS_REF_HEAD_REVISION;
/// The repository as `host/owner/repo`: the `repo` label's value, to search spans by.
pub(crate) const REPO: &str = "hooktel.repo";
pub(crate) const WORKTREE: &str = "hooktel.worktree";
pub(crate) const WORKTREE_LINKED: &str = "hooktel.worktree.linked";
pub(crate) const TICKET: &str = "hooktel.ticket";
pub(crate) const COMPACTION_TRIGGER: &str = "hooktel.compaction.trigger";
pub(crate) const COST_USD: &str = "hooktel.cost_usd";
/// The span event on a session's root when a model call of it carried a spend budget across a threshold.
pub(crate) const BUDGET_THRESHOLD_EVENT: &str = "hooktel.budget.threshold_crossed";
pub(crate) const BUDGET_SCOPE: &str = "hooktel.budget.scope";
pub(crate) const BUDGET_THRESHOLD: &str = "hooktel.budget.threshold";
pub(crate) const BUDGET_SPENT_USD: &str = "hooktel.budget.spent_usd";
pub(crate) const BUDGET_LIMIT_USD: &str = "hooktel.budget.limit_usd";
pub(crate) const UNCACHED_INPUT_TOKENS: &str = "hooktel.usage.uncached_input_tokens";
pub(crate) const API_REQUEST_ID: &str = "hooktel.api.request_id";
pub(crate) const API_ATTEMPT: &str = "hooktel.api.attempt";
pub(crate) const API_DURATION_MS: &str = "hooktel.api.duration_ms";
pub(crate) const API_STATUS_CODE: &str = "hooktel.api.status_code";
pub(crate) const API_ERROR: &str = "hooktel.api.error";
pub(crate) const LINK_KIND: &str = "hooktel.link.kind";
pub(crate) const AGENT_KIND: &str = "hooktel.agent.kind";
pub(crate) const TEAM_NAME: &str = "hooktel.team.name";
pub(crate) const TEAM_AGENT: &str = "hooktel.team.agent";
pub(crate) const TASK_ID: &str = "hooktel.task.id";
pub(crate) const TASK_SUBJECT: &str = "hooktel.task.subject";
pub(crate) const TASK_CREATED_BY: &str = "hooktel.task.created_by";
pub(crate) const FORKED_FROM: &str = "hooktel.session.forked_from";
pub(crate) const TOOL_DECISION: &str = "hooktel.tool.decision";
pub(crate) const TOOL_DECISION_SOURCE: &str = "hooktel.tool.decision_source";
pub(crate) const TOOL_PERMISSION_WAIT_MS: &str = "hooktel.tool.permission_wait_ms";
pub(crate) const TOOL_EXECUTION_MS: &str = "hooktel.tool.execution_ms";
pub(crate) const SESSION_LINES_ADDED: &str = "hooktel.session.lines_added";
pub(crate) const SESSION_LINES_REMOVED: &str = "hooktel.session.lines_removed";
pub(crate) const SESSION_COMMITS: &str = "hooktel.session.commits";
pub(crate) const SESSION_PULL_REQUESTS: &str = "hooktel.session.pull_requests";
pub(crate) const SESSION_ACTIVE_USER_S: &str = "hooktel.session.active_time.user_s";
pub(crate) const SESSION_ACTIVE_CLI_S: &str = "hooktel.session.active_time.cli_s";
/// The session root's counters from Claude Code's own metrics.
pub(crate) const SESSION_COUNTERS: [&str; 6] = [
    SESSION_LINES_ADDED,
    SESSION_LINES_REMOVED,
    SESSION_COMMITS,
    SESSION_PULL_REQUESTS,
    SESSION_ACTIVE_USER_S,
    SESSION_ACTIVE_CLI_S,
];
#[allow(deprecated)]
pub(crate) const TIME_TO_FIRST_CHUNK: &str = attribute::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK;

/// The provider every model call of Claude Code goes to.
pub(crate) const ANTHROPIC: &str = "anthropic";

/// Where model calls go (`server.address`, `server.port` of a chat span): Anthropic's API, unless
/// Claude Code is pointed elsewhere (`ANTHROPIC_BASE_URL`) and hooktel is told so
/// (`HOOKTEL_ANTHROPIC_BASE_URL`). Host and port only: never a path, a query or credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEndpoint {
    pub address: String,
    pub port: u16,
}

impl Default for ModelEndpoint {
    fn default() -> Self {
        ModelEndpoint { address: "api.anthropic.com".into(), port: 443 }
    }
}

/// The session root (or a resumed segment): where it ran. At capture `none` only the project's name
/// leaves, not the full paths (they name the user's home and tree).
pub(crate) fn root(agent: Agent, cwd: Option<&str>, transcript_path: Option<&str>, capture: Capture) -> Vec<KeyValue> {
    // the whole session is one run of the agent (backends that file spans by operation need one)
    let mut attrs = vec![
        KeyValue::new(OPERATION_NAME, "invoke_agent"),
        KeyValue::new(AGENT_NAME, agent.name()),
        KeyValue::new(PROVIDER_NAME, agent.provider()),
    ];
    let paths = capture != Capture::None;
    if let Some(cwd) = cwd {
        if paths {
            attrs.push(KeyValue::new(CWD, cwd.to_owned()));
        }
        attrs.push(KeyValue::new(PROJECT, project_of(cwd)));
    }
    if let Some(path) = transcript_path.filter(|_| paths) {
        attrs.push(KeyValue::new(TRANSCRIPT_PATH, path.to_owned()));
    }
    attrs
}

/// A turn `invoke_agent <agent>`; `prompt` only when the capture level lets it out.
pub(crate) fn turn(agent: Agent, prompt_id: &str, prompt: Option<&str>) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new(OPERATION_NAME, "invoke_agent"),
        KeyValue::new(AGENT_NAME, agent.name()),
        KeyValue::new(PROVIDER_NAME, agent.provider()),
        KeyValue::new(PROMPT_ID, prompt_id.to_owned()),
    ];
    if let Some(p) = prompt {
        attrs.push(KeyValue::new(PROMPT, capture::clip(p, FULL_MAX)));
    }
    attrs
}

/// A subagent `invoke_agent {agent_type}` (its type, `gen_ai.agent.name`, is the span's subject).
pub(crate) fn subagent(agent_id: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new(OPERATION_NAME, "invoke_agent"),
        KeyValue::new(PROVIDER_NAME, ANTHROPIC),
        KeyValue::new(AGENT_ID, agent_id.to_owned()),
    ]
}

/// A model call `chat {model}` of `agent`: Claude Code's go to `endpoint`, Codex's to OpenAI's API,
/// Gemini CLI's to Google's Gemini API (a Codex `model_provider` or a `GOOGLE_GEMINI_BASE_URL` of the
/// user's own is not read); its response's ids, usage and cost are typed
/// facts of the span.
pub(crate) fn chat(agent: Agent, model: &str, endpoint: &ModelEndpoint) -> Vec<KeyValue> {
    let (address, port) = match agent {
        Agent::ClaudeCode => (endpoint.address.clone(), endpoint.port),
        Agent::Codex => ("api.openai.com".to_owned(), 443),
        Agent::Gemini => ("generativelanguage.googleapis.com".to_owned(), 443),
    };
    vec![
        KeyValue::new(OPERATION_NAME, "chat"),
        KeyValue::new(PROVIDER_NAME, agent.provider()),
        KeyValue::new(REQUEST_MODEL, model.to_owned()),
        KeyValue::new(SERVER_ADDRESS, address),
        KeyValue::new(SERVER_PORT, i64::from(port)),
    ]
}

/// The name of a model call's span.
pub(crate) fn chat_name(model: &str) -> String {
    format!("chat {model}")
}

/// A tool call `execute_tool {name}` (its tool, `gen_ai.tool.name`, is the span's subject). Its
/// `gen_ai.tool.type`: an MCP tool (`mcp__<server>__<tool>`) is an `extension`, a call Claude Code
/// makes to a server outside it; every other tool a `function`, which Claude Code, the client, runs
/// itself when the model asks.
/// An MCP tool's also carry `mcp.method.name=tools/call` and its server (`hooktel.mcp.server`).
pub(crate) fn tool(call_id: &str, name: &str) -> Vec<KeyValue> {
    let kind = if name.starts_with("mcp__") { "extension" } else { "function" };
    let mut attrs = vec![
        KeyValue::new(OPERATION_NAME, "execute_tool"),
        KeyValue::new(TOOL_CALL_ID, call_id.to_owned()),
        KeyValue::new(TOOL_TYPE, kind),
    ];
    if let Some(server) = mcp_server(name) {
        attrs.push(KeyValue::new(MCP_METHOD_NAME, "tools/call"));
        attrs.push(KeyValue::new(MCP_SERVER, server.to_owned()));
    }
    attrs
}

/// The attributes of a pull request's span event: its URL, number, state (`open`: it was just
/// created), forge and repository.
pub(crate) fn pull_request(pr: &PullRequest) -> Vec<KeyValue> {
    vec![
        KeyValue::new(URL_FULL, pr.url.clone()),
        KeyValue::new(VCS_CHANGE_ID, pr.number.to_string()),
        KeyValue::new(VCS_CHANGE_STATE, "open"),
        KeyValue::new(VCS_PROVIDER_NAME, pr.forge.label()),
        KeyValue::new(VCS_REPOSITORY_URL_FULL, pr.repository.clone()),
    ]
}

/// The server of an MCP tool, from Claude Code's name for it, `mcp__<server>__<tool>`: what lies
/// between `mcp__` and the next `__` (Claude Code turns every other character of a server's name
/// that is not a letter, digit, `_` or `-` into `_`). None for any other tool, or an empty server.
pub(crate) fn mcp_server(tool: &str) -> Option<&str> {
    let rest = tool.strip_prefix("mcp__")?;
    let server = rest.split_once("__").map_or(rest, |(server, _)| server);
    (!server.is_empty()).then_some(server)
}

/// The largest value a session counter takes (a data point past it is refused, a sum stops there):
/// 10^12 seconds or lines is far past any session, and stays exact and finite through the
/// attribute's rounding (an active time of 1e306 s became +inf there).
pub(crate) const MAX_SESSION_COUNTER: f64 = 1e12;

/// A session counter's attribute: seconds as they come, counts as integers; from 0 to
/// [`MAX_SESSION_COUNTER`].
pub(crate) fn session_counter(attr: &'static str, total: f64) -> KeyValue {
    // NaN fails every comparison: it becomes 0 here
    let total = if total >= 0.0 { total.min(MAX_SESSION_COUNTER) } else { 0.0 };
    if attr.ends_with("_s") {
        KeyValue::new(attr, (total * 1000.0).round() / 1000.0)
    } else {
        KeyValue::new(attr, total.round().min(i64::MAX as f64) as i64)
    }
}

/// The project a session works in: the last component of its working directory.
pub(crate) fn project_of(cwd: &str) -> String {
    cwd.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("/").to_owned()
}

/// A count as an OpenTelemetry integer attribute: past `i64::MAX` it stays at the maximum rather
/// than turning negative.
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mcp_tool_is_an_extension_every_other_a_function() {
        let kind = |name| tool("toolu_1", name).into_iter().find(|kv| kv.key.as_str() == TOOL_TYPE).unwrap().value;
        assert_eq!(kind("mcp__github__create_issue").as_str(), "extension");
        for name in ["Bash", "Read", "WebFetch", "Agent", "mcp_like_but_not"] {
            assert_eq!(kind(name).as_str(), "function", "{name}");
        }
    }

    #[test]
    fn an_mcp_tools_server_is_what_lies_between_mcp_and_the_next_double_underscore() {
        assert_eq!(mcp_server("mcp__files__read"), Some("files"));
        assert_eq!(mcp_server("mcp__my_db__run__query"), Some("my_db"));
        assert_eq!(mcp_server("mcp__plugin-x"), Some("plugin-x"));
        for name in ["Bash", "mcp__", "mcp____read", "mcp_like_but_not", "xmcp__files__read"] {
            assert_eq!(mcp_server(name), None, "{name}");
        }
        let attrs = tool("toolu_1", "mcp__files__read");
        let get = |k: &str| attrs.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.as_str().into_owned());
        assert_eq!(get(MCP_METHOD_NAME).as_deref(), Some("tools/call"));
        assert_eq!(get(MCP_SERVER).as_deref(), Some("files"));
        assert!(tool("toolu_2", "Read").iter().all(|kv| !kv.key.as_str().contains("mcp")));
    }
}
