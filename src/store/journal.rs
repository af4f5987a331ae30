//! The journal of open sessions: every event and usage delta the pipeline applied, and every span it
//! handed out, kept in `<data dir>/journal.db` until the session's trace is out. Replayed at start,
//! it rebuilds each open session exactly (ids are deterministic) without handing out a span twice,
//! so a session running across a restart (SIGTERM or kill -9) still ends as one trace. Beside them,
//! one row of no session: the day's spend against the day's budget, so a restart does not forget it.
//!
//! Written by its own thread in batched transactions (a commit every `COMMIT_EVERY` or
//! `COMMIT_ROWS` rows): what the sidecar accepted in the last few milliseconds before a kill -9 can
//! be lost, nothing else.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use crate::model::ids::SessionId;
use crate::model::time::Throttle;
use crate::store::sqlite;

pub(crate) const FILE: &str = "journal.db";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    kind INTEGER NOT NULL,
    at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_session ON journal (session);";

/// Longest a journaled row waits for its commit: the most a kill -9 can lose.
const COMMIT_EVERY: Duration = Duration::from_millis(20);
/// Rows per transaction under load.
const COMMIT_ROWS: usize = 2048;

/// One journal row.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A hook payload (as normalised: cut, not re-read) and its firing time.
    Hook { session: SessionId, at: u64, body: bytes::Bytes },
    /// Usage counted for the session (JSON of a `usage::logs::Delta`).
    Usage { session: SessionId, body: Vec<u8> },
    /// A span of the session handed out for export.
    HandedOut { session: SessionId, span: [u8; 8] },
    /// The session's trace is out: forget its rows, remember it ended (root span id, end time).
    Ended { session: SessionId, root: [u8; 8], end: u64 },
    /// The spend (USD) of a UTC day (days since the epoch), replacing the one before.
    DaySpent { day: u64, usd: f64 },
}

const HOOK: i64 = 0;
const USAGE: i64 = 1;
const HANDED_OUT: i64 = 2;
const ENDED: i64 = 3;
const DAY_SPENT: i64 = 4;

/// The `session` of the day's spend: no session's (an empty id is refused at ingest).
const NO_SESSION: &str = "";

/// What a replay gives back for one session, in journal order.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    pub(crate) hooks: Vec<(u64, Vec<u8>)>,
    pub(crate) usage: Vec<Vec<u8>>,
    pub(crate) handed_out: Vec<[u8; 8]>,
    /// Set when the session had ended: (root span id, end time).
    pub(crate) ended: Option<([u8; 8], u64)>,
}

pub(crate) fn open(data_dir: &Path) -> rusqlite::Result<Connection> {
    sqlite::open(&data_dir.join(FILE), SCHEMA, Duration::from_secs(5))
}

/// Whether the journal in `data_dir` holds rows of `session` (open, or ended within its TTL): for
/// `hooktel import`, which must not send a session the sidecar is capturing. No journal: false.
pub(crate) fn holds(data_dir: &Path, session: &str) -> rusqlite::Result<bool> {
    if !data_dir.join(FILE).exists() {
        return Ok(false);
    }
    open(data_dir)?.query_row("SELECT EXISTS(SELECT 1 FROM journal WHERE session = ?1)", params![session], |r| r.get(0))
}

/// Everything the journal holds, by session (sessions in the order they first appear).
pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Vec<(String, Restored)>> {
    let mut stmt = conn.prepare("SELECT session, kind, at, body FROM journal WHERE kind != ?1 ORDER BY id")?;
    let mut order: Vec<String> = Vec::new();
    let mut by: HashMap<String, Restored> = HashMap::new();
    let rows = stmt.query_map([DAY_SPENT], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?))
    })?;
    for row in rows {
        let (session, kind, at, body) = row?;
        let r = by.entry(session.clone()).or_insert_with(|| {
            order.push(session.clone());
            Restored::default()
        });
        let id8 = |b: &[u8]| b.get(..8).and_then(|s| <[u8; 8]>::try_from(s).ok());
        match kind {
            HOOK => r.hooks.push((at as u64, body)),
            USAGE => r.usage.push(body),
            HANDED_OUT => r.handed_out.extend(id8(&body)),
            ENDED => r.ended = id8(&body).map(|id| (id, at as u64)),
            _ => {}
        }
    }
    Ok(order
        .into_iter()
        .map(|s| {
            let r = by.remove(&s).unwrap_or_default();
            (s, r)
        })
        .collect())
}

/// The last day's spend the journal kept: (UTC day, USD).
pub(crate) fn day_spent(conn: &Connection) -> Option<(u64, f64)> {
    let (day, body) = conn
        .query_row("SELECT at, body FROM journal WHERE kind = ?1 ORDER BY id DESC LIMIT 1", [DAY_SPENT], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .ok()?;
    let usd = f64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    (usd.is_finite() && usd >= 0.0).then_some((u64::try_from(day).ok()?, usd))
}

/// The journal's bound and what it counts.
pub(crate) struct Limits {
    /// Bytes of live rows past which events and usage are no longer journaled (markers still are,
    /// and an ended session's rows are freed for reuse).
    pub(crate) max_bytes: u64,
    /// Rows not written because a commit failed.
    pub(crate) failures: prometheus::IntCounter,
    /// Rows not written because the journal was at `max_bytes`.
    pub(crate) full: prometheus::IntCounter,
}

/// Write entries until every sender is gone, committing in batches. Failed commits are counted.
pub(crate) fn write(mut conn: Connection, rx: Reader, limits: Limits) {
    let Reader { rx, backlog } = rx;
    let mut used = used_bytes(&conn);
    let mut pending: Vec<Entry> = Vec::new();
    let mut since = Instant::now();
    let mut full = Throttle::default();
    loop {
        let wait = COMMIT_EVERY.saturating_sub(since.elapsed());
        match rx.recv_timeout(if pending.is_empty() { Duration::from_secs(3600) } else { wait }) {
            Ok(e) => {
                if pending.is_empty() {
                    since = Instant::now();
                }
                pending.push(e);
                if pending.len() < COMMIT_ROWS && since.elapsed() < COMMIT_EVERY {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let held: usize = pending.iter().map(Entry::bytes).sum();
        commit(&mut conn, &mut pending, &limits, &mut used, &mut full);
        backlog.fetch_sub(held, Ordering::Relaxed);
    }
    commit(&mut conn, &mut pending, &limits, &mut used, &mut full);
}

/// Bytes the journal's live pages take (pages freed by ended sessions are reused before the file grows).
fn used_bytes(conn: &Connection) -> u64 {
    let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0)).unwrap_or(0);
    let pages = pragma("page_count").saturating_sub(pragma("freelist_count"));
    u64::try_from(pages.saturating_mul(pragma("page_size"))).unwrap_or(0)
}

/// Commit what is pending, dropping (and counting) what would grow the journal past its cap; `full`
/// keeps the warning about that to one line per interval while events keep coming.
fn commit(conn: &mut Connection, pending: &mut Vec<Entry>, limits: &Limits, used: &mut u64, full: &mut Throttle) {
    if pending.is_empty() {
        return;
    }
    // past the cap, what would grow the journal is dropped (counted); markers are a few bytes and
    // keep the sessions that did get in exact, and endings free space
    let mut room = limits.max_bytes.saturating_sub(*used);
    let before = pending.len();
    pending.retain(|e| match e {
        Entry::Hook { body, .. } => take(&mut room, body.len()),
        Entry::Usage { body, .. } => take(&mut room, body.len()),
        Entry::HandedOut { .. } | Entry::Ended { .. } | Entry::DaySpent { .. } => true,
    });
    if pending.len() < before {
        limits.full.inc_by((before - pending.len()) as u64);
        if let Some(left_out) = full.allow(Instant::now()) {
            tracing::warn!(
                dropped = before - pending.len(),
                max_bytes = limits.max_bytes,
                left_out,
                "Journal at its size cap; open sessions may not survive a restart whole"
            );
        }
    }
    let result = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO journal (session, kind, at, body) VALUES (?1, ?2, ?3, ?4)")?;
            let mut forget = tx.prepare_cached("DELETE FROM journal WHERE session = ?1")?;
            for e in pending.iter() {
                match e {
                    Entry::Hook { session, at, body } => {
                        insert.execute(params![session.as_str(), HOOK, *at as i64, body.as_ref()])?;
                    }
                    Entry::Usage { session, body } => {
                        insert.execute(params![session.as_str(), USAGE, 0, body])?;
                    }
                    Entry::HandedOut { session, span } => {
                        insert.execute(params![session.as_str(), HANDED_OUT, 0, &span[..]])?;
                    }
                    Entry::Ended { session, root, end } => {
                        forget.execute([&**session])?;
                        insert.execute(params![session.as_str(), ENDED, *end as i64, &root[..]])?;
                    }
                    Entry::DaySpent { day, usd } => {
                        forget.execute([NO_SESSION])?;
                        insert.execute(params![NO_SESSION, DAY_SPENT, *day as i64, &usd.to_le_bytes()[..]])?;
                    }
                }
            }
        }
        tx.commit()
    })();
    if let Err(e) = result {
        limits.failures.inc_by(pending.len() as u64);
        tracing::error!(error = %e, rows = pending.len(), "Journal write failed; a restart now may lose open sessions");
    }
    pending.clear();
    *used = used_bytes(conn);
}

/// Take room for a row of `len` bytes (plus its overhead), if there is that much left.
fn take(room: &mut u64, len: usize) -> bool {
    let need = len as u64 + 64;
    if need > *room {
        return false;
    }
    *room -= need;
    true
}

/// Drop the markers of sessions that ended long ago (called at start).
pub(crate) fn forget_old_endings(conn: &Connection, older_than_ns: u64, now: u64) {
    let cutoff = now.saturating_sub(older_than_ns) as i64;
    let _ = conn.execute("DELETE FROM journal WHERE kind = ?1 AND at < ?2", params![ENDED, cutoff]);
}

/// The pipeline's end of the journal: it never blocks the pipeline, and its backlog is bounded by
/// bytes (the journal backlog's share of the memory budget: entries sent and not yet committed;
/// 30,000 events of 60 KB held 455-749 MiB in an unbounded backlog). Past it events and usage are
/// dropped and counted, as at the size cap;
/// markers (a few bytes each, and what keeps a replay from handing a span out twice) always go in.
pub(crate) struct Writer {
    tx: Sender<Entry>,
    backlog: Arc<AtomicUsize>,
    max_bytes: usize,
    dropped: prometheus::IntCounter,
}

/// The writer thread's end: entries, and the backlog it gives back as it commits them.
pub(crate) struct Reader {
    rx: Receiver<Entry>,
    backlog: Arc<AtomicUsize>,
}

/// A journal channel whose backlog stops at `max_bytes`; what it drops is counted in `dropped`.
pub(crate) fn channel(max_bytes: usize, dropped: prometheus::IntCounter) -> (Writer, Reader) {
    let (tx, rx) = std::sync::mpsc::channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    (Writer { tx, backlog: backlog.clone(), max_bytes, dropped }, Reader { rx, backlog })
}

impl Writer {
    /// Send an entry to the writer; false when it was not (dropped at the backlog's bound, counted,
    /// or the writer is gone).
    pub(crate) fn send(&self, e: Entry) -> bool {
        let bytes = e.bytes();
        let marker = matches!(e, Entry::HandedOut { .. } | Entry::Ended { .. } | Entry::DaySpent { .. });
        let taken = self.backlog.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            let after = used.saturating_add(bytes);
            (marker || after <= self.max_bytes).then_some(after)
        });
        if taken.is_err() {
            self.dropped.inc();
            return false;
        }
        if self.tx.send(e).is_err() {
            self.backlog.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl Entry {
    /// What the entry holds in memory, about (its body and its overhead).
    fn bytes(&self) -> usize {
        let body = match self {
            Entry::Hook { body, .. } => body.len(),
            Entry::Usage { body, .. } => body.len(),
            Entry::HandedOut { .. } | Entry::Ended { .. } | Entry::DaySpent { .. } => 0,
        };
        body + 64
    }
}

/// Group restored sessions: sorted hooks by firing time (the order they fired in).
pub(crate) fn sort_hooks(r: &mut Restored) {
    let mut by_time: BTreeMap<(u64, usize), Vec<u8>> = BTreeMap::new();
    for (i, (at, body)) in r.hooks.drain(..).enumerate() {
        by_time.insert((at, i), body);
    }
    r.hooks = by_time.into_iter().map(|((at, _), b)| (at, b)).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> prometheus::IntCounter {
        prometheus::IntCounter::new("t", "t").unwrap()
    }

    /// Past the cap, events and usage are dropped and counted; markers still go in; an ended
    /// session's rows make room again.
    #[test]
    fn the_journal_stays_under_its_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, rx) = channel(usize::MAX, counter());
        let full = counter();
        let limits = Limits { max_bytes: 256 * 1024, failures: counter(), full: full.clone() };
        let writer = std::thread::spawn({
            let conn = open(tmp.path()).unwrap();
            move || write(conn, rx, limits)
        });
        let body = bytes::Bytes::from(vec![b'x'; 4096]);
        for i in 0..200u64 {
            assert!(tx.send(Entry::Hook { session: "a".into(), at: i, body: body.clone() }));
            if i % 20 == 19 {
                std::thread::sleep(Duration::from_millis(30)); // let commits happen
            }
        }
        assert!(tx.send(Entry::HandedOut { session: "a".into(), span: [1; 8] }));
        std::thread::sleep(Duration::from_millis(50));
        assert!(tx.send(Entry::Ended { session: "a".into(), root: [2; 8], end: 9 }));
        std::thread::sleep(Duration::from_millis(50));
        assert!(tx.send(Entry::Hook { session: "b".into(), at: 1, body: body.clone() }));
        drop(tx);
        writer.join().unwrap();
        let conn = open(tmp.path()).unwrap();
        assert!(used_bytes(&conn) <= 256 * 1024 + 64 * 1024, "{} bytes", used_bytes(&conn));
        assert!(full.get() > 100, "dropped {}", full.get());
        let all = read(&conn).unwrap();
        let b = all.iter().find(|(s, _)| s == "b").expect("room again after a session ended");
        assert_eq!(b.1.hooks.len(), 1);
    }

    /// A writer that falls behind holds at most its backlog's bytes: past them events are dropped
    /// and counted, markers still go in, and the backlog is given back as rows are committed.
    #[test]
    fn the_backlog_is_bounded_by_bytes() {
        let dropped = counter();
        let (tx, rx) = channel(100 * 1024, dropped.clone());
        let body = bytes::Bytes::from(vec![b'x'; 10 * 1024]);
        let sent =
            (0..20u64).filter(|&i| tx.send(Entry::Hook { session: "a".into(), at: i, body: body.clone() })).count();
        assert_eq!((sent, dropped.get()), (9, 11), "no writer yet: the backlog fills");
        assert!(tx.send(Entry::HandedOut { session: "a".into(), span: [1; 8] }), "markers always go in");
        let tmp = tempfile::tempdir().unwrap();
        let conn = open(tmp.path()).unwrap();
        let limits = Limits { max_bytes: u64::MAX, failures: counter(), full: counter() };
        let backlog = tx.backlog.clone();
        let writer = std::thread::spawn(move || write(conn, rx, limits));
        let drained = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            backlog.load(Ordering::Relaxed) == 0
        });
        assert!(drained, "the backlog is given back once committed");
        assert!(tx.send(Entry::Hook { session: "a".into(), at: 99, body }));
        drop(tx);
        writer.join().unwrap();
        let conn = open(tmp.path()).unwrap();
        assert_eq!(read(&conn).unwrap()[0].1.hooks.len(), 10);
    }

    /// The day's spend is one row, the last one sent; it is no session's, and the journal at its
    /// cap still takes it.
    #[test]
    fn the_days_spend_is_one_row_and_no_session() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, rx) = channel(usize::MAX, counter());
        let conn = open(tmp.path()).unwrap();
        assert_eq!(day_spent(&conn), None);
        let limits = Limits { max_bytes: 0, failures: counter(), full: counter() };
        let writer = std::thread::spawn(move || write(conn, rx, limits));
        for (day, usd) in [(20_000, 1.5), (20_000, 2.25), (20_001, 0.5)] {
            assert!(tx.send(Entry::DaySpent { day, usd }));
        }
        drop(tx);
        writer.join().unwrap();
        let conn = open(tmp.path()).unwrap();
        assert_eq!(day_spent(&conn), Some((20_001, 0.5)));
        assert!(read(&conn).unwrap().is_empty(), "no session to replay");
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn rows_come_back_by_session_and_ended_sessions_shrink_to_a_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (tx, rx) = channel(usize::MAX, counter());
        let conn = open(dir).unwrap();
        let limits = Limits { max_bytes: u64::MAX, failures: counter(), full: counter() };
        let writer = std::thread::spawn(move || write(conn, rx, limits));
        let hook = |s: &str, at: u64| Entry::Hook { session: s.into(), at, body: bytes::Bytes::from_static(b"{}") };
        assert!(tx.send(hook("a", 2)));
        assert!(tx.send(hook("b", 1)));
        assert!(tx.send(hook("a", 1)));
        assert!(tx.send(Entry::Usage { session: "a".into(), body: b"u".to_vec() }));
        assert!(tx.send(Entry::HandedOut { session: "a".into(), span: [7; 8] }));
        assert!(tx.send(Entry::Ended { session: "b".into(), root: [9; 8], end: 5 }));
        drop(tx);
        writer.join().unwrap();
        let conn = open(dir).unwrap();
        let mut all = read(&conn).unwrap();
        assert_eq!(all.len(), 2);
        let (a, ra) = &mut all[0];
        assert_eq!(a, "a");
        sort_hooks(ra);
        assert_eq!(ra.hooks.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!((ra.usage.len(), ra.handed_out.clone()), (1, vec![[7; 8]]));
        let (b, rb) = &all[1];
        assert_eq!((b.as_str(), rb.hooks.len(), rb.ended), ("b", 0, Some(([9; 8], 5))));
        forget_old_endings(&conn, 10, 100);
        assert_eq!(read(&conn).unwrap().len(), 1);
    }
}
