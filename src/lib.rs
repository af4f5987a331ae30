//! hooktel turns Claude Code hook events into one OpenTelemetry trace per session.
//!
//! ```text
//! Claude Code ─ command hook: `hooktel hook` (client) ─┐
//!             ─ http hook: POST /v1/hooks (server) ────┤
//!                                                      ▼
//!            server: parse + normalize (pure) → bounded queue → pipeline (one task)
//!                                                      │ session: open spans, pairing, timeouts
//!                                                      ▼
//!                               export: SpanData with our own ids → OTLP (http/protobuf | grpc)
//!                               metrics: Prometheus text on GET /metrics
//! ```
//!
//! The client path (`client`, `event`) touches neither Tokio nor OpenTelemetry.

pub mod accounting;
pub mod backfill;
pub mod capture;
pub mod client;
pub mod config;
pub mod doctor;
pub mod event;
pub mod export;
pub mod ids;
pub mod import;
pub mod install;
pub mod journal;
pub mod local;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod pricing;
pub mod server;
pub mod session;
pub mod span_spool;
pub mod spool;
pub mod store;
pub mod transcript;
pub mod view;
