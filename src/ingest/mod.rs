//! Ingest: everything by which an event enters the sidecar. The HTTP server and its limits,
//! admission (parse, normalise, queue), the pure normaliser, and the hook-spool drain, which feeds
//! spooled events back through the same admission.

pub(crate) mod accept;
pub(crate) mod drain;
pub(crate) mod native;
pub mod normalize;
pub(crate) mod server;
