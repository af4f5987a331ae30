//! The path check behind `hooktel doctor`: an empty OTLP export to every configured destination
//! (spans, the metrics push, each forwarded signal), through the very clients that send the data,
//! so TLS, credentials, path and compression are all on the path checked. One report per
//! destination: what it is for, where it goes (credentials hidden), and the outcome with its fix.

use serde_json::{json, Value};

use crate::export::client::OtlpClient;

/// A destination to check and what it is for (`spans`, `metrics push`, `forwarded logs`, ...).
pub(crate) type Target = (String, OtlpClient);

/// Probe every target, one after the other (a doctor run, not a hot path), and report.
pub(crate) async fn probe(targets: &[Target]) -> Value {
    let mut reports = Vec::with_capacity(targets.len());
    for (purpose, client) in targets {
        let dest = client.destination();
        let mut report = json!({
            "purpose": purpose,
            "endpoint": dest.shown(),
            "protocol": dest.protocol.name(),
        });
        match client.probe().await {
            Ok(_) => report["outcome"] = json!("ok"),
            Err(e) => {
                report["outcome"] = json!(e.metric_label());
                report["error"] = json!(e.to_string());
                report["fix"] = json!(e.fix(dest));
            }
        }
        reports.push(report);
    }
    Value::Array(reports)
}
