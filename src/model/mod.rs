//! The lowest layer: what every stage shares. Which agent spoke, the memory budget and its shares, ids, the payload as it travels, the pull requests a command opened, time, finished spans,
//! token counts, the capture policy, a session's checkout (repository, branch, ticket), which hosts are loopback, and the redaction of what is shown. It imports
//! nothing else from the crate, and does no I/O.

pub mod agent;
pub mod budget;
pub mod capture;
pub mod checkout;
pub(crate) mod event;
pub(crate) mod host;
pub mod ids;
pub(crate) mod otlp;
pub(crate) mod payload;
pub mod pull_request;
pub(crate) mod redact;
pub(crate) mod semconv;
pub mod session_view;
pub use semconv::ModelEndpoint;
pub mod span;
pub mod time;
pub mod tokens;
