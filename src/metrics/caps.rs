//! Caps on label values: a label takes at most [`MAX_LABEL_VALUES`] values (the rest fold into
//! `other`), each at most [`MAX_LABEL_BYTES`] long, and a metric of (agent, name, project, repo)
//! or (agent, repo, branch) at most [`MAX_PAIRS`] combinations. The agent is a closed set (one
//! of `Agent::ALL`), capped by what it is; it is part of a combination so that the cap still
//! bounds the series, whatever agents add up to.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::model::payload::truncate_utf8;

/// Distinct values one label may take before the rest fold into `other`. Event names come from
/// producers hooktel does not control, tool names from MCP servers can be many: neither may
/// explode the series count.
pub(crate) const MAX_LABEL_VALUES: usize = 100;

/// Longest label value: a tool, model, project or event name is far shorter; an 8 KB name repeated
/// over series and scrapes is what blew `/metrics` up to 177 MB.
pub(crate) const MAX_LABEL_BYTES: usize = 128;

/// Distinct (agent, tool or model, project, repo) combinations one metric keeps: 100 tools times 100
/// projects would still be 10,000 series times the statuses; (repo, branch) pairs likewise. Past it,
/// the combination is counted as `other` in every one of its labels but the agent.
pub(crate) const MAX_PAIRS: usize = 1000;

/// The set of values a label has taken; beyond the cap, new values become `other`.
#[derive(Default)]
pub struct LabelCap {
    seen: Mutex<HashSet<String>>,
}

impl LabelCap {
    /// `value` as a label value: cut to `MAX_LABEL_BYTES`, and `other` once the cap of distinct
    /// values is reached.
    pub fn label<'a>(&self, value: &'a str) -> &'a str {
        let value = truncate_utf8(value, MAX_LABEL_BYTES);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value;
        }
        if seen.len() >= MAX_LABEL_VALUES {
            return "other";
        }
        seen.insert(value.to_owned());
        value
    }
}

/// The combinations of label values ((agent, name, project, repo), or (agent, repo, branch)) a metric has taken,
/// up to `MAX_PAIRS`, kept as hashes: no allocation on the per-event path (a 64-bit collision would
/// only let one combination share another's admission).
#[derive(Default)]
pub(crate) struct PairCap {
    hasher: std::hash::RandomState,
    seen: Mutex<HashSet<u64>>,
}

impl PairCap {
    pub(crate) fn admit(&self, values: &[&str]) -> bool {
        use std::hash::BuildHasher;
        let key = self.hasher.hash_one(values);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&key) {
            return true;
        }
        if seen.len() >= MAX_PAIRS {
            return false;
        }
        seen.insert(key)
    }

    /// Whether the combination was admitted, without admitting it: one counted before is found
    /// again; one refused then is refused still (the set only grows, and only up to its cap).
    pub(crate) fn admitted(&self, values: &[&str]) -> bool {
        use std::hash::BuildHasher;
        let key = self.hasher.hash_one(values);
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).contains(&key)
    }
}
