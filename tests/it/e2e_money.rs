//! Where the money goes, end to end: the real Claude Code CLI, in a real git repository with a
//! remote and a branch named after a ticket, calls a tool of a real stdio MCP server
//! (`tests/e2e/mcp_files.py`, started by the CLI from `--mcp-config`) and opens a pull request with a
//! `gh`-like command, through the scripted mock API (`[scenario:money]` of `tests/e2e/mock_api.py`),
//! its hooks reporting to the real sidecar (a day budget set), which exports to a real OTLP receiver.
//! The session's root and turn name the repository (`host/owner/repo`, the remote's credential gone),
//! the branch and its ticket; the MCP call's span names its server, and the MCP server saw that very
//! call; the Bash call that ran `gh pr create` carries the pull request, which the root lists; the
//! metrics carry the `repo` (and MCP server) labels, count the pull request and the cost by branch;
//! the spend crossed the day budget's thresholds (span events on the root, the gauge); and
//! the model call that read the MCP server's result is that server's cost; the dashboard's links from
//! the ticket, the pull request, the repository and the branch search for what the spans carry; and
//! `hooktel statusline`, given what Claude Code gives it, prints the session's model, turn, tokens,
//! cost and budget use as the sidecar counted them.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::statusline::statusline;
use crate::support::claude::{claude_bin, one_cli_at_a_time, write_settings, Cli, Mock, Scratch};
use crate::support::{metric_value, wait_until, Protocol, Receiver, Sidecar};

const WAIT: Duration = Duration::from_secs(30);
const PROMPT: &str = "[scenario:money] Read the README over MCP, then open the pull request.";
const REMOTE: &str = "https://octo:ghp_SECRETTOKEN42@github.com/acme/widgets.git";
const BRANCH: &str = "feature/ABC-123-fix-widget";
const PR_URL: &str = "https://github.com/acme/widgets/pull/42";
const REPO: &str = "github.com/acme/widgets";
/// A day budget the session's spend crosses whole (each model call of the mock costs cents).
const DAY_BUDGET_USD: &str = "0.01";

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(repo)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .output()
        .expect("git is installed");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A repository with one commit, a remote whose URL carries a credential, on a ticket's branch.
fn repository(dir: &Path) {
    git(dir, &["init", "-q"]);
    fs::write(dir.join("README.md"), "# Widgets\nThe widget factory.\n").unwrap();
    git(dir, &["add", "README.md"]);
    git(dir, &["commit", "-q", "-m", "init"]);
    git(dir, &["remote", "add", "origin", REMOTE]);
    git(dir, &["checkout", "-q", "-b", BRANCH]);
}

/// A `gh` that answers `pr create` as the real one does: the new pull request's URL on stdout.
fn fake_gh(bin: &Path) {
    let gh = bin.join("gh");
    let script = format!("#!/bin/sh\n[ \"$1 $2\" = \"pr create\" ] || exit 2\necho {PR_URL}\n");
    fs::write(&gh, script).unwrap();
    let mut perms = fs::metadata(&gh).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(&gh, perms).unwrap();
}

/// The Jaeger search a dashboard link opens (the link whose title starts with `title`, in the
/// dashboard's links or a panel's data links): its `tags`, with the dashboard's variables set to `vars`.
fn jaeger_search(title: &str, vars: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/hooktel-overview.json");
    let text = fs::read_to_string(path).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut links: Vec<&Value> = dashboard["links"].as_array().unwrap().iter().collect();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        links.extend(panel["fieldConfig"]["defaults"]["links"].as_array().into_iter().flatten());
    }
    let link = links
        .iter()
        .find(|l| l["title"].as_str().is_some_and(|t| t.starts_with(title)))
        .unwrap_or_else(|| panic!("a dashboard link titled {title:?}"));
    let url = link["url"].as_str().unwrap();
    let tags = url.split(['?', '&']).find_map(|p| p.strip_prefix("tags=")).expect("a search by tags");
    let mut decoded = percent_decode(tags);
    for (name, value) in vars {
        // the values here need no escaping in JSON: set them as Grafana would
        decoded = decoded.replace(&format!("${{{name}:percentencode}}"), value).replace(&format!("${{{name}}}"), value);
    }
    assert!(!decoded.contains('$'), "every variable of {title:?} set: {decoded}");
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("{title:?}: tags {decoded}: {e}"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Whether Jaeger's search by `tags` finds `span`: each tag among its attributes or its events'
/// fields (Jaeger matches both).
fn found_by(span: &crate::support::Span, tags: &serde_json::Map<String, Value>) -> bool {
    tags.iter().all(|(key, value)| {
        let value = value.as_str().unwrap();
        span.attr(key) == Some(value)
            || span.events.iter().any(|(_, fields)| fields.get(key).map(String::as_str) == Some(value))
    })
}

/// The MCP server's requests, as it logged them.
fn mcp_requests(log: &Path) -> Vec<Value> {
    fs::read_to_string(log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_session_in_a_ticket_branch_with_an_mcp_server_and_a_pull_request() {
    let _cli = one_cli_at_a_time();
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_BUDGET_USD_PER_DAY", DAY_BUDGET_USD)]);
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    write_settings(&home);
    let repo = scratch.dir("widgets");
    repository(&repo);
    let bin = scratch.dir("bin");
    fake_gh(&bin);
    let mcp_log = scratch.path().join("mcp.requests.jsonl");
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/mcp_files.py");
    let config = json!({"mcpServers": {"files": {"type": "stdio", "command": "python3",
                        "args": [server, "--log", mcp_log]}}});
    let config_path = scratch.path().join("mcp.json");
    fs::write(&config_path, config.to_string()).unwrap();

    let mock = Mock::start(&scratch, "money", &repo);
    let cli = Cli::for_sidecar(claude_bin(), &scratch, &home, &sidecar);
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    // MCP tools are offered to the model directly, not behind Claude Code's tool search
    let env = [("PATH", path.as_str()), ("ENABLE_TOOL_SEARCH", "false")];
    let args = ["--mcp-config", config_path.to_str().unwrap(), "-p", PROMPT];
    let run = cli.spawn_with("money", &repo, &mock, &args, &env).wait();
    run.expect_exit(0);
    assert!(
        run.stdout.contains("opened the pull request"),
        "the scenario ran to its end: {}",
        crate::support::claude::tail(&run.stdout, 2000)
    );
    let session = run.session_id();
    let trace = session.replace('-', "");
    let spans = receiver
        .wait_for(WAIT, "the session's root span", |s| s.iter().any(|s| s.trace_id == trace && s.parent.is_empty()));
    let spans: Vec<_> = spans.into_iter().filter(|s| s.trace_id == trace).collect();

    // the MCP call: its span names the server, and the server saw that very call
    let mcp = spans.iter().find(|s| s.name == "execute_tool mcp__files__read").expect("the MCP tool's span");
    assert_eq!(mcp.attr("hooktel.mcp.server"), Some("files"));
    assert_eq!(mcp.attr("gen_ai.tool.type"), Some("extension"));
    assert_eq!(mcp.attr("mcp.method.name"), Some("tools/call"));
    let calls: Vec<Value> = mcp_requests(&mcp_log).into_iter().filter(|r| r["method"] == "tools/call").collect();
    assert_eq!(calls.len(), 1, "the MCP server got one call: {calls:?}");
    assert_eq!(calls[0]["params"]["name"], "read");
    assert_eq!(
        calls[0]["params"]["_meta"]["claudecode/toolUseId"].as_str(),
        mcp.attr("gen_ai.tool.call.id"),
        "the span is the call the server answered"
    );
    let label = format!(r#"project="widgets",repo="{REPO}""#);
    wait_until(WAIT, "the MCP call counted under its server and repository", || {
        let sample = format!(
            r#"hooktel_tool_calls_total{{agent="claude-code",mcp_server="files",{label},status="ok",tool="mcp__files__read"}}"#
        );
        metric_value(&sidecar.metrics(), &sample) == Some(1.0)
    });

    // what reading the MCP server's result cost: the model call after the one that asked for it
    // read that result alone, so its whole cost is the server's
    let mut chats: Vec<_> = spans.iter().filter(|s| s.name.starts_with("chat ")).collect();
    chats.sort_by_key(|s| s.start_ns);
    // the model call that asked for it: the last to start before it (calls are spans of the turn)
    let asked = chats.iter().rposition(|c| c.start_ns <= mcp.start_ns);
    let reader = chats[asked.expect("the model call that asked for the MCP call") + 1];
    let reader_cost: f64 = reader.attr("hooktel.cost_usd").expect("its cost").parse().unwrap();
    wait_until(WAIT, "the MCP server's cost: the model call that read its result", || {
        let sample = r#"hooktel_mcp_cost_usd_total{agent="claude-code",mcp_server="files"}"#;
        metric_value(&sidecar.metrics(), sample).is_some_and(|v| reader_cost > 0.0 && (v - reader_cost).abs() < 1e-12)
    });

    // where it worked: the repository (no credential), the branch and its ticket, on root and turn
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let turn = spans.iter().find(|s| s.name == "invoke_agent claude-code").expect("the turn");
    for span in [root, turn] {
        assert_eq!(span.attr("hooktel.repo"), Some(REPO), "{}", span.name);
        assert_eq!(span.attr("vcs.repository.url.full"), Some("https://github.com/acme/widgets"));
        assert_eq!(span.attr("vcs.ref.head.name"), Some(BRANCH));
        assert_eq!(span.attr("hooktel.ticket"), Some("ABC-123"));
    }

    // the pull request: `gh` ran as the model asked, its URL on the call and on the root
    let bash = spans.iter().find(|s| s.name == "execute_tool Bash").expect("the Bash span");
    assert_eq!(bash.status, 0, "gh pr create succeeded: {:?}", bash.status_message);
    let opened = bash.events.iter().find(|(name, _)| name == "hooktel.pull_request").expect("the pull request event");
    assert_eq!(opened.1.get("url.full").map(String::as_str), Some(PR_URL));
    assert_eq!(opened.1.get("vcs.change.id").map(String::as_str), Some("42"));
    assert!(root.attr("hooktel.pull_requests").is_some_and(|list| list.contains(PR_URL)), "{:?}", root.attrs);
    let text = sidecar.metrics();
    let count = |sample: String| metric_value(&text, &sample);
    assert_eq!(
        count(format!(
            r#"hooktel_pull_requests_total{{agent="claude-code",project="widgets",provider="github",repo="{REPO}"}}"#
        )),
        Some(1.0)
    );

    // what it cost: by repository and branch as in total; the day budget crossed at each threshold
    let cost: f64 = text
        .lines()
        .filter(|l| l.starts_with("hooktel_cost_usd_total{") && l.contains(&format!(r#"repo="{REPO}""#)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(cost > 0.01, "the session cost more than the budget: {cost}");
    let by_branch =
        count(format!(r#"hooktel_branch_cost_usd_total{{agent="claude-code",branch="{BRANCH}",repo="{REPO}"}}"#));
    assert!(by_branch.is_some_and(|b| (b - cost).abs() < 1e-9), "{by_branch:?} against {cost}");
    let spent = count(r#"hooktel_budget_spent_usd{scope="day"}"#.to_owned());
    assert!(spent.is_some_and(|s| (s - cost).abs() < 1e-9), "{spent:?} against {cost}");
    let crossed: Vec<&str> = root
        .events
        .iter()
        .filter(|(name, a)| name == "hooktel.budget.threshold_crossed" && a["hooktel.budget.scope"] == "day")
        .map(|(_, a)| a["hooktel.budget.threshold"].as_str())
        .collect();
    assert_eq!(crossed, ["0.8", "0.9", "1"], "{:?}", root.events);

    // the status line, as Claude Code would run it for this session
    let status = json!({"hook_event_name": "Status", "session_id": session, "cwd": repo,
                        "model": {"id": "claude", "display_name": "Claude"}, "workspace": {"current_dir": repo}});
    let (out, _) = statusline(&sidecar.addr.to_string(), status.to_string().as_bytes());
    let line = String::from_utf8(out.stdout).unwrap();
    let (_, view) = sidecar.request("GET", &format!("/v1/sessions/{session}"), b"");
    let view: Value = serde_json::from_str(&view).unwrap();
    assert!((view["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9, "{view}");
    let model = view["model"].as_str().unwrap();
    let percent = (cost / 0.01 * 100.0).round();
    assert!(line.starts_with(model) && line.contains(" · 1 turn · "), "{line:?} against {view}");
    assert!(line.contains(&format!("${cost:.2}")), "{line:?}: cost {cost}");
    assert!(line.trim_end().ends_with(&format!("day {percent}% of $0.01")), "{line:?}");

    // the dashboard's links from a ticket, a pull request, a repository and a branch search for
    // what this session's spans carry: each finds its trace
    for (title, vars) in [
        ("Jaeger: ticket", vec![("ticket", "ABC-123")]),
        ("Jaeger: pull request", vec![("pull_request", PR_URL)]),
        ("Sessions of pull request", vec![("pull_request", PR_URL)]),
        ("Jaeger: sessions in", vec![("__data.fields.repo", REPO)]),
        ("Jaeger: sessions on", vec![("__data.fields.repo", REPO), ("__data.fields.branch", BRANCH)]),
    ] {
        let tags = jaeger_search(title, &vars);
        // under the service the links search (the dashboard's `service` variable: `hooktel` by default)
        let found =
            spans.iter().any(|s| found_by(s, &tags) && s.resource.get("service.name").is_some_and(|n| n == "hooktel"));
        assert!(found, "{title:?} searches {tags:?}: no span of the session has it");
    }

    // no credential of the remote anywhere hooktel writes
    let everything = format!("{spans:?}{}{}{line}", sidecar.metrics(), sidecar.log());
    assert!(!everything.contains("SECRETTOKEN") && !everything.contains("octo:"), "the remote's credential leaked");
}
