//! Agent teams across sessions: which session leads each team, and the tasks of each task list
//! waiting for their completion. A pane teammate is a session of its own; what relates it to its
//! lead is the team's name (`session-<first 8 hex of the lead's id>`), and the lead's `Agent` call
//! that spawned it names that team. A lead is taken only from that call, and only when the name
//! derives from its own id, so a relation is never guessed: without it, traces stay unlinked.
//!
//! Pure and bounded: no I/O, no clock.

use std::collections::HashMap;

/// Teams remembered; past it, a new one replaces an arbitrary old one.
const MAX_TEAMS: usize = 10_000;

/// Tasks waiting for their completion, over all task lists.
pub(crate) const MAX_TASKS: usize = 100_000;

/// Where and when a task was created.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Created {
    pub(crate) session: String,
    pub(crate) at: u64,
    pub(crate) subject: Option<String>,
    pub(crate) prompt_id: Option<String>,
    pub(crate) agent_id: Option<String>,
}

#[derive(Default)]
pub(crate) struct Teams {
    leads: HashMap<String, String>,
    tasks: HashMap<(String, String), Created>,
}

pub(crate) use crate::model::ids::own_team;

impl Teams {
    /// `session` spawned a teammate of `team`: it leads the team if the name is its own.
    pub(crate) fn note_lead(&mut self, team: &str, session: &str) {
        if own_team(session) != team || self.leads.contains_key(team) {
            return;
        }
        if self.leads.len() >= MAX_TEAMS {
            if let Some(old) = self.leads.keys().next().cloned() {
                self.leads.remove(&old);
            }
        }
        self.leads.insert(team.to_owned(), session.to_owned());
    }

    /// The session that leads `team`, if this sidecar saw it spawn a teammate.
    pub(crate) fn lead_of(&self, team: &str) -> Option<&str> {
        self.leads.get(team).map(String::as_str)
    }

    /// A task created in list `list`; past [`MAX_TASKS`] waiting, it is not remembered (its
    /// completion then makes a span of the completion alone).
    pub(crate) fn created(&mut self, list: &str, task_id: &str, created: Created) {
        let key = (list.to_owned(), task_id.to_owned());
        if self.tasks.len() < MAX_TASKS || self.tasks.contains_key(&key) {
            self.tasks.insert(key, created);
        }
    }

    /// The creation of a task now completed, forgotten.
    pub(crate) fn completed(&mut self, list: &str, task_id: &str) -> Option<Created> {
        self.tasks.remove(&(list.to_owned(), task_id.to_owned()))
    }

    /// The tasks `session` created that nobody completed, forgotten: its end closes them incomplete.
    pub(crate) fn left_open_by(&mut self, session: &str) -> Vec<(String, Created)> {
        let keys: Vec<(String, String)> =
            self.tasks.iter().filter(|(_, c)| c.session == session).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| self.tasks.remove(&k).map(|c| (k.1, c))).collect()
    }

    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAD: &str = "859c7e3e-8fa0-4df2-8d03-c77a415fe327";

    #[test]
    fn a_lead_is_only_the_session_whose_id_names_the_team() {
        let mut t = Teams::default();
        t.note_lead("session-859c7e3e", "34e8d59d-0000-0000-0000-000000000000");
        assert_eq!(t.lead_of("session-859c7e3e"), None, "a teammate naming its team does not lead it");
        t.note_lead("session-859c7e3e", LEAD);
        assert_eq!(t.lead_of("session-859c7e3e"), Some(LEAD));
        assert_eq!(own_team(LEAD), "session-859c7e3e");
    }

    #[test]
    fn tasks_wait_for_their_completion_within_a_bound() {
        let mut t = Teams::default();
        let created = |s: &str| Created { session: s.into(), at: 1, subject: None, prompt_id: None, agent_id: None };
        t.created("list", "1", created(LEAD));
        t.created("list", "2", created(LEAD));
        assert_eq!(t.completed("list", "1").map(|c| c.session), Some(LEAD.to_owned()));
        assert_eq!(t.completed("list", "1"), None, "once");
        assert_eq!(t.left_open_by(LEAD).len(), 1);
        for i in 0..MAX_TASKS + 10 {
            t.created("flood", &i.to_string(), created("s"));
        }
        assert_eq!(t.waiting(), MAX_TASKS);
    }
}
