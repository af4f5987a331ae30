//! hooktel turns Claude Code hook events into one OpenTelemetry trace per session.
//!
//! ```text
//! Claude Code ─ command hook: `hooktel hook` (cli::hook) ──┐ (sidecar down: store::hook_spool)
//!             ─ http hook: POST /v1/hooks ─────────────────┤
//! producers   ─ POST /v1/events, `hooktel emit` ───────────┤
//!                                                          ▼
//!   ingest: server → accept (parse, normalize: pure) → bounded queue   ◀── ingest::drain (hook spool)
//!                                                          │
//!   usage: transcripts ─▶ accountant (tokens, cost) ─▶ pipeline: one task owns every session
//!   vcs: a session's cwd ─▶ .git files ─▶ checkout (repository, branch, ticket) ─▶ pipeline, accountant
//!                                                          │ sessions: pairing, settle, timeouts
//!                                                          │ (store::journal: open sessions survive restarts)
//!                                                          ▼
//!   export: delivery ─▶ OTLP (export::otlp) | local store (store::local); export spool when down
//!   metrics: Prometheus text on GET /metrics, counted at every stage
//! ```
//!
//! Layers import only downwards: `model` (ids, payload, time, spans, tokens, capture) imports nothing
//! else from the crate; then `metrics`; `store` (SQLite, never HTTP); `usage`; `vcs` (git checkouts);
//! `ingest`; `pipeline`; `export`; `backfill` (`hooktel import`); `cli` at the top, imported by nothing. The hook command
//! (`cli::hook`) reaches only `model::payload`, `store::hook_spool` and its settings: no Tokio and no
//! OpenTelemetry run on the per-event path.

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod backfill;
pub mod cli;
pub mod export;
#[cfg(test)]
mod fuzz;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod store;
pub(crate) mod sys;
#[cfg(test)]
mod testdata;
pub mod usage;
pub mod vcs;
