//! Forwarding Claude Code's own telemetry: what `--otlp-listen` takes (already cut to the capture
//! level by `ingest::native`) goes on to each signal's own destination, exactly as an export of that
//! signal would go (endpoint, protocol, headers, TLS, compression), so that pointing Claude Code at
//! hooktel loses nothing a collector would have had. A queue in front bounded by bodies and by bytes
//! (a full one drops the new body and counts it; 120 bodies of 8 MiB at a collector that never
//! answers grew the sidecar to 1,033 MiB when it was bounded by count alone), the client's few tries, and every outcome counted; a body that still fails is dropped
//! and logged with the fix (there is no spool for it: Claude Code's batches are not hooktel's data).

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::export::client::{Body, OtlpClient};
use crate::metrics::Metrics;
use crate::model::otlp::{Encoding, Forward};

/// Bodies waiting to be forwarded; past it the receiver drops and counts them (as past their bytes,
/// the forwarding share of the memory budget, `model::budget`).
pub(crate) const QUEUE: usize = 256;

/// Forward every body from `bodies` to its signal's client until the channel closes. A body of a
/// signal without a client is not sent (the receiver queues only forwarded signals).
pub(crate) async fn run(mut bodies: mpsc::Receiver<Forward>, clients: Vec<OtlpClient>, metrics: Arc<Metrics>) {
    while let Some(f) = bodies.recv().await {
        let signal = f.signal;
        let Some(client) = clients.iter().find(|c| c.destination().signal == signal) else { continue };
        // its bytes stay in the queue's budget until the client is done with it
        let Forward { encoding, body, queued, .. } = f;
        let body = match encoding {
            Encoding::Protobuf => Body::Protobuf(body),
            Encoding::Json => Body::Json(body),
        };
        let outcome = match client.send(body).await {
            Ok(accepted) if accepted.rejected > 0 => "partial",
            Ok(_) => "ok",
            Err(e) => {
                if let Some(left_out) = metrics.may_warn("native_forward_failed") {
                    let dest = client.destination();
                    tracing::warn!(
                        endpoint = %dest.shown(), signal = signal.label(), error = %e, fix = %e.fix(dest), left_out,
                        "Could not forward Claude Code's telemetry; dropped"
                    );
                }
                "failed"
            }
        };
        drop(queued);
        metrics.native_forwarded.with_label_values(&[signal.label(), outcome]).inc();
    }
}
