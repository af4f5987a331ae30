//! Opening hooktel's SQLite files: WAL mode, the settings and why, and what to do with a corrupt one.
//!
//! SQLite is hooktel's fallback, never its system of record: the hook spool (events the hook client
//! could not deliver), the export spool (spans the collector did not take), the journal of open
//! sessions, and the local store when no collector is configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Open (creating if needed) the database at `path` and apply `schema`. A file that is not a
/// database, or fails SQLite's quick check, is moved aside (`<name>.corrupt-<unix time>`) with an
/// error in the log, and a fresh one is created: hooktel keeps running and says what it did.
pub(crate) fn open(path: &Path, schema: &str, busy: Duration) -> rusqlite::Result<Connection> {
    if is_emptied(path) {
        let aside = move_aside(path);
        tracing::error!(path = %path.display(), moved_to = %aside.display(),
            "Database file is empty (0 bytes): whatever it held is lost; started a fresh one");
    }
    match open_checked(path, schema, busy) {
        Ok(c) => Ok(c),
        Err(e) if is_corruption(&e) => {
            let aside = move_aside(path);
            tracing::error!(path = %path.display(), moved_to = %aside.display(), error = %e,
                "Database is corrupt; moved it aside and started a fresh one");
            open_checked(path, schema, busy)
        }
        Err(e) => Err(e),
    }
}

/// Open an existing database read-only (the views, `doctor`): `None` when the file or `table` is not
/// there yet. Creates nothing, so a reader can run beside the sidecar or without it.
pub(crate) fn open_read_only(path: &Path, table: &str, busy: Duration) -> rusqlite::Result<Option<Connection>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(busy)?;
    let has_table: bool =
        conn.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| {
            r.get(0)
        })?;
    Ok(has_table.then_some(conn))
}

/// Open an existing database for one quick write (the hook client's spool append): no integrity
/// check, no schema; the caller falls back to [`open`] when the write fails (a new, corrupt or
/// foreign file). WAL mode is a property of the file, set when `open` created it.
pub(crate) fn open_existing(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(busy)?;
    // per connection, like in `open_checked`
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    // A short-lived writer would otherwise checkpoint the WAL into the database (an fsync) and
    // delete it on every close; the sidecar's long-lived connection checkpoints instead.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(conn)
}

fn open_checked(path: &Path, schema: &str, busy: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Many hook processes and the sidecar share a file: wait this long for a lock, then give up.
    conn.busy_timeout(busy)?;
    // WAL: readers never block the writer and one commit is one append, which keeps a hook's
    // insert well under a millisecond.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit survives the process being killed (the data is in the OS), not a
    // power cut; FULL would fsync every hook event, ten times the cost, for a fallback store.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Deleted rows are overwritten, not left in free pages: the spools and the journal hold payloads
    // (prompts and tool inputs at `full`), and an ended session's rows must not linger in the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(format!("quick_check: {ok}")),
        ));
    }
    conn.execute_batch(schema)?;
    Ok(conn)
}

/// A database file cut to 0 bytes (a full disk, a copy gone wrong): SQLite would take it as a valid
/// empty database, silently. A file that new is one being created by another process (hook clients
/// create the spool concurrently), so only one untouched for a while counts.
fn is_emptied(path: &Path) -> bool {
    const CREATING: Duration = Duration::from_secs(10);
    std::fs::metadata(path).is_ok_and(|m| {
        m.is_file()
            && m.len() == 0
            && m.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > CREATING)
    })
}

pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

/// Rename the database (and its WAL and shared-memory files) out of the way.
fn move_aside(path: &Path) -> PathBuf {
    let stamp = crate::model::time::now_ns() / crate::model::time::NS_PER_SEC;
    let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    let _ = std::fs::rename(path, &aside);
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    aside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_files_are_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("x.db");
        std::fs::write(&path, b"this is certainly not an SQLite database, it is just some text....").unwrap();
        let conn = open(&path, "CREATE TABLE IF NOT EXISTS t(x);", Duration::from_millis(100)).unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let aside: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
    }

    /// A file cut to 0 bytes is moved aside and said, not silently taken as an empty database; one
    /// being created right now (by a hook client) is left alone.
    #[test]
    fn an_emptied_file_is_moved_aside_a_new_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let corrupt = |dir: &Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".corrupt-"))
                .count()
        };
        let path = tmp.path().join("fresh.db");
        std::fs::File::create(&path).unwrap();
        open(&path, "CREATE TABLE IF NOT EXISTS t(x);", Duration::from_millis(100)).unwrap();
        assert_eq!(corrupt(tmp.path()), 0);
        let path = tmp.path().join("old.db");
        let f = std::fs::File::create(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
        drop(f);
        open(&path, "CREATE TABLE IF NOT EXISTS t(x);", Duration::from_millis(100)).unwrap();
        assert_eq!(corrupt(tmp.path()), 1);
    }

    /// Rows deleted from hooktel's files (a drained spool, an ended session's journal) are overwritten:
    /// their bytes were still in the file after the delete.
    #[test]
    fn deleted_rows_leave_no_bytes_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.db");
        let conn = open(&path, "CREATE TABLE IF NOT EXISTS t(body BLOB);", Duration::from_millis(100)).unwrap();
        let secret = b"SECRET-PROMPT-0123456789".repeat(1000);
        conn.execute("INSERT INTO t VALUES (?1)", [&secret[..]]).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        conn.execute("DELETE FROM t", []).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        drop(conn);
        let bytes = std::fs::read(&path).unwrap();
        let needle = b"SECRET-PROMPT";
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "the deleted row is still in the file");
    }
}
