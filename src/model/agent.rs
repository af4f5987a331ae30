//! Which coding agent spoke: the one fact about an event's source that travels past ingest's parsers,
//! so that the agent's own session log is read its own way (`usage::logs`) and its spans carry its
//! name and its model provider.

/// The coding agents hooktel reads: Claude Code, OpenAI's Codex CLI and Google's Gemini CLI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Agent {
    #[default]
    ClaudeCode,
    Codex,
    Gemini,
}

impl Agent {
    pub const ALL: [Agent; 3] = [Agent::ClaudeCode, Agent::Codex, Agent::Gemini];

    /// Its name in span names, `gen_ai.agent.name`, the `agent` label and `hooktel hook --agent`.
    pub fn name(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini-cli",
        }
    }

    /// The agent called `name` (or `gemini`, the command's own name, for Gemini CLI), if hooktel
    /// reads it.
    pub fn named(name: &str) -> Option<Agent> {
        match name {
            "gemini" => Some(Agent::Gemini),
            _ => Agent::ALL.into_iter().find(|a| a.name() == name),
        }
    }

    /// Whether a tool call's outcome is in the agent's session log rather than its hook: Codex's
    /// `PostToolUse` carries a command's output but not its exit code, which only the rollout has.
    /// Such a call's span waits for a read of the log after its end, as a turn's does.
    pub fn tool_outcome_in_log(self) -> bool {
        self == Agent::Codex
    }

    /// Whether its hooks name the turn an event belongs to (Claude Code's `prompt_id`, Codex's
    /// `turn_id`). Gemini CLI's do not: a turn is what happens between its `BeforeAgent` and its
    /// `AfterAgent`, and an event without a turn belongs to the turn open when it fired.
    pub fn names_turns(self) -> bool {
        self != Agent::Gemini
    }

    /// Whether its hooks name a tool call (`tool_use_id`). Gemini CLI's do not: a `BeforeTool` and
    /// its `AfterTool` are paired by the call's tool and input, the oldest open call first.
    pub fn names_tool_calls(self) -> bool {
        self != Agent::Gemini
    }

    /// Who serves its models (`gen_ai.provider.name`, from the GenAI conventions' list): the
    /// agent's own vendor (Gemini CLI with an API key: Google's Gemini API, `gcp.gemini`).
    pub fn provider(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "anthropic",
            Agent::Codex => "openai",
            Agent::Gemini => "gcp.gemini",
        }
    }
}

/// A count for each agent (sessions a timeout closed, say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerAgent([u64; Agent::ALL.len()]);

impl PerAgent {
    pub fn add(&mut self, agent: Agent, n: u64) {
        // `Agent::ALL` lists the agents in their order of declaration
        self.0[agent as usize] += n;
    }

    /// The agents counted, with their counts (none with 0).
    pub fn counts(self) -> impl Iterator<Item = (Agent, u64)> {
        Agent::ALL.into_iter().zip(self.0).filter(|(_, n)| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_agent_is_found_by_its_name_and_no_other() {
        for agent in Agent::ALL {
            assert_eq!(Agent::named(agent.name()), Some(agent));
        }
        assert_eq!(Agent::named("gemini"), Some(Agent::Gemini));
        for other in ["", "Codex", "claude", "Gemini", "gemini-cli ", "codex "] {
            assert_eq!(Agent::named(other), None, "{other:?}");
        }
    }

    #[test]
    fn each_agent_counts_apart() {
        let mut n = PerAgent::default();
        n.add(Agent::Codex, 2);
        n.add(Agent::ClaudeCode, 1);
        n.add(Agent::Codex, 1);
        assert_eq!(n.counts().collect::<Vec<_>>(), [(Agent::ClaudeCode, 1), (Agent::Codex, 3)]);
        assert_eq!(PerAgent::default().counts().count(), 0);
    }
}
