//! The pipeline: one task that owns every session's state, applies events in arrival order, and
//! passes finished spans on to the exporter.
//!
//! One owner means no locks around session state. It stops when the ingest queue closes (the server
//! stopped accepting), hands out every closed span, and closes the exporter's channel in turn.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::normalize::Event;
use crate::session::{Ingested, Sessions, Settings, SpanRecord};

/// How often settled spans are handed out and idle sessions checked. A quarter of a second keeps
/// export latency low and costs nothing measurable with 10,000 sessions.
const TICK: Duration = Duration::from_millis(250);

/// Events taken from the queue in one go: amortises wake-ups under load.
const RECV_BATCH: usize = 256;

pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Run until `events` closes. Finished spans go to `spans`; awaiting it is the back-pressure that
/// fills the ingest queue when the exporter falls behind.
pub async fn run(
    mut events: mpsc::Receiver<Event>,
    spans: mpsc::Sender<Vec<SpanRecord>>,
    settings: Settings,
    metrics: Arc<Metrics>,
) {
    let mut sessions = Sessions::new(settings);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(RECV_BATCH);
    let mut out = Vec::new();
    let mut memory = MemoryReturn::default();
    loop {
        tokio::select! {
            n = events.recv_many(&mut buf, RECV_BATCH) => {
                if n == 0 {
                    break;
                }
                let now = now_ns();
                for ev in buf.drain(..) {
                    if sessions.ingest(ev, now, &mut out) == Ingested::Late {
                        metrics.late_events.inc();
                    }
                }
                metrics.queue_depth.sub(n as i64);
            }
            _ = tick.tick() => sessions.tick(now_ns(), &mut out),
        }
        metrics.sessions_active.set(sessions.active() as i64);
        memory.after(sessions.active());
        if !out.is_empty() && spans.send(std::mem::take(&mut out)).await.is_err() {
            tracing::error!("Exporter stopped early; finished spans lost");
        }
    }
    sessions.flush_closed(&mut out);
    if !out.is_empty() {
        let _ = spans.send(out).await;
    }
    let open = sessions.active();
    if open > 0 {
        tracing::warn!(sessions = open, "Shutting down with open sessions; their open spans are not exported");
    }
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
