//! The import registry, in `<data dir>/hooktel.db` beside the export spool: every span `hooktel
//! import` has sent, so that importing the same history twice sends nothing the second time; and
//! every session the live path handed out, so that an import never sends a second copy of a session
//! the sidecar already exported or stored (backends such as Jaeger do not dedupe by span id).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};

use opentelemetry::trace::TraceId;

use crate::model::semconv::int;
use crate::model::span::SpanRecord;
use crate::store::{export_spool, sqlite};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS imported (
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE TABLE IF NOT EXISTS live (
    trace_id BLOB PRIMARY KEY,       -- a session the live path handed spans of to its sink
    seen_ns INTEGER NOT NULL         -- when it last did
);
CREATE INDEX IF NOT EXISTS live_by_age ON live (seen_ns);";

/// How long a live session is remembered: longer than Claude Code keeps transcripts by default (30
/// days), so that an import of what is still on disk knows it.
const LIVE_TTL_NS: u64 = 400 * 24 * 3600 * crate::model::time::NS_PER_SEC;

/// Most live sessions remembered (about 50 bytes each); the oldest are forgotten first.
pub(crate) const MAX_LIVE: i64 = 1_000_000;

/// How often `mark_live` prunes.
const PRUNE_EVERY_NS: u64 = 3600 * crate::model::time::NS_PER_SEC;

pub(crate) struct ImportRegistry {
    conn: Connection,
    last_prune: Option<u64>,
}

impl ImportRegistry {
    pub(crate) fn open(data_dir: &Path) -> rusqlite::Result<ImportRegistry> {
        let conn = sqlite::open(&data_dir.join(export_spool::FILE), SCHEMA, Duration::from_secs(5))?;
        Ok(ImportRegistry { conn, last_prune: None })
    }

    /// Record that the live path handed out spans of these sessions (traces) at `now`. Prunes at
    /// most once an hour: by age, then down to [`MAX_LIVE`].
    pub(crate) fn mark_live(&mut self, traces: &[TraceId], now: u64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached("INSERT OR REPLACE INTO live (trace_id, seen_ns) VALUES (?1, ?2)")?;
            for t in traces {
                upsert.execute(params![&t.to_bytes()[..], int(now)])?;
            }
        }
        tx.commit()?;
        if self.last_prune.is_none_or(|at| now.saturating_sub(at) >= PRUNE_EVERY_NS) {
            self.last_prune = Some(now);
            self.prune(now, MAX_LIVE)?;
        }
        Ok(())
    }

    fn prune(&self, now: u64, max: i64) -> rusqlite::Result<()> {
        self.conn.execute("DELETE FROM live WHERE seen_ns < ?1", params![int(now.saturating_sub(LIVE_TTL_NS))])?;
        self.conn.execute(
            "DELETE FROM live WHERE trace_id IN (SELECT trace_id FROM live ORDER BY seen_ns
             LIMIT max(0, (SELECT count(*) FROM live) - ?1))",
            params![max],
        )?;
        Ok(())
    }

    /// Whether the live path handed out spans of this session.
    pub(crate) fn seen_live(&self, trace: TraceId) -> rusqlite::Result<bool> {
        self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM live WHERE trace_id = ?1)",
            params![&trace.to_bytes()[..]],
            |r| r.get(0),
        )
    }

    /// Whether this span was sent by an earlier import.
    pub(crate) fn contains(&self, span: &SpanRecord) -> rusqlite::Result<bool> {
        self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM imported WHERE trace_id = ?1 AND span_id = ?2)",
            params![&span.trace_id.to_bytes()[..], &span.span_id.to_bytes()[..]],
            |r| r.get(0),
        )
    }

    /// Record spans the destination took, in one transaction.
    pub(crate) fn record(&mut self, spans: &[SpanRecord]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO imported (trace_id, span_id) VALUES (?1, ?2)")?;
            for s in spans {
                insert.execute(params![&s.trace_id.to_bytes()[..], &s.span_id.to_bytes()[..]])?;
            }
        }
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Live sessions are remembered until they are too old or too many, the oldest going first.
    #[test]
    fn live_sessions_are_remembered_within_their_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = ImportRegistry::open(dir.path()).unwrap();
        let t = |i: u128| TraceId::from(i + 1);
        const DAY: u64 = 24 * 3600 * crate::model::time::NS_PER_SEC;
        let now = 1000 * DAY;
        r.mark_live(&[t(0), t(1)], now - 500 * DAY).unwrap();
        r.mark_live(&[t(1), t(2), t(3)], now - DAY).unwrap();
        r.mark_live(&[t(4)], now).unwrap();
        assert!(!r.seen_live(t(0)).unwrap(), "older than 400 days");
        assert!(r.seen_live(t(1)).unwrap(), "seen again since");
        assert!(!r.seen_live(t(9)).unwrap());
        r.prune(now, 2).unwrap();
        let kept: Vec<bool> = (1..5).map(|i| r.seen_live(t(i)).unwrap()).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), 2);
        assert!(kept[3], "the newest stays");
    }
}
