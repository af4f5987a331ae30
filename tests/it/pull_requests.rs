//! Pull requests over the wire, against the real binary: a Bash call's PostToolUse whose command
//! opened a pull request (`gh pr create`, `git push -o merge_request.create`) gives its tool span a
//! `hooktel.pull_request` event (`url.full`, `vcs.*`), lists the URL on the session's root (or its
//! resumed segment) as `hooktel.pull_requests`, and counts `hooktel_pull_requests_total`; a `cat` of
//! a pull request's URL and GitHub's push hint do not. Nothing else of the output leaves: no
//! credential of the URL, no other line, not at rest either. The dashboard's cost-per-pull-request
//! panel answers in a real Prometheus.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::prometheus::Prometheus;
use crate::support::{
    captured_session_at, copy_captured_transcripts, metric_value, temp_dir, wait_until, Protocol, Receiver, Sidecar,
    Span,
};

const WAIT: Duration = Duration::from_secs(30);
const URL: &str = "https://github.com/acme/api/pull/42";
/// What `gh pr create` printed, with a token in its URL and a line that must stay home.
const STDOUT: &str = "SECRET-OUTPUT-LINE\nhttps://x-access-token:ghs_SECRETTOKEN0123456789@github.com/acme/api/pull/42?notify=SECRET-QUERY\n";
const STDERR: &str = "\nCreating pull request for fix-auth into main in acme/api\n\n";
/// A GitHub push's hint, which is no pull request.
const PUSH_HINT: &str = "remote: \nremote: Create a pull request for 'fix-auth' on GitHub by visiting:\nremote:      https://github.com/acme/api/pull/new/fix-auth\nremote: \n";

fn post(sidecar: &Sidecar, payload: &Value) {
    let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
}

fn event(session: &str, name: &str, extra: Value) -> Value {
    let mut p = json!({"session_id": session, "cwd": "/w/proj", "hook_event_name": name, "prompt_id": "p1"});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// A Bash call's PreToolUse and PostToolUse, as Claude Code sends them.
fn bash(session: &str, id: &str, command: &str, stdout: &str, stderr: &str) -> [Value; 2] {
    let input = json!({"command": command, "description": "Open the pull request"});
    let pre = event(session, "PreToolUse", json!({"tool_name": "Bash", "tool_use_id": id, "tool_input": input}));
    let response = json!({"stdout": stdout, "stderr": stderr, "interrupted": false, "isImage": false});
    let post = event(
        session,
        "PostToolUse",
        json!({"tool_name": "Bash", "tool_use_id": id, "tool_input": input, "tool_response": response, "duration_ms": 900}),
    );
    [pre, post]
}

fn start(session: &str, source: &str) -> Value {
    event(session, "SessionStart", json!({"source": source}))
}

fn end(session: &str) -> Value {
    event(session, "SessionEnd", json!({"reason": "other"}))
}

fn tool<'a>(spans: &'a [Span], id: &str) -> &'a Span {
    spans.iter().find(|s| s.attr("gen_ai.tool.call.id") == Some(id)).unwrap_or_else(|| panic!("no span of {id}"))
}

fn pull_request_events(span: &Span) -> Vec<&std::collections::HashMap<String, String>> {
    span.events.iter().filter(|(name, _)| name == "hooktel.pull_request").map(|(_, attrs)| attrs).collect()
}

/// Every text of every span (attributes, event attributes, status) and of /metrics holds none of
/// the output's other text, its token or its query.
fn assert_nothing_else_leaves(spans: &[Span], metrics: &str) {
    for s in spans {
        let texts = s.attrs.values().chain(s.events.iter().flat_map(|(_, a)| a.values())).chain([&s.status_message]);
        for t in texts {
            for secret in ["SECRET", "ghs_", "x-access-token", "notify="] {
                assert!(!t.contains(secret), "{secret} left in span {}: {t}", s.name);
            }
        }
    }
    assert!(!metrics.contains("SECRET") && !metrics.contains("ghs_"));
}

/// No file of the data directory (journal, spools) holds the output's other text or its token.
fn assert_nothing_else_at_rest(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_nothing_else_at_rest(&path);
        } else {
            let bytes = fs::read(&path).unwrap();
            for secret in [&b"SECRET-OUTPUT-LINE"[..], b"ghs_SECRETTOKEN"] {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret), "{} holds a secret", path.display());
            }
        }
    }
}

fn pull_requests(metrics: &str, provider: &str) -> f64 {
    let sample =
        format!(r#"hooktel_pull_requests_total{{agent="claude-code",project="proj",provider="{provider}",repo=""}}"#);
    metric_value(metrics, &sample).unwrap_or(0.0)
}

#[test]
fn a_gh_pr_create_is_a_span_event_a_root_attribute_and_a_count() {
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let sid = "5e551015-0042-4000-8000-00000000a001";
    post(&sidecar, &start(sid, "startup"));
    post(&sidecar, &event(sid, "UserPromptSubmit", json!({})));
    // the push only hints at a pull request; `gh pr create` opens one; a `cat` shows one's URL
    for p in bash(sid, "toolu_push", "git push -u origin fix-auth", "", PUSH_HINT) {
        post(&sidecar, &p);
    }
    let command = "gh pr create --title \"Fix auth\" --body \"$(cat <<'EOF'\n## Summary\n- fix\nEOF\n)\"";
    for p in bash(sid, "toolu_gh", command, STDOUT, STDERR) {
        post(&sidecar, &p);
    }
    for p in bash(sid, "toolu_cat", "cat notes.md", "see https://github.com/acme/api/pull/7\n", "") {
        post(&sidecar, &p);
    }
    post(&sidecar, &event(sid, "Stop", json!({})));
    post(&sidecar, &end(sid));

    let spans = receiver.wait_for(WAIT, "the session's root", |s| s.iter().any(|s| s.parent.is_empty()));
    let gh = tool(&spans, "toolu_gh");
    let events = pull_request_events(gh);
    assert_eq!(events.len(), 1, "{:?}", gh.events);
    let e = events[0];
    assert_eq!(e.get("url.full").map(String::as_str), Some(URL), "{e:?}");
    assert_eq!(e.get("vcs.change.id").map(String::as_str), Some("42"));
    assert_eq!(e.get("vcs.change.state").map(String::as_str), Some("open"));
    assert_eq!(e.get("vcs.provider.name").map(String::as_str), Some("github"));
    assert_eq!(e.get("vcs.repository.url.full").map(String::as_str), Some("https://github.com/acme/api"));
    for id in ["toolu_push", "toolu_cat"] {
        assert!(pull_request_events(tool(&spans, id)).is_empty(), "{id} opened no pull request");
    }
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let listed = root.attr("hooktel.pull_requests").unwrap_or_else(|| panic!("{:?}", root.attrs));
    assert!(listed.contains(URL) && !listed.contains("pull/7") && !listed.contains("pull/new"), "{listed}");
    assert!(listed.starts_with("ArrayValue"), "a string array, one URL per value: {listed}");

    let metrics = sidecar.metrics();
    assert_eq!(pull_requests(&metrics, "github"), 1.0, "{metrics}");
    assert_nothing_else_leaves(&spans, &metrics);
    assert_nothing_else_at_rest(&sidecar.data_dir);
}

/// A 10 MB output through `hooktel hook`: the client cuts it before it travels, after noting the
/// pull request its last line names.
#[test]
fn a_huge_output_through_the_hook_client_keeps_the_pull_request_only() {
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let sid = "5e551015-0042-4000-8000-00000000a002";
    post(&sidecar, &start(sid, "startup"));
    let stdout = format!("{}{STDOUT}", "SECRET-OUTPUT-LINE of a long build log\n".repeat(300 * 1024));
    assert!(stdout.len() > 10 << 20);
    for p in bash(sid, "toolu_big", "npm test && gh pr create --fill", &stdout, STDERR) {
        let out = sidecar.hook(p.to_string().as_bytes());
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    }
    post(&sidecar, &end(sid));
    let spans = receiver.wait_for(WAIT, "the session's root", |s| s.iter().any(|s| s.parent.is_empty()));
    let events = pull_request_events(tool(&spans, "toolu_big"));
    assert_eq!(events.first().and_then(|e| e.get("url.full")).map(String::as_str), Some(URL), "{events:?}");
    let metrics = sidecar.metrics();
    assert_eq!(pull_requests(&metrics, "github"), 1.0);
    assert_nothing_else_leaves(&spans, &metrics);
    assert_nothing_else_at_rest(&sidecar.data_dir);
}

/// The root is exported when the session ends: a merge request opened after a `--resume` is listed
/// on the resumed segment, which hangs under that root in the same trace.
#[test]
fn a_pull_request_after_a_resume_is_listed_on_the_resumed_segment() {
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let sid = "5e551015-0042-4000-8000-00000000a003";
    post(&sidecar, &start(sid, "startup"));
    for p in bash(sid, "toolu_gh", "gh pr create --fill", STDOUT, STDERR) {
        post(&sidecar, &p);
    }
    post(&sidecar, &end(sid));
    receiver.wait_for(WAIT, "the session's root", |s| s.iter().any(|s| s.parent.is_empty()));

    post(&sidecar, &start(sid, "resume"));
    let mr = "https://gitlab.example.com/acme/platform/api/-/merge_requests/5";
    let push = format!("remote: \nremote: View merge request for fix-auth:\nremote:   {mr}\nremote: \n");
    for p in bash(sid, "toolu_push", "git push -u origin fix-auth -o merge_request.create", "", &push) {
        post(&sidecar, &p);
    }
    post(&sidecar, &end(sid));
    let spans =
        receiver.wait_for(WAIT, "the resumed segment", |s| s.iter().any(|s| s.name == "claude-code session resumed"));
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let segment = spans.iter().find(|s| s.name == "claude-code session resumed").unwrap();
    assert_eq!((segment.trace_id.as_str(), segment.parent.as_str()), (root.trace_id.as_str(), root.span_id.as_str()));
    let listed = |s: &Span| s.attr("hooktel.pull_requests").unwrap_or_default().to_owned();
    assert!(listed(root).contains(URL) && !listed(root).contains(mr), "{}", listed(root));
    assert!(listed(segment).contains(mr) && !listed(segment).contains(URL), "{}", listed(segment));
    let e = pull_request_events(tool(&spans, "toolu_push"));
    assert_eq!(e.first().and_then(|e| e.get("vcs.provider.name")).map(String::as_str), Some("gitlab"));
    assert_eq!(e.first().and_then(|e| e.get("vcs.change.id")).map(String::as_str), Some("5"));
    let metrics = sidecar.metrics();
    assert_eq!((pull_requests(&metrics, "github"), pull_requests(&metrics, "gitlab")), (1.0, 1.0), "{metrics}");
}

/// The root is exported at the session's end: a pull request opened before a kill -9 of the sidecar
/// reaches it after the restart, from the journal (which holds the noted URL, never the output).
#[test]
fn a_pull_request_before_a_kill_9_reaches_the_root_after_the_restart() {
    let data = temp_dir("pull-requests-restart");
    let env = [("HOOKTEL_DATA_DIR", data.to_str().unwrap())];
    let receiver = Receiver::start(Protocol::Http);
    let first = Sidecar::start(Some(&receiver), &env);
    let sid = "5e551015-0042-4000-8000-00000000a005";
    post(&first, &start(sid, "startup"));
    for p in bash(sid, "toolu_gh", "gh pr create --fill", STDOUT, STDERR) {
        post(&first, &p);
    }
    let journaled = || {
        let Ok(conn) = rusqlite::Connection::open(data.join("journal.db")) else { return 0 };
        conn.query_row("SELECT count(*) FROM journal WHERE kind = 0", [], |r| r.get::<_, i64>(0)).unwrap_or(0)
    };
    wait_until(WAIT, "the three events journaled", || journaled() >= 3);
    let _ = std::process::Command::new("kill").args(["-9", &first.pid().to_string()]).status();
    drop(first);
    assert_nothing_else_at_rest(&data);

    let second = Sidecar::start(Some(&receiver), &env);
    post(&second, &end(sid));
    let spans = receiver.wait_for(WAIT, "the session's root", |s| s.iter().any(|s| s.parent.is_empty()));
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let listed = root.attr("hooktel.pull_requests").unwrap_or_else(|| panic!("{:?}", root.attrs));
    assert!(listed.starts_with("ArrayValue") && listed.contains(URL), "{listed}");
    let calls: Vec<&Span> = spans.iter().filter(|s| s.attr("gen_ai.tool.call.id") == Some("toolu_gh")).collect();
    assert_eq!(calls.len(), 1, "the call's span once");
    assert_eq!(pull_request_events(calls[0]).len(), 1, "{:?}", calls[0].events);
    assert_nothing_else_leaves(&spans, &second.metrics());
}

/// The overview dashboard's panel titled `title`: its queries for job `hooktel`, every other
/// variable "All", the time range an hour.
fn panel_exprs(title: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards/hooktel-overview.json");
    let d: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let panel = d["panels"].as_array().unwrap().iter().find(|p| p["title"] == title).expect(title);
    let targets = panel["targets"].as_array().unwrap();
    targets
        .iter()
        .map(|t| {
            let expr = t["expr"].as_str().unwrap();
            expr.replace("$job", "hooktel")
                .replace("$instance", ".*")
                .replace("$project", ".*")
                .replace("$agent", ".*")
                .replace("$__range", "1h")
        })
        .collect()
}

/// The captured Claude Code session (real payloads, real transcripts: a real cost) with one
/// `gh pr create` before its end, as `session`.
fn post_session_with_a_pull_request(sidecar: &Sidecar, dir: &Path, session: &str) {
    let transcript = copy_captured_transcripts(dir);
    let payloads = captured_session_at(&transcript);
    let (last, rest) = payloads.split_last().unwrap();
    assert_eq!(last["hook_event_name"], "SessionEnd");
    for mut p in rest.iter().cloned() {
        p["session_id"] = session.into();
        post(sidecar, &p);
    }
    for mut p in bash(session, "toolu_gh_pr", "gh pr create --fill", STDOUT, STDERR) {
        p["cwd"] = last["cwd"].clone();
        post(sidecar, &p);
    }
    let mut end = last.clone();
    end["session_id"] = session.into();
    post(sidecar, &end);
}

/// Cost per pull request: one session's cost over its one pull request, computed by a real
/// Prometheus from what it scraped. As in `cache_hit`, the first
/// session is counted before Prometheus starts, so every increase over the range is the second's.
#[test]
fn the_dashboards_cost_per_pull_request_answers_in_a_real_prometheus() {
    let dir = temp_dir("pull-requests");
    let sidecar = Sidecar::start(None, &[]);
    let cost = || {
        metric_value(
            &sidecar.metrics(),
            r#"hooktel_cost_usd_total{agent="claude-code",model="claude-sonnet-5-5",project="proj",repo=""}"#,
        )
    };
    let prs = || {
        metric_value(
            &sidecar.metrics(),
            r#"hooktel_pull_requests_total{agent="claude-code",project="proj",provider="github",repo=""}"#,
        )
    };
    post_session_with_a_pull_request(&sidecar, &dir.join("first"), crate::support::CAPTURED_SESSION);
    wait_until(WAIT, "the first session's cost and pull request", || {
        cost().is_some_and(|c| c > 0.0) && prs() == Some(1.0)
    });
    let one_session = cost().unwrap();

    let prom = Prometheus::start(&[("hooktel", sidecar.addr)], None, &[]);
    let scraped = |expr: &str, want: f64| {
        wait_until(WAIT, &format!("prometheus to scrape {expr} = {want}"), || prom.value(expr) == Some(want));
    };
    scraped(r#"sum(hooktel_pull_requests_total{job="hooktel"})"#, 1.0);
    post_session_with_a_pull_request(&sidecar, &dir.join("second"), "5e551015-0042-4000-8000-00000000a004");
    // a cost is a sum of floats: the second session's adds up to the first's within rounding
    let twice = |c: Option<f64>| c.is_some_and(|c| (c - 2.0 * one_session).abs() < 1e-9 * one_session);
    wait_until(WAIT, "the second session counted", || prs() == Some(2.0) && twice(cost()));
    scraped(r#"sum(hooktel_pull_requests_total{job="hooktel"})"#, 2.0);
    let cost_scraped = r#"sum(hooktel_cost_usd_total{job="hooktel"})"#;
    wait_until(WAIT, "prometheus to scrape both sessions' cost", || twice(prom.value(cost_scraped)));

    let near = |v: f64| (v - one_session).abs() < 1e-9 * one_session;
    let stat = panel_exprs("Cost per pull request (time range)");
    assert_eq!(stat.len(), 1, "{stat:?}");
    let got = prom.value(&stat[0]);
    assert!(got.is_some_and(near), "{} gives {got:?}, want {one_session}", stat[0]);
}
