//! The dashboards' and the rules' PromQL against a real Prometheus scraping a real sidecar fed by the real
//! Claude Code CLI (offline, against the scripted mock of the Messages API; see tests/it/support/claude.rs).
//!
//! A sidecar starts, then Debian's `prometheus` (installed by `scripts/install-test-deps.sh`) scraping it
//! every second with deploy/prometheus/rules/hooktel.rules.yml loaded. Two rounds of sessions run so that
//! counters move between scrapes (rates are not all zero): the scripted scenario plus a prompt the mock
//! fails with HTTP 400 (StopFailure), then the scenario again; a malformed payload is posted in each round
//! (so `hooktel_ingest_rejected_total` moves and HooktelInputsRejected fires) and one custom event.
//! Then every PromQL expression of every dashboard panel and template variable (Grafana's variables and
//! `$__rate_interval`/`$__range` replaced by concrete values) and every rule expression goes through
//! `/api/v1/query`: any error fails; fewer than 70% of the dashboard queries returning a finite value
//! fails. The session → trace variable must turn the real session id into its trace id, and every rule
//! must evaluate without error in the server itself. Prometheus runs with exemplar storage: every panel
//! query that shows exemplars must get some from `/api/v1/query_exemplars`, each naming a session's trace.
//!
//! The same sidecar also pushes its metrics over OTLP (`OTEL_METRICS_EXPORTER=otlp`) to a test receiver
//! that serves the last push translated as a Collector would (`support::prom_translate`); Prometheus
//! scrapes that as job `pushed`. Every dashboard query and rule must give the same answers on `pushed`
//! as on the scraped `hooktel`: the same series (labels other than job and instance), and the same
//! values where the query holds no range selector (with one, the two jobs' samples fall at different
//! moments and rates differ slightly, so only the series and whether they have data are compared).
//! A Gemini CLI session (a captured one, over the wire) comes beside the Claude Code ones: the `agent`
//! variable finds both agents; a query that filters by one never answers with the other's series, the
//! Gemini session's figures show under `gemini-cli`, and `codex` (no Codex session runs here) has no data.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::claude::{claude_bin, write_settings, Cli, Mock, Scratch};
use crate::support::prometheus::{sample_value, Prometheus};
use crate::support::{wait_until, Protocol, Receiver, Sidecar};
use serde_json::Value;

const MAIN_PROMPT: &str = "Run the scripted scenario.";
const API_ERROR_PROMPT: &str = "[scenario:api-error] hi";
/// Stand-ins for Grafana's interval variables: the rate window must hold a few 1 s scrapes.
const RATE_INTERVAL: &str = "30s";
const RANGE: &str = "1m";
const INTERVAL: &str = "5s";
/// Share of dashboard queries that must return at least one finite value.
const MIN_WITH_DATA: f64 = 0.7;

/// Send a captured Gemini CLI session (its hooks as `hooktel hook --agent gemini` marks them, its chat
/// log from the fixture) to `sidecar`; its session id.
fn gemini_session(sidecar: &Sidecar) -> String {
    let dir = root().join("tests/fixtures/gemini/failures-0.61.0");
    let chat = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("session-"));
    let chat = chat.unwrap().to_str().unwrap().to_owned();
    let mut session = String::new();
    for line in fs::read_to_string(dir.join("hooks.jsonl")).unwrap().lines() {
        let mut p: Value = serde_json::from_str(line).unwrap();
        p["transcript_path"] = chat.clone().into();
        p["hooktel_agent"] = "gemini-cli".into();
        session = p["session_id"].as_str().unwrap().to_owned();
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    session
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn interpolate(expr: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(pos) = rest.find(['$', '[']) {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let (name, len) = if let Some(r) = rest.strip_prefix("${") {
            let end = r.find('}').expect("unclosed ${");
            (r[..end].split(':').next().unwrap().to_owned(), end + 3)
        } else if let Some(r) = rest.strip_prefix("[[") {
            match r.find("]]") {
                Some(end) => (r[..end].split(':').next().unwrap().to_owned(), end + 4),
                None => (String::new(), 0),
            }
        } else if let Some(r) = rest.strip_prefix('$') {
            let n: String = r.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let len = n.len() + 1;
            (n, len)
        } else {
            (String::new(), 0)
        };
        if len == 0 || name.chars().all(|c| c.is_ascii_digit()) {
            // `[` of a range selector, or a label_replace `$1`
            let ch = rest.chars().next().unwrap();
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
            continue;
        }
        let value = values.get(&name).unwrap_or_else(|| panic!("unknown Grafana variable `{name}` in {expr}"));
        out.push_str(value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// A query to run: where it comes from and its PromQL.
struct Query {
    source: String,
    expr: String,
    /// Whether the panel shows the query's exemplars (Grafana asks `/api/v1/query_exemplars` for them).
    exemplar: bool,
}

/// Every panel target of a dashboard (rows' nested panels included), interpolated.
fn panel_queries(dashboard: &Value, file: &str, values: &BTreeMap<String, String>) -> Vec<Query> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    panels.reverse();
    while let Some(p) = panels.pop() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push(Query {
                    source: format!(
                        "{file} · {} · {}",
                        p["title"].as_str().unwrap_or("?"),
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    expr: interpolate(expr, values),
                    exemplar: t["exemplar"] == true,
                });
            }
        }
        let mut nested: Vec<&Value> = p["panels"].as_array().into_iter().flatten().collect();
        nested.reverse();
        panels.extend(nested);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Panel,
    Variable,
    Rule,
}

/// One query run: where it comes from, the PromQL sent, and the series returned (or the error).
struct Row {
    kind: Kind,
    source: String,
    expr: String,
    result: Result<Vec<Value>, String>,
}

impl Row {
    fn run(prom: &Prometheus, kind: Kind, source: String, expr: String) -> Row {
        let result = prom.query(&expr);
        Row { kind, source, expr, result }
    }

    /// The finite sample values (NaN, from 0/0 or a quantile of nothing, is no data).
    fn finite(&self) -> Vec<f64> {
        self.result.iter().flatten().filter_map(sample_value).filter(|v| v.is_finite()).collect()
    }
}

/// The PromQL behind a Grafana Prometheus variable query: `label_values(m, l)` is the label's values
/// (`count by (l) (m)`), `query_result(e)` is `e`.
fn variable_promql(query: &str) -> Option<String> {
    let q = query.trim();
    if let Some(inner) = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
        let (metric, label) = inner.rsplit_once(',')?;
        return Some(format!("count by ({}) ({})", label.trim(), metric.trim()));
    }
    if let Some(inner) = q.strip_prefix("query_result(").and_then(|r| r.strip_suffix(')')) {
        return Some(inner.to_owned());
    }
    None
}

/// The values the test gives each dashboard variable: "All" as the regex Grafana would send, text boxes
/// their defaults, and `session` the real session id.
fn variable_values(dashboard: &Value, session: &str, trace_id: &str) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = [
        ("__rate_interval", RATE_INTERVAL),
        ("__interval", INTERVAL),
        ("__range", RANGE),
        ("__from", "0"),
        ("__to", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap().to_owned();
        let value = match (v["type"].as_str(), name.as_str()) {
            (_, "session") => session.to_owned(),
            (_, "trace_id") => trace_id.to_owned(),
            (Some("datasource"), _) => "prometheus".to_owned(),
            (Some("textbox" | "constant" | "custom"), _) => v["query"].as_str().unwrap_or_default().to_owned(),
            // include-all query variables: their allValue, else what Grafana sends for All (every value)
            (Some("query"), "job") => v["allValue"].as_str().unwrap_or("hooktel").to_owned(),
            (Some("query"), _) => v["allValue"].as_str().unwrap_or(".*").to_owned(),
            (t, _) => panic!("variable {name} of type {t:?}: give it a test value"),
        };
        values.insert(name, value);
    }
    values
}

/// A query's answer as (labels other than job and instance) → value.
fn answer(result: &[Value]) -> BTreeMap<String, f64> {
    result
        .iter()
        .map(|s| {
            let mut labels: Vec<String> = s["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "job" && *k != "instance")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            (labels.join(","), sample_value(s).unwrap_or(f64::NAN))
        })
        .collect()
}

/// Whether two answers agree: the same series; the same values (within rounding, and a second for
/// `time()`) unless `ranged`, else the same series with data.
fn same(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, ranged: bool) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, x)| {
            b.get(k).is_some_and(|y| match (x.is_finite(), y.is_finite()) {
                (true, true) => ranged || (x - y).abs() <= 1.0_f64.max(x.abs() * 1e-9),
                (fx, fy) => fx == fy,
            })
        })
}

/// One dashboard query run on the scraped job and on the pushed job; whether it had data.
fn compare(prom: &Prometheus, source: &str, scraped: &str, pushed: &str, disagree: &mut Vec<String>) -> bool {
    let (Ok(a), Ok(b)) = (prom.query(scraped), prom.query(pushed)) else {
        disagree.push(format!("{source}: refused"));
        return false;
    };
    let (a, b) = (answer(&a), answer(&b));
    if !same(&a, &b, scraped.contains('[')) {
        disagree.push(format!("{source}:\n    scraped {a:?}\n    pushed  {b:?}"));
    }
    a.values().any(|v| v.is_finite())
}

/// One rule expression: its series of the scraped job against those of the pushed job.
fn compare_by_job(prom: &Prometheus, source: &str, expr: &str, disagree: &mut Vec<String>) {
    let Ok(result) = prom.query(expr) else { return disagree.push(format!("{source}: refused")) };
    let of = |job: &str| {
        let series: Vec<Value> = result.iter().filter(|s| s["metric"]["job"] == job).cloned().collect();
        answer(&series)
    };
    let (a, b) = (of("hooktel"), of("pushed"));
    if !same(&a, &b, expr.contains('[')) {
        disagree.push(format!("{source}:\n    scraped {a:?}\n    pushed  {b:?}"));
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

#[test]
fn dashboard_and_rule_queries_return_data_from_a_real_prometheus() {
    let started = Instant::now();
    let claude = claude_bin();
    let rules = root().join("deploy/prometheus/rules/hooktel.rules.yml");
    let receiver = Receiver::start(Protocol::Http);
    let push_to = format!("{}/v1/metrics", receiver.endpoint());
    let sidecar = Sidecar::builder()
        .env("OTEL_METRICS_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &push_to)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .start();
    let prom = Prometheus::start(
        &[("hooktel", sidecar.addr), ("pushed", receiver.addr)],
        Some(&rules),
        &["--enable-feature=exemplar-storage"],
    );
    let up = || prom.value(r#"up{job="hooktel"}"#) == Some(1.0);
    wait_until(Duration::from_secs(20), "prometheus to scrape the sidecar (up == 1)", up);

    let scratch = Scratch::new();
    let home = scratch.dir("home");
    write_settings(&home);
    let work = scratch.dir("proj");
    fs::write(work.join("CLAUDE.md"), "# Project notes\nA throwaway project for hooktel's dashboard test.\n").unwrap();
    let mock = Mock::start(&scratch, "proj", &work);
    let cli = Cli::for_sidecar(claude, &scratch, &home, &sidecar);
    let scraped = |expr: &str, want: f64| {
        let what = format!("prometheus to scrape {expr} >= {want}");
        wait_until(Duration::from_secs(20), &what, || prom.value(expr).is_some_and(|v| v >= want));
    };
    let session_ends = r#"sum(hooktel_hook_events_total{event="SessionEnd"})"#;
    let rejected = r#"sum(hooktel_ingest_rejected_total)"#;

    // round 1: the scenario and an API error at once, a malformed payload, a custom event
    let a = cli.spawn("round1", &work, &mock, &["-p", MAIN_PROMPT]);
    let e = cli.spawn("api-error", &work, &mock, &["-p", API_ERROR_PROMPT]);
    let session = a.wait().expect_exit(0).session_id();
    let failed = e.wait().expect_exit(1).session_id();
    assert_eq!(sidecar.request("POST", "/v1/hooks", b"{not json").0, 400);
    let event = br#"{"name": "dashboard.check", "attributes": {"round": 1}}"#;
    assert_eq!(sidecar.request("POST", "/v1/events", event).0, 200);
    wait_until(Duration::from_secs(10), "the sidecar to count both sessions' ends", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="SessionEnd"}"#) >= 2.0
    });
    scraped(session_ends, 2.0);
    scraped(rejected, 1.0);

    // round 2: the same counters move again, and a Gemini CLI session (a captured one) comes beside
    let second = cli.spawn("round2", &work, &mock, &["-p", MAIN_PROMPT]).wait().expect_exit(0).session_id();
    assert_eq!(sidecar.request("POST", "/v1/hooks", b"{not json").0, 400);
    let gemini = gemini_session(&sidecar);
    wait_until(Duration::from_secs(10), "the sidecar to count the third and fourth sessions' ends", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="SessionEnd"}"#) >= 4.0
    });
    scraped(session_ends, 4.0);
    scraped(rejected, 2.0);
    // after real sessions, the last push carries exactly what /metrics serves
    let differ = support::prom_translate::push_equals_scrape(
        || sidecar.metrics(),
        || receiver.last_metrics(),
        Duration::from_secs(15),
    );
    assert!(differ.is_empty(), "push and scrape disagree after real sessions:\n{}", differ.join("\n"));
    scraped(r#"sum(hooktel_hook_events_total{job="pushed", event="SessionEnd"})"#, 4.0);
    scraped(r#"sum(hooktel_ingest_rejected_total{job="pushed"})"#, 2.0);
    // a few more scrapes, so that every rate window holds the last values more than once
    let scrapes_now = prom.value(r#"count_over_time(up{job="hooktel"}[10m])"#).unwrap_or(0.0);
    scraped(r#"count_over_time(up{job="hooktel"}[10m])"#, scrapes_now + 3.0);
    eprintln!("dashboards: sessions done and scraped after {:.1?}", started.elapsed());

    // the trace id the dashboard derives from the session id (for its Jaeger trace link)
    let trace_id = session.replace('-', "");
    let mut rows: Vec<Row> = Vec::new();
    let dashboards: Vec<PathBuf> = {
        let mut d: Vec<PathBuf> = fs::read_dir(root().join("dashboards"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        d.sort();
        d
    };
    assert!(!dashboards.is_empty(), "no dashboards/*.json");
    for path in &dashboards {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let values = variable_values(&d, &session, &trace_id);
        for q in panel_queries(&d, &file, &values) {
            rows.push(Row::run(&prom, Kind::Panel, q.source, q.expr));
        }
        // template variables: each must find its values; the trace id must come out of the session id
        for v in d["templating"]["list"].as_array().unwrap() {
            let Some(query) = v["definition"].as_str().or(v["query"]["query"].as_str()) else { continue };
            let Some(promql) = variable_promql(query) else { continue };
            let name = v["name"].as_str().unwrap();
            let row =
                Row::run(&prom, Kind::Variable, format!("{file} · variable {name}"), interpolate(&promql, &values));
            let result = row.result.as_ref().unwrap_or_else(|e| panic!("variable {name}: {e}\n{}", row.expr));
            assert!(!result.is_empty(), "variable {name} finds no values: {}", row.expr);
            if name == "trace_id" {
                let got: Vec<&str> = result.iter().filter_map(|s| s["metric"]["trace_id"].as_str()).collect();
                assert_eq!(got, [trace_id.as_str()], "trace_id derived from session {session}");
                // Grafana applies the variable's regex to the series text, keeping the trace id
                assert_eq!(v["regex"], r#"/trace_id="([0-9a-f]{32})"/"#, "trace_id variable regex");
                let mut undashed = values.clone();
                undashed.insert("session".into(), trace_id.clone());
                let again = prom.query(&interpolate(&promql, &undashed)).unwrap();
                assert_eq!(again[0]["metric"]["trace_id"], trace_id.as_str(), "a session id given without dashes");
            }
            rows.push(row);
        }
    }

    // the panels that show exemplars get them, and each names one of the sessions' traces
    let traces: Vec<String> = [&session, &failed, &second, &gemini].iter().map(|s| s.replace('-', "")).collect();
    let mut exemplar_queries = 0;
    for path in &dashboards {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        for q in panel_queries(&d, &file, &variable_values(&d, &session, &trace_id)).iter().filter(|q| q.exemplar) {
            let answer = prom.exemplars(&q.expr);
            let found: Vec<&str> = answer
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["exemplars"].as_array().unwrap())
                .map(|e| e["labels"]["trace_id"].as_str().unwrap_or_default())
                .collect();
            assert!(!found.is_empty(), "{}: no exemplars for {}", q.source, q.expr);
            assert!(found.iter().all(|t| traces.iter().any(|s| s == t)), "{}: {found:?} not in {traces:?}", q.source);
            exemplar_queries += 1;
        }
    }
    assert!(exemplar_queries >= 5, "only {exemplar_queries} panel queries show exemplars");

    // the agent variable finds the sessions' agents (Claude Code's and Gemini CLI's, here); a query
    // that filters by one answers with no series of another, and has no data for an agent that ran no
    // session (Codex)
    let mut by_agent: Vec<String> = Vec::new();
    let (mut filtered, mut gemini_answers) = (0, 0);
    for path in &dashboards {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let all = variable_values(&d, &session, &trace_id);
        let variable = d["templating"]["list"].as_array().unwrap().iter().find(|v| v["name"] == "agent").unwrap();
        let promql = variable_promql(variable["query"]["query"].as_str().unwrap()).unwrap();
        let found = prom.query(&interpolate(&promql, &all)).unwrap();
        let mut agents: Vec<&str> = found.iter().filter_map(|s| s["metric"]["agent"].as_str()).collect();
        agents.sort();
        assert_eq!(agents, ["claude-code", "gemini-cli"], "{file}: the agent variable's values");
        let given = |agent: &str| {
            let mut values = all.clone();
            values.insert("agent".into(), agent.into());
            panel_queries(&d, &file, &values)
        };
        let queries = panel_queries(&d, &file, &all).into_iter().zip(given("claude-code")).zip(given("gemini-cli"));
        let queries = queries.zip(given("codex"));
        for (((_, claude), gemini), codex) in queries.filter(|(((a, c), _), _)| a.expr != c.expr) {
            let ask = |expr: &str| prom.query(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            for (agent, q) in [("claude-code", &claude), ("gemini-cli", &gemini)] {
                let result = ask(&q.expr);
                let others: Vec<&str> =
                    result.iter().filter_map(|s| s["metric"]["agent"].as_str()).filter(|a| *a != agent).collect();
                if !others.is_empty() {
                    by_agent.push(format!("{}: {agent} answers with {others:?}'s series: {}", q.source, q.expr));
                }
                if agent == "gemini-cli" && answer(&result).values().any(|v| v.is_finite()) {
                    gemini_answers += 1;
                }
            }
            if answer(&ask(&codex.expr)).values().any(|v| v.is_finite()) {
                by_agent.push(format!("{}: data for codex, which ran no session: {}", codex.source, codex.expr));
            }
            filtered += 1;
        }
    }
    assert!(by_agent.is_empty(), "the agent variable:\n{}", by_agent.join("\n"));
    assert!(filtered >= 25, "only {filtered} dashboard queries filter by agent");
    // the Gemini session's tokens, cost, tool calls (two failed), turns and session show for it
    assert!(gemini_answers >= 10, "only {gemini_answers} dashboard queries answer for gemini-cli");

    // every rule expression
    let rule_doc: Value = serde_norway::from_str(&fs::read_to_string(&rules).unwrap()).unwrap();
    for g in rule_doc["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap();
            let kind = if r["alert"].is_string() { "alert" } else { "record" };
            let expr = r["expr"].as_str().unwrap().trim().to_owned();
            rows.push(Row::run(&prom, Kind::Rule, format!("rules · {kind} {name}"), expr));
        }
    }

    // pushed data answers every dashboard query and rule as scraped data does
    let mut disagree: Vec<String> = Vec::new();
    let mut compared = 0;
    for path in &dashboards {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
        let mut values = variable_values(&d, &session, &trace_id);
        let scraped_queries = panel_queries(&d, &file, &values);
        values.insert("job".into(), "pushed".into());
        for (s, p) in scraped_queries.iter().zip(panel_queries(&d, &file, &values)) {
            assert_ne!(s.expr, p.expr, "{} does not filter by job", s.source);
            compared += usize::from(compare(&prom, &s.source, &s.expr, &p.expr, &mut disagree));
        }
    }
    for row in rows.iter().filter(|r| r.kind == Kind::Rule) {
        compare_by_job(&prom, &row.source, &row.expr, &mut disagree);
    }
    assert!(disagree.is_empty(), "pushed and scraped data answer differently:\n{}", disagree.join("\n"));
    println!("dashboard queries with data on both jobs, compared: {compared}");
    assert!(compared >= 25, "only {compared} dashboard queries had data to compare");

    // the table
    println!("\n{:<84} {:>6} {:>6} {:>14}  query", "source", "series", "finite", "first value");
    let mut failures: Vec<String> = Vec::new();
    for row in &rows {
        match &row.result {
            Ok(r) => {
                let finite = row.finite();
                println!(
                    "{:<84} {:>6} {:>6} {:>14}  {}",
                    clip(&row.source, 84),
                    r.len(),
                    finite.len(),
                    finite.first().map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into()),
                    clip(&row.expr.replace('\n', " "), 160)
                );
            }
            Err(e) => {
                println!("{:<84} ERROR  {e}  {}", clip(&row.source, 84), row.expr);
                failures.push(format!("{}: {e}\n    {}", row.source, row.expr));
            }
        }
    }
    let panels: Vec<&Row> = rows.iter().filter(|r| r.kind == Kind::Panel).collect();
    let (dashboard_rows, with_data) = (panels.len(), panels.iter().filter(|r| !r.finite().is_empty()).count());
    let rule_rows = rows.iter().filter(|r| r.kind == Kind::Rule).count();
    let ratio = with_data as f64 / dashboard_rows as f64;
    println!(
        "\ndashboard queries with data: {with_data}/{dashboard_rows} ({:.0}%); rule expressions: {rule_rows}",
        ratio * 100.0
    );
    assert!(failures.is_empty(), "queries Prometheus refused:\n{}", failures.join("\n"));
    assert!(
        ratio >= MIN_WITH_DATA,
        "only {with_data} of {dashboard_rows} dashboard queries returned data (need {:.0}%)",
        MIN_WITH_DATA * 100.0
    );

    // the server's own evaluation of every rule: healthy, evaluated, no error
    wait_until(Duration::from_secs(10), "every rule to be evaluated", || {
        let r = prom.api("/api/v1/rules");
        r["data"]["groups"]
            .as_array()
            .is_some_and(|gs| gs.iter().flat_map(|g| g["rules"].as_array().unwrap()).all(|r| r["health"] != "unknown"))
    });
    let r = prom.api("/api/v1/rules");
    let mut evaluated = 0;
    for g in r["data"]["groups"].as_array().unwrap() {
        for rule in g["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "rule {} in the server: {}", rule["name"], rule["lastError"]);
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, rule_rows, "every rule of the file loaded");
    let spent = prom.value(r#"job:hooktel_cost_usd:increase1h{job="hooktel"}"#);
    assert!(spent.is_some_and(|v| v > 0.0), "the recorded hourly cost of the sessions: {spent:?}");
    assert_eq!(prom.value("hooktel:cost_budget_usd_per_hour"), Some(10.0));

    // the rejected payloads made HooktelInputsRejected fire; nothing here is down or losing data
    wait_until(Duration::from_secs(10), "HooktelInputsRejected to fire", || {
        let a = prom.api("/api/v1/alerts");
        a["data"]["alerts"].as_array().is_some_and(|alerts| {
            alerts.iter().any(|a| a["labels"]["alertname"] == "HooktelInputsRejected" && a["state"] == "firing")
        })
    });
    let alerts = prom.api("/api/v1/alerts");
    let active: Vec<String> = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {} ({})", a["labels"]["alertname"], a["labels"], a["state"]))
        .collect();
    println!("active alerts:\n  {}", active.join("\n  "));
    for quiet in ["HooktelDown", "HooktelDataDropped", "HooktelExportFailing", "HooktelTranscriptErrors"] {
        assert!(!active.iter().any(|a| a.contains(quiet)), "{quiet} is active: {active:?}");
    }
    eprintln!("dashboards: done in {:.1?}", started.elapsed());
}
