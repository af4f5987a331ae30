//! A finished span as hooktel holds it: ids, times, parent, status, and the usage summed on it.
//!
//! Plain data shared by every stage (the pipeline makes it, the exporter, the spools, the local store
//! and the importer consume it). Nothing here does I/O or reads a clock.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::KeyValue;

use crate::model::ids::SpanKey;
use crate::model::tokens::TokenUsage;

/// A finished span, ready for export.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    pub key: SpanKey,
    pub start: u64,
    pub end: u64,
    pub attrs: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub dropped_events: u32,
    pub status: Status,
    /// The session's project (basename of its first `cwd`), for metric labels.
    pub project: String,
}

impl SpanRecord {
    /// The value of a string attribute, if present.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.attrs.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub at: u64,
    pub attrs: Vec<KeyValue>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Unset,
    Ok,
    Error(String),
}

/// Usage summed on a span (live, and by the importer).
#[derive(Debug, Default)]
pub struct SpanUsage {
    pub tokens: TokenUsage,
    pub cost: f64,
    pub models: Vec<String>,
}

impl SpanUsage {
    pub fn add(&mut self, model: &str, tokens: TokenUsage, cost: f64) {
        self.tokens.add(tokens);
        self.cost += cost;
        if !self.models.iter().any(|m| m == model) {
            self.models.push(model.to_owned());
        }
    }
}

/// The project a session works in: the last component of its working directory.
pub fn project_of(cwd: &str) -> String {
    cwd.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("/").to_owned()
}

/// A count as an OpenTelemetry integer attribute: past `i64::MAX` it stays at the maximum rather
/// than turning negative.
pub fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
