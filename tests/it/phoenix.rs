//! The proof a user would see: a real Claude Code session (the pinned CLI against the scripted mock
//! Messages API) goes through hooktel into Arize Phoenix, a real LLM-tracing backend, and is read back
//! over Phoenix's REST and GraphQL APIs: the trace id is the session's UUID, every span has a kind
//! Phoenix knows (none UNKNOWN), one LLM span per API response, Phoenix's token total for the trace
//! equals the transcripts', and its cost (from its own price table) is within 2% of hooktel's.

use std::time::Duration;

use crate::e2e_outages::{expected_spans, run_scenario};
use crate::support::claude::{one_cli_at_a_time, Scratch};
use crate::support::phoenix::Phoenix;
use crate::support::{wait_until, Sidecar};

#[test]
fn a_real_session_reads_back_from_phoenix() {
    let _cli = one_cli_at_a_time();
    let phoenix = Phoenix::start();
    let sidecar = Sidecar::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &phoenix.endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .start();
    let scratch = Scratch::new();
    let run = run_scenario(&scratch, sidecar.addr.to_string(), sidecar.data_dir.clone());
    let trace = run.session.replace('-', "");
    let expected = expected_spans(&run);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(Duration::from_secs(60), "the whole trace in Phoenix", || {
            phoenix.trace(&trace).is_some_and(|t| t["numSpans"].as_u64() == Some(expected as u64))
        });
        let summary = phoenix.trace(&trace).unwrap();
        let spans: Vec<_> =
            phoenix.spans().into_iter().filter(|s| s["context"]["trace_id"].as_str() == Some(&trace)).collect();
        assert_eq!(spans.len(), expected, "spans of the trace over REST");
        let unknown: Vec<&str> =
            spans.iter().filter(|s| s["span_kind"] == "UNKNOWN").filter_map(|s| s["name"].as_str()).collect();
        assert!(unknown.is_empty(), "spans Phoenix files as UNKNOWN: {unknown:?}");
        let llm = spans.iter().filter(|s| s["span_kind"] == "LLM").count();
        assert_eq!(llm, run.transcript.responses().len(), "one LLM span per API response");

        let tokens = summary["costSummary"]["total"]["tokens"].as_f64().unwrap_or_default();
        assert_eq!(tokens as u64, run.transcript.total_tokens(), "Phoenix's token total vs the transcripts'");
        let theirs = summary["costSummary"]["total"]["cost"].as_f64().unwrap_or_default();
        let metrics = sidecar.metrics();
        let ours: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("hooktel_cost_usd_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(ours > 0.0, "hooktel priced nothing");
        let off = (theirs - ours).abs() / ours;
        println!(
            "phoenix: {tokens} tokens, cost ${theirs:.5} against hooktel's ${ours:.5} ({:.2}% apart)",
            off * 100.0
        );
        assert!(off <= 0.02, "Phoenix's cost ${theirs:.5} against hooktel's ${ours:.5}: {:.1}% apart", off * 100.0);
    }));
    if let Err(panic) = outcome {
        eprintln!("---- hooktel serve log ----\n{}", sidecar.log());
        eprintln!(
            "---- phoenix log (tail) ----\n{}",
            phoenix.log().lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
        std::panic::resume_unwind(panic);
    }
}
