//! Repository, branch, worktree and ticket over the wire, against the real binary: hook events whose
//! `cwd` is in a real git repository (made here with `git`, its remote holding a password) give the
//! session root and its turns the `vcs.*` attributes and `hooktel.ticket`; a branch changed between
//! turns shows on the next turn; tokens, cost and tool calls carry the `repo` label and cost counts
//! by branch; the remote's password appears nowhere (spans, /metrics, the sidecar's log); a linked
//! worktree reports itself and the shared remote.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::prometheus::{sample_value, Prometheus};
use crate::support::{
    captured_session_at, copy_captured_transcripts, temp_dir, wait_until, Protocol, Receiver, Sidecar, Span,
};

const WAIT: Duration = Duration::from_secs(30);
/// The captured session's trace.
const CAPTURED: &str = "2cfb142e3e2c45c5819258e43d4a510f";
const SWITCHER: &str = "7a1e5000-0000-4000-8000-00000000b4a0";
const LINKED: &str = "7a1e5000-0000-4000-8000-00000000b4a1";
const REMOTE: &str = "https://user:secret@github.com/acme/widgets.git";

/// Run `git` in `dir`, without the user's or the system's configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn post(sidecar: &Sidecar, payload: &Value) {
    let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
}

fn event(session: &str, cwd: &Path, name: &str, extra: Value) -> Value {
    let mut p = json!({"session_id": session, "cwd": cwd.to_str().unwrap(), "hook_event_name": name});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn lookups(sidecar: &Sidecar) -> f64 {
    sidecar.metric(r#"hooktel_vcs_lookups_total{result="repo"}"#)
}

fn root_of<'a>(spans: &'a [Span], trace: &str) -> &'a Span {
    spans.iter().find(|s| s.trace_id == trace && s.parent.is_empty()).expect("the root")
}

fn turn_of<'a>(spans: &'a [Span], trace: &str, prompt: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.trace_id == trace && s.attr("hooktel.prompt.id") == Some(prompt))
        .unwrap_or_else(|| panic!("turn {prompt}"))
}

#[test]
fn a_sessions_repository_branch_worktree_and_ticket_reach_its_spans_and_metrics() {
    let dir = temp_dir("vcs");
    let repo = dir.join("widgets");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["remote", "add", "origin", REMOTE]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "start"]);
    git(&repo, &["checkout", "-q", "-b", "feature/ABC-123-fix"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);

    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);

    // the captured session (real transcripts: tokens and cost), run in the repository's src/
    let transcript = copy_captured_transcripts(&dir);
    for mut p in captured_session_at(&transcript) {
        p["cwd"] = repo.join("src").to_str().unwrap().into();
        post(&sidecar, &p);
    }
    let spans = receiver
        .wait_for(WAIT, "the captured root", |s| s.iter().any(|s| s.trace_id == CAPTURED && s.parent.is_empty()));
    let root = root_of(&spans, CAPTURED);
    for (key, want) in [
        ("vcs.repository.url.full", "https://github.com/acme/widgets"),
        ("vcs.repository.name", "widgets"),
        ("vcs.owner.name", "acme"),
        ("vcs.provider.name", "github"),
        ("vcs.ref.head.name", "feature/ABC-123-fix"),
        ("vcs.ref.head.type", "branch"),
        ("vcs.ref.head.revision", head.as_str()),
        ("hooktel.repo", "github.com/acme/widgets"),
        ("hooktel.worktree", "widgets"),
        ("hooktel.worktree.linked", "false"),
        ("hooktel.ticket", "ABC-123"),
    ] {
        assert_eq!(root.attr(key), Some(want), "root {key}: {:?}", root.attrs);
    }
    let turns: Vec<&Span> =
        spans.iter().filter(|s| s.trace_id == CAPTURED && s.name == "invoke_agent claude-code").collect();
    assert!(!turns.is_empty());
    for t in turns {
        assert_eq!(t.attr("hooktel.ticket"), Some("ABC-123"), "turn {:?}", t.attrs);
    }
    let labels = r#"agent="claude-code",model="claude-sonnet-5-5",project="src",repo="github.com/acme/widgets""#;
    wait_until(WAIT, "the captured session's tokens under its repository", || {
        sidecar.metric(&format!("hooktel_tokens_total{{{labels},type=\"output\"}}")) == 445.0
    });
    let cost = sidecar.metric(&format!("hooktel_cost_usd_total{{{labels}}}"));
    let by_branch =
        sidecar.metric(r#"hooktel_branch_cost_usd_total{agent="claude-code",branch="feature/ABC-123-fix",repo="github.com/acme/widgets"}"#);
    assert!((cost - 0.07625).abs() < 1e-12 && (by_branch - cost).abs() < 1e-12, "cost {cost}, by branch {by_branch}");

    // a session whose branch changes between its turns, with a tool call
    let asked = lookups(&sidecar);
    post(&sidecar, &event(SWITCHER, &repo, "SessionStart", json!({"source": "startup"})));
    post(&sidecar, &event(SWITCHER, &repo, "UserPromptSubmit", json!({"prompt_id": "p1", "prompt": "fix it"})));
    let call =
        json!({"prompt_id": "p1", "tool_name": "Bash", "tool_use_id": "toolu_vcs_1", "tool_input": {"command": "ls"}});
    post(&sidecar, &event(SWITCHER, &repo, "PreToolUse", call.clone()));
    let mut done = call.clone();
    done["tool_response"] = json!({"stdout": "src"});
    post(&sidecar, &event(SWITCHER, &repo, "PostToolUse", done));
    post(&sidecar, &event(SWITCHER, &repo, "Stop", json!({"prompt_id": "p1"})));
    // the turn's checkout is read before the branch changes
    wait_until(WAIT, "the first turn's lookup", || lookups(&sidecar) >= asked + 2.0);
    git(&repo, &["checkout", "-q", "main"]);
    post(&sidecar, &event(SWITCHER, &repo, "UserPromptSubmit", json!({"prompt_id": "p2", "prompt": "again"})));
    post(&sidecar, &event(SWITCHER, &repo, "Stop", json!({"prompt_id": "p2"})));
    post(&sidecar, &event(SWITCHER, &repo, "SessionEnd", json!({"reason": "other"})));

    // a linked worktree of the same repository
    git(&repo, &["worktree", "add", "-q", "-b", "hotfix/XY-9", "../widgets-hotfix"]);
    let linked = dir.join("widgets-hotfix");
    post(&sidecar, &event(LINKED, &linked, "SessionStart", json!({"source": "startup"})));
    post(&sidecar, &event(LINKED, &linked, "UserPromptSubmit", json!({"prompt_id": "q1"})));
    post(&sidecar, &event(LINKED, &linked, "Stop", json!({"prompt_id": "q1"})));
    post(&sidecar, &event(LINKED, &linked, "SessionEnd", json!({"reason": "other"})));

    let (switcher, linked_trace) = (SWITCHER.replace('-', ""), LINKED.replace('-', ""));
    let spans = receiver.wait_for(WAIT, "both roots", |s| {
        [&switcher, &linked_trace].iter().all(|t| s.iter().any(|s| &s.trace_id == *t && s.parent.is_empty()))
    });
    let (p1, p2) = (turn_of(&spans, &switcher, "p1"), turn_of(&spans, &switcher, "p2"));
    assert_eq!(p1.attr("vcs.ref.head.name"), Some("feature/ABC-123-fix"), "{:?}", p1.attrs);
    assert_eq!(p1.attr("hooktel.ticket"), Some("ABC-123"));
    assert_eq!(p2.attr("vcs.ref.head.name"), Some("main"), "{:?}", p2.attrs);
    assert_eq!(p2.attr("hooktel.ticket"), None, "main names no ticket");
    let root = root_of(&spans, &switcher);
    assert_eq!(root.attr("vcs.ref.head.name"), Some("main"), "the root has the latest branch");
    assert_eq!(root.attr("hooktel.ticket"), Some("ABC-123"), "and the last ticket the session worked on");
    wait_until(WAIT, "the tool call under its repository", || {
        sidecar.metric(
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="",project="widgets",repo="github.com/acme/widgets",status="ok",tool="Bash"}"#,
        ) == 1.0
    });

    let root = root_of(&spans, &linked_trace);
    for (key, want) in [
        ("hooktel.worktree", "widgets-hotfix"),
        ("hooktel.worktree.linked", "true"),
        ("vcs.ref.head.name", "hotfix/XY-9"),
        ("hooktel.ticket", "XY-9"),
        ("vcs.repository.url.full", "https://github.com/acme/widgets"),
        ("vcs.ref.head.revision", head.as_str()),
    ] {
        assert_eq!(root.attr(key), Some(want), "linked root {key}: {:?}", root.attrs);
    }
    assert_eq!(turn_of(&spans, &linked_trace, "q1").attr("hooktel.worktree"), Some("widgets-hotfix"));

    // the remote's password is nowhere
    let everything = format!("{:?}\n{}\n{}", receiver.spans(), sidecar.metrics(), sidecar.log());
    assert!(everything.contains("github.com/acme/widgets"));
    assert!(!everything.contains("secret") && !everything.contains("user:"), "a credential leaked");
}

/// The dashboard's queries of a title, with job `hooktel`, every other variable "All" and a 1 h range.
fn panel_query(title: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards/hooktel-overview.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panel = d["panels"].as_array().unwrap().iter().find(|p| p["title"] == title).expect(title);
    let expr = panel["targets"][0]["expr"].as_str().unwrap();
    expr.replace("$job", "hooktel")
        .replace("$instance", ".*")
        .replace("$project", ".*")
        .replace("$agent", ".*")
        .replace("$__range", "1h")
        .replace("$__rate_interval", "1m")
}

/// The panels of cost by repository and by branch answer in a real Prometheus scraping a sidecar
/// whose session ran in a git repository: the session's cost, under its repository and branch.
#[test]
fn the_dashboards_repository_and_branch_panels_answer_in_a_real_prometheus() {
    let dir = temp_dir("vcs-prom");
    let repo = dir.join("widgets");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["remote", "add", "origin", "git@github.com:acme/widgets.git"]);
    git(&repo, &["checkout", "-q", "-b", "feature/ABC-123-fix"]);
    let sidecar = Sidecar::start(None, &[]);
    let prom = Prometheus::start(&[("hooktel", sidecar.addr)], None, &[]);
    let branch_cost =
        r#"hooktel_branch_cost_usd_total{job="hooktel",repo="github.com/acme/widgets",branch="feature/ABC-123-fix"}"#;

    // first the main transcript's usage (the subagent's transcript held back), scraped; then the
    // subagent's at the session's end: the series exist before they grow, so increase() sees it
    let transcript = copy_captured_transcripts(&dir);
    let payloads: Vec<Value> = captured_session_at(&transcript)
        .into_iter()
        .map(|mut p| {
            p["cwd"] = repo.to_str().unwrap().into();
            p
        })
        .collect();
    let agent = std::fs::read_dir(transcript.with_extension("").join("subagents"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let held_back = agent.with_extension("held");
    std::fs::rename(&agent, &held_back).unwrap();
    let (end, rest) = payloads.split_last().unwrap();
    assert_eq!(end["hook_event_name"], "SessionEnd");
    for p in rest {
        post(&sidecar, p);
    }
    wait_until(WAIT, "prometheus to scrape the main transcript's cost", || {
        prom.value(branch_cost).is_some_and(|v| v > 0.0)
    });
    let first = prom.value(branch_cost).unwrap();
    std::fs::rename(&held_back, &agent).unwrap();
    post(&sidecar, end);
    wait_until(WAIT, "prometheus to scrape the whole session's cost", || {
        prom.value(branch_cost).is_some_and(|v| (v - 0.07625).abs() < 1e-9)
    });
    assert!(first < 0.07625, "the subagent's cost came second: {first}");

    let answer = |title: &str| -> Vec<(String, String, f64)> {
        let expr = panel_query(title);
        prom.query(&expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .iter()
            .map(|s| {
                let label = |k: &str| s["metric"][k].as_str().unwrap_or("").to_owned();
                (label("repo"), label("branch"), sample_value(s).unwrap())
            })
            .collect()
    };
    for title in ["Cost by repository (time range)", "Cost by repository and branch (time range)"] {
        let rows = answer(title);
        assert_eq!(rows.len(), 1, "{title}: {rows:?}");
        assert_eq!(rows[0].0, "github.com/acme/widgets", "{title}");
        // increase() extrapolates: the subagent's share, within a factor
        assert!(rows[0].2 > 0.0, "{title}: {rows:?}");
    }
    assert_eq!(answer("Cost by repository and branch (time range)")[0].1, "feature/ABC-123-fix");
    let rate = answer("Cost rate by repository (USD per hour)");
    assert!(rate.iter().any(|(repo, _, v)| repo == "github.com/acme/widgets" && *v > 0.0), "{rate:?}");
}
