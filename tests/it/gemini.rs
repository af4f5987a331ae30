//! Google's Gemini CLI, the real one (pinned, from npm), offline against the scripted Gemini API mock
//! with a capture hook on every event: what hooktel's Gemini support stands on. Every hook event fires
//! with the session id the CLI prints, AfterModel once per streamed chunk, the mock is the only thing
//! the CLI talks to, and the chat log's tokens per message are the usage the mock served; a resumed
//! session keeps its id and chat log, and its parallel calls, failing command and tool error look as
//! tests/fixtures/gemini/README.md says.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::claude::Scratch;
use crate::support::gemini::{capture_hooks, captured, chat_log, chat_messages, prompt, write_settings, MockGemini};

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

    // one chat log: the header again on resume, every response's tokens, the calls' statuses
    let transcript = chat_log(&home, &session);
    let text = std::fs::read_to_string(&transcript).unwrap();
    let headers = text.lines().filter(|l| l.contains("\"sessionId\"") && l.contains("\"kind\"")).count();
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
