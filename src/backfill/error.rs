//! What can go wrong in `hooktel import`: a file that cannot be read or holds no timed line (that
//! file is skipped and named in the summary), or a store, runtime or exporter that fails (the import
//! stops).

use std::path::{Path, PathBuf};

/// Why an import stopped, or why one file of it was not imported.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("reading {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: no timestamped lines", .0.display())]
    NoTimestamps(PathBuf),
    #[error("{}: no session id in its `session_meta` line", .0.display())]
    NoSession(PathBuf),
    #[error("{}: a Codex subagent's rollout, a thread of its parent's session", .0.display())]
    Subagent(PathBuf),
    #[error("{}: a Gemini CLI chat log without messages (a resumed session opens one, then goes on in its first)", .0.display())]
    NoMessages(PathBuf),
    #[error("creating {path}: {source}", path = .path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("starting the export runtime: {0}")]
    Runtime(std::io::Error),
    #[error("setting up the OTLP export: {0}")]
    Exporter(String),
    #[error("OTLP export failed: {error} (fix: {fix})")]
    Export { error: String, fix: String },
}

impl BackfillError {
    /// Reading `path` failed.
    pub(crate) fn read(path: &Path) -> impl FnOnce(std::io::Error) -> BackfillError + '_ {
        move |source| BackfillError::Read { path: path.to_path_buf(), source }
    }
}
