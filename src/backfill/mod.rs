//! `hooktel import`: backfill history into the same sink the sidecar uses (the OTLP collector when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else the local store).
//!
//! Claude Code's transcripts (`~/.claude/projects`), Codex CLI's rollouts (`~/.codex/sessions`) and
//! Gemini CLI's chat logs (`~/.gemini/tmp/<project>/chats`), each told by its first line rather than its name, become the span trees the live path would have
//! made, with their real times and their token usage; an old JSONL event log becomes custom events, each a zero-length
//! span in its session's trace (or a trace of its own without a session). Importing the same data
//! twice creates no duplicates: every span sent is recorded in `<data dir>/hooktel.db`, and a span
//! already recorded is not sent again. Nor does importing what the sidecar captured live: a session
//! the live path handed out (recorded in the same file) or still holds (in its journal) is skipped
//! whole, since backends such as Jaeger keep two spans with one id twice.

use std::path::{Path, PathBuf};

use opentelemetry::KeyValue;

use crate::backfill::event_log::CustomEvent;
use crate::export::client::{Body, OtlpClient};
use crate::export::destination::Destination as OtlpDestination;
use crate::export::otlp;
use crate::export::{Exporter, Sink};
use crate::model::agent::Agent;
use crate::model::capture::Capture;
use crate::model::ids::{self, SessionId, SpanKey};
use crate::model::semconv::{self, ModelEndpoint};
use crate::model::span::SpanRecord;
use crate::model::time::now_ns;
use crate::model::tokens::TokenUsage;
use crate::store::import_registry::ImportRegistry;
use crate::store::journal;
use crate::store::local::{LocalStore, Retention};
use crate::usage::pricing::PriceTable;

pub mod chats;
mod error;
pub mod event_log;
mod lines;
pub mod rollouts;
pub mod transcripts;
mod tree;

pub(crate) use error::BackfillError;

/// What to import.
pub(crate) struct Request {
    pub(crate) paths: Vec<PathBuf>,
    /// A JSONL event log and the name its events get.
    pub(crate) events: Option<(PathBuf, String)>,
    pub(crate) data_dir: PathBuf,
    /// Where spans go over OTLP, or `None` for the local store.
    pub(crate) export: Option<OtlpDestination>,
    /// The resource the spans carry (as the sidecar's).
    pub(crate) resource: opentelemetry_sdk::Resource,
    pub(crate) capture: Capture,
    /// Where model calls went (chat spans' `server.address`, `server.port`), as the sidecar says.
    pub(crate) endpoint: ModelEndpoint,
    /// `user.id` of every span (`HOOKTEL_USER_ID`), as the sidecar puts it.
    pub(crate) user_id: Option<String>,
    pub(crate) prices: PriceTable,
    /// Retention of the local store: history older than `max_age` is not kept there.
    pub(crate) retention: Retention,
}

/// What an import did, for the user.
#[derive(Debug, Default)]
pub struct Summary {
    pub(crate) sessions: usize,
    /// Sessions not imported because the sidecar captured them live.
    pub(crate) sessions_seen_live: usize,
    pub(crate) spans_sent: usize,
    pub(crate) spans_already_imported: usize,
    pub(crate) events: usize,
    pub(crate) skipped_lines: usize,
    /// Lines of transcripts and rollouts passed over: too long, or not a JSON object.
    pub(crate) log_lines_skipped: u64,
    /// Codex subagents' rollouts passed over (a thread of a session, not a session).
    pub(crate) subagent_rollouts: usize,
    /// Gemini CLI chat logs with no message (a resumed session's start) not imported.
    pub(crate) empty_chat_logs: usize,
    pub failed_files: Vec<(PathBuf, String)>,
    pub(crate) tokens: TokenUsage,
    pub(crate) cost: f64,
    pub(crate) destination: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "imported into {}:", self.destination)?;
        writeln!(f, "  sessions: {}, custom events: {}", self.sessions, self.events)?;
        if self.sessions_seen_live > 0 {
            writeln!(
                f,
                "  sessions skipped: {} (captured live by the sidecar with this data directory: already exported or stored)",
                self.sessions_seen_live
            )?;
        }
        writeln!(
            f,
            "  spans sent: {}, already imported before (skipped): {}",
            self.spans_sent, self.spans_already_imported
        )?;
        let t = &self.tokens;
        writeln!(
            f,
            "  tokens: {} input, {} output, {} cache read, {} cache write; cost ${:.4}",
            t.input,
            t.output,
            t.cache_read,
            t.cache_write(),
            self.cost
        )?;
        if self.log_lines_skipped > 0 {
            writeln!(
                f,
                "  session log lines skipped (longer than {} MiB, or not a JSON object): {}",
                crate::usage::logs::MAX_LINE_BYTES / (1024 * 1024),
                self.log_lines_skipped
            )?;
        }
        if self.subagent_rollouts > 0 {
            writeln!(
                f,
                "  Codex subagents' rollouts skipped: {} (a subagent is a thread of its parent's session; only a live capture places it)",
                self.subagent_rollouts
            )?;
        }
        if self.empty_chat_logs > 0 {
            writeln!(
                f,
                "  Gemini chat logs without messages skipped: {} (a resumed session opens one, then goes on in its first)",
                self.empty_chat_logs
            )?;
        }
        if self.skipped_lines > 0 {
            writeln!(f, "  event log lines skipped (not a JSON object with a time): {}", self.skipped_lines)?;
        }
        for (path, why) in &self.failed_files {
            writeln!(f, "  not imported: {} ({why})", path.display())?;
        }
        Ok(())
    }
}

/// Where the import goes: the sidecar's own choice of sink, and a runtime for the OTLP client.
struct Destination {
    sink: Sink,
    runtime: tokio::runtime::Runtime,
}

pub(crate) fn run(req: Request) -> Result<Summary, BackfillError> {
    std::fs::create_dir_all(&req.data_dir)
        .map_err(|source| BackfillError::DataDir { path: req.data_dir.clone(), source })?;
    let mut registry = ImportRegistry::open(&req.data_dir)?;
    let mut summary = Summary::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(BackfillError::Runtime)?;
    let sink = match req.export {
        Some(export) => {
            summary.destination = format!("the OTLP collector at {} ({})", export.shown(), export.protocol.name());
            let client = runtime
                .block_on(async { OtlpClient::new(export) })
                .map_err(|e| BackfillError::Exporter(e.to_string()))?;
            Sink::Otlp(Exporter { client, resource: req.resource })
        }
        None => {
            summary.destination = format!("the local store in {}", req.data_dir.display());
            Sink::Local(LocalStore::open(&req.data_dir, req.retention)?)
        }
    };
    let mut dest = Destination { sink, runtime };
    for path in transcripts::find_transcripts(&req.paths) {
        match session_from_log(&path, &req.prices, req.capture, &req.endpoint) {
            Ok(session) if seen_live(&registry, &req.data_dir, &session)? => summary.sessions_seen_live += 1,
            Ok(session) => {
                summary.sessions += 1;
                summary.log_lines_skipped += session.skipped_lines;
                for d in &session.usage {
                    summary.tokens.add(d.usage);
                    summary.cost += d.cost;
                }
                summary.failed_files.extend(session.refused);
                let spans = with_user(session.spans, req.user_id.as_deref());
                send(&mut dest, &mut registry, spans, &mut summary)?;
            }
            // a subagent's thread, not a session: passed over, and said so
            Err(BackfillError::Subagent(_)) => summary.subagent_rollouts += 1,
            Err(BackfillError::NoMessages(_)) => summary.empty_chat_logs += 1,
            Err(e) => summary.failed_files.push((path, e.to_string())),
        }
    }
    if let Some((file, name)) = &req.events {
        let (events, skipped) = event_log::events_from_jsonl(file, name)?;
        summary.events += events.len();
        summary.skipped_lines += skipped;
        let spans = events.into_iter().map(custom_span).collect();
        send(&mut dest, &mut registry, with_user(spans, req.user_id.as_deref()), &mut summary)?;
    }
    Ok(summary)
}

/// One session from its log, read the way of the agent that wrote it.
fn session_from_log(
    path: &Path,
    prices: &PriceTable,
    capture: Capture,
    endpoint: &ModelEndpoint,
) -> Result<transcripts::ImportedSession, BackfillError> {
    let (mut file, _) = lines::open_named(path)?;
    match lines::agent_of_log(&mut file).map_err(BackfillError::read(path))? {
        Agent::Codex => rollouts::session_from_rollout(path, prices, capture, endpoint),
        Agent::Gemini => chats::session_from_chat(path, prices, capture, endpoint),
        Agent::ClaudeCode => transcripts::session_from_transcript(path, prices, capture, endpoint),
    }
}

/// Spans with `user.id`, when one is set.
fn with_user(mut spans: Vec<SpanRecord>, user: Option<&str>) -> Vec<SpanRecord> {
    if let Some(user) = user {
        for s in &mut spans {
            s.attrs.push(KeyValue::new(semconv::USER_ID, user.to_owned()));
        }
    }
    spans
}

/// A custom event from an event log as a zero-length span: in its session's trace under the root,
/// or alone in a trace of its own (derived from the event's key, never a session id).
fn custom_span(ev: CustomEvent) -> SpanRecord {
    let (trace_id, parent, scope) = match &ev.session_id {
        Some(sid) => (ids::trace_id(sid), Some(ids::span_id(sid, SpanKey::Root, sid)), sid.clone()),
        None => (ids::trace_id(&format!("custom:{}", ev.key)), None, format!("custom:{}", ev.key)),
    };
    let mut attrs = Vec::new();
    attrs.push(KeyValue::new(semconv::CUSTOM, true));
    attrs.push(KeyValue::new(semconv::IMPORTED, true));
    for (k, v) in ev.attributes {
        let kv = match v {
            serde_json::Value::Bool(b) => KeyValue::new(k, b),
            serde_json::Value::Number(n) if n.is_i64() => KeyValue::new(k, n.as_i64().unwrap_or_default()),
            serde_json::Value::Number(n) => KeyValue::new(k, n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => KeyValue::new(k, s),
            serde_json::Value::Null => continue,
            other => KeyValue::new(k, other.to_string()),
        };
        attrs.push(kv);
    }
    let session = SessionId::from(ev.session_id.as_deref().unwrap_or_default());
    let span_id = ids::span_id(&scope, SpanKey::Custom, &ev.key);
    SpanRecord {
        parent,
        attrs,
        ..SpanRecord::new(trace_id, span_id, SpanKey::Custom, ev.name, (ev.at, ev.at), session)
    }
}

/// Whether the sidecar captured this session live: handed spans of it out, or holds it now.
fn seen_live(
    registry: &ImportRegistry,
    data_dir: &Path,
    session: &transcripts::ImportedSession,
) -> Result<bool, BackfillError> {
    let Some(root) = session.spans.first() else { return Ok(false) };
    Ok(registry.seen_live(root.trace_id)? || journal::holds(data_dir, &session.session_id)?)
}

/// Send the spans not imported before, and record them once the destination took them.
fn send(
    dest: &mut Destination,
    registry: &mut ImportRegistry,
    spans: Vec<SpanRecord>,
    summary: &mut Summary,
) -> Result<(), BackfillError> {
    let mut fresh = Vec::with_capacity(spans.len());
    for s in spans {
        if registry.contains(&s)? {
            summary.spans_already_imported += 1;
        } else {
            fresh.push(s);
        }
    }
    for chunk in fresh.chunks(512) {
        match &mut dest.sink {
            Sink::Otlp(e) => {
                let body = Body::Protobuf(otlp::request(chunk, &e.resource));
                dest.runtime.block_on(e.client.send(body)).map_err(|err| BackfillError::Export {
                    fix: err.fix(e.client.destination()),
                    error: err.to_string(),
                })?;
            }
            Sink::Local(store) => store.insert(chunk, now_ns())?,
        }
        registry.record(chunk)?;
        summary.spans_sent += chunk.len();
    }
    Ok(())
}

/// Where the agents keep their session logs by default: Claude Code's transcripts
/// (`~/.claude/projects`, or `$CLAUDE_CONFIG_DIR`'s), Codex CLI's rollouts (`~/.codex/sessions`,
/// or `$CODEX_HOME`'s) and Gemini CLI's chat logs (`~/.gemini/tmp`, or `$GEMINI_CLI_HOME`'s).
pub(crate) fn default_log_dirs() -> Vec<PathBuf> {
    let projects = crate::usage::agent_dirs::claude_config_dir().map(|d| d.join("projects"));
    projects.into_iter().chain(rollouts::default_sessions_dir()).chain(chats::default_chats_dir()).collect()
}
