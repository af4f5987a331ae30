//! The export spool over the wire: spans the collector refused are kept and delivered once it
//! answers again, each exactly once, also across a restart of the sidecar.

use std::time::Duration;

use crate::support;
use crate::support::{assert_tree, captured_session, temp_dir, Protocol, Receiver, Sidecar};

const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";
const SPANS_IN_SESSION: usize = 7;

fn refused_then_recovered(protocol: Protocol) {
    let receiver = Receiver::start(protocol);
    receiver.refuse_next(usize::MAX);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    for p in captured_session() {
        assert!(sidecar.hook(&p).status.success());
    }
    support::wait_until(Duration::from_secs(20), "spans in the export spool", || {
        sidecar.metric(r#"hooktel_spool_items{spool="export"}"#) > 0.0
    });
    assert!(receiver.spans().is_empty());
    let failures: f64 = sidecar
        .metrics()
        .lines()
        .filter(|l| l.starts_with("hooktel_export_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(failures >= 1.0, "failures counted");

    receiver.refuse_next(0);
    receiver.wait_for(Duration::from_secs(60), "every span after recovery", |s| s.len() >= SPANS_IN_SESSION);
    support::wait_until(Duration::from_secs(10), "the spool emptied", || {
        sidecar.metric(r#"hooktel_spool_items{spool="export"}"#) == 0.0
    });
    // anything delivered twice would be here by now
    let spans = receiver.spans();
    assert_eq!(
        spans.len(),
        SPANS_IN_SESSION,
        "each span once: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert_tree(&spans, TRACE);
    assert_eq!(sidecar.metric("hooktel_spool_events"), 0.0);
}

#[test]
fn collector_503_then_recovery_over_http() {
    refused_then_recovered(Protocol::Http);
}

#[test]
fn collector_unavailable_then_recovery_over_grpc() {
    refused_then_recovered(Protocol::Grpc);
}

#[test]
fn spooled_spans_survive_a_restart_of_the_sidecar() {
    let data = temp_dir("export-restart");
    let env = [("HOOKTEL_DATA_DIR", data.to_str().unwrap())];
    let receiver = Receiver::start(Protocol::Http);
    receiver.refuse_next(usize::MAX);
    let mut first = Sidecar::start(Some(&receiver), &env);
    for p in captured_session() {
        assert!(first.hook(&p).status.success());
    }
    support::wait_until(Duration::from_secs(20), "the whole session in the export spool", || {
        first.metric("hooktel_spans_dropped_total") == 0.0
            && first.metric(r#"hooktel_spool_items{spool="export"}"#) >= 1.0
            && first.metric("hooktel_sessions_active") == 0.0
    });
    assert!(first.terminate(Duration::from_secs(20)));
    assert!(receiver.spans().is_empty());

    receiver.refuse_next(0);
    let second = Sidecar::start(Some(&receiver), &env);
    let spans = receiver.wait_for(Duration::from_secs(30), "the spooled session", |s| s.len() >= SPANS_IN_SESSION);
    assert_eq!(spans.len(), SPANS_IN_SESSION);
    assert_tree(&spans, TRACE);
    support::wait_until(Duration::from_secs(10), "the spool emptied", || second.metric("hooktel_spool_events") == 0.0);
    drop(second);
}
