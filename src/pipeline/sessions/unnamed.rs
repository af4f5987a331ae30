//! What an agent's hooks do not name, found by the session: the turn an event belongs to (the one
//! open when it fired, or for a model response the one open when it was asked for), the tool call a
//! tool's end ends (the oldest open call with its tool and input), and the model call whose hooks
//! time a response's chat span (the one whose start is nearest the response's). Gemini CLI names
//! none of them; Claude Code and Codex name all, and never come here. Bounded: at most
//! `MAX_OPEN_CALLS` calls and `MAX_MODEL_CALLS` timed model calls are remembered per session.

use std::collections::{HashMap, VecDeque};

use super::state::SessionState;
use crate::model::ids::SpanKey;
use crate::model::time::NS_PER_SEC;
use crate::usage::logs::{Delta, Response};

/// Most open tool calls remembered per session (a call past it still has its span, and its end
/// one of its own, its start estimated).
const MAX_OPEN_CALLS: usize = 1024;

/// Most timed model calls remembered while their response is not read yet: a turn makes a few.
const MAX_MODEL_CALLS: usize = 64;

/// Most turns whose start is remembered: a response is read within a turn or two of its own.
const MAX_TURNS: usize = 256;

/// How far a response's times in the agent's log may be from its model call's hooks: the log
/// records a response when the agent has handled it, a fraction of a second after its last chunk.
const SLACK: u64 = 2 * NS_PER_SEC;

/// What a session pairs for an agent that names neither its turns nor its calls.
#[derive(Default)]
pub(super) struct Unnamed {
    /// Open tool calls by key (`<tool>:<input hash>`): their ids (`<tool>@<start>`), oldest first.
    open_calls: HashMap<String, VecDeque<String>>,
    /// When the model call under way started.
    model_start: Option<u64>,
    /// Model calls ended, (start, end), whose response is not read yet.
    model_calls: VecDeque<(u64, u64)>,
    /// When each turn started, and its key (the latest `MAX_TURNS`).
    turn_starts: VecDeque<(u64, String)>,
}

/// The tool of a call key `<tool>:<input hash>`.
fn tool_of(key: &str) -> &str {
    key.rsplit_once(':').map_or(key, |(tool, _)| tool)
}

impl Unnamed {
    /// Open tool calls remembered.
    #[cfg(test)]
    pub(super) fn open_calls(&self) -> usize {
        self.open_calls.values().map(VecDeque::len).sum()
    }

    /// About the bytes it holds.
    pub(super) fn held(&self) -> usize {
        self.open_calls
            .iter()
            .map(|(k, ids)| 96 + k.len() + ids.iter().map(|i| 48 + i.len()).sum::<usize>())
            .sum::<usize>()
            + self.model_calls.len() * 16
            + self.turn_starts.iter().map(|(_, k)| 48 + k.len()).sum::<usize>()
    }
}

impl SessionState {
    /// The turn an event without one belongs to: a prompt's own is named by its parser; any other
    /// event's is the turn open now.
    pub(super) fn unnamed_turn(&self, prompt_id: Option<String>) -> Option<String> {
        prompt_id.or_else(|| self.open_turn())
    }

    /// A call of tool and input `key` (`<tool>:<input hash>`) starts at `at`: its id, `<tool>@<at>`
    /// (`#2`, `#3`... after it when another open call of the tool started in the same instant; the
    /// same id when its start is delivered again). The input's hash only pairs the call's ends and
    /// never leaves in an id: whoever reads the traces could otherwise test guesses of a tool's
    /// input (a secret in a command) against it, whatever the capture level lets out.
    pub(super) fn unnamed_call_started(&mut self, key: String, at: u64) -> String {
        let base = format!("{}@{at}", tool_of(&key));
        let calls = &self.unnamed.open_calls;
        let same_start =
            |id: &&String| id.strip_prefix(&base).is_some_and(|rest| rest.is_empty() || rest.starts_with('#'));
        if let Some(id) = calls.get(&key).and_then(|open| open.iter().find(same_start)) {
            return id.clone();
        }
        let taken = |id: &str| calls.values().flatten().any(|open| open == id);
        let mut id = base.clone();
        for n in 2.. {
            if !taken(&id) {
                break;
            }
            id = format!("{base}#{n}");
        }
        let total: usize = calls.values().map(VecDeque::len).sum();
        if total < MAX_OPEN_CALLS {
            self.unnamed.open_calls.entry(key).or_default().push_back(id.clone());
        }
        id
    }

    /// A call of tool and input `key` ends at `at`: the oldest open one, else a call whose start was
    /// not seen (`<tool>@<at>`).
    pub(super) fn unnamed_call_ended(&mut self, key: &str, at: u64) -> String {
        let unseen = || format!("{}@{at}", tool_of(key));
        let Some(open) = self.unnamed.open_calls.get_mut(key) else { return unseen() };
        let id = open.pop_front();
        if open.is_empty() {
            self.unnamed.open_calls.remove(key);
        }
        id.unwrap_or_else(unseen)
    }

    /// A model call starts.
    pub(super) fn model_started(&mut self, at: u64) {
        self.unnamed.model_start = Some(at);
    }

    /// The model call under way ended with `finish_reason`: it times the chat span of its response,
    /// now if the response was read already, else when it is.
    pub(super) fn model_ended(&mut self, at: u64, finish_reason: String) {
        let Some(start) = self.unnamed.model_start.take() else { return };
        let read = self
            .spans
            .values_mut()
            .filter(|s| s.key == SpanKey::Chat && !s.exact && s.start + SLACK >= start && s.start <= start + SLACK)
            .min_by_key(|s| s.start.abs_diff(start));
        match read {
            Some(span) => {
                (span.start, span.end, span.exact) = (start, at, true);
                if let Some(chat) = &mut span.chat {
                    chat.finish_reason.get_or_insert(finish_reason);
                }
            }
            None => {
                if self.unnamed.model_calls.len() == MAX_MODEL_CALLS {
                    self.unnamed.model_calls.pop_front();
                }
                self.unnamed.model_calls.push_back((start, at));
            }
        }
    }

    /// The hooks' times of response `r`, if its model call ended before it was read: the call whose
    /// start is nearest the response's.
    pub(super) fn model_call_of(&mut self, r: &Response) -> Option<(u64, u64)> {
        let near = |(start, end): (u64, u64)| start + SLACK >= r.start && end <= r.end + SLACK;
        let (i, _) = self
            .unnamed
            .model_calls
            .iter()
            .enumerate()
            .filter(|(_, c)| near(**c))
            .min_by_key(|(_, (start, _))| start.abs_diff(r.start))?;
        self.unnamed.model_calls.remove(i)
    }

    /// A turn (its key named by its parser) started at `at`.
    pub(super) fn unnamed_turn_started(&mut self, at: u64, key: &str) {
        let starts = &mut self.unnamed.turn_starts;
        if starts.iter().any(|(_, k)| k == key) {
            return;
        }
        if starts.len() == MAX_TURNS {
            starts.pop_front();
        }
        let i = starts.partition_point(|(t, _)| *t <= at);
        starts.insert(i, (at, key.to_owned()));
    }

    /// The turn started latest by `at`, if any.
    pub(super) fn turn_started_by(&self, at: u64) -> Option<String> {
        let starts = &self.unnamed.turn_starts;
        let i = starts.partition_point(|(t, _)| *t <= at);
        i.checked_sub(1).map(|i| starts[i].1.clone())
    }

    /// The turn of a response that names none (`d.prompt_id`), for an agent that names no turns: the
    /// latest turn started by the time the response was asked for.
    pub(super) fn turn_of(&self, d: &Delta) -> Option<String> {
        if d.prompt_id.is_some() || self.agent.names_turns() {
            return d.prompt_id.clone();
        }
        self.turn_started_by(d.response.as_ref()?.start)
    }
}
