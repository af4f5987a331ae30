//! Exemplars: for a series of tokens, cost, tool calls or tool durations, the latest span that
//! moved it, so that a point on a dashboard leads to its session's trace. One exemplar per series,
//! kept by the series' labels as the registry orders them (by label name); the `prometheus` crate
//! has no exemplars of its own, so `/metrics` in OpenMetrics and the OTLP push look them up here.
//!
//! Bounded: keys are label values that already passed the label and pair caps, so there are no
//! more keys than series; [`MAX_EXEMPLARS`] bounds the map even so. Never a session id in a key:
//! the session is in the exemplar's trace id only.

use std::collections::HashMap;
use std::sync::Mutex;

use opentelemetry::trace::{SpanId, TraceId};
use prometheus::proto::LabelPair;

/// Series that may carry an exemplar. The families that carry them have at most ~10,000 series
/// between them at their caps (1,000 (model, project) pairs × 4 token types, 1,000 (tool, project)
/// pairs × 5 statuses, the cost and the durations), about 2 MB of exemplars; past this, a new
/// series gets none.
pub(crate) const MAX_EXEMPLARS: usize = 16_384;

/// The span behind a series' latest increment: its trace (the session's) and span, how much it
/// added (or the observation, for a histogram), and when (Unix ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) value: f64,
    pub(crate) at_ns: u64,
}

/// Label values of one series, in label-name order (the order of a gathered metric's labels).
type Series = Vec<String>;

/// The latest exemplar of each series, by family.
#[derive(Default)]
pub(crate) struct Exemplars {
    latest: Mutex<ExemplarSet>,
}

/// A copy of the exemplars at one moment, for one scrape or push to read without the lock.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExemplarSet {
    by_family: HashMap<&'static str, HashMap<Series, Exemplar>>,
    len: usize,
}

impl Exemplars {
    /// Keep `ex` for the series of `family` with these (name, value) labels, unless the series has
    /// a later one: a scrape must never show a series' exemplar going back in time (Prometheus
    /// refuses an exemplar older than the one it stored for the series).
    pub(crate) fn offer(&self, family: &'static str, labels: &[(&str, &str)], ex: Exemplar) {
        let mut named = labels.to_vec();
        named.sort_unstable_by_key(|(name, _)| *name);
        let series: Series = named.into_iter().map(|(_, value)| value.to_owned()).collect();
        let mut set = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let full = set.len >= MAX_EXEMPLARS;
        let of_family = set.by_family.entry(family).or_default();
        match of_family.get_mut(&series) {
            Some(kept) if kept.at_ns <= ex.at_ns => *kept = ex,
            Some(_) => {}
            None if full => {}
            None => {
                of_family.insert(series, ex);
                set.len += 1;
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
        let of_family = self.by_family.get(family)?;
        let series: Series = values.map(str::to_owned).collect();
        of_family.get(&series)
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
        assert_eq!(set.len, 1);
        assert_eq!(set.of("hooktel_tool_duration_seconds", &[pair("tool", "Bash")]), Some(&at(9)));
    }

    #[test]
    fn the_store_is_bounded() {
        let e = Exemplars::default();
        for i in 0..MAX_EXEMPLARS + 10 {
            e.offer("hooktel_tool_calls_total", &[("tool", &format!("t{i}"))], at(1));
        }
        let set = e.snapshot();
        assert_eq!(set.len, MAX_EXEMPLARS);
        assert!(set.of("hooktel_tool_calls_total", &[pair("tool", "t0")]).is_some());
        // a series already kept still takes its newer exemplar when the store is full
        e.offer("hooktel_tool_calls_total", &[("tool", "t0")], at(2));
        assert_eq!(e.snapshot().of("hooktel_tool_calls_total", &[pair("tool", "t0")]), Some(&at(2)));
    }
}
