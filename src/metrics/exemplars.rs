//! Exemplars: for a series of tokens, cost, tool calls or tool durations, the latest span that
//! moved it, so that a point on a dashboard leads to its session's trace. One exemplar per series,
//! found by its family and its label values as the registry orders them (by label name); the
//! `prometheus` crate has no exemplars of its own, so `/metrics` in OpenMetrics and the OTLP push
//! look them up here.
//!
//! Bounded: keys are label values that already passed the label and pair caps, so there are no
//! more keys than series; [`MAX_EXEMPLARS`] bounds the map even so. Never a session id in a key:
//! the session is in the exemplar's trace id only.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;

use opentelemetry::trace::{SpanId, TraceId};
use prometheus::proto::LabelPair;

/// Series that may carry an exemplar. The families that carry them have at most ~10,000 series
/// between them at their caps (1,000 (agent, model, project, repo) combinations × 4 token types, 1,000
/// (agent, tool, project, repo) combinations × 5 statuses, the cost and the durations), 40 bytes of exemplar each; past this, a new
/// series gets none.
pub(crate) const MAX_EXEMPLARS: usize = 16_384;

/// Labels of the widest series that carries exemplars (tool calls: agent, tool, status,
/// mcp_server, project, repo).
const MAX_LABELS: usize = 6;

/// The span behind a series' latest increment: its trace (the session's) and span, how much it
/// added (or the observation, for a histogram), and when (Unix ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) value: f64,
    pub(crate) at_ns: u64,
}

/// The latest exemplar of each series.
#[derive(Default)]
pub(crate) struct Exemplars {
    latest: Mutex<ExemplarSet>,
}

/// A copy of the exemplars at one moment, for one scrape or push to read without the lock. Series
/// are kept as a hash of their family and label values (in label-name order), as the label caps keep
/// their pairs: nothing is allocated on the per-span path (a 64-bit collision would only show one
/// series' exemplar on another).
#[derive(Clone, Debug, Default)]
pub(crate) struct ExemplarSet {
    hasher: std::hash::RandomState,
    by_series: HashMap<u64, Exemplar>,
}

impl Exemplars {
    /// Keep `ex` for the series of `family` with these (name, value) labels, unless the series has
    /// a later one: a scrape must never show a series' exemplar going back in time (Prometheus
    /// refuses an exemplar older than the one it stored for the series).
    pub(crate) fn offer(&self, family: &str, labels: &[(&str, &str)], ex: Exemplar) {
        // in label-name order, on the stack: a series of these families has at most MAX_LABELS labels
        let mut named = [("", ""); MAX_LABELS];
        let named = &mut named[..labels.len().min(MAX_LABELS)];
        named.copy_from_slice(&labels[..named.len()]);
        named.sort_unstable_by_key(|(name, _)| *name);
        let mut set = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let key = set.key(family, named.iter().map(|(_, value)| *value));
        let full = set.by_series.len() >= MAX_EXEMPLARS;
        match set.by_series.get_mut(&key) {
            Some(kept) if kept.at_ns <= ex.at_ns => *kept = ex,
            Some(_) => {}
            None if full => {}
            None => {
                set.by_series.insert(key, ex);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> ExemplarSet {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ExemplarSet {
    /// The exemplar of a gathered series, if it has one.
    pub(crate) fn of(&self, family: &str, labels: &[LabelPair]) -> Option<&Exemplar> {
        self.of_values(family, labels.iter().map(LabelPair::value))
    }

    /// The exemplar of a series by its label values in label-name order (as pushed attributes are).
    pub(crate) fn of_values<'a>(&self, family: &str, values: impl Iterator<Item = &'a str>) -> Option<&Exemplar> {
        if self.by_series.is_empty() {
            return None;
        }
        self.by_series.get(&self.key(family, values))
    }

    /// A series' key: its family and its non-empty label values in order (the push leaves an empty
    /// label out of a point's attributes, as Prometheus does of a series' labels).
    fn key<'a>(&self, family: &str, values: impl Iterator<Item = &'a str>) -> u64 {
        let mut h = self.hasher.build_hasher();
        family.hash(&mut h);
        for v in values.filter(|v| !v.is_empty()) {
            v.hash(&mut h);
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ns: u64) -> Exemplar {
        Exemplar { trace_id: TraceId::from_bytes([1; 16]), span_id: SpanId::from_bytes([2; 8]), value: 1.0, at_ns: ns }
    }

    fn pair(name: &str, value: &str) -> LabelPair {
        let mut l = LabelPair::default();
        l.set_name(name.into());
        l.set_value(value.into());
        l
    }

    /// Labels offered in any order find the series as the registry lists its labels (by name).
    #[test]
    fn a_series_is_found_by_its_labels_in_name_order() {
        let e = Exemplars::default();
        e.offer("hooktel_tokens_total", &[("model", "m"), ("type", "input"), ("project", "p")], at(5));
        let set = e.snapshot();
        let labels = [pair("model", "m"), pair("project", "p"), pair("type", "input")];
        assert_eq!(set.of("hooktel_tokens_total", &labels), Some(&at(5)));
        assert_eq!(set.of("hooktel_cost_usd_total", &labels), None);
        assert_eq!(set.of("hooktel_tokens_total", &labels[..2]), None);
    }

    /// The latest exemplar per series wins; an older one offered later does not replace it.
    #[test]
    fn one_exemplar_per_series_the_latest() {
        let e = Exemplars::default();
        let labels = [("tool", "Bash")];
        e.offer("hooktel_tool_duration_seconds", &labels, at(5));
        e.offer("hooktel_tool_duration_seconds", &labels, at(9));
        e.offer("hooktel_tool_duration_seconds", &labels, at(7));
        let set = e.snapshot();
        assert_eq!(set.by_series.len(), 1);
        assert_eq!(set.of("hooktel_tool_duration_seconds", &[pair("tool", "Bash")]), Some(&at(9)));
    }

    #[test]
    fn the_store_is_bounded() {
        let e = Exemplars::default();
        for i in 0..MAX_EXEMPLARS + 10 {
            e.offer("hooktel_tool_calls_total", &[("tool", &format!("t{i}"))], at(1));
        }
        let set = e.snapshot();
        assert_eq!(set.by_series.len(), MAX_EXEMPLARS);
        assert!(set.of("hooktel_tool_calls_total", &[pair("tool", "t0")]).is_some());
        // a series already kept still takes its newer exemplar when the store is full
        e.offer("hooktel_tool_calls_total", &[("tool", "t0")], at(2));
        assert_eq!(e.snapshot().of("hooktel_tool_calls_total", &[pair("tool", "t0")]), Some(&at(2)));
    }
}
