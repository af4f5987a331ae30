//! The Prometheus registry: every metric name and help text in one place, and label values capped
//! so that no producer can grow the series count without bound.
//!
//! Never a session id in a label. Counting is cheap (atomic adds); rendering happens on scrape.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Distinct values one label may take before the rest fold into `other`. Event names come from
/// producers hooktel does not control; a misbehaving one must not explode the series count.
const MAX_LABEL_VALUES: usize = 100;

pub struct Metrics {
    registry: Registry,
    pub hook_events: IntCounterVec,
    pub ingest_rejected: IntCounterVec,
    pub late_events: IntCounter,
    pub spans_exported: IntCounter,
    pub spans_dropped: IntCounterVec,
    pub export_failures: IntCounterVec,
    pub sessions_active: IntGauge,
    pub queue_depth: IntGauge,
    pub last_event_timestamp: prometheus::Gauge,
    event_names: LabelCap,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let last_event_timestamp = prometheus::Gauge::new(
            "hooktel_last_event_timestamp_seconds",
            "Unix time of the last hook event accepted.",
        )
        .expect("valid metric");
        registry.register(Box::new(last_event_timestamp.clone())).expect("unique metric");
        Metrics {
            hook_events: counter_vec(
                "hooktel_hook_events_total",
                "Hook events accepted, by hook_event_name.",
                &["event"],
            ),
            ingest_rejected: counter_vec("hooktel_ingest_rejected_total", "Requests refused, by reason.", &["reason"]),
            late_events: counter(
                "hooktel_late_events_total",
                "Events that arrived after their session's spans were exported; not applied.",
            ),
            spans_exported: counter("hooktel_spans_exported_total", "Spans the OTLP receiver accepted."),
            spans_dropped: counter_vec("hooktel_spans_dropped_total", "Spans not exported, by reason.", &["reason"]),
            export_failures: counter_vec(
                "hooktel_export_failures_total",
                "Failed OTLP export calls, by reason.",
                &["reason"],
            ),
            sessions_active: gauge("hooktel_sessions_active", "Sessions with an open root span."),
            queue_depth: gauge("hooktel_ingest_queue_depth", "Events accepted and waiting for the pipeline."),
            last_event_timestamp,
            event_names: LabelCap::default(),
            registry,
        }
    }

    /// Count one accepted hook event under its (capped) name.
    pub fn hook_event(&self, name: &str, at_unix_seconds: f64) {
        self.hook_events.with_label_values(&[self.event_names.label(name)]).inc();
        self.last_event_timestamp.set(at_unix_seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        // encoding into a Vec cannot fail for well-formed metrics
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The set of values a label has taken; beyond the cap, new values become `other`.
#[derive(Default)]
pub struct LabelCap {
    seen: Mutex<HashSet<String>>,
}

impl LabelCap {
    pub fn label<'a>(&self, value: &'a str) -> &'a str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_capped() {
        let cap = LabelCap::default();
        for i in 0..MAX_LABEL_VALUES {
            assert_eq!(cap.label(&format!("e{i}")), format!("e{i}"));
        }
        assert_eq!(cap.label("one-too-many"), "other");
        assert_eq!(cap.label("e0"), "e0");
    }

    #[test]
    fn renders_events_by_name() {
        let m = Metrics::new();
        m.hook_event("TokenUsageUpdated", 5.0);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"hooktel_hook_events_total{event="TokenUsageUpdated"} 1"#), "{text}");
        assert!(text.contains("hooktel_last_event_timestamp_seconds 5"), "{text}");
    }
}
