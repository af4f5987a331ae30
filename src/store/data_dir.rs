//! The data directory: private to its user (the directory 0700, every file 0600, whatever the umask)
//! and held by one sidecar at a time (two draining one spool would ingest it twice).

use std::path::{Path, PathBuf};

/// The lock file a running sidecar holds in its data directory.
pub const LOCK_FILE: &str = "serve.lock";

/// Make every file and directory this process creates private (0600 / 0700). The hook command,
/// `emit` and `import` call it too: a spool written by a hook holds the same payloads.
pub fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Create `dir` if needed, and make it and the files directly in it private (a directory made by an
/// older hooktel under umask 022 was readable by every user of the machine).
pub fn create(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    Ok(())
}

/// Another sidecar holds the data directory.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another `hooktel serve` holds {} (its lock file); stop it, or give this one its own --data-dir", .0.display())]
    Held(PathBuf),
    #[error("cannot lock {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// The data directory held by this process until the value is dropped (or the process ends; the
/// kernel releases the lock of a killed process, so a kill -9 leaves no stale lock).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Take the data directory's lock without waiting.
pub fn lock(dir: &Path) -> Result<DataDirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| LockError::Io { path: path.clone(), source };
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => LockError::Held(path),
                _ => io(e),
            });
        }
    }
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock(tmp.path()).unwrap();
        assert!(matches!(lock(tmp.path()), Err(LockError::Held(_))));
        drop(first);
        assert!(lock(tmp.path()).is_ok());
    }
}
