//! hooktel's integration tests, in one test binary (one link, one process to start): each module was
//! a test binary of its own; `support` holds what they share (the OTLP receiver, the `hooktel serve`
//! fixture, temp directories, the real Claude Code CLI and its transcripts).

mod support;

mod accounting;
mod agents;
mod auth;
mod backfill;
mod bounds;
mod budget;
mod cache_hit;
mod codex;
mod codex_import;
mod custom_events;
mod dashboards;
mod deploy;
mod docs;
mod e2e_claude;
mod e2e_money;
mod e2e_outages;
mod exemplars;
mod export_spool;
mod first_hour;
mod gemini;
mod gemini_import;
mod gemini_install;
mod genai;
mod hook_client;
mod hook_events;
mod hosted;
mod hostile;
mod import;
mod ingest;
mod install;
mod late_usage;
mod local_mode;
mod mcp;
mod metrics_push;
mod native;
mod numbers;
mod otlp_export;
mod phoenix;
mod pull_requests;
mod restart;
mod secrets;
mod spool;
mod statusline;
mod teams;
mod vcs;
