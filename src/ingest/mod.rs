//! Ingest: everything by which an event enters the sidecar. The HTTP server and its limits,
//! admission (parse, normalise, queue), each agent's pure parser (`agents`), the decoding of Claude
//! Code's own telemetry (`native`), what a body would become once decoded (`shape`), and the hook-spool drain, which feeds spooled events back through
//! the same admission.

pub(crate) mod accept;
pub mod agents;
pub(crate) mod drain;
pub(crate) mod native;
pub(crate) mod server;
pub mod shape;
