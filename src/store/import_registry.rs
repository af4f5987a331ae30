//! The import registry: every span `hooktel import` has sent, in `<data dir>/hooktel.db` beside the
//! export spool, so that importing the same history twice sends nothing the second time.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::model::span::SpanRecord;
use crate::store::{export_spool, sqlite};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS imported (
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);";

pub(crate) struct ImportRegistry {
    conn: Connection,
}

impl ImportRegistry {
    pub(crate) fn open(data_dir: &Path) -> rusqlite::Result<ImportRegistry> {
        let conn = sqlite::open(&data_dir.join(export_spool::FILE), SCHEMA, Duration::from_secs(5))?;
        Ok(ImportRegistry { conn })
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
