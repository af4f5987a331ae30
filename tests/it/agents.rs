//! One sidecar, three agents: a Claude Code session (the captured one, with its transcripts), a
//! Codex CLI session (the captured one, with its rollout) and a Gemini CLI session (a captured one,
//! with its chat log) sent over the wire to the same `hooktel serve`. Each agent's tokens, cost, tool
//! calls, turns and sessions land on series of its own (`agent="claude-code"`, `agent="codex"`,
//! `agent="gemini-cli"`) with the figures of its own session log, a query that ignores `agent` adds
//! them up as before, and each trace's spans go out under a resource naming its agent
//! (`gen_ai.agent.name`), the sidecar's resource otherwise. Without a collector, `hooktel sessions`
//! lists the three side by side, and `hooktel show` draws each the same shape: a root, its turns, its
//! tool and model calls under them.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    captured_session_at, copy_captured_transcripts, metric_sum, metric_value, temp_dir, wait_until, Protocol, Receiver,
    Sidecar, CAPTURED_SESSION,
};

const CODEX: &str = "tests/fixtures/codex/captured-0.171.0";
const CODEX_SESSION: &str = "01a25161-28d6-7671-b0d0-eb9d5a34b666";

/// The captured Codex session's payloads, as `hooktel hook --agent codex` marks them, pointed at the
/// fixture's rollout; and the rollout's path.
fn codex_session() -> (Vec<Value>, std::path::PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CODEX);
    let rollout = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("rollout-"))
        .unwrap();
    let payloads = std::fs::read_to_string(dir.join("hooks.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut p: Value = serde_json::from_str(l).unwrap();
            p["transcript_path"] = rollout.to_str().unwrap().into();
            p["hooktel_agent"] = "codex".into();
            p
        })
        .collect();
    (payloads, rollout)
}

const GEMINI: &str = "tests/fixtures/gemini/failures-0.61.0";
const GEMINI_SESSION: &str = "c199ef1e-cb51-4b44-948c-48558af6cf63";

/// The captured Gemini session's payloads, as `hooktel hook --agent gemini` marks them, pointed at the
/// fixture's chat log; and the usage the mock served its agent calls.
fn gemini_session() -> (Vec<Value>, Vec<Value>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(GEMINI);
    let lines = |name: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let chat = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("session-"))
        .unwrap();
    let payloads = lines("hooks.jsonl")
        .into_iter()
        .map(|mut p| {
            p["transcript_path"] = chat.to_str().unwrap().into();
            p["hooktel_agent"] = "gemini-cli".into();
            p
        })
        .collect();
    let served = lines("mock.jsonl").into_iter().filter(|r| r["reply"]["kind"] == "agent");
    (payloads, served.map(|r| r["reply"]["usage"].clone()).collect())
}

/// The three sessions interleaved, as three agents at work at once send them.
fn interleaved(sessions: [&[Value]; 3]) -> Vec<&Value> {
    let mut iters = sessions.map(|s| s.iter());
    let mut out = Vec::new();
    loop {
        let next: Vec<&Value> = iters.iter_mut().filter_map(Iterator::next).collect();
        if next.is_empty() {
            return out;
        }
        out.extend(next);
    }
}

/// The sum of one field of the rollout's `token_usage_record`s (one per model response).
fn rollout_usage(rollout: &Path, field: &str) -> f64 {
    std::fs::read_to_string(rollout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "token_usage_record")
        .map(|v| v["payload"]["usage"][field].as_u64().unwrap())
        .sum::<u64>() as f64
}

#[test]
fn three_agents_through_one_sidecar_keep_their_series_and_resources_apart() {
    let dir = temp_dir("agents");
    let transcript = copy_captured_transcripts(dir.path());
    let (codex, rollout) = codex_session();
    let (gemini, served) = gemini_session();
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::builder()
        .exporting_to(&receiver)
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci")
        .start();
    let claude = captured_session_at(&transcript);
    for p in interleaved([&claude, &codex, &gemini]) {
        let (status, body) = sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
    }

    let (claude_trace, codex_trace) = (CAPTURED_SESSION.replace('-', ""), CODEX_SESSION.replace('-', ""));
    let gemini_trace = GEMINI_SESSION.replace('-', "");
    let spans = receiver.wait_for(Duration::from_secs(30), "the sessions' roots and model calls", |s| {
        let roots = s.iter().filter(|s| s.parent.is_empty()).count();
        roots >= 3
            && s.iter().filter(|s| s.trace_id == codex_trace && s.name == "chat gpt-mock").count() == 5
            && s.iter().filter(|s| s.trace_id == gemini_trace && s.name.starts_with("chat ")).count() == served.len()
    });
    for s in &spans {
        let want = match &s.trace_id {
            t if *t == claude_trace => "claude-code",
            t if *t == codex_trace => "codex",
            t if *t == gemini_trace => "gemini-cli",
            other => panic!("a span of trace {other}"),
        };
        assert_eq!(s.resource.get("gen_ai.agent.name").map(String::as_str), Some(want), "resource of {}", s.name);
        // the sidecar's resource otherwise, the same for both
        assert_eq!(s.resource.get("deployment.environment.name").map(String::as_str), Some("ci"), "{}", s.name);
        assert_eq!(s.resource.get("service.name").map(String::as_str), Some("hooktel"), "{}", s.name);
    }

    // each agent's series, with its own session log's figures
    let codex_output = rollout_usage(&rollout, "output_tokens");
    let codex_cached = rollout_usage(&rollout, "cached_input_tokens");
    let codex_total = rollout_usage(&rollout, "input_tokens") + codex_output;
    let claude_output =
        r#"hooktel_tokens_total{agent="claude-code",model="claude-sonnet-5-5",project="proj",repo="",type="output"}"#;
    let codex_tokens = |ty: &str| {
        format!(r#"hooktel_tokens_total{{agent="codex",model="gpt-mock",project="proj",repo="",type="{ty}"}}"#)
    };
    let count = |k: &str| served.iter().map(|u| u[k].as_u64().unwrap_or(0)).sum::<u64>() as f64;
    let gemini_output = count("candidatesTokenCount") + count("thoughtsTokenCount");
    let gemini_tokens = |ty: &str| {
        let sample =
            r#"hooktel_tokens_total{agent="gemini-cli",model="gemini-3.8-flash",project="proj",repo="",type="TY"}"#;
        sample.replace("TY", ty)
    };
    wait_until(Duration::from_secs(20), "the sessions' tokens and ends counted", || {
        let text = sidecar.metrics();
        metric_value(&text, claude_output) == Some(445.0)
            && metric_value(&text, &codex_tokens("output")) == Some(codex_output)
            && metric_value(&text, &gemini_tokens("output")) == Some(gemini_output)
            && metric_sum(&text, "hooktel_sessions_ended_total") >= 4.0
    });
    let text = sidecar.metrics();
    assert_eq!(metric_value(&text, &codex_tokens("cache_read")), Some(codex_cached));
    let gemini_cached = count("cachedContentTokenCount");
    assert_eq!(metric_value(&text, &gemini_tokens("cache_read")), Some(gemini_cached));
    assert_eq!(metric_value(&text, &gemini_tokens("input")), Some(count("promptTokenCount") - gemini_cached));
    let claude_cost = r#"hooktel_cost_usd_total{agent="claude-code",model="claude-sonnet-5-5",project="proj",repo=""}"#;
    assert!((metric_value(&text, claude_cost).unwrap() - 0.07625).abs() < 1e-12, "{text}");
    // OpenAI's models are not in the built-in price table: unpriced, under Codex only
    let unpriced = r#"hooktel_unpriced_tokens_total{agent="codex",model="gpt-mock"}"#;
    assert_eq!(metric_value(&text, unpriced), Some(codex_total));
    // (the exit code that makes a call ERROR is the rollout's as it grows; this one is read whole)
    let codex_calls: f64 = text
        .lines()
        .filter(|l| l.starts_with(r#"hooktel_tool_calls_total{agent="codex",mcp_server="",project="proj",repo="""#))
        .filter(|l| l.contains(r#"tool="Bash""#))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(codex_calls, 4.0, "{text}");
    for (sample, want) in [
        (r#"hooktel_turns_total{agent="codex",outcome="stop"}"#, 2.0),
        (r#"hooktel_sessions_started_total{agent="codex",source="startup"}"#, 1.0),
        (r#"hooktel_sessions_started_total{agent="codex",source="resume"}"#, 1.0),
        (r#"hooktel_sessions_started_total{agent="claude-code",source="startup"}"#, 1.0),
        (r#"hooktel_sessions_ended_total{agent="claude-code",reason="other"}"#, 1.0),
        (r#"hooktel_turns_total{agent="gemini-cli",outcome="stop"}"#, 1.0),
        (r#"hooktel_sessions_started_total{agent="gemini-cli",source="startup"}"#, 1.0),
        (r#"hooktel_sessions_ended_total{agent="gemini-cli",reason="exit"}"#, 1.0),
        (
            r#"hooktel_tool_calls_total{agent="gemini-cli",mcp_server="",project="proj",repo="",status="error",tool="read_file"}"#,
            1.0,
        ),
        (
            r#"hooktel_tool_calls_total{agent="gemini-cli",mcp_server="",project="proj",repo="",status="error",tool="run_shell_command"}"#,
            1.0,
        ),
    ] {
        assert_eq!(metric_value(&text, sample), Some(want), "{sample} in\n{text}");
    }
    let claude_turns = metric_value(&text, r#"hooktel_turns_total{agent="claude-code",outcome="stop"}"#);
    assert!(claude_turns.is_some_and(|n| n >= 1.0), "{text}");
    // no series of one agent holds the other's: Codex's model and tool names never under Claude Code
    for line in text.lines().filter(|l| l.contains(r#"agent="claude-code""#)) {
        assert!(!line.contains("gpt-mock"), "{line}");
    }
    for line in text.lines().filter(|l| l.contains(r#"agent="codex""#)) {
        assert!(!line.contains("claude-") && !line.contains("gemini-"), "{line}");
    }
    for line in text.lines().filter(|l| l.contains(r#"agent="gemini-cli""#)) {
        assert!(!line.contains("claude-") && !line.contains("gpt-"), "{line}");
    }
    // a query that ignores `agent` adds both up, as before
    let output = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("hooktel_tokens_total{") && l.contains(r#"type="output""#))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    assert_eq!(output(&text), 445.0 + codex_output + gemini_output);
}

/// Without a collector: the three sessions side by side in `hooktel sessions`, each naming its agent,
/// and each drawn by `hooktel show` the same shape (a root, its turns, its tool and model calls under
/// a turn).
#[test]
fn three_agents_sessions_are_listed_side_by_side_and_shown_the_same_shape() {
    let dir = temp_dir("agents-local");
    let transcript = copy_captured_transcripts(dir.path());
    let (codex, _) = codex_session();
    let (gemini, _) = gemini_session();
    let sidecar = Sidecar::start(None, &[]);
    let claude = captured_session_at(&transcript);
    for p in interleaved([&claude, &codex, &gemini]) {
        let (status, body) = sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
    }
    let view = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::BIN)
            .args(args)
            .env("HOOKTEL_DATA_DIR", &sidecar.data_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let sessions = [(CAPTURED_SESSION, "claude-code"), (CODEX_SESSION, "codex"), (GEMINI_SESSION, "gemini-cli")];
    let mut list = String::new();
    wait_until(Duration::from_secs(30), "the three sessions listed as ended", || {
        list = view(&["sessions"]);
        sessions.iter().all(|(sid, _)| list.lines().any(|l| l.contains(sid) && l.trim_end().ends_with("ended")))
    });
    for (sid, agent) in sessions {
        let row = list.lines().find(|l| l.contains(sid)).unwrap();
        assert_eq!(row.split_whitespace().nth(3), Some(agent), "{list}");
        let tree = view(&["show", sid]);
        assert_eq!(tree.lines().nth(1), Some(format!("Coding agent: {agent}").as_str()), "{tree}");
        let depths = |needle: &str| -> Vec<usize> {
            let lines = tree.lines().filter(|l| l.contains(needle));
            lines.map(|l| l.chars().take_while(|c| !c.is_alphanumeric()).count()).collect()
        };
        let turn = depths(&format!("invoke_agent {agent}")).into_iter().min().expect("a turn");
        for call in ["execute_tool ", "chat "] {
            assert!(depths(call).iter().any(|d| *d > turn), "{agent}: {call:?} under a turn in\n{tree}");
        }
    }
}
