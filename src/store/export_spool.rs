//! The export spool: batches of finished spans the collector did not take, kept in
//! `<data dir>/hooktel.db` and replayed oldest first once it answers again.
//!
//! Bounded by size: when full, the oldest batches are dropped, counted, and logged as an ERROR
//! (data loss needs an operator). Replayed spans keep their ids, so a batch delivered twice (the
//! collector took it but the answer was lost) is recognisable downstream. A failing database is an
//! error, never an empty spool; a batch that cannot be decoded is said to be one, never "exported";
//! a record of a batch that cannot be decoded is set aside and counted, the rest of its batch kept.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::metrics::SpoolDepth;
use crate::model::span::SpanRecord;
use crate::store::{record, sqlite};

pub(crate) const FILE: &str = "hooktel.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS export_spool (
    id INTEGER PRIMARY KEY,
    spans INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    batch BLOB NOT NULL
);";

/// Why the spool could not hand out its oldest batch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    #[error("export spool: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The row is there but is not a batch (a damaged or foreign write); `spans` is how many it held.
    #[error("export spool: batch {id} of {spans} span(s) cannot be decoded: {error}")]
    Undecodable { id: i64, spans: u64, error: serde_json::Error },
}

pub(crate) struct SpanSpool {
    conn: Connection,
    max_bytes: u64,
    /// Cached size of the spooled batches, so the cap is checked without a query per batch.
    bytes: u64,
}

impl SpanSpool {
    pub(crate) fn open(data_dir: &Path, max_bytes: u64) -> rusqlite::Result<SpanSpool> {
        let conn = sqlite::open(&data_dir.join(FILE), SCHEMA, Duration::from_secs(5))?;
        let bytes: i64 =
            conn.query_row("SELECT coalesce(sum(length(batch)), 0) FROM export_spool", [], |r| r.get(0))?;
        Ok(SpanSpool { conn, max_bytes, bytes: bytes as u64 })
    }

    /// Keep a batch; returns how many spans were dropped (oldest first) to stay under the cap.
    pub(crate) fn push(&mut self, spans: &[SpanRecord], now: u64) -> rusqlite::Result<u64> {
        let blob = record::encode(spans);
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
                .optional()?;
            let Some((id, n, len)) = oldest else { break };
            self.conn.execute("DELETE FROM export_spool WHERE id = ?1", [id])?;
            self.bytes = self.bytes.saturating_sub(len as u64);
            dropped += n as u64;
        }
        Ok(dropped)
    }

    /// The oldest batch, if any: (id, its spans, how many of its records were set aside).
    pub(crate) fn oldest(&self) -> Result<Option<(i64, Vec<SpanRecord>, usize)>, SpoolError> {
        let row: Option<(i64, i64, Vec<u8>)> = self
            .conn
            .query_row("SELECT id, spans, batch FROM export_spool ORDER BY id LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((id, spans, blob)) = row else { return Ok(None) };
        match record::decode(&blob) {
            Ok(batch) => Ok(Some((id, batch.spans, batch.set_aside))),
            Err(error) => Err(SpoolError::Undecodable { id, spans: spans.max(0) as u64, error }),
        }
    }

    pub(crate) fn remove(&mut self, id: i64) -> rusqlite::Result<()> {
        let len: Option<i64> = self
            .conn
            .query_row("SELECT length(batch) FROM export_spool WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        self.conn.execute("DELETE FROM export_spool WHERE id = ?1", [id])?;
        self.bytes = self.bytes.saturating_sub(len.unwrap_or(0) as u64);
        Ok(())
    }

    /// Batches, bytes and the oldest batch's time.
    pub(crate) fn depth(&self) -> rusqlite::Result<SpoolDepth> {
        self.conn.query_row("SELECT count(*), min(created_at) FROM export_spool", [], |r| {
            Ok(SpoolDepth {
                items: r.get::<_, i64>(0)? as u64,
                bytes: self.bytes,
                oldest_at: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::tests::span;

    #[test]
    fn batches_round_trip_and_the_oldest_go_first_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let batch: Vec<_> = (0..3).map(span).collect();
        let one = record::encode(&batch).len() as u64;
        let mut spool = SpanSpool::open(dir, one * 2 + one / 2).unwrap();
        assert_eq!(spool.push(&batch, 10).unwrap(), 0);
        assert_eq!(spool.push(&batch, 11).unwrap(), 0);
        assert_eq!(spool.push(&batch, 12).unwrap(), 3, "the oldest batch made room");
        assert_eq!(spool.depth().unwrap().items, 2);
        assert_eq!(spool.depth().unwrap().oldest_at, Some(11));
        let (id, spans, set_aside) = spool.oldest().unwrap().unwrap();
        assert_eq!((spans, set_aside), (batch, 0));
        spool.remove(id).unwrap();
        assert_eq!(spool.depth().unwrap().items, 1);
        // survives a reopen, with its size
        drop(spool);
        let spool = SpanSpool::open(dir, 1 << 20).unwrap();
        assert_eq!(spool.depth().unwrap().bytes, one);
    }

    /// `.ok()` turned every SQLite error into "no row": a failing spool looked empty.
    #[test]
    fn a_failing_database_is_an_error_not_an_empty_spool() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = SpanSpool::open(dir.path(), 1 << 20).unwrap();
        spool.push(&[span(1)], 1).unwrap();
        spool.conn.execute_batch("DROP TABLE export_spool").unwrap();
        assert!(matches!(spool.oldest(), Err(SpoolError::Sqlite(_))));
        assert!(spool.remove(1).is_err());
        assert!(spool.depth().is_err());
    }

    /// A batch that failed to decode was handed out as an empty batch, "exported" and deleted uncounted.
    #[test]
    fn an_undecodable_batch_is_an_error_naming_its_spans() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpanSpool::open(dir.path(), 1 << 20).unwrap();
        spool.conn.execute("INSERT INTO export_spool (spans, created_at, batch) VALUES (5, 1, x'00ff7b')", []).unwrap();
        match spool.oldest() {
            Err(SpoolError::Undecodable { spans, .. }) => assert_eq!(spans, 5),
            other => panic!("expected an undecodable batch, got {other:?}"),
        }
    }

    /// One bad record (a `null` where a number goes, as a float that was not finite was once
    /// written) cost its whole batch: the other sessions' spans in it were dropped with it.
    #[test]
    fn a_bad_record_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpanSpool::open(dir.path(), 1 << 20).unwrap();
        let batch: Vec<_> = (0..5).map(span).collect();
        let text = String::from_utf8(record::encode(&batch)).unwrap();
        let mut records: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        records[2]["end"] = serde_json::Value::Null;
        let blob = serde_json::to_vec(&records).unwrap();
        spool.conn.execute("INSERT INTO export_spool (spans, created_at, batch) VALUES (5, 1, ?1)", [blob]).unwrap();
        let (_, spans, set_aside) = spool.oldest().unwrap().unwrap();
        assert_eq!(set_aside, 1);
        assert_eq!(spans.iter().map(|s| s.span_id).collect::<Vec<_>>(), [0, 1, 3, 4].map(|i| batch[i].span_id));
    }
}
