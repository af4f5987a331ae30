//! The stored form of a finished span: plain serde data, no OpenTelemetry types. One codec for the
//! export spool and the local store's `record` column.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{KeyValue, Value};
use serde::{Deserialize, Serialize};

use crate::model::ids::SpanKey;
use crate::model::span::{SpanEvent, SpanRecord, Status};

/// A span as stored: plain data, no OpenTelemetry types.
#[derive(Serialize, Deserialize)]
struct Stored {
    trace: [u8; 16],
    span: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    key: SpanKey,
    start: u64,
    end: u64,
    attrs: Attrs,
    /// (name, time, attributes)
    events: Vec<(String, u64, Attrs)>,
    dropped_events: u32,
    error: Option<String>,
    ok: bool,
    project: String,
}

type Attrs = Vec<(String, Attr)>;

#[derive(Serialize, Deserialize)]
enum Attr {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

fn to_attrs(kvs: &[KeyValue]) -> Attrs {
    kvs.iter()
        .map(|kv| {
            let v = match &kv.value {
                Value::Bool(b) => Attr::B(*b),
                Value::I64(i) => Attr::I(*i),
                Value::F64(f) => Attr::F(*f),
                other => Attr::S(other.as_str().into_owned()),
            };
            (kv.key.as_str().to_owned(), v)
        })
        .collect()
}

fn from_attrs(attrs: Attrs) -> Vec<KeyValue> {
    attrs
        .into_iter()
        .map(|(k, v)| match v {
            Attr::S(s) => KeyValue::new(k, s),
            Attr::I(i) => KeyValue::new(k, i),
            Attr::F(f) => KeyValue::new(k, f),
            Attr::B(b) => KeyValue::new(k, b),
        })
        .collect()
}

/// A batch of spans as one blob.
pub fn encode(spans: &[SpanRecord]) -> Vec<u8> {
    let stored: Vec<Stored> = spans
        .iter()
        .map(|r| Stored {
            trace: r.trace_id.to_bytes(),
            span: r.span_id.to_bytes(),
            parent: r.parent.map(|p| p.to_bytes()),
            name: r.name.clone(),
            key: r.key,
            start: r.start,
            end: r.end,
            attrs: to_attrs(&r.attrs),
            events: r.events.iter().map(|e| (e.name.clone(), e.at, to_attrs(&e.attrs))).collect(),
            dropped_events: r.dropped_events,
            error: match &r.status {
                Status::Error(m) => Some(m.clone()),
                _ => None,
            },
            ok: r.status == Status::Ok,
            project: r.project.clone(),
        })
        .collect();
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// The spans of a blob written by [`encode`]; an error when it is not one (never an empty batch).
pub fn decode(blob: &[u8]) -> serde_json::Result<Vec<SpanRecord>> {
    let stored: Vec<Stored> = serde_json::from_slice(blob)?;
    Ok(stored
        .into_iter()
        .map(|s| SpanRecord {
            trace_id: TraceId::from_bytes(s.trace),
            span_id: SpanId::from_bytes(s.span),
            parent: s.parent.map(SpanId::from_bytes),
            name: s.name,
            key: s.key,
            start: s.start,
            end: s.end,
            attrs: from_attrs(s.attrs),
            events: s
                .events
                .into_iter()
                .map(|(name, at, attrs)| SpanEvent { name, at, attrs: from_attrs(attrs) })
                .collect(),
            dropped_events: s.dropped_events,
            status: match (s.error, s.ok) {
                (Some(m), _) => Status::Error(m),
                (None, true) => Status::Ok,
                _ => Status::Unset,
            },
            project: s.project,
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn span(i: u8) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId::from_bytes([i; 16]),
            span_id: SpanId::from_bytes([i; 8]),
            parent: Some(SpanId::from_bytes([9; 8])),
            name: format!("execute_tool T{i}"),
            key: SpanKey::Tool,
            start: 1,
            end: 2,
            attrs: vec![
                KeyValue::new("a", "b"),
                KeyValue::new("n", 3_i64),
                KeyValue::new("f", 0.5),
                KeyValue::new("t", true),
            ],
            events: vec![SpanEvent { name: "E".into(), at: 1, attrs: vec![KeyValue::new("x", 1_i64)] }],
            dropped_events: 2,
            status: Status::Error("boom".into()),
            project: "p".into(),
        }
    }

    #[test]
    fn batches_round_trip() {
        let batch: Vec<_> = (0..3).map(span).collect();
        assert_eq!(decode(&encode(&batch)).unwrap(), batch);
        assert!(decode(b"not a batch").is_err());
    }
}
