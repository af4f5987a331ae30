//! The local store: finished spans kept in `<data dir>/local.db` when no OTLP endpoint is configured,
//! for `hooktel sessions` and `hooktel show` (rendered by `view`).
//!
//! One row per span, keyed by (trace, span id). Span ids are deterministic, so a replay, a duplicate
//! delivery or a second import of a session replaces its rows instead of adding to them. What the
//! views need is in columns; the whole record is kept too (encoded as the export spool encodes it).
//! Retention removes whole sessions, by age and by size, at most once a minute.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::model::agent::Agent;
use crate::model::semconv::{self, int};
use crate::model::span::{SpanRecord, Status};
use crate::store::{record, sqlite};

pub(crate) const FILE: &str = "local.db";

/// Pages freed by `prune` are reused, not given back: the file stays at its largest size, which
/// `Retention::max_bytes` bounds.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,          -- 32 hex digits: the session UUID without dashes
    span_id TEXT NOT NULL,           -- 16 hex digits
    session_id TEXT NOT NULL,        -- the `session.id` attribute
    parent_id TEXT,                  -- NULL for the session root
    name TEXT NOT NULL,
    kind TEXT NOT NULL,              -- root, segment, turn, tool, subagent, compaction
    project TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,            -- unset, ok, error
    status_message TEXT,
    incomplete INTEGER NOT NULL,     -- closed by a timeout, not by its own end event
    input_tokens INTEGER,            -- gen_ai.usage.input_tokens (cache reads and writes included)
    output_tokens INTEGER,
    cost_usd REAL,
    bytes INTEGER NOT NULL,          -- the row's estimated share of the file, for retention by size
    record BLOB NOT NULL,            -- the whole SpanRecord (record::encode of one span)
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_session ON spans (trace_id, end_ns, start_ns, bytes);";

/// Columns, index entries and SQLite's own overhead of a row, beyond its record and names.
const ROW_OVERHEAD: u64 = 256;

const PRUNE_EVERY_NS: u64 = 60 * crate::model::time::NS_PER_SEC;

/// How much history the local store keeps; older sessions go first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Sessions whose last span ended longer ago than this are removed.
    pub(crate) max_age: Duration,
    /// Past this many bytes of stored spans, the sessions that ended longest ago are removed.
    pub(crate) max_bytes: u64,
}

impl Default for Retention {
    /// 30 days: enough to look back over a month of work (a sprint, a billing period), and the same
    /// as the saved transcript ledgers. 512 MiB: a span takes roughly 1 to 2 KiB, so this holds a few
    /// hundred thousand spans, months of heavy use, while staying small beside a laptop's disk.
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(30 * 24 * 3600), max_bytes: 512 * 1024 * 1024 }
    }
}

pub(crate) struct LocalStore {
    conn: Connection,
    retention: Retention,
    /// When `prune` last ran from `insert` (Unix ns).
    last_prune: Option<u64>,
}

impl LocalStore {
    pub(crate) fn open(data_dir: &Path, retention: Retention) -> rusqlite::Result<LocalStore> {
        let conn = sqlite::open(&data_dir.join(FILE), SCHEMA, Duration::from_secs(5))?;
        Ok(LocalStore { conn, retention, last_prune: None })
    }

    /// Store finished spans in one transaction; a span already stored is replaced. Prunes at most
    /// once a minute; a failed prune is logged, it does not fail the insert.
    pub(crate) fn insert(&mut self, spans: &[SpanRecord], now_ns: u64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO spans (trace_id, span_id, session_id, parent_id, name, kind, project,
                    start_ns, end_ns, status, status_message, incomplete, input_tokens, output_tokens, cost_usd,
                    bytes, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?;
            for r in spans {
                let trace_id = r.trace_id.to_string();
                let session_id = if r.session_id.is_empty() { trace_id.clone() } else { r.session_id.to_string() };
                let record = record::encode(std::slice::from_ref(r));
                let bytes = record.len() + r.name.len() + session_id.len() + r.project.len();
                let (status, message) = match &r.status {
                    Status::Unset => ("unset", None),
                    Status::Ok => ("ok", None),
                    Status::Error(m) => ("error", Some(m.as_str())),
                };
                stmt.execute(params![
                    trace_id,
                    r.span_id.to_string(),
                    session_id,
                    r.parent.map(|p| p.to_string()),
                    r.name,
                    r.key.tag(),
                    r.project,
                    r.start as i64,
                    r.end as i64,
                    status,
                    message,
                    r.incomplete,
                    r.usage.as_ref().map(|u| int(u.tokens.all_input())),
                    r.usage.as_ref().map(|u| int(u.tokens.output)),
                    r.usage.as_ref().map(|u| u.cost),
                    (bytes as u64 + ROW_OVERHEAD) as i64,
                    record,
                ])?;
            }
        }
        tx.commit()?;
        // abs_diff: a clock stepped backwards must not stop pruning until it catches up
        if self.last_prune.is_none_or(|t| t.abs_diff(now_ns) >= PRUNE_EVERY_NS) {
            self.last_prune = Some(now_ns);
            if let Err(e) = self.prune(now_ns) {
                tracing::warn!(error = %e, "Cannot prune the local store; it will be tried again");
            }
        }
        Ok(())
    }

    /// Remove sessions whose last span ended more than `max_age` before `now_ns`, then the sessions
    /// that ended longest ago until the rest fit in `max_bytes`. Returns the spans removed.
    pub(crate) fn prune(&mut self, now_ns: u64) -> rusqlite::Result<u64> {
        let max_age = u64::try_from(self.retention.max_age.as_nanos()).unwrap_or(u64::MAX);
        let cutoff = now_ns.saturating_sub(max_age).min(i64::MAX as u64) as i64;
        let tx = self.conn.transaction()?;
        let mut removed = tx.execute(
            "DELETE FROM spans WHERE trace_id IN
                (SELECT trace_id FROM spans GROUP BY trace_id HAVING max(end_ns) < ?1)",
            [cutoff],
        )? as u64;
        let total: i64 = tx.query_row("SELECT coalesce(sum(bytes), 0) FROM spans", [], |r| r.get(0))?;
        let mut excess = total as i128 - self.retention.max_bytes as i128;
        if excess > 0 {
            let oldest_first: Vec<(String, i64)> = tx
                .prepare("SELECT trace_id, sum(bytes) FROM spans GROUP BY trace_id ORDER BY max(end_ns), trace_id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (trace_id, bytes) in oldest_first {
                if excess <= 0 {
                    break;
                }
                removed += tx.execute("DELETE FROM spans WHERE trace_id = ?1", [&trace_id])? as u64;
                excess -= bytes as i128;
            }
        }
        tx.commit()?;
        if removed > 0 {
            tracing::info!(spans = removed, "Pruned old sessions from the local store");
        }
        Ok(removed)
    }
}

/// What the views say about one stored session.
#[derive(Debug)]
pub(crate) struct SessionSummary {
    pub(crate) session_id: String,
    pub(crate) project: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) turns: i64,
    pub(crate) tools: i64,
    pub(crate) failed: i64,
    pub(crate) agents: i64,
    pub(crate) input: Option<i64>,
    pub(crate) output: Option<i64>,
    pub(crate) cost: Option<f64>,
    /// The root is not stored yet, or a span's parent is missing (a resumed part still running).
    pub(crate) open: bool,
    /// Closed by the idle timeout rather than by SessionEnd.
    pub(crate) incomplete: bool,
    /// The coding agent whose session it is (`claude-code`, `codex`), when its spans say.
    pub(crate) agent: Option<String>,
}

/// The local store opened read-only, for `hooktel sessions` and `hooktel show`: it never creates
/// or changes anything, so a view can run beside the sidecar.
pub(crate) struct LocalReader {
    conn: Connection,
    /// Rows read whose record could not be decoded (each counted once, however often it is read).
    set_aside: std::cell::RefCell<std::collections::BTreeSet<i64>>,
}

impl LocalReader {
    /// `None` when nothing has been recorded (no file, or no table yet).
    pub(crate) fn open(data_dir: &Path) -> rusqlite::Result<Option<LocalReader>> {
        let conn = sqlite::open_read_only(&data_dir.join(FILE), "spans", Duration::from_secs(5))?;
        Ok(conn.map(|conn| LocalReader { conn, set_aside: Default::default() }))
    }

    /// Trace ids of the `limit` sessions that started last, newest first.
    pub(crate) fn recent(&self, limit: usize) -> rusqlite::Result<Vec<String>> {
        self.conn
            .prepare("SELECT trace_id FROM spans GROUP BY trace_id ORDER BY min(start_ns) DESC, trace_id LIMIT ?1")?
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?
            .collect()
    }

    /// Whether a session with this trace id (32 hex digits) is stored.
    pub(crate) fn has(&self, trace: &str) -> rusqlite::Result<bool> {
        self.conn.query_row("SELECT EXISTS(SELECT 1 FROM spans WHERE trace_id = ?1)", [trace], |r| r.get(0))
    }

    /// Sessions whose trace id starts with `hex` (when not empty) or whose session id starts with
    /// `prefix`, newest first: (trace id, session id, start).
    pub(crate) fn matching(
        &self,
        hex: &str,
        prefix: &str,
        limit: usize,
    ) -> rusqlite::Result<Vec<(String, String, u64)>> {
        self.conn
            .prepare(
                "SELECT trace_id, max(session_id), min(start_ns) FROM spans
                 WHERE (?1 <> '' AND substr(trace_id, 1, length(?1)) = ?1) OR substr(session_id, 1, length(?2)) = ?2
                 GROUP BY trace_id ORDER BY min(start_ns) DESC LIMIT ?3",
            )?
            .query_map(params![hex, prefix, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect()
    }

    /// Every stored span of a session. A record that cannot be decoded is set aside (counted in
    /// [`LocalReader::set_aside`]): the session is shown without it.
    pub(crate) fn spans(&self, trace: &str) -> rusqlite::Result<Vec<SpanRecord>> {
        let rows: Vec<(i64, Vec<u8>)> = self
            .conn
            .prepare("SELECT rowid, record FROM spans WHERE trace_id = ?1")?
            .query_map([trace], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut spans = Vec::with_capacity(rows.len());
        for (row, blob) in rows {
            spans.extend(self.decode(row, &blob));
        }
        Ok(spans)
    }

    /// The session's root span, once stored (`None` too when its record cannot be decoded: set aside).
    pub(crate) fn root(&self, trace: &str) -> rusqlite::Result<Option<SpanRecord>> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row("SELECT rowid, record FROM spans WHERE trace_id = ?1 AND kind = 'root'", [trace], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
        Ok(row.and_then(|(row, blob)| self.decode(row, &blob).into_iter().next()))
    }

    /// The spans of one row's record; a row that cannot be decoded is counted once.
    fn decode(&self, row: i64, blob: &[u8]) -> Vec<SpanRecord> {
        let decoded = record::decode(blob).unwrap_or_else(|_| record::Decoded { spans: Vec::new(), set_aside: 1 });
        if decoded.set_aside > 0 {
            self.set_aside.borrow_mut().insert(row);
        }
        decoded.spans
    }

    /// How many stored spans read so far could not be decoded and were left out.
    pub(crate) fn set_aside(&self) -> usize {
        self.set_aside.borrow().len()
    }

    /// Usage is on the session root (and the top of each resumed part); while the session is open,
    /// the turns and subagents stored so far are summed instead.
    pub(crate) fn summary(&self, trace: &str) -> rusqlite::Result<SessionSummary> {
        let mut s = self.conn.query_row(
            "SELECT max(session_id), max(project), min(start_ns), max(end_ns),
                sum(kind = 'turn'), sum(kind = 'tool'), sum(kind = 'tool' AND status = 'error'), sum(kind = 'subagent'),
                coalesce(sum(CASE WHEN kind IN ('root', 'segment') THEN input_tokens END),
                         sum(CASE WHEN kind IN ('turn', 'subagent') THEN input_tokens END)),
                coalesce(sum(CASE WHEN kind IN ('root', 'segment') THEN output_tokens END),
                         sum(CASE WHEN kind IN ('turn', 'subagent') THEN output_tokens END)),
                coalesce(sum(CASE WHEN kind IN ('root', 'segment') THEN cost_usd END),
                         sum(CASE WHEN kind IN ('turn', 'subagent') THEN cost_usd END)),
                sum(kind = 'root') = 0,
                max(kind IN ('root', 'segment') AND incomplete)
             FROM spans WHERE trace_id = ?1",
            [trace],
            |r| {
                Ok(SessionSummary {
                    session_id: r.get(0)?,
                    project: r.get(1)?,
                    start: r.get::<_, i64>(2)? as u64,
                    end: r.get::<_, i64>(3)? as u64,
                    turns: r.get(4)?,
                    tools: r.get(5)?,
                    failed: r.get(6)?,
                    agents: r.get(7)?,
                    input: r.get(8)?,
                    output: r.get(9)?,
                    cost: r.get(10)?,
                    open: r.get(11)?,
                    incomplete: r.get(12)?,
                    agent: None,
                })
            },
        )?;
        let dangling: i64 = self.conn.query_row(
            "SELECT count(*) FROM spans c WHERE c.trace_id = ?1 AND c.parent_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM spans p WHERE p.trace_id = ?1 AND p.span_id = c.parent_id)",
            [trace],
            |r| r.get(0),
        )?;
        s.open |= dangling > 0;
        s.agent = self.agent(trace)?;
        Ok(s)
    }

    /// The coding agent of a session: its root's `gen_ai.agent.name` (while the root is not stored,
    /// its first turn's). hooktel names the agent on its spans since 2026-12-02; a session stored
    /// before then was Claude Code's, the only agent hooktel read, and its root or turn says so in
    /// its name (`claude-code session`, `invoke_agent claude-code`), which is taken instead.
    fn agent(&self, trace: &str) -> rusqlite::Result<Option<String>> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT rowid, record FROM spans WHERE trace_id = ?1 AND kind IN ('root', 'turn')
                 ORDER BY kind = 'root' DESC, start_ns LIMIT 1",
                [trace],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
        let span = row.and_then(|(row, blob)| self.decode(row, &blob).into_iter().next());
        Ok(span.and_then(|r| agent_of(&r)))
    }
}

/// The agent a root or turn span names: its `gen_ai.agent.name`, else the agent its name is of.
fn agent_of(span: &SpanRecord) -> Option<String> {
    let attr = span.attrs.iter().find(|kv| kv.key.as_str() == semconv::AGENT_NAME);
    attr.map(|kv| kv.value.as_str().into_owned()).or_else(|| {
        let named = |a: &Agent| {
            span.name.strip_prefix(a.name()).is_some_and(|rest| rest.starts_with(" session"))
                || span.name.strip_prefix("invoke_agent ") == Some(a.name())
        };
        Agent::ALL.iter().find(|a| named(a)).map(|a| a.name().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{captured, CAPTURED_AT, CAPTURED_SPANS, SEC, SESSION};

    fn count(store: &LocalStore) -> (i64, i64) {
        store
            .conn
            .query_row("SELECT count(*), count(DISTINCT trace_id) FROM spans", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    }

    fn session(i: u64) -> String {
        format!("00000000-0000-4000-8000-{i:012}")
    }

    #[test]
    fn a_span_inserted_twice_is_kept_once_with_its_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut store = LocalStore::open(&dir, Retention::default()).unwrap();
        let spans = captured(SESSION, CAPTURED_AT);
        let now = CAPTURED_AT + 60 * SEC;
        store.insert(&spans, now).unwrap();
        store.insert(&spans, now).unwrap();
        store.insert(&spans[..3], now + SEC).unwrap();
        assert_eq!(count(&store), (CAPTURED_SPANS as i64, 1));
        let (session_id, input, output, blob): (String, i64, i64, Vec<u8>) = store
            .conn
            .query_row(
                "SELECT session_id, input_tokens, output_tokens, record FROM spans WHERE kind = 'root'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!((session_id.as_str(), input, output), (SESSION, 117_820, 445));
        let root = spans.iter().find(|s| s.parent.is_none()).unwrap();
        assert_eq!(record::decode(&blob).unwrap().spans, vec![root.clone()]);
        // and it survives a reopen
        drop(store);
        let store = LocalStore::open(&dir, Retention::default()).unwrap();
        assert_eq!(count(&store), (CAPTURED_SPANS as i64, 1));
    }

    /// A session's agent is its root's `gen_ai.agent.name`; a root stored before hooktel named the
    /// agent (only Claude Code's sessions were stored then) is Claude Code's by its name; a root
    /// that says neither names no agent.
    #[test]
    fn a_sessions_agent_is_its_roots_or_told_by_an_old_roots_name() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = LocalStore::open(tmp.path(), Retention::default()).unwrap();
        let now = CAPTURED_AT + 60 * SEC;
        let with_root = |sid: &str, name: &str, agent: Option<&str>| {
            let mut spans = captured(sid, CAPTURED_AT);
            let root = spans.iter_mut().find(|s| s.parent.is_none()).unwrap();
            root.name = name.to_owned();
            root.attrs.retain(|kv| kv.key.as_str() != semconv::AGENT_NAME);
            root.attrs.extend(agent.map(|a| opentelemetry::KeyValue::new(semconv::AGENT_NAME, a.to_owned())));
            spans
        };
        store.insert(&with_root(&session(1), "codex session", Some("codex")), now).unwrap();
        store.insert(&with_root(&session(2), "claude-code session", None), now).unwrap();
        store.insert(&with_root(&session(3), "something else", None), now).unwrap();
        drop(store);
        let reader = LocalReader::open(tmp.path()).unwrap().unwrap();
        let agent = |i: u64| reader.summary(&crate::model::ids::trace_id(&session(i)).to_string()).unwrap().agent;
        assert_eq!(agent(1).as_deref(), Some("codex"));
        assert_eq!(agent(2).as_deref(), Some("claude-code"));
        assert_eq!(agent(3), None);
    }

    #[test]
    fn sessions_older_than_max_age_are_removed_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let day = 24 * 3600 * SEC;
        let retention = Retention { max_age: Duration::from_secs(7 * 24 * 3600), ..Retention::default() };
        let mut store = LocalStore::open(&dir, retention).unwrap();
        let now = CAPTURED_AT + 30 * day;
        // a session 10 days old, one 3 days old
        store.insert(&captured(&session(1), now - 10 * day), now).unwrap();
        assert_eq!(count(&store).1, 0, "the insert pruned the old session at once");
        store.insert(&captured(&session(1), now - 10 * day), now + 1).unwrap();
        store.insert(&captured(&session(2), now - 3 * day), now + 2).unwrap();
        assert_eq!(count(&store), (2 * CAPTURED_SPANS as i64, 2), "no prune within a minute of the last");
        assert_eq!(store.prune(now).unwrap(), CAPTURED_SPANS as u64);
        let left: String = store.conn.query_row("SELECT DISTINCT session_id FROM spans", [], |r| r.get(0)).unwrap();
        assert_eq!(left, session(2));
        // a minute later, an insert prunes again
        store.insert(&captured(&session(3), now - 8 * day), now + 30 * SEC).unwrap();
        assert_eq!(count(&store).1, 2);
        store.insert(&[], now + 61 * SEC).unwrap();
        assert_eq!(count(&store).1, 1);
    }

    #[test]
    fn past_max_bytes_the_sessions_that_ended_first_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut store = LocalStore::open(&dir, Retention { max_bytes: u64::MAX, ..Retention::default() }).unwrap();
        let now = CAPTURED_AT + 3600 * SEC;
        for i in 0..5 {
            store.insert(&captured(&session(i), CAPTURED_AT + i * 60 * SEC), now).unwrap();
        }
        let one: i64 = store
            .conn
            .query_row("SELECT sum(bytes) FROM spans WHERE session_id = ?1", [session(0)], |r| r.get(0))
            .unwrap();
        assert!(one > CAPTURED_SPANS as i64 * 256, "{one}");
        // room for two and a half sessions: the three oldest go
        store.retention.max_bytes = one as u64 * 5 / 2;
        assert_eq!(store.prune(now).unwrap(), 3 * CAPTURED_SPANS as u64);
        let left: Vec<String> = store
            .conn
            .prepare("SELECT DISTINCT session_id FROM spans ORDER BY session_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, vec![session(3), session(4)]);
        assert_eq!(store.prune(now).unwrap(), 0);
    }
}
