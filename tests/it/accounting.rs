//! Token accounting over the wire: real transcripts beside real hook payloads, counted exactly once,
//! across a restart, and past broken transcripts.

use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::{captured_session_at, copy_captured_transcripts, temp_dir, Protocol, Receiver, Sidecar};
use serde_json::{json, Value};

const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";
const MODEL: &str = "claude-sonnet-5-5";
const WAIT: Duration = Duration::from_secs(20);

fn post(sidecar: &Sidecar, payload: &Value) {
    let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
}

fn tokens(sidecar: &Sidecar, kind: &str) -> f64 {
    sidecar.metric(&format!(
        r#"hooktel_tokens_total{{agent="claude-code",model="{MODEL}",project="proj",repo="",type="{kind}"}}"#
    ))
}

fn cost(sidecar: &Sidecar) -> f64 {
    sidecar.metric(&format!(r#"hooktel_cost_usd_total{{agent="claude-code",model="{MODEL}",project="proj",repo=""}}"#))
}

/// Claude Code's own `cost-state` for this session: in 60, out 445, cache read 102400, cache
/// creation 15360 (all 1-hour writes), $0.07625.
const COST_STATE: [(&str, f64); 4] =
    [("input", 60.0), ("output", 445.0), ("cache_read", 102_400.0), ("cache_creation", 15_360.0)];
const COST_STATE_USD: f64 = 0.07625;

#[test]
fn captured_session_counts_exactly_what_claude_code_counted() {
    let dir = temp_dir("acct");
    let transcript = copy_captured_transcripts(&dir);
    let receiver = Receiver::start(Protocol::Grpc);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    for p in captured_session_at(&transcript) {
        post(&sidecar, &p);
    }
    let spans = receiver.wait_for(WAIT, "the root", |s| s.iter().any(|s| s.trace_id == TRACE && s.parent.is_empty()));
    for (kind, n) in COST_STATE {
        assert_eq!(tokens(&sidecar, kind), n, "{kind} tokens");
    }
    assert!((cost(&sidecar) - COST_STATE_USD).abs() < 1e-12, "cost {}", cost(&sidecar));

    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.attr("gen_ai.usage.output_tokens"), Some("445"));
    // input_tokens counts every input token: 60 uncached + 102400 cache reads + 15360 cache writes
    assert_eq!(root.attr("gen_ai.usage.input_tokens"), Some("117820"));
    assert_eq!(root.attr("gen_ai.usage.cache_read.input_tokens"), Some("102400"));
    assert_eq!(root.attr("gen_ai.usage.cache_creation.input_tokens"), Some("15360"));
    assert_eq!(root.attr("gen_ai.response.model"), Some(MODEL));
    let root_cost: f64 = root.attr("hooktel.cost_usd").unwrap().parse().unwrap();
    assert!((root_cost - COST_STATE_USD).abs() < 1e-12);
    // the subagent's transcript is on its span, the main thread's on the turn
    let sub = spans.iter().find(|s| s.name == "invoke_agent Explore").unwrap();
    assert_eq!(sub.attr("gen_ai.usage.output_tokens"), Some("174"));
    let turn = spans.iter().find(|s| s.name == "invoke_agent claude-code").unwrap();
    assert_eq!(turn.attr("gen_ai.usage.output_tokens"), Some("271"));
    assert_eq!(sidecar.metric(r#"hooktel_transcript_errors_total{reason="missing"}"#), 0.0);
}

#[test]
fn a_restart_in_the_middle_of_a_session_counts_nothing_twice() {
    let dir = temp_dir("restart");
    let data = dir.join("data");
    let transcript = copy_captured_transcripts(&dir);
    let full = std::fs::read(&transcript).unwrap();
    // the first sidecar sees the transcript cut in the middle of a line, as while Claude Code writes
    let cut = full.len() * 2 / 3;
    std::fs::write(&transcript, &full[..cut]).unwrap();
    let payloads = captured_session_at(&transcript);
    let env = [("HOOKTEL_DATA_DIR", data.to_str().unwrap())];

    let mut first = Sidecar::start(None, &env);
    for p in &payloads[..4] {
        post(&first, p);
    }
    support::wait_until(WAIT, "the first part counted", || tokens(&first, "output") > 0.0);
    // let any re-read settle, then stop it the way a service manager does
    std::thread::sleep(Duration::from_millis(300));
    let counted: Vec<f64> = COST_STATE.iter().map(|(k, _)| tokens(&first, k)).collect();
    let first_cost = cost(&first);
    assert!(first.terminate(Duration::from_secs(15)), "SIGTERM stops the sidecar");
    assert!(counted[1] < 445.0, "the cut hid part of the usage");

    std::fs::write(&transcript, &full).unwrap();
    let second = Sidecar::start(None, &env);
    for p in &payloads[4..] {
        post(&second, p);
    }
    for (i, (kind, n)) in COST_STATE.iter().enumerate() {
        support::wait_until(WAIT, "the rest counted", || tokens(&second, kind) + counted[i] >= *n);
    }
    // give a double count every chance to show up
    std::thread::sleep(Duration::from_millis(800));
    for (i, (kind, n)) in COST_STATE.iter().enumerate() {
        assert_eq!(counted[i] + tokens(&second, kind), *n, "{kind}: first run + second run");
    }
    assert!((first_cost + cost(&second) - COST_STATE_USD).abs() < 1e-12);
}

fn session_payloads(session: &str, transcript: &Path) -> Vec<Value> {
    let base = json!({"session_id": session, "transcript_path": transcript.to_str().unwrap(), "cwd": "/w/proj",
                      "prompt_id": "p1"});
    let with = |extra: Value| {
        let mut p = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    vec![
        with(json!({"hook_event_name": "SessionStart", "source": "startup"})),
        with(json!({"hook_event_name": "UserPromptSubmit"})),
        with(json!({"hook_event_name": "Stop"})),
        with(json!({"hook_event_name": "SessionEnd", "reason": "other"})),
    ]
}

#[test]
fn broken_transcripts_are_skipped_counted_and_never_stall_ingest() {
    let dir = temp_dir("broken");
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let missing = dir.join("missing.jsonl");
    let unreadable = dir.join("a-directory.jsonl");
    std::fs::create_dir_all(&unreadable).unwrap();
    let garbage = dir.join("garbage.jsonl");
    let valid = r#"{"type":"assistant","requestId":"r1","message":{"id":"m1","model":"claude-haiku-4-5","usage":{"input_tokens":7,"output_tokens":11}}}"#;
    std::fs::write(&garbage, format!("\u{0}\u{1}garbage\n{{\"type\":\n{valid}\nnot json at all\n")).unwrap();
    let legacy = dir.join("legacy.jsonl");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("transcripts/legacy-2.1.29-partial-usage.jsonl"), &legacy).unwrap();

    let sessions = [
        ("00000000-0000-4000-8000-00000000000a", &missing),
        ("00000000-0000-4000-8000-00000000000b", &unreadable),
        ("00000000-0000-4000-8000-00000000000c", &garbage),
        ("00000000-0000-4000-8000-00000000000d", &legacy),
    ];
    for (sid, path) in sessions {
        for p in session_payloads(sid, path) {
            post(&sidecar, &p);
        }
    }
    let roots = |s: &[support::Span]| s.iter().filter(|s| s.parent.is_empty()).count();
    receiver.wait_for(WAIT, "every session's root", |s| roots(s) == sessions.len());
    support::wait_until(WAIT, "the errors counted", || {
        sidecar.metric(r#"hooktel_transcript_errors_total{reason="missing"}"#) == 1.0
            // a directory is not a regular file: refused when opened (it was "unreadable" before
            // transcript paths were checked)
            && sidecar.metric(r#"hooktel_transcript_errors_total{reason="refused"}"#) >= 1.0
            && sidecar.metric(r#"hooktel_transcript_errors_total{reason="bad_line"}"#) == 3.0
    });
    // the good line among the garbage, and the final figure of the placeholder-usage transcript
    assert_eq!(
        sidecar.metric(
            r#"hooktel_tokens_total{agent="claude-code",model="claude-haiku-4-5",project="proj",repo="",type="output"}"#
        ),
        11.0
    );
    assert_eq!(
        sidecar
            .metric(r#"hooktel_tokens_total{agent="claude-code",model="claude-opus-4-5-20251101",project="proj",repo="",type="output"}"#),
        97.0,
        "placeholder output counts (8, then 97) count as their final figure"
    );
    // ingest goes on
    let after = "00000000-0000-4000-8000-00000000000e";
    for p in session_payloads(after, &missing) {
        post(&sidecar, &p);
    }
    receiver.wait_for(WAIT, "a later session", |s| roots(s) == sessions.len() + 1);
}

#[test]
fn unknown_models_cost_nothing_and_are_counted() {
    let dir = temp_dir("unpriced");
    let sidecar = Sidecar::start(None, &[]);
    let path = dir.join("t.jsonl");
    let line = r#"{"type":"assistant","requestId":"r1","message":{"id":"m1","model":"claude-unreleased-9","usage":{"input_tokens":5,"output_tokens":6}}}"#;
    std::fs::write(&path, format!("{line}\n{line}\n")).unwrap();
    for p in session_payloads("00000000-0000-4000-8000-0000000000f0", &path) {
        post(&sidecar, &p);
    }
    support::wait_until(WAIT, "the unpriced tokens counted", || {
        sidecar.metric(r#"hooktel_unpriced_tokens_total{agent="claude-code",model="claude-unreleased-9"}"#) == 11.0
    });
    assert_eq!(
        sidecar.metric(
            r#"hooktel_cost_usd_total{agent="claude-code",model="claude-unreleased-9",project="proj",repo=""}"#
        ),
        0.0
    );
    assert!(sidecar.log().contains("claude-unreleased-9"), "logged once: {}", sidecar.log());
}
