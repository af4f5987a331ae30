//! The proof a user would see: real Claude Code sessions (the pinned CLI against the scripted mock
//! Messages API, without and then with Claude Code's own telemetry sent to hooktel) go through hooktel
//! into Arize Phoenix, a real LLM-tracing backend, and is read back
//! over Phoenix's REST and GraphQL APIs: the trace id is the session's UUID, every span has a kind
//! Phoenix knows (none UNKNOWN), one LLM span per API response, Phoenix's token total for the trace
//! equals the transcripts', its user is `HOOKTEL_USER_ID` (Phoenix reads `user.id`), and its cost is
//! its own: Phoenix keeps each model call's `gen_ai.usage.cost` among the span's attributes but
//! prices the tokens with its own table (within 2% of hooktel's here, where the tables agree).

use std::time::Duration;

use crate::e2e_outages::{expected_spans, run_scenario_with};
use crate::support::claude::{one_cli_at_a_time, Scratch};
use crate::support::phoenix::Phoenix;
use crate::support::{wait_until, Sidecar};

/// The user every span names.
const USER: &str = "dev@team.example";

#[test]
fn real_sessions_read_back_from_phoenix() {
    let _cli = one_cli_at_a_time();
    let phoenix = Phoenix::start();
    // model calls wait for Claude Code's batched telemetry, as they do by default
    let sidecar = Sidecar::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &phoenix.endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("HOOKTEL_NATIVE_SETTLE_MS", "3000")
        .env("HOOKTEL_USER_ID", USER)
        .start();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // without Claude Code's own telemetry (model calls timed by the transcripts), then with it
        let otlp = format!("http://{}", sidecar.otlp_addr());
        let telemetry = [
            ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
            ("OTEL_LOGS_EXPORT_INTERVAL", "1000"),
        ];
        let mut ours_before = 0.0;
        for native in [false, true] {
            let scratch = Scratch::new();
            let env: &[(&str, &str)] = if native { &telemetry } else { &[] };
            let run = run_scenario_with(&scratch, sidecar.addr.to_string(), sidecar.data_dir.clone(), env);
            let trace = run.session.replace('-', "");
            let expected = expected_spans(&run);
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
            let llm: Vec<_> = spans.iter().filter(|s| s["span_kind"] == "LLM").collect();
            assert_eq!(llm.len(), run.transcript.responses().len(), "one LLM span per API response");
            if native {
                for s in &llm {
                    assert!(!s["attributes"]["hooktel.api.duration_ms"].is_null(), "timed by telemetry: {s}");
                }
            }
            assert_eq!(summary["userId"].as_str(), Some(USER), "Phoenix's user of the trace");
            // hooktel's cost of each call arrives, and Phoenix keeps it, but does not price with it
            let kept: f64 = llm.iter().filter_map(|s| s["attributes"]["gen_ai.usage.cost"].as_f64()).sum();
            assert!(llm.iter().all(|s| s["attributes"]["gen_ai.usage.cost"].is_number()), "{llm:?}");

            let tokens = summary["costSummary"]["total"]["tokens"].as_f64().unwrap_or_default();
            assert_eq!(tokens as u64, run.transcript.total_tokens(), "Phoenix's token total vs the transcripts'");
            let theirs = summary["costSummary"]["total"]["cost"].as_f64().unwrap_or_default();
            let total: f64 = sidecar
                .metrics()
                .lines()
                .filter(|l| l.starts_with("hooktel_cost_usd_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            let ours = total - ours_before;
            ours_before = total;
            assert!(ours > 0.0, "hooktel priced nothing");
            let off = (theirs - ours).abs() / ours;
            println!(
                "phoenix (native telemetry {native}): {tokens} tokens, cost ${theirs:.5} against hooktel's ${ours:.5} ({:.2}% apart)",
                off * 100.0
            );
            assert!((kept - ours).abs() < 1e-9, "the spans' gen_ai.usage.cost ${kept} against hooktel's ${ours}");
            assert!(off <= 0.02, "Phoenix's cost ${theirs:.5} against hooktel's ${ours:.5}: {:.1}% apart", off * 100.0);
        }
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
