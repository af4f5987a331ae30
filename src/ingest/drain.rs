//! The hook-spool drain: events `hooktel hook` could not deliver go back through admission, oldest
//! first, with their own firing times, so the traces come out as if the sidecar had been up.
//!
//! The SQLite work runs on Tokio's blocking pool; a drained event is deleted once it is queued.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::ingest::accept::{self, Admission, Ingest, Refusal};
use crate::store::hook_spool;

/// How often the sidecar looks for spooled events after the first drain.
const DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Events taken from the spool per transaction.
const DRAIN_BATCH: usize = 512;

/// Drain the spool into the pipeline until `stop` turns true: once at start, then every second.
pub(crate) async fn drain(data_dir: PathBuf, ingest: Arc<Ingest>, mut stop: watch::Receiver<bool>) {
    let metrics = ingest.metrics.clone();
    // the series appears with the first outcome, not before: a 0 while the first open is still
    // running would read as "unusable" to a doctor that asks at that moment
    let usable = |ok: bool| metrics.spool_usable.with_label_values(&["hook"]).set(i64::from(ok));
    // a spool that cannot be opened (a read-only or broken data dir) is retried every interval:
    // fixing the directory is enough, no restart needed
    let mut logged = false;
    let mut spool = loop {
        let dir = data_dir.clone();
        match blocking(move || hook_spool::HookSpool::open(&dir)).await {
            Some(Ok(s)) => break s,
            Some(Err(e)) => {
                usable(false);
                if !logged {
                    tracing::error!(error = %e, "Cannot open the hook spool; retrying every second (spooled events wait)");
                    logged = true;
                }
            }
            None => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    };
    if logged {
        tracing::info!("Opened the hook spool; draining");
    }
    usable(true);
    loop {
        loop {
            let Some((s, batch)) = blocking(move || {
                let batch = spool.take(DRAIN_BATCH);
                (spool, batch)
            })
            .await
            else {
                return;
            };
            spool = s;
            let batch = match batch {
                Ok(b) => {
                    usable(true);
                    b
                }
                Err(e) => {
                    usable(false);
                    tracing::warn!(error = %e, "Reading the hook spool failed; retrying later");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let mut done = Vec::with_capacity(batch.len());
            for (id, at, body) in batch {
                match accept::accept(&ingest, &body, at, Admission::WaitForRoom).await {
                    Ok(()) => {}
                    Err(Refusal::Invalid(e)) => {
                        metrics.ingest_rejected.with_label_values(&[e.metric_label()]).inc();
                        if let Some(left_out) = metrics.may_warn("spooled_not_a_hook") {
                            let error = e.to_string();
                            tracing::warn!(error = ?error, left_out, "Dropped a spooled event that is not a hook payload");
                        }
                    }
                    Err(Refusal::Closed | Refusal::QueueFull) => return,
                }
                done.push(id);
            }
            let n = done.len();
            let Some((s, deleted)) = blocking(move || {
                let deleted = spool.delete(&done);
                (spool, deleted)
            })
            .await
            else {
                return;
            };
            spool = s;
            if deleted.is_err() {
                tracing::error!("Deleting drained events from the hook spool failed; they may be delivered twice");
            }
            tracing::debug!(events = n, "Drained the hook spool");
            if *stop.borrow() {
                return;
            }
        }
        let dir = data_dir.clone();
        let Some((s, depth, dropped)) = blocking(move || {
            let depth = spool.depth();
            (spool, depth, hook_spool::take_drops(&dir))
        })
        .await
        else {
            return;
        };
        spool = s;
        if let Ok(d) = depth {
            metrics.spool_depth("hook", &d);
        }
        if dropped > 0 {
            metrics.spool_dropped.with_label_values(&["hook", "write_failed"]).inc_by(dropped);
            tracing::error!(
                events = dropped,
                "Hook events lost: neither delivered nor spooled (spool locked or disk full)"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Run SQLite or file work on Tokio's blocking pool; `None` if it panicked or the runtime is going.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}
