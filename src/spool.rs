//! The hook spool: events `hooktel hook` could not deliver, kept in `<data dir>/spool.db` until the
//! sidecar drains them.
//!
//! Many hook processes may append at once (SQLite's lock, WAL mode, a busy timeout bounded by the
//! hook's own timeout); the sidecar drains at start and then every second, oldest first, through the
//! same ingest path as `/v1/hooks`, with each event's own firing time, so the traces come out as if
//! the sidecar had been up. A drained event is deleted once it is queued.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection};
use tokio::sync::watch;

use crate::server::{self, Admission, Ingest, Refusal};
use crate::store;

pub const FILE: &str = "spool.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS hook_events (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS hook_events_time ON hook_events (received_at, id);";

/// How often the sidecar looks for spooled events after the first drain.
const DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Events taken from the spool per transaction.
const DRAIN_BATCH: usize = 512;

/// How long the sidecar waits for the spool's lock; hook processes hold it for well under a ms.
const SIDECAR_BUSY: Duration = Duration::from_secs(2);

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Append one event (the hook client's fallback). `busy` bounds the wait for the lock. The common
/// case is one open and one insert; a missing, corrupt or foreign file takes the checked path.
pub fn append(data_dir: &Path, at: u64, body: &[u8], busy: Duration) -> rusqlite::Result<()> {
    let file = path(data_dir);
    let insert = |conn: &Connection| {
        conn.execute("INSERT INTO hook_events (received_at, body) VALUES (?1, ?2)", params![at as i64, body])
            .map(|_| ())
    };
    if let Ok(conn) = store::open_existing(&file, busy) {
        match insert(&conn) {
            Ok(()) => return Ok(()),
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => return Err(e),
            Err(_) => {} // not a spool yet, or a damaged one: the checked path below sorts it out
        }
    }
    let _ = std::fs::create_dir_all(data_dir);
    let conn = store::open(&file, SCHEMA, busy)?;
    insert(&conn)
}

/// Where the hook client notes an event it could neither deliver nor spool (a locked or full
/// spool): one line each, so the sidecar can count what the client cannot report itself.
const DROPS: &str = "hook-drops.log";

/// Note a lost event (best effort: on a full disk even this line may not be written).
pub fn note_drop(data_dir: &Path, error: &rusqlite::Error) {
    use std::io::Write;
    let line = format!("{} {error}\n", crate::pipeline::now_ns());
    let file = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join(DROPS));
    if let Ok(mut f) = file {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Take the drops the hook clients noted since the last call (the file is consumed).
fn take_drops(data_dir: &Path) -> u64 {
    let file = data_dir.join(DROPS);
    let taking = data_dir.join(format!("{DROPS}.counting"));
    if std::fs::rename(&file, &taking).is_err() {
        return 0;
    }
    let n = std::fs::read(&taking).map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64).unwrap_or(0);
    let _ = std::fs::remove_file(&taking);
    n
}

/// Depth, size and oldest event of the spool.
#[derive(Debug, Default, PartialEq)]
pub struct Depth {
    pub events: u64,
    pub bytes: u64,
    pub oldest_at: Option<u64>,
}

fn depth(conn: &Connection) -> rusqlite::Result<Depth> {
    conn.query_row("SELECT count(*), coalesce(sum(length(body)), 0), min(received_at) FROM hook_events", [], |r| {
        Ok(Depth {
            events: r.get::<_, i64>(0)? as u64,
            bytes: r.get::<_, i64>(1)? as u64,
            oldest_at: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
        })
    })
}

fn take(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<(i64, u64, Vec<u8>)>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, received_at, body FROM hook_events ORDER BY received_at, id LIMIT ?1")?;
    let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)))?;
    rows.collect()
}

fn delete(conn: &mut Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached("DELETE FROM hook_events WHERE id = ?1")?;
        for id in ids {
            stmt.execute([id])?;
        }
    }
    tx.commit()
}

/// Drain the spool into the pipeline until `stop` turns true: once at start, then every second.
pub async fn drain(data_dir: PathBuf, ingest: Arc<Ingest>, mut stop: watch::Receiver<bool>) {
    let metrics = ingest.metrics.clone();
    let open = {
        let p = path(&data_dir);
        tokio::task::spawn_blocking(move || store::open(&p, SCHEMA, SIDECAR_BUSY)).await
    };
    let conn = match open {
        Ok(Ok(c)) => Arc::new(std::sync::Mutex::new(c)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Cannot open the hook spool; spooled events wait for the next start");
            return;
        }
        Err(_) => return,
    };
    loop {
        loop {
            let c = conn.clone();
            let batch = tokio::task::spawn_blocking(move || {
                let c = c.lock().unwrap_or_else(|e| e.into_inner());
                take(&c, DRAIN_BATCH)
            })
            .await;
            let batch = match batch {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Reading the hook spool failed; retrying later");
                    break;
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                break;
            }
            let mut done = Vec::with_capacity(batch.len());
            for (id, at, body) in batch {
                match server::accept(&ingest, &body, at, Admission::WaitForRoom).await {
                    Ok(()) => {}
                    Err(Refusal::Invalid(e)) => {
                        metrics.ingest_rejected.with_label_values(&[e.metric_label()]).inc();
                        tracing::warn!(error = %e, "Dropped a spooled event that is not a hook payload");
                    }
                    Err(Refusal::Closed | Refusal::QueueFull) => return,
                }
                done.push(id);
            }
            let n = done.len();
            let c = conn.clone();
            let deleted = tokio::task::spawn_blocking(move || {
                let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                delete(&mut c, &done)
            })
            .await;
            if !matches!(deleted, Ok(Ok(()))) {
                tracing::error!("Deleting drained events from the hook spool failed; they may be delivered twice");
            }
            tracing::debug!(events = n, "Drained the hook spool");
            if *stop.borrow() {
                return;
            }
        }
        let c = conn.clone();
        if let Ok(Ok(d)) =
            tokio::task::spawn_blocking(move || depth(&c.lock().unwrap_or_else(|e| e.into_inner()))).await
        {
            metrics.spool_depth("hook", &d);
        }
        let dropped = take_drops(&data_dir);
        if dropped > 0 {
            metrics.spool_dropped.with_label_values(&["hook", "write_failed"]).inc_by(dropped);
            tracing::error!(
                events = dropped,
                "Hook events lost: neither delivered nor spooled (spool locked or disk full)"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_from_many_processes_and_takes_in_time_order() {
        let dir = std::env::temp_dir().join(format!("hooktel-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
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
        let mut conn = store::open(&path(&dir), SCHEMA, Duration::from_secs(1)).unwrap();
        assert_eq!(depth(&conn).unwrap().events, 400);
        let batch = take(&conn, 1000).unwrap();
        assert!(batch.windows(2).all(|w| w[0].1 <= w[1].1), "oldest first");
        delete(&mut conn, &batch.iter().map(|b| b.0).collect::<Vec<_>>()).unwrap();
        assert_eq!(depth(&conn).unwrap(), Depth::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
