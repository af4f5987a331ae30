//! Admission: the one path by which an event enters the pipeline, whatever brought it (an http
//! hook, `hooktel hook`, a custom event, the hook spool). Parse, cut, normalise, tie a subagent to
//! its spawner, queue, count.
//!
//! `parse` is pure; `enrich` reads a subagent's meta file; `accept` queues with the admission
//! policy the caller chose.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::ingest::agents::Rejected;
use crate::ingest::shape;
use crate::metrics::Metrics;
use crate::model::agent::Agent;
use crate::model::budget::Held;
use crate::model::capture::Capture;
use crate::model::event::{Event, Kind};
use crate::model::ids;
use crate::model::payload;
use crate::model::time;
use crate::usage::agent_dirs::AgentDirs;
use crate::usage::logs;

/// What every request handler shares.
pub(crate) struct Ingest {
    pub(crate) queue: mpsc::Sender<Event>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) capture: Capture,
    pub(crate) max_body_bytes: usize,
    /// Host names (lowercase, no port) accepted in `Host` besides loopback ones (`HOOKTEL_ALLOWED_HOSTS`).
    pub(crate) allowed_hosts: Vec<String>,
    /// Where the transcripts (and subagents' meta files) a payload names may be read.
    pub(crate) transcripts: AgentDirs,
    /// Open connections allowed at once; past it a new one gets 503 and is closed.
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
    /// Request body bytes held at once, over all connections, and the events they became while
    /// those wait in the queue (one permit a byte; the bodies' share of the memory budget).
    pub(crate) body_budget: Arc<tokio::sync::Semaphore>,
    /// The size of `body_budget`: an event holding more takes all of it.
    pub(crate) body_share: usize,
    /// What bodies being decoded may hold at once, estimated from their shape before they are
    /// decoded (one permit a byte; the decoding share of the memory budget): bytes, not threads, bound it.
    pub(crate) decode_budget: Arc<tokio::sync::Semaphore>,
    /// The decoding budget's size: a body costing more reserves all of it.
    pub(crate) decode_share: usize,
    /// What a client beyond loopback must present as `Authorization: Bearer`; `None` only when the
    /// sidecar listens on loopback alone.
    pub(crate) token: Option<String>,
    /// Where Claude Code's own telemetry goes on to, when it does.
    pub(crate) forward: Option<crate::model::otlp::ForwardQueue>,
    /// The signals of Claude Code's telemetry that are forwarded (only those are queued).
    pub(crate) forwarded: Vec<crate::model::otlp::Signal>,
    /// The sidecar's effective configuration, as `GET /v1/status` reports it (for `hooktel doctor`).
    pub(crate) status: serde_json::Value,
    /// `POST /v1/probe`: an empty export to every OTLP destination, reported (for `hooktel doctor`).
    pub(crate) probe: Option<Probe>,
    /// What the pipeline knows of each session, for `GET /v1/sessions/<uuid>` (the status line).
    pub(crate) views: Arc<crate::model::session_view::SessionViews>,
}

/// Checks every OTLP destination with an empty export and reports each outcome as JSON; made by
/// `serve` from its export clients (ingest never reaches up into `export`).
pub(crate) type Probe =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>> + Send + Sync>;

/// What to do when the ingest queue is full.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Answer 503 at once (a live request: the hook client keeps what it could not deliver).
    RefuseWhenFull,
    /// Wait for room (draining the spool: the event is already safe on disk).
    WaitForRoom,
}

/// Why an event was not accepted.
#[derive(Debug)]
pub(crate) enum Refusal {
    Invalid(Rejected),
    QueueFull,
    Closed,
}

/// The one ingest path of a hook payload, whatever brought it (HTTP hook, `hooktel hook`, the spool):
/// parse, cut, normalise, tie subagents to their spawner, queue, count. An implausible time (before
/// 2020, or over a day ahead: a clock or a producer gone wrong, 0, `u64::MAX`) is taken as the time
/// the event arrived, and counted: the event itself is real, and refusing it would leave its
/// session without its start, or a tool call without its end.
pub(crate) async fn accept(ingest: &Ingest, body: &[u8], at: u64, admission: Admission) -> Result<(), Refusal> {
    let now = time::now_ns();
    let plausible = time::plausible(at, now);
    let mut event = parse(body, if plausible { at } else { now }, ingest.capture).map_err(Refusal::Invalid)?;
    if !plausible {
        ingest.metrics.bad_values.with_label_values(&["implausible_time"]).inc();
        if let Some(left_out) = ingest.metrics.may_warn("implausible_time") {
            tracing::warn!(
                at,
                left_out,
                "An event's time is before 2020 or over a day ahead; taken as the time it arrived"
            );
        }
    }
    let at = event.at;
    enrich(&mut event, &ingest.transcripts).await;
    let (name, custom, native) = (event.name.clone(), event.custom, event.native());
    // a batch's arrival is no event of Claude Code's: not counted as one
    let batch = event.kind == Kind::TelemetryBatch;
    // what it holds, from the bodies' share of the memory budget, until the pipeline has applied it
    let (budget, size, bytes) = (&ingest.body_budget, ingest.body_share, event.bytes());
    event.held = match admission {
        Admission::RefuseWhenFull => Held::try_take(budget, size, bytes).ok_or(Refusal::QueueFull)?,
        Admission::WaitForRoom => Held::take(budget, size, bytes).await.ok_or(Refusal::Closed)?,
    };
    let queued = match admission {
        Admission::RefuseWhenFull => ingest.queue.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refusal::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Refusal::Closed,
        }),
        Admission::WaitForRoom => ingest.queue.send(event).await.map_err(|_| Refusal::Closed),
    };
    queued?;
    ingest.metrics.queue_depth.inc();
    if custom {
        ingest.metrics.custom_event(&name);
    } else if native && !batch {
        // a fixed set of names (normalize::API_REQUEST, API_ERROR): no label cap needed
        ingest.metrics.native_events.with_label_values(&[&name]).inc();
    } else {
        ingest.metrics.hook_event(&name, at as f64 / 1e9);
    }
    Ok(())
}

/// Parse a hook body, cutting huge inputs and outputs before anything else holds on to them. The
/// event keeps the payload as accepted, reduced to what the capture level lets out, for the journal.
/// A body that would expand (too many elements, too deep) is refused before a value is built.
pub(crate) fn parse(body: &[u8], at: u64, capture: Capture) -> Result<Event, Rejected> {
    shape::json(body).map_err(Rejected::TooBig)?;
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| Rejected::NotJson(e.to_string()))?;
    let serde_json::Value::Object(mut map) = value else { return Err(Rejected::NotObject) };
    let cut = payload::trim_payload(&mut map);
    let agent = Agent::of_payload(&map)?;
    let mut ev = agent.normalize(&map, at, capture)?;
    // the journal keeps only what the capture level lets out
    agent.keep_at_rest(&mut map, capture, &ev.kind);
    ev.raw = if ev.kind == Kind::TelemetryBatch {
        // when a batch arrived means nothing after a restart: not journaled
        bytes::Bytes::new()
    } else if cut || capture != Capture::Full {
        serde_json::to_vec(&map).unwrap_or_default().into()
    } else {
        bytes::Bytes::copy_from_slice(body)
    };
    Ok(ev)
}

/// Tie a subagent to the `Agent` call that spawned it, from the meta file beside the transcript, and
/// a pane teammate to its lead, from its team's file (read on the blocking pool, only where `roots`
/// allow, never from a FIFO).
pub(crate) async fn enrich(event: &mut Event, roots: &AgentDirs) {
    let spawn = matches!(&event.kind, Kind::ToolEnd(call, _) if call.spawned_teammate.is_some());
    if let Some(team) = event.team.clone().filter(|t| !spawn && *t != ids::own_team(&event.session_id)) {
        let roots = roots.clone();
        let own = event.session_id.clone();
        event.team_lead =
            tokio::task::spawn_blocking(move || lead_in_team_file(&roots, &team, &own)).await.ok().flatten();
    }
    let (Some(path), Some(agent)) = (event.transcript_path.clone(), event.agent_id.clone()) else { return };
    if let Kind::SubagentStart { parent_tool_use_id } | Kind::SubagentStop { parent_tool_use_id } = &mut event.kind {
        let (roots, source) = (roots.clone(), event.source);
        *parent_tool_use_id =
            tokio::task::spawn_blocking(move || logs::subagent_spawner(source, &roots, &path, &agent))
                .await
                .ok()
                .flatten();
    }
}

/// The `leadSessionId` of a team's file, when it names another session (never the asking one).
fn lead_in_team_file(roots: &AgentDirs, team: &str, own: &str) -> Option<String> {
    let bytes = roots.team_file(team, 64 * 1024)?;
    let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let lead = config.get("leadSessionId")?.as_str()?;
    (!lead.is_empty() && lead.len() <= 64 && lead != own).then(|| lead.to_owned())
}
