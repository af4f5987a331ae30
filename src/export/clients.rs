//! The OTLP clients of one sidecar: one per destination (spans, the metrics push, each forwarded
//! signal), made once, their certificate files read then, so a bad one stops `serve` at start.

use std::sync::Arc;

use crate::export::client::{OtlpClient, SetupError};
use crate::export::destination::Destination;
use crate::export::outbound::Outbound;
use crate::export::probe;

/// The OTLP clients of this sidecar, one per destination, made (and their certificates read) once.
pub(crate) struct Clients {
    pub(crate) spans: Option<OtlpClient>,
    pub(crate) push: Option<OtlpClient>,
    /// Where Claude Code's telemetry goes on to, when it is received at all.
    pub(crate) forward: Vec<OtlpClient>,
}

impl Clients {
    pub(crate) fn new(outbound: &Outbound, receiving_native: bool) -> Result<Clients, SetupError> {
        let make = |d: &Destination| OtlpClient::new(d.clone());
        Ok(Clients {
            spans: outbound.traces.as_ref().map(make).transpose()?,
            push: outbound.push.as_ref().map(|p| make(&p.dest)).transpose()?,
            forward: if receiving_native {
                outbound.forward.iter().map(make).collect::<Result<_, _>>()?
            } else {
                Vec::new()
            },
        })
    }

    /// What `hooktel doctor` checks: every destination, by purpose.
    pub(crate) fn targets(&self) -> Vec<probe::Target> {
        let mut t: Vec<probe::Target> = Vec::new();
        t.extend(self.spans.iter().map(|c| ("spans".to_owned(), c.clone())));
        t.extend(self.push.iter().map(|c| ("metrics push".to_owned(), c.clone())));
        t.extend(self.forward.iter().map(|c| (format!("forwarded {}", c.destination().signal.label()), c.clone())));
        t
    }

    /// `POST /v1/probe`: the empty exports `hooktel doctor` asks for, one probe at a time (the
    /// ingest server holds it as its `Probe`).
    pub(crate) fn probe(
        &self,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>> + Send + Sync + 'static
    {
        let targets = Arc::new(self.targets());
        let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
        move || {
            let (targets, lock) = (targets.clone(), one_at_a_time.clone());
            Box::pin(async move {
                let _held = lock.lock().await;
                probe::probe(&targets).await
            })
        }
    }
}
