//! OpenAI's Codex CLI, the real one (pinned, from npm), offline against the scripted Responses mock,
//! its every hook event running `hooktel hook --agent codex`: Codex is never hurt (it answers the
//! same and exits 0 whether the sidecar is up or away), every event it fires reaches the sidecar (or
//! its spool, then the sidecar), and a session (a first turn, then a resume) is one trace: a root
//! naming the agent, a turn per `turn_id`, a tool span per call paired by its call id (parallel ones
//! too; the command that exits 1 in ERROR, from the rollout's exit code), a model-call span per
//! response with the usage the mock served, counted in the metrics; a subagent (`spawn_agent`) is a
//! span of the turn that spawned it, its own calls and model calls under it.
//! Those runs use the hooks of docs/codex.md with `--dangerously-bypass-hook-trust`; `hooktel install
//! --agent codex` is tested on its own: it trusts exactly its hooks through Codex, so that Codex runs
//! them with no flag, and keeps (and gives back) the user's hooks and their trust.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::claude::{shell_quote, Scratch};
use crate::support::codex::{exec, write_config, MockResponses, EVENTS};
use crate::support::{metric_sum, metric_value, wait_until, Protocol, Receiver, Sidecar, BIN};

const FIRST: &str = "[turn:1] Run the two echoes, then the failing command.";
const SECOND: &str = "[turn:2] Once more.";

/// Hook payloads as a second handler logged them: how many of each event fired.
fn fired(log: &Path) -> BTreeMap<String, usize> {
    let mut by_event = BTreeMap::new();
    for line in fs::read_to_string(log).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let payload: Value = serde_json::from_str(line).unwrap();
        *by_event.entry(payload["hook_event_name"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    by_event
}

/// Two turns of one session: the first, then a resume of it; both must answer as scripted.
fn two_turns(home: &Path, work: &Path, env: &[(&str, &str)]) -> Vec<Duration> {
    let bypass = "--dangerously-bypass-hook-trust";
    let first = exec(home, work, &[bypass, FIRST], env);
    assert!(first.status.success(), "codex exec: {}\n{}", first.status, first.stderr);
    assert!(first.stdout.contains("Turn one done"), "{}", first.stdout);
    let session = first.session_id();
    let second = exec(home, work, &[bypass, "resume", &session, SECOND], env);
    assert!(second.status.success(), "codex exec resume: {}\n{}", second.status, second.stderr);
    assert!(second.stdout.contains("Turn two done"), "{}", second.stdout);
    assert_eq!(second.session_id(), session, "a resume keeps the session");
    vec![first.took, second.took]
}

/// `~/.codex/hooks.json` as docs/codex.md shows it: every event running `hooktel hook --agent codex`.
fn documented_hooks() -> Value {
    let page = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/codex.md")).unwrap();
    let sample =
        page.split("```json\n").nth(1).and_then(|rest| rest.split("```").next()).expect("docs/codex.md: hooks.json");
    serde_json::from_str(sample).expect("docs/codex.md: the hooks.json sample is JSON")
}

/// A HOME whose hooks are the documented ones (with this build's `hooktel`), each event logging its
/// payload to `payloads.jsonl` first.
fn home_with_hooks(scratch: &Scratch, mock: &MockResponses) -> (std::path::PathBuf, std::path::PathBuf) {
    let home = scratch.dir("home");
    write_config(&home, mock);
    let log = scratch.path().join("payloads.jsonl");
    // one write per payload (parallel tool calls fire their hooks at once)
    let tee = format!("p=$(cat); printf '%s\\n' \"$p\" >> {}", shell_quote(log.to_str().unwrap()));
    let mut hooks = documented_hooks();
    let events = hooks["hooks"].as_object_mut().unwrap();
    assert_eq!(events.keys().map(String::as_str).collect::<Vec<_>>(), EVENTS, "the page hooks every Codex event");
    for groups in events.values_mut() {
        let handlers = groups[0]["hooks"].as_array_mut().unwrap();
        let command = handlers[0]["command"].as_str().unwrap();
        assert_eq!(command, "hooktel hook --agent codex");
        handlers[0]["command"] = format!("{} hook --agent codex", shell_quote(BIN)).into();
        handlers.insert(0, json!({"type": "command", "command": tee}));
    }
    fs::write(home.join(".codex/hooks.json"), serde_json::to_vec_pretty(&hooks).unwrap()).unwrap();
    (home, log)
}

fn counted(sidecar: &Sidecar, event: &str) -> f64 {
    metric_value(&sidecar.metrics(), &format!(r#"hooktel_hook_events_total{{event="{event}"}}"#)).unwrap_or(0.0)
}

#[test]
fn every_codex_hook_event_reaches_the_sidecar_and_codex_answers_as_without_it() {
    let scratch = Scratch::new();
    let mock = MockResponses::start(&scratch, "codex");
    let (home, log) = home_with_hooks(&scratch, &mock);
    let work = scratch.dir("proj");
    let sidecar = Sidecar::start(None, &[]);
    let addr = sidecar.addr.to_string();
    let data = sidecar.data_dir.to_str().unwrap().to_owned();
    two_turns(&home, &work, &[("HOOKTEL_ADDR", &addr), ("HOOKTEL_DATA_DIR", &data)]);

    let fired = fired(&log);
    for event in ["SessionStart", "UserPromptSubmit", "PreModelRequest", "PreToolUse", "PostToolUse", "Stop"] {
        assert!(fired.contains_key(event), "Codex fired no {event}: {fired:?}");
    }
    assert_eq!(fired["PreToolUse"], 4, "two parallel echoes, the failing command, the resumed echo");
    wait_until(Duration::from_secs(10), "every fired event counted by the sidecar", || {
        fired.iter().all(|(event, n)| counted(&sidecar, event) == *n as f64)
    });
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_ingest_rejected_total"), 0.0);
    assert_eq!(mock.usages().len(), 5, "five responses served: three in the first turn, two in the second");
}

#[test]
fn with_the_sidecar_away_codex_answers_the_same_and_its_events_wait_in_the_spool() {
    let scratch = Scratch::new();
    let mock = MockResponses::start(&scratch, "codex-away");
    let (home, log) = home_with_hooks(&scratch, &mock);
    let work = scratch.dir("proj");
    let data = scratch.dir("data");
    // a port nothing listens on: bound, then closed
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    two_turns(&home, &work, &[("HOOKTEL_ADDR", &closed), ("HOOKTEL_DATA_DIR", data.to_str().unwrap())]);

    let fired = fired(&log);
    let total: usize = fired.values().sum();
    assert!(total >= 16, "Codex fired its events: {fired:?}");
    // the sidecar, started on that data directory, drains the spool: every event, once
    let sidecar = Sidecar::builder().data_dir(&data).start();
    wait_until(Duration::from_secs(20), "the spooled events drained and counted", || {
        fired.iter().all(|(event, n)| counted(&sidecar, event) == *n as f64)
    });
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_hook_events_total"), total as f64);
}

#[test]
fn a_codex_session_is_one_trace_of_its_turns_tool_calls_and_model_calls() {
    let scratch = Scratch::new();
    let mock = MockResponses::start(&scratch, "codex-trace");
    let (home, log) = home_with_hooks(&scratch, &mock);
    let work = scratch.dir("proj");
    let receiver = Receiver::start(Protocol::Http);
    // OpenAI's models are not in the built-in table: the user's price file prices the mock's
    let prices = scratch.path().join("prices.json");
    let rates = json!({"input": 2.0, "output": 8.0, "cache_write_5m": 0.0, "cache_write_1h": 0.0, "cache_read": 0.5});
    fs::write(&prices, json!({"models": {"gpt-mock": rates}}).to_string()).unwrap();
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_PRICES_FILE", prices.to_str().unwrap())]);
    let addr = sidecar.addr.to_string();
    let data = sidecar.data_dir.to_str().unwrap().to_owned();
    two_turns(&home, &work, &[("HOOKTEL_ADDR", &addr), ("HOOKTEL_DATA_DIR", &data)]);
    let session = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok()?["session_id"].as_str().map(str::to_owned))
        .unwrap();
    let trace = session.replace('-', "");
    let served = mock.usages();
    let spans = receiver.wait_for(Duration::from_secs(30), "the session's turns and model calls", |s| {
        s.iter().filter(|s| s.name == "chat gpt-mock").count() == served.len()
            && s.iter().filter(|s| s.name == "invoke_agent codex").count() == 2
    });
    assert!(spans.iter().all(|s| s.trace_id == trace), "one trace, keyed by the session id");

    let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    let root = roots.first().expect("the root");
    assert!(root.name.starts_with("codex session"), "{}", root.name);
    assert_eq!(root.attr("gen_ai.agent.name"), Some("codex"));
    assert_eq!(root.attr("gen_ai.provider.name"), Some("openai"));

    let turns: Vec<_> = spans.iter().filter(|s| s.name == "invoke_agent codex").collect();
    let tools: Vec<_> = spans.iter().filter(|s| s.name == "execute_tool Bash").collect();
    let mut ids: Vec<&str> = tools.iter().filter_map(|s| s.attr("gen_ai.tool.call.id")).collect();
    ids.sort();
    assert_eq!(ids, ["call_1_0", "call_1_1", "call_2_0", "call_4_0"], "every call, once, paired by its id");
    for t in &tools {
        assert!(turns.iter().any(|turn| turn.span_id == t.parent), "{} under a turn", t.name);
        assert!(t.end_ns > t.start_ns, "ended by its PostToolUse");
        // the command that exited 1: ERROR from the rollout's exit code (its hook said only its output)
        let failed = t.attr("gen_ai.tool.call.id") == Some("call_2_0");
        assert_eq!(t.status, if failed { 2 } else { 0 }, "{:?}: {}", t.attr("gen_ai.tool.call.id"), t.status_message);
        if failed {
            assert_eq!(t.status_message, "exit code 1");
        }
    }
    let calls = |status: &str| {
        metric_value(
            &sidecar.metrics(),
            &format!(
                r#"hooktel_tool_calls_total{{agent="codex",mcp_server="",project="proj",repo="",status="{status}",tool="Bash"}}"#
            ),
        )
    };
    assert_eq!((calls("ok"), calls("error")), (Some(3.0), Some(1.0)));

    // one model call per response, with the usage the mock served: input with the cached part in it
    let mut chats: Vec<_> = spans.iter().filter(|s| s.name == "chat gpt-mock").collect();
    chats.sort_by_key(|s| s.attr("gen_ai.response.id").map(str::to_owned));
    for (chat, usage) in chats.iter().zip(&served) {
        assert_eq!(chat.attr("gen_ai.provider.name"), Some("openai"));
        assert_eq!(chat.attr("gen_ai.usage.input_tokens"), Some(usage["input_tokens"].to_string().as_str()));
        assert_eq!(chat.attr("gen_ai.usage.output_tokens"), Some(usage["output_tokens"].to_string().as_str()));
        assert!(turns.iter().any(|turn| turn.span_id == chat.parent), "a model call under its turn");
    }
    let sum = |f: &dyn Fn(&Value) -> u64| served.iter().map(f).sum::<u64>() as f64;
    let cached = |u: &Value| u["input_tokens_details"]["cached_tokens"].as_u64().unwrap();
    let tokens = |ty: &str| {
        metric_value(
            &sidecar.metrics(),
            &format!(r#"hooktel_tokens_total{{agent="codex",model="gpt-mock",project="proj",repo="",type="{ty}"}}"#),
        )
    };
    assert_eq!(tokens("input"), Some(sum(&|u| u["input_tokens"].as_u64().unwrap() - cached(u))));
    assert_eq!(tokens("cache_read"), Some(sum(&cached)));
    assert_eq!(tokens("output"), Some(sum(&|u| u["output_tokens"].as_u64().unwrap())));
    // cost: uncached input at the input rate, the cached part at the cache-read rate, output (reasoning in it)
    let expected = sum(&|u| {
        let uncached = u["input_tokens"].as_u64().unwrap() - cached(u);
        let output = u["output_tokens"].as_u64().unwrap();
        // micro-dollars, so that the sum of whole numbers is exact
        uncached * 2 + cached(u) / 2 + output * 8
    }) / 1e6;
    let cost = metric_value(
        &sidecar.metrics(),
        r#"hooktel_cost_usd_total{agent="codex",model="gpt-mock",project="proj",repo=""}"#,
    )
    .unwrap();
    assert!((cost - expected).abs() < 1e-9, "cost {cost}, expected {expected}");

    // the agent on every series it labels and on the resource of every span: Codex's, and no other
    let text = sidecar.metrics();
    for (sample, want) in [
        (r#"hooktel_turns_total{agent="codex",outcome="stop"}"#, 2.0),
        (r#"hooktel_sessions_started_total{agent="codex",source="startup"}"#, 1.0),
        (r#"hooktel_sessions_started_total{agent="codex",source="resume"}"#, 1.0),
    ] {
        assert_eq!(metric_value(&text, sample), Some(want), "{sample}");
    }
    assert!(!text.contains(r#"agent="claude-code""#), "{text}");
    for s in &spans {
        assert_eq!(s.resource.get("gen_ai.agent.name").map(String::as_str), Some("codex"), "resource of {}", s.name);
    }
}

/// `--agent` with a name hooktel does not read: the hook still exits 0 and prints nothing; the sidecar
/// refuses the event and counts it (`unknown_agent`) rather than take it for Claude Code's.
#[test]
fn a_hook_for_an_agent_hooktel_does_not_read_is_refused_and_counted() {
    let sidecar = Sidecar::start(None, &[]);
    let payload = br#"{"session_id":"0b5e7f3a-0000-4000-8000-000000000001","hook_event_name":"SessionStart"}"#;
    crate::support::codex::hook_as("aider", &sidecar, payload);
    wait_until(Duration::from_secs(10), "the refusal counted", || {
        metric_value(&sidecar.metrics(), r#"hooktel_ingest_rejected_total{reason="unknown_agent"}"#) == Some(1.0)
    });
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_sessions_started_total"), 0.0);
}

/// The hooks Codex sees from `dir` with HOME `home` (`tests/e2e/codex_hooks.py`: what `/hooks` shows),
/// trusting every one first when `trust_all` (what a user does there). (key, command, trust status).
fn codex_hooks(home: &Path, dir: &Path, trust_all: bool) -> Vec<(String, String, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/codex_hooks.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(crate::support::codex::codex_bin())
        .arg(if trust_all { "trust-all" } else { "list" })
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(out.status.success(), "codex_hooks.py: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (s("key"), s("command"), s("trustStatus"))
        })
        .collect()
}

/// `hooktel install --agent codex` / `uninstall --agent codex` with `path` as PATH.
fn hooktel_codex(home: &Path, dir: &Path, path: &str, verb: &str) -> std::process::Output {
    std::process::Command::new(BIN)
        .args([verb, "--agent", "codex"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .output()
        .unwrap()
}

/// The user has hooks of their own, trusted in `/hooks`. `hooktel install --agent codex` adds its hook
/// to every event after theirs and trusts exactly its own through Codex: the user's stay trusted,
/// `hooktel doctor` says so (and fails when one of hooktel's is no longer trusted, which installing
/// again mends), and `codex exec` (no bypass flag) runs both. `uninstall --agent codex` gives back the user's file and
/// their trust as they were. With no `codex` on PATH, install refuses and changes nothing.
#[test]
fn install_agent_codex_trusts_its_hooks_and_keeps_the_users() {
    let scratch = Scratch::new();
    let mock = MockResponses::start(&scratch, "codex-install");
    let home = scratch.dir("home");
    write_config(&home, &mock);
    let work = scratch.dir("proj");
    let marker = scratch.path().join("user-hook-ran");
    let user_hook = format!("printf x >> {}", shell_quote(marker.to_str().unwrap()));
    let users = json!({"hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": user_hook}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "true"}]}],
    }});
    let hooks_file = home.join(".codex/hooks.json");
    fs::write(&hooks_file, serde_json::to_vec_pretty(&users).unwrap()).unwrap();
    let trusted_before = codex_hooks(&home, &work, true);
    assert_eq!(trusted_before.len(), 2);
    assert!(trusted_before.iter().all(|(_, _, t)| t == "trusted"), "{trusted_before:?}");
    let config_before = fs::read_to_string(home.join(".codex/config.toml")).unwrap();

    // without codex on PATH: a clear refusal, nothing changed
    let refused = hooktel_codex(&home, &work, "/usr/bin:/bin", "install");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("`codex` is not on PATH"), "{said}");
    assert_eq!(serde_json::from_slice::<Value>(&fs::read(&hooks_file).unwrap()).unwrap(), users);

    let codex_dir = crate::support::codex::codex_bin().parent().unwrap().to_owned();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", codex_dir.display());
    let installed = hooktel_codex(&home, &work, &path, "install");
    let said = String::from_utf8_lossy(&installed.stdout);
    assert!(installed.status.success(), "{said}{}", String::from_utf8_lossy(&installed.stderr));
    assert!(said.contains("added to 13 Codex events") && said.contains("trusted 13"), "{said}");
    let listed = codex_hooks(&home, &work, false);
    assert_eq!(listed.len(), 15, "{listed:?}");
    assert!(listed.iter().all(|(_, _, t)| t == "trusted"), "every hook trusted, the user's still: {listed:?}");
    for (key, _, _) in &trusted_before {
        assert!(listed.iter().any(|(k, _, _)| k == key), "the user's hook kept its key {key}");
    }
    let again = hooktel_codex(&home, &work, &path, "install");
    assert!(String::from_utf8_lossy(&again.stdout).contains("already runs"), "installing twice changes nothing");
    let doctor_line = || {
        let out = std::process::Command::new(BIN)
            .arg("doctor")
            .current_dir(&work)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", &home)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find(|l| l.contains("hooks (codex)")).map(str::to_owned).unwrap_or_else(|| panic!("{text}"))
    };
    let line = doctor_line();
    assert!(line.starts_with("[ok  ]") && line.contains("13 of 13 events hooked, trusted by Codex"), "{line}");
    // a hook of hooktel's changed by hand is no longer trusted (Codex skips it): doctor fails, install mends
    let mut edited: Value = serde_json::from_slice(&fs::read(&hooks_file).unwrap()).unwrap();
    edited["hooks"]["Stop"][1]["hooks"][0]["timeout"] = json!(7);
    fs::write(&hooks_file, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let line = doctor_line();
    assert!(line.starts_with("[FAIL]") && line.contains("1 of hooktel's 13 hooks are not trusted"), "{line}");
    let mended = hooktel_codex(&home, &work, &path, "install");
    assert!(String::from_utf8_lossy(&mended.stdout).contains("trusted 1 of"), "{mended:?}");
    assert!(doctor_line().starts_with("[ok  ]"));

    // Codex runs hooktel's hooks, trusted, with no bypass flag, and the user's too
    let sidecar = Sidecar::start(None, &[]);
    let (addr, data) = (sidecar.addr.to_string(), sidecar.data_dir.to_str().unwrap().to_owned());
    let run = exec(&home, &work, &[FIRST], &[("HOOKTEL_ADDR", &addr), ("HOOKTEL_DATA_DIR", &data)]);
    assert!(run.status.success(), "{}", run.stderr);
    wait_until(Duration::from_secs(10), "Codex's events at the sidecar", || {
        counted(&sidecar, "SessionStart") == 1.0 && counted(&sidecar, "Stop") == 1.0
    });
    assert_eq!(fs::read_to_string(&marker).unwrap(), "x", "the user's Stop hook ran once");

    let removed = hooktel_codex(&home, &work, &path, "uninstall");
    let said = String::from_utf8_lossy(&removed.stdout);
    assert!(removed.status.success(), "{said}{}", String::from_utf8_lossy(&removed.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&fs::read(&hooks_file).unwrap()).unwrap(), users, "{said}");
    assert_eq!(codex_hooks(&home, &work, false), trusted_before, "the user's hooks and their trust as they were");
    let config_after = fs::read_to_string(home.join(".codex/config.toml")).unwrap();
    assert_eq!(config_after.matches("trusted_hash").count(), config_before.matches("trusted_hash").count());
}

/// A subagent (`spawn_agent`): Codex runs it as a thread of its own, with a rollout of its own, and
/// reports it through the parent's hooks (`SubagentStart`/`SubagentStop`, its calls carrying its
/// `agent_id`). It is one `invoke_agent` span under the turn that spawned it, with its own tool
/// call and model calls under it (from its own rollout); the task it was given makes no turn. The
/// model is one of the built-in table's (`gpt-5.4-mini`), so cost needs no price file.
#[test]
fn a_subagent_is_a_span_of_its_turn_with_its_own_calls_and_usage() {
    let scratch = Scratch::new();
    let mock = MockResponses::start(&scratch, "codex-subagent");
    let (home, _log) = home_with_hooks(&scratch, &mock);
    let work = scratch.dir("proj");
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let (addr, data) = (sidecar.addr.to_string(), sidecar.data_dir.to_str().unwrap().to_owned());
    let env = [("HOOKTEL_ADDR", addr.as_str()), ("HOOKTEL_DATA_DIR", data.as_str())];
    let prompt = "[turn:sub] Ask a subagent to run echo child.";
    let run = exec(&home, &work, &["--dangerously-bypass-hook-trust", "-m", "gpt-5.4-mini", prompt], &env);
    assert!(run.status.success(), "codex exec: {}\n{}", run.status, run.stderr);
    assert!(run.stdout.contains("Parent done"), "{}", run.stdout);

    let replies = mock.replies();
    let of = |script: &str| replies.iter().filter(|r| r.1 == script).collect::<Vec<_>>();
    assert_eq!((of("sub").len(), of("child").len()), (3, 2), "spawn, wait, answer; the child's call, answer");
    let spans = receiver.wait_for(Duration::from_secs(30), "the session, its subagent and every model call", |s| {
        s.iter().filter(|s| s.name == "chat gpt-5.4-mini").count() == replies.len()
            && s.iter().any(|s| s.name.starts_with("codex session"))
    });
    let turns: Vec<_> = spans.iter().filter(|s| s.name == "invoke_agent codex").collect();
    assert_eq!(turns.len(), 1, "the subagent's task is no turn of the session");
    let subagent = spans.iter().find(|s| s.name == "invoke_agent default").expect("the subagent's span");
    assert_eq!(subagent.parent, turns[0].span_id, "the subagent under the turn that spawned it");
    let child_call = spans.iter().find(|s| s.name == "execute_tool Bash").expect("the subagent's call");
    assert_eq!(child_call.parent, subagent.span_id, "the subagent's call under it");
    assert_eq!(child_call.status, 0, "{}", child_call.status_message);
    for tool in ["execute_tool spawn_agent", "execute_tool multi_agent_v1wait_agent"] {
        let span = spans.iter().find(|s| s.name == tool).unwrap_or_else(|| panic!("no {tool}"));
        assert_eq!(span.parent, turns[0].span_id, "{tool} under the turn");
    }
    for (id, script, usage) in &replies {
        let chat = spans.iter().find(|s| s.attr("gen_ai.response.id") == Some(id.as_str())).expect("a chat span");
        let parent = if script == "child" { &subagent.span_id } else { &turns[0].span_id };
        assert_eq!(&chat.parent, parent, "response {id} ({script})");
        assert_eq!(chat.attr("gen_ai.usage.input_tokens"), Some(usage["input_tokens"].to_string().as_str()));
    }
    // every response counted once, at gpt-5.4-mini's list price: $0.75 input, $0.075 cached, $4.50 output
    let cached = |u: &Value| u["input_tokens_details"]["cached_tokens"].as_u64().unwrap();
    let expected: f64 = replies
        .iter()
        .map(|(_, _, u)| {
            let uncached = u["input_tokens"].as_u64().unwrap() - cached(u);
            (uncached as f64 * 0.75 + cached(u) as f64 * 0.075 + u["output_tokens"].as_u64().unwrap() as f64 * 4.5)
                / 1e6
        })
        .sum();
    wait_until(Duration::from_secs(10), "every response's cost counted", || {
        (metric_sum(&sidecar.metrics(), "hooktel_cost_usd_total") - expected).abs() < 1e-12
    });
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_unpriced_tokens_total"), 0.0);
    let outputs: u64 = replies.iter().map(|(_, _, u)| u["output_tokens"].as_u64().unwrap()).sum();
    let output_series: f64 = sidecar
        .metrics()
        .lines()
        .filter(|l| l.starts_with("hooktel_tokens_total{") && l.contains(r#"type="output""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(output_series, outputs as f64);
    // the subagent's work is Codex's: on Codex's series and under Codex's resource
    assert!(!sidecar.metrics().contains(r#"agent="claude-code""#), "{}", sidecar.metrics());
    for s in [subagent, child_call] {
        assert_eq!(s.resource.get("gen_ai.agent.name").map(String::as_str), Some("codex"), "resource of {}", s.name);
    }
}
