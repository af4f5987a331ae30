//! Forwarding Claude Code's own telemetry: what `--otlp-listen` takes goes on to hooktel's OTLP/HTTP
//! endpoint too (already cut to the capture level by `ingest::native`), so that pointing Claude Code
//! at hooktel loses nothing a collector would have had. A bounded queue in front (a full one drops
//! and counts), a few tries with backoff, and every outcome counted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ingest::native::{Encoding, Forward};
use crate::metrics::Metrics;

/// Tries per body before it is dropped (and counted).
const TRIES: u32 = 3;

/// Each try's time budget.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Bodies waiting to be forwarded; past it the receiver drops and counts them.
pub(crate) const QUEUE: usize = 256;

/// Forward every body from `bodies` to `base` (an OTLP/HTTP base URL: `/v1/<signal>` is appended)
/// until the channel closes.
pub(crate) async fn run(mut bodies: mpsc::Receiver<Forward>, base: String, metrics: Arc<Metrics>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Cannot build the HTTP client; Claude Code's telemetry is not forwarded");
            return;
        }
    };
    let base = base.trim_end_matches('/').to_owned();
    while let Some(f) = bodies.recv().await {
        let url = format!("{base}/v1/{}", f.signal.label());
        let content_type = match f.encoding {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        };
        let mut outcome = "failed";
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            let sent = client.post(&url).header("content-type", content_type).body(f.body.clone()).send().await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    outcome = "ok";
                    break;
                }
                // refused as malformed: trying again changes nothing
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => break,
                Ok(_) | Err(_) => {}
            }
        }
        metrics.native_forwarded.with_label_values(&[f.signal.label(), outcome]).inc();
        if outcome != "ok" {
            if let Some(left_out) = metrics.may_warn("native_forward_failed") {
                tracing::warn!(url, left_out, "Could not forward Claude Code's telemetry; dropped");
            }
        }
    }
}
