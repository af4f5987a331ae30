//! The export spool: batches of finished spans the collector did not take, kept in
//! `<data dir>/hooktel.db` and replayed oldest first once it answers again.
//!
//! Bounded by size: when full, the oldest batches are dropped, counted, and logged as an ERROR
//! (data loss needs an operator). Replayed spans keep their ids, so a batch delivered twice (the
//! collector took it but the answer was lost) is recognisable downstream.

use std::path::Path;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{KeyValue, Value};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::ids::SpanKey;
use crate::session::{SpanEvent, SpanRecord, Status};
use crate::store;

pub const FILE: &str = "hooktel.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS export_spool (
    id INTEGER PRIMARY KEY,
    spans INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    batch BLOB NOT NULL
);";

pub struct SpanSpool {
    conn: Connection,
    max_bytes: u64,
    /// Cached size of the spooled batches, so the cap is checked without a query per batch.
    bytes: u64,
}

/// What a spool holds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Held {
    pub batches: u64,
    pub bytes: u64,
    pub oldest_at: Option<u64>,
}

impl SpanSpool {
    pub fn open(data_dir: &Path, max_bytes: u64) -> rusqlite::Result<SpanSpool> {
        let conn = store::open(&data_dir.join(FILE), SCHEMA, Duration::from_secs(5))?;
        let bytes: i64 =
            conn.query_row("SELECT coalesce(sum(length(batch)), 0) FROM export_spool", [], |r| r.get(0))?;
        Ok(SpanSpool { conn, max_bytes, bytes: bytes as u64 })
    }

    /// Keep a batch; returns how many spans were dropped (oldest first) to stay under the cap.
    pub fn push(&mut self, spans: &[SpanRecord], now: u64) -> rusqlite::Result<u64> {
        let blob = encode(spans);
        self.conn.execute(
            "INSERT INTO export_spool (spans, created_at, batch) VALUES (?1, ?2, ?3)",
            params![spans.len() as i64, now as i64, blob],
        )?;
        self.bytes += blob.len() as u64;
        let mut dropped = 0;
        while self.bytes > self.max_bytes {
            let oldest: Option<(i64, i64, i64)> = self
                .conn
                .query_row("SELECT id, spans, length(batch) FROM export_spool ORDER BY id LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .ok();
            let Some((id, n, len)) = oldest else { break };
            self.conn.execute("DELETE FROM export_spool WHERE id = ?1", [id])?;
            self.bytes = self.bytes.saturating_sub(len as u64);
            dropped += n as u64;
        }
        Ok(dropped)
    }

    /// The oldest batch, if any: (id, spans).
    pub fn oldest(&self) -> rusqlite::Result<Option<(i64, Vec<SpanRecord>)>> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row("SELECT id, batch FROM export_spool ORDER BY id LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .ok();
        Ok(row.map(|(id, blob)| (id, decode(&blob))))
    }

    pub fn remove(&mut self, id: i64) -> rusqlite::Result<()> {
        let len: i64 = self
            .conn
            .query_row("SELECT coalesce(length(batch), 0) FROM export_spool WHERE id = ?1", [id], |r| r.get(0))
            .unwrap_or(0);
        self.conn.execute("DELETE FROM export_spool WHERE id = ?1", [id])?;
        self.bytes = self.bytes.saturating_sub(len as u64);
        Ok(())
    }

    pub fn held(&self) -> Held {
        self.conn
            .query_row("SELECT count(*), min(created_at) FROM export_spool", [], |r| {
                Ok(Held {
                    batches: r.get::<_, i64>(0)? as u64,
                    bytes: self.bytes,
                    oldest_at: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                })
            })
            .unwrap_or_default()
    }
}

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

pub fn decode(blob: &[u8]) -> Vec<SpanRecord> {
    let stored: Vec<Stored> = serde_json::from_slice(blob).unwrap_or_default();
    stored
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
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(i: u8) -> SpanRecord {
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
    fn batches_round_trip_and_the_oldest_go_first_when_full() {
        let dir = std::env::temp_dir().join(format!("hooktel-spanspool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let batch: Vec<_> = (0..3).map(span).collect();
        assert_eq!(decode(&encode(&batch)), batch);
        let one = encode(&batch).len() as u64;
        let mut spool = SpanSpool::open(&dir, one * 2 + one / 2).unwrap();
        assert_eq!(spool.push(&batch, 10).unwrap(), 0);
        assert_eq!(spool.push(&batch, 11).unwrap(), 0);
        assert_eq!(spool.push(&batch, 12).unwrap(), 3, "the oldest batch made room");
        assert_eq!(spool.held().batches, 2);
        assert_eq!(spool.held().oldest_at, Some(11));
        let (id, spans) = spool.oldest().unwrap().unwrap();
        assert_eq!(spans, batch);
        spool.remove(id).unwrap();
        assert_eq!(spool.held().batches, 1);
        // survives a reopen, with its size
        drop(spool);
        let spool = SpanSpool::open(&dir, 1 << 20).unwrap();
        assert_eq!(spool.held().bytes, one);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
