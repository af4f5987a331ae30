//! SQLite, hooktel's fallback and never its system of record: the hook spool (events the hook client
//! could not deliver), the export spool (spans the collector did not take), the journal of open
//! sessions, the local store (when no collector is configured) and the import registry.
//!
//! Only SQL and files here; callers choose the thread (the sidecar never runs these on a Tokio
//! worker). Nothing here imports `ingest`, `pipeline`, `export` or `cli`.

pub mod export_spool;
pub mod hook_spool;
pub mod import_registry;
pub mod journal;
pub mod local;
pub mod record;
pub mod sqlite;
