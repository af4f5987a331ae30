//! Delivery: batches finished spans and hands them to the sink (the OTLP client, or the local
//! store in local mode); while the collector fails, batches go to the export spool and are replayed
//! oldest first once it answers, with backoff between probes.
//!
//! The client tries again what is worth it (no connection, 429, 502-504, unavailable) itself; what
//! still fails is classified ([`SendError`]) and counted. Only spans the backend refused as invalid
//! are let go; refused credentials, a wrong path or a TLS problem keep them in the spool until the
//! backend takes them. Spans a backend refuses within an accepted request (OTLP partial success)
//! are counted and logged. One task owns the client, so exports never overlap.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub(crate) mod client;
pub(crate) mod clients;
pub(crate) mod destination;
pub(crate) mod forward;
pub(crate) mod metrics_push;
pub(crate) mod otlp;
pub(crate) mod outbound;
pub(crate) mod probe;
pub(crate) mod resource;
pub(crate) mod tls;

use client::{Body, OtlpClient, SendError};

use crate::metrics::Metrics;
use crate::model::budget::Held;
use crate::model::span::{Handed, SpanRecord};
use crate::model::time::now_ns;
use crate::store::export_spool::{SpanSpool, SpoolError};
use crate::store::import_registry::ImportRegistry;
use crate::store::local::LocalStore;

/// Spans per export call: large enough to amortise a request, small enough to stay far below
/// receivers' default 4 MiB gRPC message limit even with full capture.
const MAX_BATCH: usize = 512;

/// How long spans wait for a batch to fill before they go out anyway.
const BATCH_DELAY: Duration = Duration::from_millis(200);

/// Upper bound on one export call including the client's own tries, so a hung collector
/// cannot hold the pipeline forever.
const EXPORT_DEADLINE: Duration = Duration::from_secs(30);

/// Where finished spans go: an OTLP backend, or the local SQLite store when none is configured.
pub(crate) enum Sink {
    Otlp(Exporter),
    Local(LocalStore),
}

/// An OTLP backend and the resource its spans carry.
pub(crate) struct Exporter {
    pub(crate) client: OtlpClient,
    pub(crate) resource: opentelemetry_sdk::Resource,
}

/// First wait before probing a collector that failed; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The exporter's view of the collector. SQLite (the spool, the local store) only ever runs on
/// Tokio's blocking pool: each is moved there for one call and handed back ([`blocking`]).
struct Delivery {
    exporter: Option<Exporter>,
    /// Local mode's store; `None` in OTLP mode (or after a store call panicked).
    store: Option<LocalStore>,
    spool: Option<SpanSpool>,
    /// Where the sessions handed out are marked live, so that `hooktel import` skips them.
    live: Option<ImportRegistry>,
    metrics: Arc<Metrics>,
    /// `None` while the collector answers; else when to probe it again, and the wait after that.
    down: Option<(tokio::time::Instant, Duration)>,
}

/// Run `work` on the value in `slot` on Tokio's blocking pool, and put the value back. `None` when
/// the slot is empty or the work panicked (the value is then gone, and the caller counts the loss).
async fn blocking<S: Send + 'static, T: Send + 'static>(
    slot: &mut Option<S>,
    work: impl FnOnce(&mut S) -> T + Send + 'static,
) -> Option<T> {
    let mut value = slot.take()?;
    let (value, out) = tokio::task::spawn_blocking(move || {
        let out = work(&mut value);
        (value, out)
    })
    .await
    .ok()?;
    *slot = Some(value);
    Some(out)
}

/// Export batches until the channel closes; then export what is left and shut the exporter down.
/// While the collector fails, batches go to the spool and the oldest spooled batch probes it with
/// backoff; once it answers, the spool is replayed oldest first.
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Handed>,
    sink: Sink,
    spool: Option<SpanSpool>,
    live: Option<ImportRegistry>,
    metrics: Arc<Metrics>,
) {
    let (exporter, store) = match sink {
        Sink::Otlp(e) => (Some(e), None),
        Sink::Local(s) => (None, Some(s)),
    };
    let mut d = Delivery { exporter, store, spool, live, metrics, down: None };
    d.show_spool().await;
    d.replay().await;
    let mut batch: Vec<SpanRecord> = Vec::new();
    // the bytes of the memory budget the spans in `batch` hold, given back once they are delivered
    let mut held: Vec<Held> = Vec::new();
    loop {
        let wait = if batch.is_empty() { d.probe_in() } else { Some(BATCH_DELAY) };
        let more = match wait {
            None => rx.recv().await,
            Some(w) => match tokio::time::timeout(w, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    if !batch.is_empty() {
                        d.deliver(std::mem::take(&mut batch)).await;
                        held.clear();
                    }
                    d.replay().await;
                    continue;
                }
            },
        };
        match more {
            Some((spans, h)) => {
                batch.extend(spans);
                held.push(h);
                while batch.len() >= MAX_BATCH {
                    let rest = batch.split_off(MAX_BATCH);
                    d.deliver(std::mem::replace(&mut batch, rest)).await;
                }
                if batch.is_empty() {
                    held.clear();
                }
            }
            None => break,
        }
    }
    if !batch.is_empty() {
        d.deliver(batch).await;
    }
}

impl Delivery {
    /// Mark the batch's sessions live (whatever becomes of the batch: it is theirs now, spooled or
    /// not). A failure is logged, rate-limited: an import may then duplicate those sessions.
    async fn mark_live(&mut self, batch: &[SpanRecord]) {
        let mut traces: Vec<opentelemetry::trace::TraceId> = Vec::new();
        for s in batch {
            if !traces.contains(&s.trace_id) {
                traces.push(s.trace_id);
            }
        }
        let marked = blocking(&mut self.live, move |live| live.mark_live(&traces, now_ns())).await;
        if let Some(Err(e)) = marked {
            if let Some(left_out) = self.metrics.may_warn("live_mark_failed") {
                tracing::warn!(error = %e, left_out, "Cannot record the sessions handed out; an import may send them again");
            }
        }
    }

    /// How long until the collector should be probed, when it is down.
    fn probe_in(&self) -> Option<Duration> {
        self.down
            .map(|(at, _)| at.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(10)))
    }

    /// Store a fresh batch locally, or export it; spool it while the collector is down or when the
    /// export fails.
    async fn deliver(&mut self, mut batch: Vec<SpanRecord>) {
        let non_finite: usize = batch.iter_mut().map(SpanRecord::drop_non_finite).sum();
        if non_finite > 0 {
            self.metrics.bad_values.with_label_values(&["non_finite"]).inc_by(non_finite as u64);
        }
        self.mark_live(&batch).await;
        if self.exporter.is_none() {
            self.store_locally(batch).await;
            return;
        }
        if self.down.is_some() && self.spool.is_some() {
            self.keep(batch).await;
            return;
        }
        match export(self.exporter.as_ref(), &self.metrics, &batch).await {
            Ok(()) => self.replay().await,
            Err(e) if !e.keeps_data() => self.drop_spans(batch.len(), "rejected"),
            Err(_) => {
                self.mark_down();
                self.keep(batch).await;
            }
        }
    }

    /// Local mode: the batch goes into the local store.
    async fn store_locally(&mut self, batch: Vec<SpanRecord>) {
        let n = batch.len();
        match blocking(&mut self.store, move |store| store.insert(&batch, now_ns())).await {
            Some(Ok(())) => self.metrics.spans_stored.inc_by(n as u64),
            Some(Err(e)) => {
                tracing::error!(error = %e, spans = n, "Cannot write the local store; spans lost");
                self.drop_spans(n, "store_failed");
            }
            None => self.drop_spans(n, "store_failed"),
        }
    }

    /// Replay spooled batches, oldest first, until the spool is empty or an export fails.
    async fn replay(&mut self) {
        if self.exporter.is_none() || self.down.is_some_and(|(at, _)| at > tokio::time::Instant::now()) {
            return;
        }
        loop {
            let Some(oldest) = blocking(&mut self.spool, |spool| spool.oldest()).await else { return };
            let (id, spans) = match oldest {
                Ok(Some((id, spans, set_aside))) => {
                    if set_aside > 0 {
                        // the rest of the batch goes on: one bad record never takes its neighbours
                        self.metrics.spans_dropped.with_label_values(&["undecodable"]).inc_by(set_aside as u64);
                        tracing::error!(
                            batch = id,
                            spans = set_aside,
                            "Set aside spooled spans that cannot be decoded"
                        );
                    }
                    (id, spans)
                }
                Ok(None) => {
                    self.down = None;
                    break;
                }
                Err(SpoolError::Undecodable { id, spans, error }) => {
                    // lost, and said so: never "exported" as an empty batch
                    self.metrics.spool_dropped.with_label_values(&["export", "undecodable"]).inc();
                    self.metrics.spans_dropped.with_label_values(&["undecodable"]).inc_by(spans);
                    tracing::error!(batch = id, spans, %error, "Dropped an export spool batch that cannot be decoded");
                    if let Some(Err(e)) = blocking(&mut self.spool, move |spool| spool.remove(id)).await {
                        tracing::error!(error = %e, "Cannot remove an undecodable batch from the export spool");
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "Reading the export spool failed");
                    break;
                }
            };
            match export(self.exporter.as_ref(), &self.metrics, &spans).await {
                Ok(()) => {
                    self.down = None;
                    blocking(&mut self.spool, move |spool| spool.remove(id)).await;
                }
                Err(e) if !e.keeps_data() => {
                    blocking(&mut self.spool, move |spool| spool.remove(id)).await;
                    self.metrics.spool_dropped.with_label_values(&["export", "rejected"]).inc();
                }
                Err(_) => {
                    self.mark_down();
                    break;
                }
            }
        }
        self.show_spool().await;
    }

    fn mark_down(&mut self) {
        let wait = match self.down {
            Some((_, w)) => (w * 2).min(MAX_BACKOFF),
            None => FIRST_BACKOFF,
        };
        self.down = Some((tokio::time::Instant::now() + wait, wait));
    }

    /// Put a batch in the spool (or count it lost when there is none or it fails).
    async fn keep(&mut self, batch: Vec<SpanRecord>) {
        let n = batch.len();
        match blocking(&mut self.spool, move |spool| spool.push(&batch, now_ns())).await {
            None => {
                self.drop_spans(n, "export_failed");
                return;
            }
            Some(Ok(0)) => {}
            Some(Ok(dropped)) => {
                self.metrics.spool_dropped.with_label_values(&["export", "full"]).inc_by(dropped);
                self.metrics.spans_dropped.with_label_values(&["spool_full"]).inc_by(dropped);
                tracing::error!(spans = dropped, "Export spool full; dropped the oldest spans");
            }
            Some(Err(e)) => {
                self.metrics.spool_dropped.with_label_values(&["export", "write_failed"]).inc_by(n as u64);
                self.drop_spans(n, "spool_failed");
                tracing::error!(error = %e, spans = n, "Cannot write the export spool; spans lost");
            }
        }
        self.show_spool().await;
    }

    fn drop_spans(&self, n: usize, reason: &str) {
        self.metrics.spans_dropped.with_label_values(&[reason]).inc_by(n as u64);
        tracing::error!(spans = n, reason, "Spans lost");
    }

    async fn show_spool(&mut self) {
        match blocking(&mut self.spool, |spool| spool.depth()).await {
            Some(Ok(depth)) => self.metrics.spool_depth("export", &depth),
            Some(Err(e)) => tracing::warn!(error = %e, "Cannot read the export spool's depth"),
            None => {}
        }
    }
}

/// One OTLP export call; `Err` says why it failed (counted, and logged at most once per interval
/// per reason, with the fix). It borrows only the exporter and the metrics across the await: the
/// SQLite handles in `Delivery` are not `Sync`.
async fn export(exporter: Option<&Exporter>, metrics: &Metrics, batch: &[SpanRecord]) -> Result<(), SendError> {
    let Some(exporter) = exporter else { return Err(SendError::Other("no exporter".into())) };
    let n = batch.len() as u64;
    let body = Body::Protobuf(otlp::request(batch, &exporter.resource));
    let dest = exporter.client.destination();
    let failure = match tokio::time::timeout(EXPORT_DEADLINE, exporter.client.send(body)).await {
        Ok(Ok(accepted)) => {
            let rejected = accepted.rejected.min(n);
            metrics.spans_exported.inc_by(n - rejected);
            if rejected > 0 {
                metrics.spans_dropped.with_label_values(&["partial_success"]).inc_by(rejected);
                if let Some(left_out) = metrics.may_warn("export_partial_success") {
                    tracing::warn!(
                        endpoint = %dest.shown(), rejected, of = n, reason = %accepted.message, left_out,
                        "The backend took the spans but refused some of them"
                    );
                }
            }
            tracing::debug!(spans = n, "Exported spans");
            return Ok(());
        }
        Ok(Err(e)) => e,
        Err(_) => SendError::Timeout(format!("{EXPORT_DEADLINE:?} for the export and its tries")),
    };
    metrics.export_failures.with_label_values(&[failure.metric_label()]).inc();
    if let Some(left_out) = metrics.may_warn("otlp_export_failed") {
        let (endpoint, fix) = (dest.shown(), failure.fix(dest));
        if failure.needs_the_user() {
            tracing::error!(%endpoint, spans = n, error = %failure, %fix, left_out, "OTLP export failed; the spans are kept in the spool until the backend takes them");
        } else if failure.keeps_data() {
            tracing::warn!(%endpoint, spans = n, error = %failure, %fix, left_out, "OTLP export failed; the spans are kept in the spool and retried");
        } else {
            tracing::error!(%endpoint, spans = n, error = %failure, %fix, left_out, "OTLP export failed; the spans are dropped");
        }
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::Retention;

    /// `block_in_place` around SQLite panicked on a current-thread runtime; the blocking pool serves both.
    #[tokio::test(flavor = "current_thread")]
    async fn local_mode_runs_on_a_current_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), Retention::default()).unwrap();
        let metrics = Arc::new(Metrics::new(false, false));
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(run(rx, Sink::Local(store), None, None, metrics.clone()));
        tx.send((vec![crate::store::record::tests::span(1), crate::store::record::tests::span(2)], Held::default()))
            .await
            .unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(metrics.spans_stored.get(), 2);
    }
}
