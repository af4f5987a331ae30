//! From a number to its session: exemplars, over the wire. A sidecar exports its spans to a test OTLP
//! receiver and pushes its metrics there too; a real Prometheus with exemplar storage
//! (`--enable-feature=exemplar-storage`) scrapes its `/metrics` every second while the real Claude Code
//! CLI runs two sessions, one after the other, through the scripted mock API. Prometheus's
//! `/api/v1/query_exemplars` must then answer, for tokens, cost, tool calls and tool durations,
//! exemplars whose trace ids are exactly the two session traces the receiver got, and whose span ids
//! are spans of those traces of the right kind (a model call for tokens and cost, a tool call of the
//! series' tool for the others). The pushed OTLP metrics carry the same. Also the negotiation itself:
//! OpenMetrics for an OpenMetrics `Accept`, the classic text (without exemplars) otherwise.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::support::claude::{claude_bin, one_cli_at_a_time, write_settings, Cli, Mock, Scratch};
use crate::support::prometheus::Prometheus;
use crate::support::{wait_until, Protocol, Receiver, Sidecar, Span};

const PROMPT: &str = "Run the scripted scenario.";
const PROMETHEUS_ACCEPT: &str = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A series' labels, and its exemplars' (trace id, span id, value).
type SeriesExemplars = (HashMap<String, String>, Vec<(String, String, f64)>);

/// The series `query_exemplars` answered for `expr`, each with the (trace id, span id, value) of its
/// exemplars; panics on a malformed answer.
fn exemplars(prom: &Prometheus, expr: &str) -> Vec<SeriesExemplars> {
    let data = prom.exemplars(expr);
    let series = data.as_array().unwrap_or_else(|| panic!("query_exemplars {expr}: {data}"));
    series
        .iter()
        .map(|s| {
            let labels = serde_json::from_value(s["seriesLabels"].clone()).unwrap();
            let ex = s["exemplars"].as_array().unwrap().iter().map(|e| {
                let l = |k: &str| e["labels"][k].as_str().unwrap_or_else(|| panic!("{k} in {e}")).to_owned();
                (l("trace_id"), l("span_id"), e["value"].as_str().unwrap().parse().unwrap())
            });
            (labels, ex.collect())
        })
        .collect()
}

#[test]
fn prometheus_finds_each_sessions_trace_behind_tokens_cost_and_tool_calls() {
    let _cli = one_cli_at_a_time();
    let claude = claude_bin();
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::builder()
        .exporting_to(&receiver)
        .env("OTEL_METRICS_EXPORTER", "otlp")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .start();
    let prom = Prometheus::start(&[("hooktel", sidecar.addr)], None, &["--enable-feature=exemplar-storage"]);
    wait_until(Duration::from_secs(20), "prometheus to scrape the sidecar (up == 1)", || {
        prom.value(r#"up{job="hooktel"}"#) == Some(1.0)
    });

    let scratch = Scratch::new();
    let home = scratch.dir("home");
    write_settings(&home);
    let work = scratch.dir("proj");
    fs::write(work.join("CLAUDE.md"), "# Project notes\nA throwaway project for hooktel's exemplar test.\n").unwrap();
    let mock = Mock::start(&scratch, "proj", &work);
    let cli = Cli::for_sidecar(claude, &scratch, &home, &sidecar);
    let traces_in_prometheus = |expr: &str| -> BTreeSet<String> {
        exemplars(&prom, expr).into_iter().flat_map(|(_, ex)| ex).map(|(trace, _, _)| trace).collect()
    };
    let mut sessions = Vec::new();
    for round in ["first", "second"] {
        let session = cli.spawn(round, &work, &mock, &["-p", PROMPT]).wait().expect_exit(0).session_id();
        let trace = session.replace('-', "");
        receiver.wait_for(Duration::from_secs(30), "the session's root span", |s| {
            s.iter().any(|s| s.trace_id == trace && s.parent.is_empty())
        });
        // Prometheus keeps what it scraped: the first session's exemplars stay after the second's replace them
        wait_until(Duration::from_secs(20), "prometheus to store the session's token exemplars", || {
            traces_in_prometheus("hooktel_tokens_total").contains(&trace)
        });
        sessions.push(trace);
    }
    wait_until(Duration::from_secs(10), "the exported spans to reach the receiver", || {
        sidecar.metric("hooktel_spans_exported_total") as usize == receiver.spans().len()
    });
    let spans = receiver.spans();
    let received: BTreeSet<String> = spans.iter().map(|s| s.trace_id.clone()).collect();
    assert_eq!(received, sessions.iter().cloned().collect(), "the receiver got the two sessions' traces");
    let by_id: HashMap<(&str, &str), &Span> =
        spans.iter().map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s)).collect();

    // every family's exemplars: the receiver's traces, spans of the right kind
    let families = [
        ("hooktel_tokens_total", "chat"),
        ("hooktel_cost_usd_total", "chat"),
        ("hooktel_tool_calls_total", "execute_tool"),
        ("hooktel_tool_duration_seconds_bucket", "execute_tool"),
    ];
    for (family, operation) in families {
        wait_until(Duration::from_secs(20), &format!("exemplars of both sessions on {family}"), || {
            traces_in_prometheus(family) == received
        });
        let answer = exemplars(&prom, family);
        for (labels, ex) in &answer {
            for (trace, span, value) in ex {
                let s = by_id.get(&(trace.as_str(), span.as_str())).unwrap_or_else(|| {
                    panic!("{family} {labels:?}: exemplar span {trace}/{span} is no span the receiver got")
                });
                assert_eq!(s.attr("gen_ai.operation.name"), Some(operation), "{family} {labels:?}: {}", s.name);
                if operation == "execute_tool" {
                    assert_eq!(s.attr("gen_ai.tool.name"), labels.get("tool").map(String::as_str), "{family}");
                } else {
                    assert_eq!(s.attr("gen_ai.request.model"), labels.get("model").map(String::as_str), "{family}");
                }
                assert!(*value > 0.0, "{family} {labels:?}: exemplar value {value}");
            }
        }
    }
    // the answer a dashboard gets, for the record
    println!(
        "query_exemplars hooktel_tool_calls_total:\n{}",
        serde_json::to_string_pretty(&prom.exemplars("hooktel_tool_calls_total")).unwrap()
    );

    // the push carries the same exemplars: the latest span of each series
    let pushed: BTreeSet<(String, String)> = {
        let req = receiver.last_metrics().expect("a metrics push");
        let metrics = req.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics);
        let mut out = BTreeSet::new();
        for m in metrics.filter(|m| families.iter().any(|(f, _)| f.starts_with(&m.name))) {
            let points: Vec<_> = match &m.data {
                Some(Data::Sum(s)) => s.data_points.iter().flat_map(|p| &p.exemplars).collect(),
                Some(Data::Histogram(h)) => h.data_points.iter().flat_map(|p| &p.exemplars).collect(),
                other => panic!("{}: {other:?}", m.name),
            };
            assert!(!points.is_empty(), "pushed {} has no exemplar", m.name);
            out.extend(points.iter().map(|e| (hex(&e.trace_id), hex(&e.span_id))));
        }
        out
    };
    for (trace, span) in &pushed {
        assert!(by_id.contains_key(&(trace.as_str(), span.as_str())), "pushed exemplar {trace}/{span} is no span");
    }
    assert!(pushed.iter().any(|(t, _)| *t == sessions[1]), "the pushed exemplars are the latest session's");

    // the negotiation: OpenMetrics for Prometheus, the classic text (no exemplars) for anyone else
    let (head, open) = scrape(&sidecar, &[PROMETHEUS_ACCEPT]);
    assert!(
        head.contains("\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(open.ends_with("\n# EOF\n") && open.contains(r#" # {trace_id=""#), "{open}");
    let (head, classic) = scrape(&sidecar, &[]);
    assert!(head.contains("\r\ncontent-type: text/plain; version=0.0.4\r\n"), "{head}");
    assert!(!classic.contains("trace_id") && !classic.contains("# EOF"), "{classic}");
}

/// `GET /metrics` with these header lines: the answer's head (status line and headers, lower-cased)
/// and its body.
fn scrape(sidecar: &Sidecar, headers: &[&str]) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&sidecar.addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n", sidecar.addr);
    for h in headers {
        request += &format!("{h}\r\n");
    }
    s.write_all(format!("{request}\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{answer}"));
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    (format!("{}\r\n", head.to_ascii_lowercase()), body.to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
