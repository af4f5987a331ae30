//! hooktel's data directory and what it keeps there. The directory itself (`data_dir`: private
//! files, one sidecar at a time) and the shared token (`token`, a file). And SQLite, hooktel's
//! fallback and never its system of record: the hook spool (events the hook client could not
//! deliver), the export spool (spans the collector did not take), the journal of open sessions, the
//! local store (when no collector is configured) and the import registry; `record` is the one codec of
//! a stored span, `sqlite` how every database is opened.
//!
//! Only SQL and files here; callers choose the thread (the sidecar never runs these on a Tokio
//! worker). Nothing here imports `ingest`, `pipeline`, `export` or `cli`.

pub(crate) mod data_dir;
pub(crate) mod export_spool;
pub(crate) mod hook_spool;
pub(crate) mod import_registry;
pub(crate) mod journal;
pub(crate) mod local;
pub(crate) mod record;
pub(crate) mod sqlite;
pub(crate) mod token;
