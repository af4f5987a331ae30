//! Gemini CLI's sessions: turns, tool calls and model calls its hooks do not name, paired by the
//! session (`unnamed`), over the captured run and over made-up ones where a capture cannot show a
//! case (identical calls, a failing command).

use serde_json::{json, Value};

use super::{assert_tree, named, settings};
use crate::ingest::accept::parse;
use crate::model::capture::Capture;
use crate::model::span::{SpanRecord, Status, ToolStatus};
use crate::model::time::rfc3339_ns;
use crate::pipeline::sessions::Sessions;
use crate::usage::accountant::SessionUsage;
use crate::usage::logs::gemini::Ledger;
use crate::usage::pricing::PriceTable;

const HOOKS: &str = include_str!("../../../../tests/fixtures/gemini/single-0.61.0/hooks.jsonl");
const CHAT: &str =
    include_str!("../../../../tests/fixtures/gemini/single-0.61.0/session-2026-12-07T05-28-fbc5aa14.jsonl");
const SID: &str = "fbc5aa14-f60c-4607-a072-1b3691bcc667";

/// Payloads as the hook client sends them (`--agent gemini`), through the sidecar's parse; after
/// each `AfterAgent`, the chat log as written by then (its lines up to the event's time) read as the
/// sidecar reads it; everything settled.
fn run(hooks: &[Value], chat: &str) -> Vec<SpanRecord> {
    run_reading(hooks, chat, false)
}

/// As [`run`]; with `early`, the whole chat log is read at the first event (a sidecar started late,
/// or restarted, finds the log written ahead of the hooks it has).
fn run_reading(hooks: &[Value], chat: &str, early: bool) -> Vec<SpanRecord> {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let mut ledger = Ledger::default();
    for p in hooks {
        let mut p = p.clone();
        p["hooktel_agent"] = json!("gemini-cli");
        // received a millisecond after it fired
        let received = p["timestamp"].as_str().and_then(rfc3339_ns).unwrap() + 1_000_000;
        let ev = parse(&serde_json::to_vec(&p).unwrap(), received, Capture::Metadata).unwrap();
        let (at, sid) = (ev.at, ev.session_id.clone());
        s.ingest(ev, at, &mut out);
        if early || p["hook_event_name"] == "AfterAgent" {
            let written = if early { chat.to_owned() } else { written_by(chat, at) };
            for delta in ledger.read(&written.as_bytes()[ledger.offset as usize..], &PriceTable::builtin()).deltas {
                s.add_usage(&SessionUsage { session_id: sid.clone(), delta }, at);
            }
        }
    }
    s.tick(u64::MAX / 2, &mut out);
    out
}

/// The lines of a chat log written by `at`: up to its last line stamped no later.
fn written_by(chat: &str, at: u64) -> String {
    let lines: Vec<&str> = chat.lines().collect();
    let stamped = |l: &str| serde_json::from_str::<Value>(l).ok()?["timestamp"].as_str().and_then(rfc3339_ns);
    let last = lines.iter().rposition(|l| stamped(l).is_some_and(|t| t <= at)).map_or(0, |i| i + 1);
    lines[..last].iter().map(|l| format!("{l}\n")).collect()
}

fn captured() -> Vec<Value> {
    HOOKS.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn at(ts: &str) -> u64 {
    rfc3339_ns(ts).unwrap()
}

/// The captured run: one turn from BeforeAgent to AfterAgent, its shell call under it, its two model
/// calls under it timed by their BeforeModel and the AfterModel with a finish reason, with the chat
/// log's tokens; every time is the payloads' own.
#[test]
fn the_captured_run_is_one_turn_of_a_call_and_two_timed_model_calls() {
    let spans = run(&captured(), CHAT);
    assert_tree(&spans);
    let root = &named(&spans, "gemini-cli session")[0];
    assert_eq!(root.attr("gen_ai.agent.name").as_deref(), Some("gemini-cli"));
    let turn = named(&spans, "invoke_agent gemini-cli");
    assert_eq!(turn.len(), 1, "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let turn = turn[0];
    assert_eq!((turn.start, turn.end), (at("2026-12-07T05:28:55.589Z"), at("2026-12-07T05:28:56.986Z")));
    assert!(!turn.incomplete);
    let tool = named(&spans, "execute_tool run_shell_command");
    assert_eq!(tool.len(), 1);
    assert_eq!(tool[0].parent, Some(turn.span_id));
    assert_eq!((tool[0].start, tool[0].end), (at("2026-12-07T05:28:56.207Z"), at("2026-12-07T05:28:56.355Z")));
    assert_eq!(tool[0].tool.map(|t| t.status), Some(ToolStatus::Ok));
    let chats = named(&spans, "chat gemini-3.8-flash");
    assert_eq!(chats.len(), 2);
    let mut times: Vec<(u64, u64)> = chats.iter().map(|c| (c.start, c.end)).collect();
    times.sort();
    assert_eq!(
        times,
        [
            (at("2026-12-07T05:28:55.813Z"), at("2026-12-07T05:28:56.044Z")),
            (at("2026-12-07T05:28:56.619Z"), at("2026-12-07T05:28:56.872Z"))
        ]
    );
    for chat in &chats {
        assert_eq!(chat.parent, Some(turn.span_id));
        assert_eq!(chat.attr("gen_ai.provider.name").as_deref(), Some("gcp.gemini"));
        let usage = chat.usage.as_ref().unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (11, 7));
    }
    assert_eq!(turn.usage.as_ref().unwrap().tokens.input, 22);
    assert_eq!(root.usage.as_ref().unwrap().tokens.output, 14);
    // PreCompress fires before every model call: an event of the turn, no compaction
    assert!(named(&spans, "compaction").is_empty());
    assert_eq!(turn.events.iter().filter(|e| e.name == "PreCompress").count(), 2);
    // a streamed chunk, BeforeModel and BeforeToolSelection are no span events
    let noise = ["AfterModel", "BeforeModel", "BeforeToolSelection"];
    assert!(spans.iter().flat_map(|s| &s.events).all(|e| !noise.contains(&e.name.as_str())));
}

fn hook(event: &str, ts: &str, extra: Value) -> Value {
    let mut p = json!({"session_id": SID, "transcript_path": "/h/.gemini/tmp/p/chats/session-x.jsonl",
                       "cwd": "/h/p", "hook_event_name": event, "timestamp": ts});
    p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    p
}

fn shell(event: &str, ts: &str, command: &str, content: Option<&str>) -> Value {
    let mut extra = json!({"tool_name": "run_shell_command", "tool_input": {"command": command}});
    if let Some(c) = content {
        extra["tool_response"] = json!({"llmContent": c, "returnDisplay": c});
    }
    hook(event, ts, extra)
}

/// Calls told apart by their input only: two parallel calls whose starts arrive out of order, the
/// same command run twice in a row (two spans, not one), a command that exited 1 (ERROR, though
/// Gemini calls it a success) and a tool's error (ERROR).
#[test]
fn calls_without_ids_pair_by_tool_and_input_and_failures_are_errors() {
    let t = |s: u32| format!("2026-12-07T05:30:{s:02}.000Z");
    let hooks = [
        hook("SessionStart", &t(0), json!({"source": "startup"})),
        hook("BeforeAgent", &t(1), json!({"prompt": "go"})),
        shell("BeforeTool", &t(3), "echo b", None),
        shell("BeforeTool", &t(2), "echo a", None),
        shell("AfterTool", &t(4), "echo a", Some("Output: a")),
        shell("AfterTool", &t(5), "echo b", Some("Output: b")),
        shell("BeforeTool", &t(6), "make", None),
        shell("AfterTool", &t(7), "make", Some("Output: boom\nExit Code: 1\nProcess Group PGID: 7")),
        shell("BeforeTool", &t(8), "make", None),
        shell("AfterTool", &t(9), "make", Some("Output: ok\nProcess Group PGID: 8")),
        hook("BeforeTool", &t(10), json!({"tool_name": "read_file", "tool_input": {"file_path": "nope.txt"}})),
        hook(
            "AfterTool",
            &t(11),
            json!({"tool_name": "read_file", "tool_input": {"file_path": "nope.txt"},
                   "tool_response": {"llmContent": "File not found", "error": {"message": "File not found: nope.txt", "type": "FILE_NOT_FOUND"}}}),
        ),
        hook("AfterAgent", &t(12), json!({"prompt": "go", "prompt_response": "garbled"})),
        hook("SessionEnd", &t(13), json!({"reason": "exit"})),
    ];
    let spans = run(&hooks, "");
    assert_tree(&spans);
    let turn = named(&spans, "invoke_agent gemini-cli")[0].span_id;
    let shells = named(&spans, "execute_tool run_shell_command");
    let mut calls: Vec<(u64, u64, Option<ToolStatus>, String)> = shells
        .iter()
        .map(|s| (s.start, s.end, s.tool.map(|t| t.status), s.attr("gen_ai.tool.call.arguments").unwrap_or_default()))
        .collect();
    calls.sort_by_key(|c| c.0);
    let secs = |c: &(u64, u64, Option<ToolStatus>, String)| {
        ((c.0 - at(&t(0))) / 1_000_000_000, (c.1 - at(&t(0))) / 1_000_000_000, c.2)
    };
    assert_eq!(
        calls.iter().map(secs).collect::<Vec<_>>(),
        [
            (2, 4, Some(ToolStatus::Ok)),
            (3, 5, Some(ToolStatus::Ok)),
            (6, 7, Some(ToolStatus::Error)),
            (8, 9, Some(ToolStatus::Ok))
        ],
        "{calls:?}"
    );
    assert!(shells.iter().all(|s| s.parent == Some(turn) && !s.incomplete));
    let failed = shells.iter().find(|s| s.tool.map(|t| t.status) == Some(ToolStatus::Error)).unwrap();
    assert_eq!(failed.status, Status::Error("exit code 1".into()));
    let read = named(&spans, "execute_tool read_file");
    assert_eq!(read[0].tool.map(|t| t.status), Some(ToolStatus::Error));
    assert!(matches!(&read[0].status, Status::Error(m) if m.contains("File not found")), "{:?}", read[0].status);
}

/// A call's id names its tool and its start, never its input (whose hash pairs the call's ends
/// inside the session only): two calls of one tool started in the same instant are told apart
/// (`#2`), each ended by its own `AfterTool`; a start delivered twice is one call.
#[test]
fn call_ids_name_the_tool_and_start_never_the_input() {
    let t = |s: u32| format!("2026-12-07T05:30:{s:02}.000Z");
    let hooks = [
        hook("SessionStart", &t(0), json!({"source": "startup"})),
        hook("BeforeAgent", &t(1), json!({"prompt": "go"})),
        shell("BeforeTool", &t(2), "echo s3cret", None),
        shell("BeforeTool", &t(2), "echo b", None),
        shell("BeforeTool", &t(2), "echo b", None),
        shell("AfterTool", &t(3), "echo b", Some("Output: b")),
        shell("AfterTool", &t(4), "echo s3cret", Some("Output: s3cret")),
        hook("AfterAgent", &t(5), json!({"prompt": "go"})),
        hook("SessionEnd", &t(6), json!({"reason": "exit"})),
    ];
    let spans = run(&hooks, "");
    assert_tree(&spans);
    let shells = named(&spans, "execute_tool run_shell_command");
    let base = format!("run_shell_command@{}", at(&t(2)));
    let ids: Vec<(String, u64)> = shells
        .iter()
        .map(|s| (s.attr("gen_ai.tool.call.id").unwrap_or_default(), (s.end - at(&t(0))) / 1_000_000_000))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, [(base.clone(), 4), (format!("{base}#2"), 3)], "{ids:?}");
}

/// A captured run: its hooks, its chat log, and the usage the mock served its agent calls.
struct Captured {
    hooks: Vec<Value>,
    chat: String,
    served: Vec<Value>,
}

fn captured_run(dir: &str) -> Captured {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemini").join(dir);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let chat = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("session-"));
    let lines = |text: String| -> Vec<Value> { text.lines().map(|l| serde_json::from_str(l).unwrap()).collect() };
    let served = lines(read(&base.join("mock.jsonl")))
        .into_iter()
        .filter(|r| r["reply"]["kind"] == "agent")
        .map(|r| r["reply"]["usage"].clone())
        .collect();
    Captured { hooks: lines(read(&base.join("hooks.jsonl"))), chat: read(&chat.unwrap()), served }
}

/// When each model call of a run ended: its `AfterModel` with a finish reason.
fn model_call_ends(hooks: &[Value]) -> Vec<u64> {
    let ended = |h: &&Value| {
        h["hook_event_name"] == "AfterModel" && h["llm_response"]["candidates"][0]["finishReason"].is_string()
    };
    hooks.iter().filter(ended).map(|h| rfc3339_ns(h["timestamp"].as_str().unwrap()).unwrap()).collect()
}

/// When each model-call span ends, in order.
fn chat_ends(spans: &[SpanRecord]) -> Vec<u64> {
    let mut ends: Vec<u64> = spans.iter().filter(|s| s.name.starts_with("chat ")).map(|s| s.end).collect();
    ends.sort();
    ends
}

/// Every captured run of the real CLI (chunked text, parallel calls, a failing command and a tool
/// error, a resumed session): one trace, one model-call span per response served, each timed by
/// its hooks, their tokens (counted disjointly, thinking as output) adding up to what the mock served,
/// each tool call paired with its own end, failures in ERROR.
#[test]
fn every_captured_run_is_one_tree_whose_model_calls_add_up_to_what_was_served() {
    for dir in ["text-0.61.0", "parallel-0.61.0", "failures-0.61.0", "resume-0.61.0"] {
        let run_of = captured_run(dir);
        let spans = run(&run_of.hooks, &run_of.chat);
        let trace = spans[0].trace_id;
        assert!(spans.iter().all(|s| s.trace_id == trace), "{dir}: one trace");
        let roots = spans.iter().filter(|s| s.parent.is_none()).count();
        assert_eq!(roots, 1, "{dir}: one root");
        let chats: Vec<&SpanRecord> = spans.iter().filter(|s| s.name.starts_with("chat ")).collect();
        assert_eq!(chats.len(), run_of.served.len(), "{dir}: a model call per response served");
        assert_eq!(
            chat_ends(&spans),
            model_call_ends(&run_of.hooks),
            "{dir}: each timed by the AfterModel with a finish reason"
        );
        let count = |k: &str| run_of.served.iter().map(|u| u[k].as_u64().unwrap_or(0)).sum::<u64>();
        let tokens = chats.iter().fold(crate::model::tokens::TokenUsage::default(), |mut t, c| {
            t.add(c.usage.as_ref().unwrap().tokens);
            t
        });
        let cached = count("cachedContentTokenCount");
        assert_eq!(tokens.input, count("promptTokenCount") - cached, "{dir}: uncached input");
        assert_eq!(tokens.cache_read, cached, "{dir}: cache read");
        assert_eq!(tokens.output, count("candidatesTokenCount") + count("thoughtsTokenCount"), "{dir}: output");
        let turns: Vec<&SpanRecord> = spans.iter().filter(|s| s.name == "invoke_agent gemini-cli").collect();
        let prompts = run_of.hooks.iter().filter(|h| h["hook_event_name"] == "BeforeAgent").count();
        assert_eq!(turns.len(), prompts, "{dir}: a turn per prompt");
        for s in spans.iter().filter(|s| s.name.starts_with("chat ") || s.name.starts_with("execute_tool ")) {
            assert!(turns.iter().any(|t| Some(t.span_id) == s.parent), "{dir}: {} under a turn", s.name);
            assert!(!s.incomplete, "{dir}: {} ended", s.name);
        }
        let tools: Vec<(String, Option<ToolStatus>)> = spans
            .iter()
            .filter(|s| s.name.starts_with("execute_tool "))
            .map(|s| (s.name.clone(), s.tool.map(|t| t.status)))
            .collect();
        let ok = Some(ToolStatus::Ok);
        let shell = "execute_tool run_shell_command".to_owned();
        match dir {
            "parallel-0.61.0" => {
                assert_eq!(tools, [(shell.clone(), ok), (shell, ok)], "{dir}");
                // each call ends at its own AfterTool: the slow one (`sleep 0.5; echo one`) last
                let calls: Vec<&SpanRecord> = spans.iter().filter(|s| s.name.starts_with("execute_tool")).collect();
                let slow = calls.iter().max_by_key(|s| s.end - s.start).unwrap();
                assert!(
                    slow.end - slow.start >= 500_000_000,
                    "{dir}: {:?}",
                    calls.iter().map(|s| s.end - s.start).collect::<Vec<_>>()
                );
            }
            "failures-0.61.0" => {
                let error = Some(ToolStatus::Error);
                let mut tools = tools.clone();
                tools.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(tools, [("execute_tool read_file".to_owned(), error), (shell, error)], "{dir}");
            }
            "resume-0.61.0" => assert_eq!(tools, [(shell, ok)], "{dir}"),
            _ => assert!(tools.is_empty(), "{dir}"),
        }
    }
}

/// The chat log read ahead of the hooks: each response still finds the turn it answers, once that
/// turn's start arrives, and is timed by its own model call's hooks.
#[test]
fn a_log_read_ahead_of_the_hooks_still_places_each_response_in_its_turn() {
    let run_of = captured_run("failures-0.61.0");
    let spans = run_reading(&run_of.hooks, &run_of.chat, true);
    let turns: Vec<&SpanRecord> = spans.iter().filter(|s| s.name == "invoke_agent gemini-cli").collect();
    assert_eq!(turns.len(), 1);
    let chats: Vec<&SpanRecord> = spans.iter().filter(|s| s.name.starts_with("chat ")).collect();
    assert_eq!(chats.len(), run_of.served.len());
    for chat in chats {
        let turn = turns.iter().find(|t| Some(t.span_id) == chat.parent).expect("under a turn");
        assert!(turn.start <= chat.start && chat.end <= turn.end, "{} in its turn", chat.name);
    }
}

/// A flood of tool calls that never end (each input new, so none pairs): what the session remembers
/// to pair them stops at its bound, and a call past it still has its span; an end then pairs with
/// the oldest call of its input still remembered.
#[test]
fn open_calls_without_ends_are_remembered_within_a_bound() {
    let t = |ms: u64| crate::model::time::rfc3339(at("2026-12-07T05:30:00.000Z") + ms * 1_000_000);
    let mut hooks =
        vec![hook("SessionStart", &t(0), json!({"source": "startup"})), hook("BeforeAgent", &t(1), json!({}))];
    hooks.extend((0..3000).map(|i| shell("BeforeTool", &t(2 + i), &format!("echo {i}"), None)));
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    for p in &hooks {
        let mut p = p.clone();
        p["hooktel_agent"] = json!("gemini-cli");
        let received = p["timestamp"].as_str().and_then(rfc3339_ns).unwrap() + 1_000_000;
        let ev = parse(&serde_json::to_vec(&p).unwrap(), received, Capture::Metadata).unwrap();
        let at = ev.at;
        s.ingest(ev, at, &mut out);
    }
    assert_eq!(s.live[SID].unnamed.open_calls(), 1024);
    // the first call's end pairs with it; the last's (past the bound) is a span of its own
    let first = shell("AfterTool", &t(5000), "echo 0", Some("Output: 0"));
    let last = shell("AfterTool", &t(5001), "echo 2999", Some("Output: 2999"));
    let end = hook("SessionEnd", &t(5002), json!({"reason": "exit"}));
    for mut p in [first, last, end] {
        p["hooktel_agent"] = json!("gemini-cli");
        let ev = parse(&serde_json::to_vec(&p).unwrap(), at(&t(6000)), Capture::Metadata).unwrap();
        let at = ev.at;
        s.ingest(ev, at, &mut out);
    }
    s.tick(u64::MAX / 2, &mut out);
    let tools = named(&out, "execute_tool run_shell_command");
    let ended: Vec<&&SpanRecord> = tools.iter().filter(|s| !s.incomplete).collect();
    assert_eq!(ended.len(), 2, "the two ends (the others closed incomplete with the session)");
    let starts: Vec<u64> = ended.iter().map(|s| s.start).collect();
    assert!(starts.contains(&at(&t(2))), "echo 0 started at its BeforeTool: {starts:?}");
    assert_eq!(tools.len(), 3001, "every start a span, and the end past the bound one of its own");
}

/// A response written again with more tokens grows its model call's span and takes no other call's
/// times: the next response is still timed by its own hooks.
#[test]
fn a_response_written_again_keeps_the_next_ones_times() {
    let run_of = captured_run("parallel-0.61.0");
    // the first response written a second time with one more output token, right after itself
    let mut lines: Vec<String> = run_of.chat.lines().map(str::to_owned).collect();
    let first = lines.iter().position(|l| l.contains("\"type\":\"gemini\"")).unwrap();
    let mut again: Value = serde_json::from_str(&lines[first]).unwrap();
    again["tokens"]["output"] = json!(again["tokens"]["output"].as_u64().unwrap() + 1);
    lines.insert(first + 1, again.to_string());
    let chat = lines.join("\n") + "\n";
    let spans = run(&run_of.hooks, &chat);
    assert_eq!(chat_ends(&spans), model_call_ends(&run_of.hooks), "each response timed by its own AfterModel");
}
