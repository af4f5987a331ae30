//! The hook spool: events `hooktel hook` could not deliver, kept in `<data dir>/spool.db` until the
//! sidecar drains them.
//!
//! Many hook processes may append at once (SQLite's lock, WAL mode, a busy timeout bounded by the
//! hook's own timeout); the sidecar takes events oldest first (`ingest::drain` feeds them back
//! through admission) and deletes them once queued. Only SQL and files here: no runtime.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::metrics::SpoolDepth;
use crate::store::sqlite;

pub(crate) const FILE: &str = "spool.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS hook_events (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS hook_events_time ON hook_events (received_at, id);";

/// How long the sidecar waits for the spool's lock; hook processes hold it for well under a ms.
const SIDECAR_BUSY: Duration = Duration::from_secs(2);

pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Append one event (the hook client's fallback). `busy` bounds the wait for the lock. The common
/// case is one open and one insert; a missing, corrupt or foreign file takes the checked path.
pub(crate) fn append(data_dir: &Path, at: u64, body: &[u8], busy: Duration) -> rusqlite::Result<()> {
    let file = path(data_dir);
    let insert = |conn: &Connection| {
        conn.execute("INSERT INTO hook_events (received_at, body) VALUES (?1, ?2)", params![at as i64, body])
            .map(|_| ())
    };
    if let Ok(conn) = sqlite::open_existing(&file, busy) {
        match insert(&conn) {
            Ok(()) => return Ok(()),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => return Err(e),
            Err(_) => {} // not a spool yet, or a damaged one: the checked path below sorts it out
        }
    }
    let _ = std::fs::create_dir_all(data_dir);
    let conn = sqlite::open(&file, SCHEMA, busy)?;
    insert(&conn)
}

/// Where the hook client notes an event it could neither deliver nor spool (a locked or full
/// spool): one line each, so the sidecar can count what the client cannot report itself.
const DROPS: &str = "hook-drops.log";

/// Note a lost event (best effort: on a full disk even this line may not be written).
pub(crate) fn note_drop(data_dir: &Path, error: &rusqlite::Error) {
    use std::io::Write;
    let line = format!("{} {error}\n", crate::model::time::now_ns());
    let file = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join(DROPS));
    if let Ok(mut f) = file {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Take the drops the hook clients noted since the last call (the file is consumed).
pub(crate) fn take_drops(data_dir: &Path) -> u64 {
    let file = data_dir.join(DROPS);
    let taking = data_dir.join(format!("{DROPS}.counting"));
    if std::fs::rename(&file, &taking).is_err() {
        return 0;
    }
    let n = std::fs::read(&taking).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0);
    let _ = std::fs::remove_file(&taking);
    n
}

/// The sidecar's side of the spool: one long-lived connection that takes and deletes.
pub(crate) struct HookSpool {
    conn: Connection,
}

impl HookSpool {
    pub(crate) fn open(data_dir: &Path) -> rusqlite::Result<HookSpool> {
        Ok(HookSpool { conn: sqlite::open(&path(data_dir), SCHEMA, SIDECAR_BUSY)? })
    }

    /// Items, bytes and the oldest firing time held.
    pub(crate) fn depth(&self) -> rusqlite::Result<SpoolDepth> {
        depth(&self.conn)
    }

    /// The oldest `limit` events: (id, firing time, body).
    pub(crate) fn take(&self, limit: usize) -> rusqlite::Result<Vec<(i64, u64, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, received_at, body FROM hook_events ORDER BY received_at, id LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)))?;
        rows.collect()
    }

    pub(crate) fn delete(&mut self, ids: &[i64]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM hook_events WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
        }
        tx.commit()
    }
}

/// The spool's depth read without writing anything (for `doctor`): a missing file or table is an
/// empty spool; `busy` bounds the wait for a lock.
pub(crate) fn peek(data_dir: &Path, busy: Duration) -> rusqlite::Result<SpoolDepth> {
    match sqlite::open_read_only(&path(data_dir), "hook_events", busy)? {
        Some(conn) => depth(&conn),
        None => Ok(SpoolDepth::default()),
    }
}

/// Depth, size and oldest event of the spool.
fn depth(conn: &Connection) -> rusqlite::Result<SpoolDepth> {
    conn.query_row("SELECT count(*), coalesce(sum(length(body)), 0), min(received_at) FROM hook_events", [], |r| {
        Ok(SpoolDepth {
            items: r.get::<_, i64>(0)? as u64,
            bytes: r.get::<_, i64>(1)? as u64,
            oldest_at: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_from_many_processes_and_takes_in_time_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        append(&dir, 1000 - (i * 8 + t), b"{}", Duration::from_secs(5)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut spool = HookSpool::open(&dir).unwrap();
        assert_eq!(spool.depth().unwrap().items, 400);
        let batch = spool.take(1000).unwrap();
        assert!(batch.windows(2).all(|w| w[0].1 <= w[1].1), "oldest first");
        assert_eq!(peek(&dir, Duration::from_secs(1)).unwrap().items, 400);
        spool.delete(&batch.iter().map(|b| b.0).collect::<Vec<_>>()).unwrap();
        assert_eq!(spool.depth().unwrap(), SpoolDepth::default());
        assert_eq!(peek(&tmp.path().join("missing"), Duration::from_secs(1)).unwrap(), SpoolDepth::default());
    }
}
