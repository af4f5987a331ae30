//! SQLite, hooktel's fallback and never its system of record: the hook spool (events the hook client
//! could not deliver), the export spool (spans the collector did not take), the journal of open
//! sessions, the local store (when no collector is configured), the import registry and the token.
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
