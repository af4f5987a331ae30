//! The cache-hit ratio on real numbers: the recording rule `job:hooktel_tokens_cache_hit_ratio:rate1h`
//! and the dashboard's cache-hit panels, evaluated by a real Prometheus scraping the real sidecar that
//! counted the captured Claude Code 2.1.329 session, must equal cache_read / (input + cache_read +
//! cache_creation) computed here from that session's transcripts (tests/fixtures).
//!
//! hooktel creates a series at its first count, so a window that holds only one session sees no
//! increase. The session is therefore counted once before Prometheus starts (every series' first sample
//! is the same scrape, holding the whole first session) and once more, as another session from another
//! copy of the transcripts, while Prometheus scrapes: every rate and increase then sees exactly the
//! second session.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::prometheus::Prometheus;
use crate::support::{captured_session_at, copy_captured_transcripts, temp_dir, wait_until, Sidecar};

const WAIT: Duration = Duration::from_secs(30);
const TYPES: [&str; 4] = ["input", "output", "cache_read", "cache_creation"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tokens of the captured session by type, from its transcripts: each model response's usage once
/// (a response is written once per content block, each line with the same usage).
fn transcript_tokens() -> BTreeMap<&'static str, f64> {
    let dir = root().join("tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj");
    let sid = crate::support::CAPTURED_SESSION;
    let files = [
        dir.join(format!("{sid}.jsonl")),
        dir.join(format!("{sid}/subagents/agent-{}.jsonl", crate::support::CAPTURED_AGENT)),
    ];
    let mut responses: HashMap<String, Value> = HashMap::new();
    for f in &files {
        for line in fs::read_to_string(f).unwrap().lines() {
            let entry: Value = serde_json::from_str(line).unwrap();
            let usage = &entry["message"]["usage"];
            if usage.is_object() {
                responses.insert(entry["message"]["id"].as_str().unwrap().to_owned(), usage.clone());
            }
        }
    }
    let field = |u: &Value, k: &str| u[k].as_f64().unwrap_or(0.0);
    let mut out: BTreeMap<&str, f64> = TYPES.iter().map(|t| (*t, 0.0)).collect();
    for u in responses.values() {
        *out.get_mut("input").unwrap() += field(u, "input_tokens");
        *out.get_mut("output").unwrap() += field(u, "output_tokens");
        *out.get_mut("cache_read").unwrap() += field(u, "cache_read_input_tokens");
        *out.get_mut("cache_creation").unwrap() += field(u, "cache_creation_input_tokens");
    }
    out
}

/// Post the captured session's payloads (as `session`, reading the transcripts under `dir`).
fn post_session(sidecar: &Sidecar, dir: &Path, session: &str) {
    let transcript = copy_captured_transcripts(dir);
    for mut p in captured_session_at(&transcript) {
        p["session_id"] = session.into();
        let (status, body) = sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
    }
}

fn sidecar_tokens(sidecar: &Sidecar, kind: &str) -> f64 {
    sidecar.metric(&format!(
        r#"hooktel_tokens_total{{agent="claude-code",model="claude-sonnet-5-5",project="proj",repo="",type="{kind}"}}"#
    ))
}

/// The panels of the overview dashboard titled `title`: their PromQL for job `hooktel`, every other
/// variable "All", the time range and rate window an hour.
fn panel_expr(title: &str) -> String {
    let d: Value =
        serde_json::from_str(&fs::read_to_string(root().join("dashboards/hooktel-overview.json")).unwrap()).unwrap();
    let panel =
        d["panels"].as_array().unwrap().iter().find(|p| p["title"] == title).unwrap_or_else(|| panic!("{title}"));
    panel["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .replace("$job", "hooktel")
        .replace("$instance", ".*")
        .replace("$project", ".*")
        .replace("$agent", ".*")
        .replace("$__rate_interval", "1h")
        .replace("$__range", "1h")
}

#[test]
fn cache_hit_ratio_of_the_captured_session_is_cache_reads_over_all_input() {
    let tokens = transcript_tokens();
    // Claude Code's own cost-state for this session says the same
    assert_eq!(tokens.values().copied().collect::<Vec<_>>(), [15_360.0, 102_400.0, 60.0, 445.0], "{tokens:?}");
    let all_input = tokens["input"] + tokens["cache_read"] + tokens["cache_creation"];
    let want = tokens["cache_read"] / all_input;

    let dir = temp_dir("cache-hit");
    let sidecar = Sidecar::start(None, &[]);
    post_session(&sidecar, &dir.join("first"), crate::support::CAPTURED_SESSION);
    wait_until(WAIT, "the first session counted", || TYPES.iter().all(|t| sidecar_tokens(&sidecar, t) == tokens[t]));

    let rules = root().join("deploy/prometheus/rules/hooktel.rules.yml");
    let prom = Prometheus::start(&[("hooktel", sidecar.addr)], Some(&rules), &[]);
    wait_until(WAIT, "prometheus to scrape the first session", || {
        prom.value(r#"sum(hooktel_tokens_total{job="hooktel", type="cache_read"})"#) == Some(tokens["cache_read"])
    });
    post_session(&sidecar, &dir.join("second"), "5e551015-cace-4000-8000-000000000002");
    wait_until(WAIT, "prometheus to scrape both sessions", || {
        TYPES.iter().all(|t| {
            prom.value(&format!(r#"sum(hooktel_tokens_total{{job="hooktel", type="{t}"}})"#)) == Some(2.0 * tokens[t])
        })
    });

    let near = |v: Option<f64>| v.is_some_and(|v| (v - want).abs() < 1e-12);
    let rule = r#"job:hooktel_tokens_cache_hit_ratio:rate1h{job="hooktel"}"#;
    wait_until(WAIT, "the recording rule to record the ratio of both sessions", || near(prom.value(rule)));
    for title in ["Cache hit ratio (time range)", "Cache hit ratio by model"] {
        let expr = panel_expr(title);
        let got = prom.value(&expr);
        assert!(near(got), "{title}: {expr} gives {got:?}, want {want}");
    }
    // the ways other tools compute it give other numbers on the same data
    let sum = |t: &str| format!(r#"sum(increase(hooktel_tokens_total{{job="hooktel", type="{t}"}}[1h]))"#);
    let reads_over_input = prom.value(&format!("{} / {}", sum("cache_read"), sum("input"))).unwrap();
    assert!(reads_over_input > 1.0, "cache_read / input is no share: {reads_over_input}");
    assert!(!near(prom.value(&format!("{0} / ({0} + {1})", sum("cache_read"), sum("cache_creation")))));
}
