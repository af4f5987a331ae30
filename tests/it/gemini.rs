//! Google's Gemini CLI, the real one (pinned, from npm), offline against the scripted Gemini API mock
//! with a capture hook on every event: what hooktel's Gemini support stands on. Every hook event fires
//! with the session id the CLI prints, AfterModel once per streamed chunk, the mock is the only thing
//! the CLI talks to, and the chat log's tokens per message are the usage the mock served; a resumed
//! session keeps its id and chat log, and its parallel calls, failing command and tool error look as
//! tests/fixtures/gemini/README.md says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::claude::Scratch;
use crate::support::gemini::{
    capture_hooks, captured, chat_log, chat_messages, prompt, run, write_settings, MockGemini,
};
use crate::support::{metric_sum, metric_value, wait_until, Protocol, Receiver, Sidecar, BIN};

/// The model the CLI asks for by default (the mock answers whatever model it is asked for).
const MODEL: &str = "gemini-3.8-flash";

fn events(payloads: &[Value]) -> BTreeMap<String, usize> {
    let mut by_event = BTreeMap::new();
    for p in payloads {
        *by_event.entry(p["hook_event_name"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    by_event
}

fn of<'a>(payloads: &'a [Value], event: &str) -> Vec<&'a Value> {
    payloads.iter().filter(|p| p["hook_event_name"] == event).collect()
}

/// A fresh HOME with the capture hooks and a project directory in it.
fn home(scratch: &Scratch) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let home = scratch.dir("home");
    let work = scratch.dir("home/proj");
    let log = scratch.path().join("payloads.jsonl");
    write_settings(&home, Some(&capture_hooks(&log)));
    (home, work, log)
}

/// Every request the mock got came over loopback, to one of the API's generate methods.
fn only_the_api_was_asked(mock: &MockGemini) {
    let requests = mock.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let path = r["path"].as_str().unwrap();
        assert_eq!(r["client"], "127.0.0.1", "{r}");
        assert_eq!(r["method"], "POST", "{path}");
        assert!(
            path.starts_with("/v1beta/models/")
                && (path.ends_with(":streamGenerateContent?alt=sse") || path.ends_with(":generateContent")),
            "unexpected request: {path}"
        );
    }
}

/// The chat log's `gemini` messages carry, in order, the usage the mock served the agent.
fn chat_tokens_match(log: &Path, served: &[Value]) {
    let answers: Vec<Value> =
        chat_messages(log).into_iter().filter(|m| m["type"] == "gemini").map(|m| m["tokens"].clone()).collect();
    assert_eq!(answers.len(), served.len(), "one gemini message per response: {answers:?}");
    for (tokens, usage) in answers.iter().zip(served) {
        let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        assert_eq!(n(tokens, "input"), n(usage, "promptTokenCount"), "{tokens} vs {usage}");
        assert_eq!(n(tokens, "output"), n(usage, "candidatesTokenCount"), "{tokens} vs {usage}");
        assert_eq!(n(tokens, "cached"), n(usage, "cachedContentTokenCount"), "{tokens} vs {usage}");
        assert_eq!(n(tokens, "thoughts"), n(usage, "thoughtsTokenCount"), "{tokens} vs {usage}");
        assert_eq!(n(tokens, "total"), n(usage, "totalTokenCount"), "{tokens} vs {usage}");
    }
}

#[test]
fn the_real_gemini_cli_runs_offline_against_the_mock_with_every_hook_firing() {
    let scratch = Scratch::new();
    let mock = MockGemini::start(&scratch, "api");
    let (home, work, log) = home(&scratch);

    let done = prompt(&home, &work, &mock, "[turn:shell] Run echo hi.", None);
    assert_eq!(done.response(), "Shell done: it printed hi.");
    let session = done.session_id();

    let payloads = captured(&log);
    let fired = events(&payloads);
    for event in [
        "SessionStart",
        "BeforeAgent",
        "BeforeModel",
        "AfterModel",
        "BeforeTool",
        "AfterTool",
        "AfterAgent",
        "SessionEnd",
    ] {
        assert!(fired.contains_key(event), "{event} did not fire: {fired:?}");
    }
    assert!(payloads.iter().all(|p| p["session_id"] == session.as_str()), "every payload names the session {session}");
    let transcript = chat_log(&home, &session);
    assert!(payloads.iter().all(|p| Path::new(p["transcript_path"].as_str().unwrap()) == transcript));

    // a call response (one chunk), then a text answer streamed in three: AfterModel per chunk, and
    // only a response's last chunk has finishReason and the output count
    let replies = mock.replies();
    let agent: Vec<_> = replies.iter().filter(|r| r.kind == "agent").collect();
    assert_eq!(agent.iter().map(|r| r.chunks).collect::<Vec<_>>(), [1, 3]);
    let after_model = of(&payloads, "AfterModel");
    assert_eq!(after_model.len(), 4, "AfterModel fires once per chunk");
    let last_chunks: Vec<_> = after_model
        .iter()
        .filter(|p| p["llm_response"]["candidates"][0].get("finishReason").is_some())
        .map(|p| p["llm_response"]["usageMetadata"].clone())
        .collect();
    assert_eq!(last_chunks.len(), agent.len());
    for (usage, reply) in last_chunks.iter().zip(&agent) {
        assert_eq!(usage["promptTokenCount"], reply.usage["promptTokenCount"]);
        assert_eq!(usage["candidatesTokenCount"], reply.usage["candidatesTokenCount"]);
    }
    assert!(after_model
        .iter()
        .filter(|p| p["llm_response"]["candidates"][0].get("finishReason").is_none())
        .all(|p| p["llm_response"]["usageMetadata"].get("candidatesTokenCount").is_none()));
    assert_eq!(of(&payloads, "BeforeTool")[0]["tool_input"]["command"], "echo hi");

    // the routing classifier: one JSON-mode generateContent, no hook, not in the chat log
    let utility: Vec<_> = replies.iter().filter(|r| r.kind == "utility").collect();
    assert_eq!(utility.len(), 1, "{replies:?}");
    assert_eq!(done.tokens(&utility[0].model, "utility_router")["prompt"], utility[0].usage["promptTokenCount"]);

    only_the_api_was_asked(&mock);
    let served: Vec<Value> = agent.iter().map(|r| r.usage.clone()).collect();
    chat_tokens_match(&transcript, &served);
    let main = done.tokens(MODEL, "main");
    let sum = |k: &str| served.iter().map(|u| u[k].as_u64().unwrap_or(0)).sum::<u64>();
    assert_eq!(main["prompt"].as_u64().unwrap(), sum("promptTokenCount"), "{main}");
    assert_eq!(main["cached"].as_u64().unwrap(), sum("cachedContentTokenCount"), "{main}");
}

#[test]
fn a_resumed_gemini_session_keeps_its_id_and_chat_log_through_parallel_calls_a_failing_command_and_a_tool_error() {
    let scratch = Scratch::new();
    let mock = MockGemini::start(&scratch, "api");
    let (home, work, log) = home(&scratch);

    let first = prompt(&home, &work, &mock, "[turn:parallel] Run echo one and echo two, at once.", None);
    assert_eq!(first.response(), "Parallel done: one and two.");
    let session = first.session_id();
    let second =
        prompt(&home, &work, &mock, "[turn:fail] Run the failing command, then read missing.txt.", Some(&session));
    assert_eq!(second.response(), "Fail done: exit 3, then no such file.");
    assert_eq!(second.session_id(), session, "a resume keeps the session");

    let payloads = captured(&log);
    assert!(payloads.iter().all(|p| p["session_id"] == session.as_str()));
    let sources: Vec<_> = of(&payloads, "SessionStart").iter().map(|p| p["source"].clone()).collect();
    assert_eq!(sources, ["startup", "resume"]);
    assert_eq!(of(&payloads, "SessionEnd").len(), 2);

    // no call id: a BeforeTool and its AfterTool share the tool name and input; the parallel pair
    // both start before either ends (they run at once: the slower first call usually ends last, as
    // in tests/fixtures/gemini/parallel-0.61.0, but neither order is asserted)
    let before = of(&payloads, "BeforeTool");
    let after = of(&payloads, "AfterTool");
    let key = |p: &Value| (p["tool_name"].to_string(), p["tool_input"].to_string());
    let mut b: Vec<_> = before.iter().map(|p| key(p)).collect();
    let mut a: Vec<_> = after.iter().map(|p| key(p)).collect();
    assert_eq!(b.len(), 4);
    b.sort();
    a.sort();
    assert_eq!(a, b, "AfterTool repeats its BeforeTool's tool_input");
    let mut parallel: Vec<_> = payloads
        .iter()
        .filter(|p| p["hook_event_name"] == "BeforeTool" || p["hook_event_name"] == "AfterTool")
        .take(4)
        .map(|p| format!("{} {}", p["hook_event_name"].as_str().unwrap(), p["tool_input"]["command"].as_str().unwrap()))
        .collect();
    parallel[..2].sort();
    parallel[2..].sort();
    assert_eq!(
        parallel,
        [
            "BeforeTool echo two",
            "BeforeTool sleep 0.5; echo one",
            "AfterTool echo two",
            "AfterTool sleep 0.5; echo one"
        ]
    );

    // exit 3 is a success with "Exit Code: 3"; the missing file is a tool error
    let failing = after.iter().find(|p| p["tool_input"]["command"] == "echo failing >&2; exit 3").unwrap();
    assert!(failing["tool_response"]["llmContent"].as_str().unwrap().contains("Exit Code: 3"), "{failing}");
    assert!(failing["tool_response"].get("error").is_none(), "{failing}");
    let missing = after.iter().find(|p| p["tool_name"] == "read_file").unwrap();
    assert_eq!(missing["tool_response"]["error"]["type"], "file_not_found", "{missing}");

    // the header again on resume: in the session's log when the resume starts in its first minute,
    // else in a log of the resume's own minute; the messages (every response's tokens, the calls'
    // statuses) all in the session's log
    let transcript = chat_log(&home, &session);
    let chats = transcript.parent().unwrap();
    let logs = std::fs::read_dir(chats).unwrap().map(|e| e.unwrap().path());
    let headers: usize = logs
        .map(|p| std::fs::read_to_string(p).unwrap())
        .map(|text| text.lines().filter(|l| l.contains("\"sessionId\"") && l.contains("\"kind\"")).count())
        .sum();
    assert_eq!(headers, 2, "the header is written again on resume");
    let messages = chat_messages(&transcript);
    let statuses: Vec<_> = messages
        .iter()
        .flat_map(|m| m["toolCalls"].as_array().cloned().unwrap_or_default())
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("run_shell_command", "success"),
        ("run_shell_command", "success"),
        ("run_shell_command", "success"),
        ("read_file", "error"),
    ];
    assert_eq!(statuses, expected.map(|(n, s)| (n.to_owned(), s.to_owned())));
    only_the_api_was_asked(&mock);
    let served = mock.agent_usages();
    assert_eq!(served.len(), 5, "2 responses, then 3 on resume");
    assert!(
        served.iter().any(|u| u.get("thoughtsTokenCount").is_some())
            && served.iter().any(|u| u.get("cachedContentTokenCount").is_some())
    );
    chat_tokens_match(&transcript, &served);
}

/// A HOME whose Gemini settings hook the capture script on every event (the user's own hooks), then
/// `hooktel install --agent gemini` run in it; its project directory, and the capture's log.
fn installed_home(scratch: &Scratch) -> (PathBuf, PathBuf, PathBuf) {
    let (home, work, log) = home(scratch);
    let out = Command::new(BIN)
        .args(["install", "--agent", "gemini"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "install --agent gemini: {}", String::from_utf8_lossy(&out.stderr));
    (home, work, log)
}

fn counted(sidecar: &Sidecar, event: &str) -> f64 {
    metric_value(&sidecar.metrics(), &format!(r#"hooktel_hook_events_total{{event="{event}"}}"#)).unwrap_or(0.0)
}

/// With the sidecar away (its port closed), Gemini answers as it does without hooktel, and every
/// event hooktel's installed hook got waits in the spool; the sidecar, started on that data
/// directory, drains them, each once.
#[test]
fn with_the_sidecar_away_gemini_answers_the_same_and_its_events_wait_in_the_spool() {
    let scratch = Scratch::new();
    let mock = MockGemini::start(&scratch, "gemini-away");
    let (home, work, log) = installed_home(&scratch);
    let data = scratch.dir("data");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let env = [("HOOKTEL_ADDR", closed.as_str()), ("HOOKTEL_DATA_DIR", data.to_str().unwrap())];
    let done = run(&home, &work, &mock, &["-p", "[turn:shell] Run echo hi."], &env);
    assert!(done.status.success(), "gemini: {}\n{}", done.status, done.stderr);
    assert_eq!(done.response(), "Shell done: it printed hi.", "{}", done.stdout);
    let mut fired = events(&captured(&log));
    fired.remove("BeforeToolSelection");
    let total: usize = fired.values().sum();
    assert!(total >= 10, "Gemini fired its events: {fired:?}");
    let sidecar = Sidecar::builder().data_dir(&data).start();
    wait_until(Duration::from_secs(20), "the spooled events drained and counted", || {
        fired.iter().all(|(event, n)| counted(&sidecar, event) == *n as f64)
    });
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_hook_events_total"), total as f64);
}

/// A session of the real CLI (a failing command and a tool error, then resumed for parallel calls,
/// then for a streamed answer), hooked by `hooktel install --agent gemini` beside the user's own
/// hooks, into a sidecar that exports to a real OTLP receiver: every event it fired reaches the
/// sidecar; one trace keyed by the session id, a
/// root naming Gemini CLI, a turn per prompt, a tool span per call paired by its tool and input (the
/// failing command and the tool error in ERROR, though Gemini calls the command a success), a
/// model-call span per response served (timed by its hooks, with the chat log's tokens), and the
/// metrics, labelled `gemini-cli`, adding up to what the mock served at the price file's rates.
#[test]
fn a_gemini_session_is_one_trace_of_its_turns_tool_calls_and_model_calls() {
    let scratch = Scratch::new();
    let mock = MockGemini::start(&scratch, "gemini-trace");
    let (home, work, log) = installed_home(&scratch);
    let receiver = Receiver::start(Protocol::Http);
    // Gemini 3.8 Flash, the model the CLI runs (it takes `-m gemini-3.5-flash` for it too), is in no
    // price source: the user's price file prices it
    let prices = scratch.path().join("prices.json");
    let rates = json!({"input": 1.0, "output": 4.0, "cache_write_5m": 0.0, "cache_write_1h": 0.0, "cache_read": 0.25});
    std::fs::write(&prices, json!({"models": {MODEL: rates}}).to_string()).unwrap();
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_PRICES_FILE", prices.to_str().unwrap())]);
    let addr = sidecar.addr.to_string();
    let data = sidecar.data_dir.to_str().unwrap().to_owned();
    let env = [("HOOKTEL_ADDR", addr.as_str()), ("HOOKTEL_DATA_DIR", data.as_str())];
    let ask = |text: &str, resume: Option<&str>| {
        let mut args = Vec::new();
        args.extend(resume.map(|r| ["--resume", r]).into_iter().flatten());
        args.extend(["-p", text]);
        let done = run(&home, &work, &mock, &args, &env);
        assert!(done.status.success(), "gemini {args:?}: {}\n{}", done.status, done.stderr);
        done
    };
    let session = ask("[turn:fail] Run the failing command, then read missing.txt.", None).session_id();
    ask("[turn:parallel] Run echo one and echo two, at once.", Some(&session));
    let answer = ask("[turn:text] Now in words.", Some(&session)).response();
    assert!(answer.starts_with("Streamed answer"), "Gemini answers as without hooktel: {answer}");
    // every event Gemini fired (as the user's own hook logged them) reached the sidecar, but the one
    // hooktel does not hook
    let mut fired = events(&captured(&log));
    assert!(fired.remove("BeforeToolSelection").is_some_and(|n| n > 0), "{fired:?}");
    wait_until(Duration::from_secs(20), "every event fired counted by the sidecar", || {
        fired.iter().all(|(event, n)| counted(&sidecar, event) == *n as f64)
    });
    assert_eq!(counted(&sidecar, "BeforeToolSelection"), 0.0);
    assert_eq!(metric_sum(&sidecar.metrics(), "hooktel_ingest_rejected_total"), 0.0);
    let served = mock.agent_usages();
    let chat = format!("chat {MODEL}");
    let spans = receiver.wait_for(Duration::from_secs(60), "the session's turns, calls and model calls", |s| {
        s.iter().filter(|s| s.name == chat).count() == served.len()
            && s.iter().filter(|s| s.name == "invoke_agent gemini-cli").count() == 3
            && s.iter().filter(|s| s.name.starts_with("execute_tool ")).count() == 4
    });
    let trace = session.replace('-', "");
    assert!(spans.iter().all(|s| s.trace_id == trace), "one trace, keyed by the session id");
    let root = spans.iter().find(|s| s.parent.is_empty()).expect("the root");
    assert_eq!(root.name, "gemini-cli session");
    assert_eq!(root.attr("gen_ai.agent.name"), Some("gemini-cli"));
    assert_eq!(root.attr("gen_ai.provider.name"), Some("gcp.gemini"));

    let turns: Vec<_> = spans.iter().filter(|s| s.name == "invoke_agent gemini-cli").collect();
    let under_a_turn = |parent: &str| turns.iter().any(|t| t.span_id == parent);
    let tools: Vec<_> = spans.iter().filter(|s| s.name.starts_with("execute_tool ")).collect();
    let mut outcomes: Vec<(String, i32, String)> =
        tools.iter().map(|t| (t.name.clone(), t.status, t.status_message.clone())).collect();
    outcomes.sort();
    let shell = "execute_tool run_shell_command".to_owned();
    assert_eq!(
        outcomes,
        [
            (
                "execute_tool read_file".to_owned(),
                2,
                "File not found: ".to_owned() + &work.join("missing.txt").display().to_string()
            ),
            (shell.clone(), 0, String::new()),
            (shell.clone(), 0, String::new()),
            (shell, 2, "exit code 3".to_owned()),
        ]
    );
    for t in &tools {
        assert!(under_a_turn(&t.parent) && t.end_ns > t.start_ns, "{} under a turn, ended by its AfterTool", t.name);
    }
    let ids: std::collections::BTreeSet<&str> = tools.iter().filter_map(|t| t.attr("gen_ai.tool.call.id")).collect();
    assert_eq!(ids.len(), 4, "every call a span of its own: {ids:?}");
    for t in &tools {
        // `<tool>@<start>`: nothing of the input (its hash pairs the ends, inside the sidecar)
        let id = t.attr("gen_ai.tool.call.id").unwrap();
        let (tool, start) = id.split_once('@').unwrap();
        assert_eq!(format!("execute_tool {tool}"), t.name, "{id}");
        assert!(start.split('#').all(|n| n.parse::<u64>().is_ok()), "{id}");
    }

    // a model call per response, with the tokens the mock served: input is the whole prompt
    let mut chats: Vec<_> = spans.iter().filter(|s| s.name == chat).collect();
    chats.sort_by_key(|s| s.start_ns);
    for (span, usage) in chats.iter().zip(&served) {
        let count = |k: &str| usage[k].as_u64().unwrap_or(0);
        assert!(under_a_turn(&span.parent), "a model call under its turn");
        assert_eq!(span.attr("gen_ai.provider.name"), Some("gcp.gemini"));
        assert_eq!(span.attr("gen_ai.usage.input_tokens"), Some(count("promptTokenCount").to_string().as_str()));
        let output = count("candidatesTokenCount") + count("thoughtsTokenCount");
        assert_eq!(span.attr("gen_ai.usage.output_tokens"), Some(output.to_string().as_str()));
    }
    let text = sidecar.metrics();
    let sum = |f: &dyn Fn(&Value) -> u64| served.iter().map(f).sum::<u64>();
    let count = |u: &Value, k: &str| u[k].as_u64().unwrap_or(0);
    let cached = |u: &Value| count(u, "cachedContentTokenCount");
    let (input, cache_read) = (sum(&|u| count(u, "promptTokenCount") - cached(u)), sum(&cached));
    let output = sum(&|u| count(u, "candidatesTokenCount") + count(u, "thoughtsTokenCount"));
    let tokens = |ty: &str| {
        let sample =
            format!(r#"hooktel_tokens_total{{agent="gemini-cli",model="{MODEL}",project="proj",repo="",type="{ty}"}}"#);
        metric_value(&text, &sample)
    };
    assert_eq!(
        (tokens("input"), tokens("cache_read"), tokens("output")),
        (Some(input as f64), Some(cache_read as f64), Some(output as f64))
    );
    // the price file's rates: $1 input, $0.25 cached input, $4 output per million tokens
    let expected = (input as f64 * 1.0 + cache_read as f64 * 0.25 + output as f64 * 4.0) / 1e6;
    let sample = format!(r#"hooktel_cost_usd_total{{agent="gemini-cli",model="{MODEL}",project="proj",repo=""}}"#);
    let cost = metric_value(&text, &sample).unwrap();
    assert!((cost - expected).abs() < 1e-9, "cost {cost}, expected {expected}");
    for (sample, want) in [
        (
            r#"hooktel_tool_calls_total{agent="gemini-cli",mcp_server="",project="proj",repo="",status="ok",tool="run_shell_command"}"#,
            2.0,
        ),
        (
            r#"hooktel_tool_calls_total{agent="gemini-cli",mcp_server="",project="proj",repo="",status="error",tool="run_shell_command"}"#,
            1.0,
        ),
        (
            r#"hooktel_tool_calls_total{agent="gemini-cli",mcp_server="",project="proj",repo="",status="error",tool="read_file"}"#,
            1.0,
        ),
        (r#"hooktel_turns_total{agent="gemini-cli",outcome="stop"}"#, 3.0),
        (r#"hooktel_sessions_started_total{agent="gemini-cli",source="startup"}"#, 1.0),
        (r#"hooktel_sessions_started_total{agent="gemini-cli",source="resume"}"#, 2.0),
    ] {
        assert_eq!(metric_value(&text, sample), Some(want), "{sample}");
    }
    assert!(!text.contains(r#"agent="claude-code""#) && !text.contains(r#"agent="codex""#), "{text}");
    for s in &spans {
        assert_eq!(
            s.resource.get("gen_ai.agent.name").map(String::as_str),
            Some("gemini-cli"),
            "resource of {}",
            s.name
        );
    }
}

/// What a user of an LLM-tracing backend sees of a Gemini CLI session: the real CLI (a failing command
/// and a tool error, then resumed for a streamed answer), hooked by `hooktel install --agent gemini`,
/// through hooktel into Arize Phoenix, read back over its APIs: the trace id is the session's UUID,
/// every span is of a kind Phoenix knows, one LLM span per response served, and Phoenix's token total
/// for the trace is what the mock served.
#[test]
fn a_gemini_session_read_back_from_phoenix() {
    let scratch = Scratch::new();
    let mock = MockGemini::start(&scratch, "gemini-phoenix");
    let (home, work, _) = installed_home(&scratch);
    let phoenix = crate::support::phoenix::Phoenix::start();
    let sidecar = Sidecar::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &phoenix.endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .start();
    let (addr, data) = (sidecar.addr.to_string(), sidecar.data_dir.to_str().unwrap().to_owned());
    let env = [("HOOKTEL_ADDR", addr.as_str()), ("HOOKTEL_DATA_DIR", data.as_str())];
    let first = run(&home, &work, &mock, &["-p", "[turn:fail] Run the failing command, then read missing.txt."], &env);
    assert!(first.status.success(), "gemini: {}\n{}", first.status, first.stderr);
    let session = first.session_id();
    let second = run(&home, &work, &mock, &["--resume", &session, "-p", "[turn:text] Now in words."], &env);
    assert!(second.status.success(), "gemini --resume: {}\n{}", second.status, second.stderr);
    let served = mock.agent_usages();
    let trace = session.replace('-', "");
    // root, resumed segment, two turns, three calls (the failing command, the missing file), a model
    // call per response
    let expected = 2 + 2 + 2 + served.len();
    wait_until(Duration::from_secs(60), "the whole trace in Phoenix", || {
        phoenix.trace(&trace).is_some_and(|t| t["numSpans"].as_u64() == Some(expected as u64))
    });
    let spans: Vec<Value> =
        phoenix.spans().into_iter().filter(|s| s["context"]["trace_id"].as_str() == Some(&trace)).collect();
    assert_eq!(spans.len(), expected, "spans of the trace over REST");
    let unknown: Vec<&str> =
        spans.iter().filter(|s| s["span_kind"] == "UNKNOWN").filter_map(|s| s["name"].as_str()).collect();
    assert!(unknown.is_empty(), "spans Phoenix files as UNKNOWN: {unknown:?}");
    let llm = spans.iter().filter(|s| s["span_kind"] == "LLM").count();
    assert_eq!(llm, served.len(), "one LLM span per response");
    let errors: Vec<&str> =
        spans.iter().filter(|s| s["status_code"] == "ERROR").filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(errors.len(), 2, "the failing command and the missing file: {errors:?}");
    let summary = phoenix.trace(&trace).unwrap();
    let tokens = summary["costSummary"]["total"]["tokens"].as_f64().unwrap_or_default() as u64;
    let served_total: u64 = served.iter().map(|u| u["totalTokenCount"].as_u64().unwrap()).sum();
    assert_eq!(tokens, served_total, "Phoenix's token total against what the mock served");
}
