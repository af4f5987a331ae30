//! Which coding agent spoke: the one fact about an event's source that travels past ingest's parsers,
//! so that the agent's own session log is read its own way (`usage::logs`).

/// The coding agents hooktel reads. Claude Code's is the only parser yet; Codex CLI and Gemini CLI
/// come beside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Agent {
    #[default]
    ClaudeCode,
}
