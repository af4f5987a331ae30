//! The pipeline: one task that owns every session's state, applies events in arrival order, and
//! passes finished spans on to the exporter.
//!
//! One owner means no locks around session state. Besides hook events it takes the usage the
//! accountant reads from transcripts (and tells the accountant which transcripts to read, and the
//! sessions which of those reads a span closed by a turn's end waits for), and the checkouts the
//! `vcs` reader finds in sessions' working directories (asked for when a session or a turn
//! starts, answered off this task, since reading files blocks); it tells the status line what it
//! applied (`views`) and keeps the spend against the budgets (`spending`). It stops
//! when the ingest queue closes (the server stopped accepting), hands out every closed span, and
//! closes the exporter's channel in turn.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::SpanId;
use tokio::sync::mpsc;

pub(crate) mod budget;
pub mod sessions;
mod spending;
mod views;

use crate::metrics::Metrics;
use crate::model::budget::Held;
use crate::model::event::{Event, Kind};
use crate::model::ids::{SessionId, SpanKey};
use crate::model::semconv::project_of;
use crate::model::session_view::SessionViews;
use crate::model::span::{Handed, SpanRecord};
use crate::model::time::now_ns;
use crate::pipeline::budget::DaySpend;
use crate::pipeline::sessions::{Ingested, Sessions, Settings};
use crate::pipeline::spending::{threshold_event, Spending};
use crate::pipeline::views::{view_usage, ViewNote};
use crate::store::journal::{self, Entry};
use crate::usage::accountant::{Report, Request, SessionUsage, Touch, TouchKind, READ_MARGIN};
use crate::usage::logs;
use crate::vcs::{self, Located, Lookup};

/// Hand finished spans on to the exporter once their bytes fit the exporting share: waiting for it
/// is the back-pressure that fills the ingest queue (bounded in turn) while the exporter is behind.
async fn hand_on(
    spans: &mpsc::Sender<Handed>,
    (share, size): &(Arc<tokio::sync::Semaphore>, usize),
    batch: Vec<SpanRecord>,
) -> Result<(), mpsc::error::SendError<Handed>> {
    let bytes = batch.iter().map(SpanRecord::bytes).sum();
    let held = Held::take(share, *size, bytes).await.unwrap_or_default();
    spans.send((batch, held)).await
}

/// How often settled spans are handed out and idle sessions checked. A quarter of a second keeps
/// export latency low and costs nothing measurable with 10,000 sessions.
const TICK: Duration = Duration::from_millis(250);

/// Events taken from the queue in one go: amortises wake-ups under load.
const RECV_BATCH: usize = 256;

/// Longest a span waits for the transcript read its end asked for (the accountant stuck, or its
/// queue full): ten default settle times, far past the accountant's last re-read (at most the settle
/// time after the end) even on a busy machine, and short enough that a trace is never held back long.
const READ_WAIT: Duration = Duration::from_secs(10);

/// What the pipeline works with.
pub(crate) struct Parts {
    pub(crate) events: mpsc::Receiver<Event>,
    /// Usage and reads from the accountant, in the order it made them.
    pub(crate) reports: mpsc::Receiver<Report>,
    /// Transcripts to read, to the accountant (the `vcs` reader tells it the sessions' checkouts).
    pub(crate) touches: std::sync::mpsc::SyncSender<Request>,
    /// Lookups of sessions' checkouts, to the `vcs` reader (dropped when its queue is full), and
    /// its answers.
    pub(crate) lookups: std::sync::mpsc::SyncSender<Lookup>,
    pub(crate) located: mpsc::Receiver<Located>,
    pub(crate) spans: mpsc::Sender<Handed>,
    /// What spans on their way to the exporter may hold (the exporting share of the memory
    /// budget), and its size: the pipeline waits for room before it hands a batch on.
    pub(crate) exporting: (Arc<tokio::sync::Semaphore>, usize),
    /// `None` when the journal could not be opened (then restarts lose open sessions).
    pub(crate) journal: Option<journal::Writer>,
    /// Open sessions from the journal, replayed before anything else.
    pub(crate) restored: Vec<Restored>,
    pub(crate) settings: Settings,
    pub(crate) metrics: Arc<Metrics>,
    /// Each session's tokens, cost, model and turns, for `GET /v1/sessions/<uuid>` (the status line);
    /// and the spend budgets set.
    pub(crate) views: Arc<SessionViews>,
    /// The day's spend the journal kept: (UTC day, USD).
    pub(crate) day_spent: Option<(u64, f64)>,
}

/// Run until `events` closes. Finished spans go to `spans`; awaiting it is the back-pressure that
/// fills the ingest queue when the exporter falls behind.
pub(crate) async fn run(p: Parts) {
    let Parts {
        mut events,
        mut reports,
        touches,
        lookups,
        mut located,
        spans,
        exporting,
        journal,
        restored,
        settings,
        metrics,
        views,
        day_spent,
    } = p;
    let idle_ns = settings.idle_timeout_ns;
    let mut spending = Spending::new(views.clone(), metrics.clone(), day_spent);
    let mut sessions = Sessions::new(settings);
    let mut out = Vec::new();
    // sessions whose checkout was asked for and not answered yet (at most the reader's queues)
    let mut asked: HashSet<SessionId> = HashSet::new();
    // restored sessions look up their checkout again (what was found is not journaled)
    for r in &restored {
        if let Some(ev) = r.events.iter().rev().find(|ev| ev.cwd.is_some()) {
            if ask_checkout(ev, &lookups, &metrics) {
                asked.insert(ev.session_id.clone());
            }
        }
    }
    replay(&mut sessions, &views, restored, &mut out);
    let journal = Journal(journal);
    journal.handed_out(&out);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(RECV_BATCH);
    let mut memory = MemoryReturn::default();
    loop {
        tokio::select! {
            n = events.recv_many(&mut buf, RECV_BATCH) => {
                if n == 0 {
                    break;
                }
                let now = now_ns();
                for ev in buf.drain(..) {
                    count_session(&ev, &metrics);
                    // the touch first: the accountant hears of a transcript before of its checkout
                    let asks = wants_checkout(&ev, sessions.holds(&ev.session_id));
                    let pending = asks || asked.contains(&ev.session_id);
                    let awaited = touch_transcripts(&ev, pending && sessions.checkout(&ev.session_id).is_none(), &touches);
                    // (bounded even if the reader were gone: its queues hold at most twice this many)
                    if asks && ask_checkout(&ev, &lookups, &metrics) && asked.len() < 2 * vcs::QUEUE + 1 {
                        asked.insert(ev.session_id.clone());
                    }
                    let (sid, at, raw) = (ev.session_id.clone(), ev.at, ev.raw.clone());
                    let task_created = matches!(ev.kind, Kind::Task { created: true, .. });
                    let viewed = ViewNote::of(&ev);
                    let batch = ev.kind == Kind::TelemetryBatch;
                    let before = out.len();
                    let ingested = sessions.ingest(ev, now, &mut out);
                    let (due, expires) = (now + READ_MARGIN.as_nanos() as u64, now + READ_WAIT.as_nanos() as u64);
                    for agent in awaited {
                        sessions.await_read(&sid, agent.as_deref(), due, expires);
                    }
                    if task_created && ingested != Ingested::Late {
                        metrics.tasks.with_label_values(&["created"]).inc();
                    }
                    if ingested != Ingested::Late {
                        viewed.apply(&views, &sid, now);
                    }
                    // an ended session handed out by this event is journaled before the event,
                    // which belongs to the resumed session that follows
                    journal.handed_out(&out[before..]);
                    match ingested {
                        // a batch's arrival is no event: never counted late
                        Ingested::Late if batch => {}
                        Ingested::Late => metrics.late_events.inc(),
                        // (the session an event evicted is counted with the evicted below)
                        Ingested::Accepted | Ingested::AcceptedEvicting => journal.hook(sid, at, raw),
                    }
                }
                metrics.queue_depth.sub(n as i64);
            }
            Some(r) = reports.recv() => accounted(&mut sessions, &journal, &mut spending, r),
            Some(l) = located.recv() => {
                asked.remove(&l.session_id);
                sessions.located(l);
            }
            _ = tick.tick() => {
                let before = out.len();
                let now = now_ns();
                let idled = sessions.tick(now, &mut out);
                views.forget(now, idle_ns);
                spending.tick(now);
                journal.handed_out(&out[before..]);
                metrics.sessions_closed(idled, "idle_timeout");
            }
        }
        for rec in &out {
            metrics.span_finished(rec);
        }
        let evicted = sessions.take_evicted();
        for (kind, n) in [("tool", evicted.tool), ("subagent", evicted.subagent), ("other", evicted.other)] {
            if n > 0 {
                metrics.spans_evicted.with_label_values(&[kind]).inc_by(n);
            }
        }
        metrics.sessions_closed(evicted.sessions, "evicted");
        metrics.sessions_active.set(sessions.active() as i64);
        metrics.sessions_held.set(sessions.held() as i64);
        metrics.teammates_active.set(sessions.teammates_active() as i64);
        memory.after(sessions.active());
        if !out.is_empty() && hand_on(&spans, &exporting, std::mem::take(&mut out)).await.is_err() {
            tracing::error!("Exporter stopped early; finished spans lost");
        }
    }
    drop(touches);
    // the vcs reader ends with its lookups (and its answers no longer taken), and with it the
    // accountant's last sender
    drop(lookups);
    drop(located);
    // usage the accountant reads on its way out still reaches spans that are closed but not out
    while let Some(r) = reports.recv().await {
        accounted(&mut sessions, &journal, &mut spending, r);
    }
    sessions.flush_closed(&mut out);
    journal.handed_out(&out);
    for rec in &out {
        metrics.span_finished(rec);
    }
    if !out.is_empty() {
        let _ = hand_on(&spans, &exporting, out).await;
    }
    let open = sessions.active();
    if open > 0 {
        tracing::info!(sessions = open, "Open sessions kept in the journal for the next start");
    }
}

/// An open session read back from the journal, its hook events parsed again through the ingest
/// path (by `serve`): the same events give the same spans and ids.
pub(crate) struct Restored {
    pub(crate) session_id: SessionId,
    /// In firing order, without their raw bodies (they are in the journal already).
    pub(crate) events: Vec<Event>,
    pub(crate) usage: Vec<Vec<u8>>,
    pub(crate) handed_out: Vec<[u8; 8]>,
    /// Set when the session had ended: (root span id, end time).
    pub(crate) ended: Option<([u8; 8], u64)>,
}

/// Rebuild the open sessions of the journal: the same events give the same spans and ids; those
/// already handed out before the restart are dropped, not handed out again. Nothing is counted.
fn replay(sessions: &mut Sessions, views: &SessionViews, restored: Vec<Restored>, out: &mut Vec<SpanRecord>) {
    let now = now_ns();
    let (mut events, mut open) = (0, 0);
    for r in restored {
        let sid = r.session_id;
        if let Some((root, end)) = r.ended {
            sessions.restore_ended(&sid, SpanId::from_bytes(root), end, now);
        }
        open += usize::from(!r.events.is_empty());
        for ev in r.events {
            let viewed = ViewNote::of(&ev);
            if sessions.ingest(ev, now, out) != Ingested::Late {
                viewed.apply(views, &sid, now);
            }
            events += 1;
        }
        let handed: HashSet<SpanId> = r.handed_out.iter().map(|b| SpanId::from_bytes(*b)).collect();
        out.retain(|rec| !handed.contains(&rec.span_id));
        sessions.forget_handed_out(&sid, &handed.iter().copied().collect::<Vec<_>>());
        for u in &r.usage {
            if let Ok(delta) = serde_json::from_slice(u) {
                let usage = SessionUsage { session_id: sid.as_str().into(), delta };
                view_usage(views, &usage, now);
                sessions.add_usage(&usage, now);
            }
        }
    }
    if events > 0 {
        tracing::info!(sessions = open, events, "Restored open sessions from the journal");
    }
}

/// The pipeline's side of the journal; a no-op without one.
struct Journal(Option<journal::Writer>);

impl Journal {
    fn hook(&self, session: SessionId, at: u64, body: bytes::Bytes) {
        if let Some(w) = &self.0 {
            if !body.is_empty() {
                let _ = w.send(Entry::Hook { session, at, body });
            }
        }
    }

    fn day_spent(&self, day: &DaySpend) {
        if let Some(w) = &self.0 {
            let _ = w.send(Entry::DaySpent { day: day.day, usd: day.usd });
        }
    }

    fn usage(&self, u: &SessionUsage) {
        if let (Some(w), Ok(body)) = (&self.0, serde_json::to_vec(&u.delta)) {
            let _ = w.send(Entry::Usage { session: u.session_id.clone(), body });
        }
    }

    /// Record spans handed out; a root (or resumed segment) means the session's trace is out.
    fn handed_out(&self, records: &[SpanRecord]) {
        let Some(w) = &self.0 else { return };
        for rec in records {
            let session = rec.session_id.clone();
            let entry = match (rec.key, rec.parent) {
                (SpanKey::Root, _) => Entry::Ended { session, root: rec.span_id.to_bytes(), end: rec.end },
                (SpanKey::Segment, Some(root)) => Entry::Ended { session, root: root.to_bytes(), end: rec.end },
                _ => Entry::HandedOut { session, span: rec.span_id.to_bytes() },
            };
            let _ = w.send(entry);
        }
    }
}

/// Usage on its spans (and in the journal), or a read that spans may have waited for.
fn accounted(sessions: &mut Sessions, journal: &Journal, spending: &mut Spending, r: Report) {
    match r {
        Report::Usage(u) => {
            let now = now_ns();
            let session_cost = view_usage(&spending.views, &u, now);
            let (crossings, day) = spending.counted(u.delta.cost, session_cost, now);
            if let Some(day) = day {
                journal.day_spent(&day);
            }
            for c in crossings {
                tracing::info!(
                    session = %u.session_id,
                    scope = c.scope.label(),
                    threshold = c.threshold,
                    spent_usd = c.spent,
                    limit_usd = c.limit,
                    "Spend crossed a budget threshold"
                );
                sessions.root_event(&u.session_id, threshold_event(&c, now));
            }
            sessions.add_usage(&u, now);
            journal.usage(&u);
        }
        Report::Read(read) => sessions.transcript_read(&read),
    }
}

fn count_session(ev: &Event, metrics: &Metrics) {
    match &ev.kind {
        Kind::SessionStart { source } => metrics.session_started(ev.source, source),
        Kind::SessionEnd { reason } => metrics.session_ended(ev.source, reason),
        _ => {}
    }
}

/// Whether the event asks for its session's checkout: a session or a turn starts (a branch can
/// change mid-session), or it is the first event of a session not held yet.
fn wants_checkout(ev: &Event, held: bool) -> bool {
    let starts = matches!(ev.kind, Kind::SessionStart { .. } | Kind::PromptSubmit { .. });
    ev.cwd.is_some() && !ev.native() && (starts || !held)
}

/// Ask the `vcs` reader for the checkout of the event's `cwd`: read anew when a session or a turn
/// starts, from its cache otherwise. Never blocks: when the reader is behind, the lookup is dropped
/// (counted) and the next turn asks again. Whether it was sent.
fn ask_checkout(ev: &Event, lookups: &std::sync::mpsc::SyncSender<Lookup>, metrics: &Metrics) -> bool {
    let Some(cwd) = &ev.cwd else { return false };
    let fresh = matches!(ev.kind, Kind::SessionStart { .. } | Kind::PromptSubmit { .. });
    let prompt_id = match ev.kind {
        Kind::PromptSubmit { .. } => Some(ev.prompt_id.clone().unwrap_or_default()),
        _ => None,
    };
    let lookup = Lookup { session_id: ev.session_id.clone(), prompt_id, cwd: cwd.clone(), fresh };
    let sent = lookups.try_send(lookup).is_ok();
    if !sent {
        metrics.vcs_lookups.with_label_values(&["dropped"]).inc();
    }
    sent
}

/// Ask the accountant to read the transcripts this event may have grown. Never blocks: when the
/// accountant is behind, the touch is dropped, and the next one reads the same bytes (reads start
/// at the saved offset, so nothing is missed). Returns the transcripts (by subagent, `None` for the
/// session's own) whose re-reads a turn's end asked for: those the accountant will report.
fn touch_transcripts(
    ev: &Event,
    checkout_pending: bool,
    touches: &std::sync::mpsc::SyncSender<Request>,
) -> Vec<Option<String>> {
    let mut awaited = Vec::new();
    let Some(path) = &ev.transcript_path else { return awaited };
    let kind = match ev.kind {
        Kind::SessionEnd { .. } => TouchKind::SessionEnd,
        Kind::TurnEnd { .. } | Kind::SubagentStop { .. } => TouchKind::TurnEnd,
        // the call's outcome is in the log: read it after the end, as after a turn's
        Kind::ToolEnd(..) if ev.source.tool_outcome_in_log() => TouchKind::TurnEnd,
        _ => TouchKind::Grow,
    };
    let project = ev.cwd.as_deref().map(project_of).unwrap_or_default();
    let touch = |path: PathBuf, agent_id: Option<String>| Touch {
        source: ev.source,
        session_id: ev.session_id.clone(),
        path,
        agent_id,
        project: project.clone(),
        checkout_pending,
        kind,
    };
    let mut send = |path: PathBuf, agent_id: Option<String>| {
        if touches.try_send(Request::Touch(touch(path, agent_id.clone()))).is_ok() && kind != TouchKind::Grow {
            awaited.push(agent_id);
        }
    };
    let session_log = PathBuf::from(path);
    let sub = ev.agent_id.as_ref().and_then(|a| Some((logs::subagent_log(ev.source, path, a)?, a.clone())));
    match sub {
        // the event named the subagent's own log (Codex's subagents are threads of their own)
        Some((sub, agent)) if sub == session_log => send(sub, Some(agent)),
        Some((sub, agent)) => {
            send(sub, Some(agent));
            send(session_log, None);
        }
        None => send(session_log, None),
    }
    awaited
}

/// Gives freed memory back to the system after many sessions have ended. glibc's malloc keeps
/// freed memory for reuse; after a burst of thousands of sessions that is tens of megabytes held
/// for nothing. `malloc_trim` returns the free pages. It runs a second after the drop (the ended
/// sessions' spans are still on their way through the exporter at the drop), off the pipeline
/// task (it can take milliseconds on a large heap).
#[derive(Default)]
struct MemoryReturn {
    /// Most sessions open since the last trim.
    peak: usize,
    /// When the pending trim is due.
    due: Option<tokio::time::Instant>,
}

impl MemoryReturn {
    /// Sessions that must have ended since the peak before a trim is worth its cost.
    const MIN_ENDED: usize = 500;
    const DELAY: Duration = Duration::from_secs(1);

    fn after(&mut self, active: usize) {
        self.peak = self.peak.max(active);
        if self.peak - active >= Self::MIN_ENDED && active <= self.peak / 2 {
            self.peak = active;
            self.due = Some(tokio::time::Instant::now() + Self::DELAY);
        }
        if self.due.is_some_and(|due| due <= tokio::time::Instant::now()) {
            self.due = None;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            tokio::task::spawn_blocking(|| {
                // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
                unsafe { libc::malloc_trim(0) };
            });
        }
    }
}
