//! Backfill from transcripts: the real captured sessions become the span trees the live path builds,
//! with the same ids and the transcripts' own timestamps; JSONL event logs become custom events.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use hooktel::backfill::event_log::events_from_jsonl;
use hooktel::backfill::transcripts::{find_transcripts, session_from_transcript, ImportedSession};
use hooktel::model::capture::Capture;
use hooktel::model::ids::{self, SpanKey};
use hooktel::model::span::{SpanRecord, Status};
use hooktel::model::time::rfc3339_ns;
use hooktel::model::tokens::TokenUsage;
use hooktel::model::ModelEndpoint;
use hooktel::usage::logs::claude_code::Ledger;
use hooktel::usage::pricing::PriceTable;
use opentelemetry::trace::SpanId;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const CAPTURED_SID: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";

fn transcripts() -> PathBuf {
    Path::new(FIXTURES).join("transcripts")
}

fn captured_path() -> PathBuf {
    transcripts().join(format!("captured-2.1.329/-home-dev-proj/{CAPTURED_SID}.jsonl"))
}

fn real_path(sid: &str) -> PathBuf {
    transcripts().join(format!("real-2.1.197/-home-dev-proj/{sid}.jsonl"))
}

fn import(path: &Path) -> ImportedSession {
    session_from_transcript(path, &PriceTable::builtin(), Capture::Metadata, &ModelEndpoint::default()).unwrap()
}

/// The session's files: the main transcript and its subagent transcripts.
fn files(main: &Path) -> Vec<PathBuf> {
    let mut out = vec![main.to_path_buf()];
    if let Ok(dir) = std::fs::read_dir(main.with_extension("").join("subagents")) {
        out.extend(dir.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")));
    }
    out
}

/// Straight from the files: tool_use id → (name, assistant line time), tool_result id → (is_error, time).
#[allow(clippy::type_complexity)]
fn calls_in(main: &Path) -> (HashMap<String, (String, u64)>, HashMap<String, (bool, u64)>) {
    let (mut uses, mut results) = (HashMap::new(), HashMap::new());
    for f in files(main) {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            let Some(t) = v["timestamp"].as_str().and_then(rfc3339_ns) else { continue };
            for b in v["message"]["content"].as_array().into_iter().flatten() {
                match b["type"].as_str() {
                    Some("tool_use") => {
                        uses.insert(b["id"].as_str().unwrap().to_owned(), (b["name"].as_str().unwrap().to_owned(), t));
                    }
                    Some("tool_result") => {
                        let err = b["is_error"].as_bool() == Some(true);
                        results.insert(b["tool_use_id"].as_str().unwrap().to_owned(), (err, t));
                    }
                    _ => {}
                }
            }
        }
    }
    (uses, results)
}

/// One root, no dangling parent, no span twice, every span in the session's trace.
fn assert_tree(sid: &str, spans: &[SpanRecord]) {
    let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1, "roots: {roots:?}");
    assert_eq!(roots[0].span_id, ids::span_id(sid, SpanKey::Root, sid));
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    assert_eq!(ids.len(), spans.len(), "a span id twice");
    for s in spans {
        assert!(s.parent.is_none_or(|p| ids.contains(&p)), "dangling parent of {}", s.name);
        assert!(s.start <= s.end, "{}", s.name);
        assert_eq!(s.trace_id, ids::trace_id(sid));
        assert_eq!(s.attr("session.id").as_deref(), Some(sid));
        assert_eq!(s.attr("gen_ai.conversation.id").as_deref(), Some(sid));
    }
}

/// Exactly one tool span per tool_use with a result, timed by the transcript, ERROR exactly for errors.
fn assert_tools(main: &Path, spans: &[SpanRecord]) {
    let (uses, results) = calls_in(main);
    let tools: Vec<_> = spans.iter().filter(|s| s.key == SpanKey::Tool).collect();
    let answered: HashSet<&String> = uses.keys().filter(|id| results.contains_key(*id)).collect();
    assert_eq!(tools.len(), answered.len());
    for t in tools {
        let id = t.attr("gen_ai.tool.call.id").unwrap();
        let (name, start) = &uses[&id];
        let (is_error, end) = results[&id];
        assert_eq!(t.span_id, ids::span_id(&t.attr("session.id").unwrap(), SpanKey::Tool, &id));
        assert_eq!(t.name, format!("execute_tool {name}"));
        assert_eq!((t.start, t.end), (*start, end), "{id}");
        assert_eq!(matches!(t.status, Status::Error(_)), is_error, "{id}");
        assert_eq!(t.attr("hooktel.tool.status").as_deref(), Some(if is_error { "error" } else { "ok" }));
    }
}

fn named<'a>(spans: &'a [SpanRecord], name: &str) -> Vec<&'a SpanRecord> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn by_call<'a>(spans: &'a [SpanRecord], call: &str) -> &'a SpanRecord {
    spans.iter().find(|s| s.attr("gen_ai.tool.call.id").as_deref() == Some(call)).unwrap()
}

fn int(span: &SpanRecord, key: &str) -> i64 {
    match span.attributes().into_iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value) {
        Some(opentelemetry::Value::I64(v)) => v,
        other => panic!("{key}: {other:?}"),
    }
}

fn float(span: &SpanRecord, key: &str) -> f64 {
    match span.attributes().into_iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value) {
        Some(opentelemetry::Value::F64(v)) => v,
        other => panic!("{key}: {other:?}"),
    }
}

fn ts(s: &str) -> u64 {
    rfc3339_ns(s).unwrap()
}

#[test]
fn captured_session_becomes_the_live_tree() {
    let s = import(&captured_path());
    assert_eq!(s.session_id, CAPTURED_SID);
    let spans = &s.spans;
    assert_tree(CAPTURED_SID, spans);
    assert_tools(&captured_path(), spans);
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "chat claude-sonnet-5-5",
            "chat claude-sonnet-5-5",
            "chat claude-sonnet-5-5",
            "chat claude-sonnet-5-5",
            "chat claude-sonnet-5-5",
            "claude-code session",
            "execute_tool Agent",
            "execute_tool Bash",
            "execute_tool Bash",
            "execute_tool Glob",
            "invoke_agent Explore",
            "invoke_agent claude-code",
        ]
    );
    let root = named(spans, "claude-code session")[0];
    assert_eq!((root.start, root.end), (ts("2026-11-21T04:31:21.895Z"), ts("2026-11-21T04:31:23.896Z")));
    assert_eq!(root.start, 1_795_235_481_895_000_000);
    assert_eq!(root.attr("hooktel.project").as_deref(), Some("proj"));
    assert_eq!(root.attr("hooktel.imported").as_deref(), Some("true"));
    assert!(spans.iter().all(|s| s.project == "proj"));

    let turn = named(spans, "invoke_agent claude-code")[0];
    assert_eq!(turn.span_id, ids::span_id(CAPTURED_SID, SpanKey::Turn, "ddca265e-c4e4-4f08-acfc-8612056bc63a"));
    assert_eq!(turn.parent, Some(root.span_id));
    assert_eq!((turn.start, turn.end), (ts("2026-11-21T04:31:21.991Z"), ts("2026-11-21T04:31:23.896Z")));
    assert_eq!(turn.attr("hooktel.turn.outcome").as_deref(), Some("stop"));
    assert!(turn.attr("hooktel.prompt").is_none(), "no prompt text at the default capture");

    let agent_call = by_call(spans, "toolu_01Mock15235482140");
    assert_eq!(agent_call.parent, Some(turn.span_id));
    assert_eq!(agent_call.attr("hooktel.tool.input.subagent_type").as_deref(), Some("Explore"));
    let sub = named(spans, "invoke_agent Explore")[0];
    assert_eq!(sub.span_id, ids::span_id(CAPTURED_SID, SpanKey::Subagent, "a7ca175cf2fd2156a"));
    assert_eq!(sub.parent, Some(agent_call.span_id));
    assert_eq!((sub.start, sub.end), (ts("2026-11-21T04:31:22.393Z"), ts("2026-11-21T04:31:23.036Z")));
    let glob = by_call(spans, "toolu_01Mock15235482513");
    assert_eq!(glob.parent, Some(sub.span_id));
    assert_eq!(glob.attr("gen_ai.agent.id").as_deref(), Some("a7ca175cf2fd2156a"));
    let failed = by_call(spans, "toolu_01Mock05235483479");
    assert_eq!(failed.status, Status::Error("Exit code 1".into()));
    assert_eq!(failed.parent, Some(turn.span_id));
    assert_eq!((failed.start, failed.end), (ts("2026-11-21T04:31:23.487Z"), ts("2026-11-21T04:31:23.614Z")));
}

#[test]
fn captured_usage_equals_the_ledger_and_claude_codes_cost() {
    let s = import(&captured_path());
    let prices = PriceTable::builtin();
    let (mut ledger_total, mut imported_total) = (TokenUsage::default(), TokenUsage::default());
    for f in files(&captured_path()) {
        for d in Ledger::default().read(&std::fs::read(f).unwrap(), &prices).deltas {
            ledger_total.add(d.usage);
        }
    }
    let mut cost = 0.0;
    for d in &s.usage {
        imported_total.add(d.usage);
        cost += d.cost;
        assert_eq!(d.model, "claude-sonnet-5-5");
    }
    assert_eq!(imported_total, ledger_total);
    let expected =
        TokenUsage { input: 60, output: 445, cache_read: 102_400, cache_write_1h: 15_360, ..Default::default() };
    assert_eq!(imported_total, expected);
    assert!((cost - 0.07625).abs() < 1e-12, "{cost}");

    let root = named(&s.spans, "claude-code session")[0];
    assert_eq!(int(root, "gen_ai.usage.input_tokens"), 60 + 102_400 + 15_360);
    assert_eq!(int(root, "gen_ai.usage.output_tokens"), 445);
    assert_eq!(int(root, "gen_ai.usage.cache_read.input_tokens"), 102_400);
    assert_eq!(int(root, "gen_ai.usage.cache_creation.input_tokens"), 15_360);
    assert_eq!(int(root, "hooktel.usage.uncached_input_tokens"), 60);
    assert!((float(root, "hooktel.cost_usd") - 0.07625).abs() < 1e-12);
    assert_eq!(root.attr("gen_ai.response.model").as_deref(), Some("claude-sonnet-5-5"));
    // the turn has the main thread's part, the subagent its own; together the session's
    let turn = named(&s.spans, "invoke_agent claude-code")[0];
    let sub = named(&s.spans, "invoke_agent Explore")[0];
    for key in ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens"] {
        assert_eq!(int(turn, key) + int(sub, key), int(root, key), "{key}");
    }
    assert!(s.usage.iter().any(|d| d.agent_id.as_deref() == Some("a7ca175cf2fd2156a")));
}

#[test]
fn real_2_1_197_sessions_form_trees() {
    let sid = "02bdf4d0-26a2-4933-84b0-132a1d9fb0ee";
    let s = import(&real_path(sid));
    assert_tree(sid, &s.spans);
    assert_tools(&real_path(sid), &s.spans);
    // the prompt and the /compact that followed it
    let turns = named(&s.spans, "invoke_agent claude-code");
    assert_eq!(turns.len(), 2);
    let first = turns.iter().find(|t| t.attr("hooktel.prompt.id").as_deref().unwrap().starts_with("2ac848c7")).unwrap();
    assert_eq!((first.start, first.end), (ts("2026-11-21T04:24:46.734Z"), ts("2026-11-21T04:24:49.036Z")));
    let agent_call = by_call(&s.spans, "toolu_01aq6tqEG7UMv5Ee69Ayhb7dQT");
    assert_eq!(agent_call.parent, Some(first.span_id));
    let sub = named(&s.spans, "invoke_agent general-purpose")[0];
    assert_eq!(sub.parent, Some(agent_call.span_id));
    assert_eq!(by_call(&s.spans, "toolu_01epFkZdhp0DkPpYbDPZKmgeCA").parent, Some(sub.span_id));
    assert_eq!(by_call(&s.spans, "toolu_01KVIsCrVSW5PUGEFR6pqa9chP").status, Status::Error("Exit code 1".into()));
    let root = named(&s.spans, "claude-code session")[0];
    assert_eq!((root.start, root.end), (ts("2026-11-21T04:24:46.685Z"), ts("2026-11-21T04:24:51.543Z")));

    // a turn that ended in an API error
    let sid = "5856fb79-104b-4e4d-beea-b5d7b890aada";
    let s = import(&real_path(sid));
    assert_tree(sid, &s.spans);
    let turn = named(&s.spans, "invoke_agent claude-code")[0];
    assert_eq!(turn.attr("hooktel.turn.outcome").as_deref(), Some("failure"));
    // its status says what the API said, as Claude Code showed it; `unknown` is the error's kind
    assert_eq!(turn.status, Status::Error("API Error: 400 mock: scripted invalid_request_error".into()));
    assert_eq!(turn.attr("error.type").as_deref(), Some("unknown"));
    assert!(s.usage.is_empty(), "a synthetic API-error response is not usage");
}

#[test]
fn synthetic_session_forms_a_tree() {
    let main =
        transcripts().join("synthetic-2.1.329/-home-dev-projects-acme-api/3f6c2a8e-9b1d-4e7a-8c5f-2d4b6a1e9c07.jsonl");
    let s = import(&main);
    assert_tree(&s.session_id, &s.spans);
    assert_tools(&main, &s.spans);
    let sub = s.spans.iter().find(|s| s.key == SpanKey::Subagent).unwrap();
    let parent = s.spans.iter().find(|p| Some(p.span_id) == sub.parent).unwrap();
    assert_eq!(parent.key, SpanKey::Tool);
}

#[test]
fn importing_twice_yields_identical_spans() {
    for path in [captured_path(), real_path("02bdf4d0-26a2-4933-84b0-132a1d9fb0ee")] {
        let (a, b) = (import(&path), import(&path));
        assert_eq!(a.spans, b.spans);
        assert_eq!(a.usage, b.usage);
    }
}

#[test]
fn full_capture_adds_prompts_and_outputs() {
    let s = session_from_transcript(&captured_path(), &PriceTable::builtin(), Capture::Full, &ModelEndpoint::default())
        .unwrap();
    let turn = named(&s.spans, "invoke_agent claude-code")[0];
    assert!(turn.attr("hooktel.prompt").unwrap().starts_with("MAIN_TASK"));
    assert_eq!(
        by_call(&s.spans, "toolu_01Mock25235482140").attr("hooktel.tool.output").as_deref(),
        Some("hello-from-bash")
    );
    let none =
        session_from_transcript(&captured_path(), &PriceTable::builtin(), Capture::None, &ModelEndpoint::default())
            .unwrap();
    assert!(by_call(&none.spans, "toolu_01Mock25235482140").attr("hooktel.tool.input.command").is_none());
}

/// The captured hook payloads of the same session, in firing order.
fn captured_hooks() -> Vec<serde_json::Map<String, Value>> {
    let dir = Path::new(FIXTURES).join("hooks/captured");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    paths.sort();
    paths.iter().map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
}

#[test]
fn imported_ids_are_the_live_ids() {
    let s = import(&captured_path());
    let imported: HashSet<SpanId> = s.spans.iter().map(|s| s.span_id).collect();
    for p in captured_hooks() {
        let sid = p["session_id"].as_str().unwrap();
        assert_eq!(sid, CAPTURED_SID);
        for (field, kind) in
            [("tool_use_id", SpanKey::Tool), ("prompt_id", SpanKey::Turn), ("agent_id", SpanKey::Subagent)]
        {
            if let Some(key) = p.get(field).and_then(Value::as_str) {
                assert!(imported.contains(&ids::span_id(sid, kind, key)), "{field} {key}");
            }
        }
    }

    // and the whole tree: the live state machine fed the captured hooks builds the same one
    let mut live = hooktel::pipeline::sessions::Sessions::new(Default::default());
    let mut out = Vec::new();
    for (i, p) in captured_hooks().iter().enumerate() {
        let at = 1_000_000_000 + i as u64 * 10_000_000;
        let ev = hooktel::ingest::agents::claude_code::normalize(p, at, Capture::Metadata).unwrap();
        live.ingest(ev, at, &mut out);
    }
    live.tick(u64::MAX / 2, &mut out);
    // (hooks alone make no model calls: those come from the transcripts, live and imported alike)
    let shape = |v: &[SpanRecord]| {
        let mut k: Vec<_> = v
            .iter()
            .filter(|s| s.key != SpanKey::Chat)
            .map(|s| (s.span_id.to_bytes(), s.parent.map(|p| p.to_bytes()), s.name.clone()))
            .collect();
        k.sort();
        k
    };
    assert_eq!(shape(&s.spans), shape(&out));
    // a model call's id is the live one: (session, chat, message id / request id)
    for chat in s.spans.iter().filter(|s| s.key == SpanKey::Chat) {
        let c = chat.chat.as_ref().unwrap();
        let key = format!("{}/{}", c.response_id, c.request_id);
        assert_eq!(chat.span_id, ids::span_id(CAPTURED_SID, SpanKey::Chat, &key));
    }
}

#[test]
fn finds_main_transcripts_only() {
    let found = find_transcripts(&[transcripts(), captured_path()]);
    let names: Vec<String> = found.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    // captured, 2 real, legacy, and a fork's origin and the fork
    assert_eq!(found.len(), 7, "{names:?}");
    assert!(found.iter().all(|p| !p.components().any(|c| c.as_os_str() == "subagents")));
    assert!(found.contains(&captured_path()));
    assert!(names.contains(&"legacy-2.1.29-partial-usage.jsonl".to_owned()));
    // a file named directly is taken even inside `subagents/`, a missing path is nothing
    let agent = files(&captured_path()).pop().unwrap();
    assert_eq!(find_transcripts(&[agent.clone(), PathBuf::from("/nonexistent/x.jsonl")]), vec![agent]);
}

#[test]
fn legacy_transcript_without_prompt_ids_hangs_under_the_root() {
    let s = import(&transcripts().join("legacy-2.1.29-partial-usage.jsonl"));
    assert_tree(&s.session_id, &s.spans);
    assert!(s.spans.iter().all(|s| s.key != SpanKey::Turn));
    assert_eq!(s.session_id, "0c8e6a4d-2b1f-4e9c-8a7d-5f3b1e9c2a40", "from the lines: the file is not named after it");
    assert_eq!(s.usage.iter().map(|d| d.usage.output).sum::<u64>(), 97);
}

#[test]
fn event_log_lines_become_custom_events() {
    let dir = crate::support::temp_dir("import-test");
    let path = dir.join("events.jsonl");
    let log = [
        r#"{"timestamp":"2026-11-21T04:31:23.896Z","session_id":"2cfb142e-3e2c-45c5-8192-58e43d4a510f","route":"fast","n":3}"#,
        r#"{"ts":1795235483896,"sessionId":"s-2","outcome":"merged"}"#,
        "",
        "not json",
        "[1,2]",
        r#"{"time":1795235483,"detail":{"k":"v"}}"#,
        r#"{"no_time":true}"#,
        r#"{"timestamp":"2026-11-21T04:31:23.896Z","session_id":"2cfb142e-3e2c-45c5-8192-58e43d4a510f","route":"fast","n":3}"#,
    ];
    std::fs::write(&path, log.join("\n")).unwrap();
    let (events, skipped) = events_from_jsonl(&path, "routing").unwrap();
    assert_eq!(skipped, 3, "not json, not an object, no time");
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.name == "routing"));
    let e = &events[0];
    assert_eq!(e.session_id.as_deref(), Some(CAPTURED_SID));
    assert_eq!(e.at, 1_795_235_483_896_000_000);
    assert_eq!(e.attributes.len(), 2);
    assert_eq!(e.attributes["route"], "fast");
    assert_eq!(e.attributes["n"], 3);
    assert_eq!((events[1].session_id.as_deref(), events[1].at), (Some("s-2"), 1_795_235_483_896_000_000));
    assert_eq!(events[1].attributes.keys().collect::<Vec<_>>(), ["outcome"]);
    assert_eq!((events[2].session_id.as_deref(), events[2].at), (None, 1_795_235_483_000_000_000));
    // the same line twice is two events; reading the file again gives the same keys
    assert_ne!(events[0].key, events[3].key);
    let keys: HashSet<&String> = events.iter().map(|e| &e.key).collect();
    assert_eq!(keys.len(), 4);
    let (again, _) = events_from_jsonl(&path, "routing").unwrap();
    assert_eq!(again, events);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(events_from_jsonl(&path, "routing").is_err());
}

/// A fork's transcript starts with its origin's history, copied: the import makes the fork's own
/// turns and model calls only (its two prompts and two responses), from its own first line, with
/// a link to the origin's root; the origin keeps its whole history.
#[test]
fn a_forked_transcript_imports_only_its_own_history() {
    const ORIGIN: &str = "082b7548-ad4a-4949-86a5-67e6cb172c59";
    let dir = transcripts().join("fork-2.1.329/-home-dev-rf329-work");
    let fork = import(&dir.join("ff7c266d-769e-439d-a6c5-940a3331fc54.jsonl"));
    let origin = import(&dir.join(format!("{ORIGIN}.jsonl")));
    assert_tree("ff7c266d-769e-439d-a6c5-940a3331fc54", &fork.spans);
    let turns = |s: &ImportedSession| s.spans.iter().filter(|r| r.key == SpanKey::Turn).count();
    let chats = |s: &ImportedSession| s.spans.iter().filter(|r| r.key == SpanKey::Chat).count();
    assert_eq!((turns(&fork), chats(&fork)), (2, 2), "{:?}", fork.spans.iter().map(|r| &r.name).collect::<Vec<_>>());
    assert!(turns(&origin) >= 3 && chats(&origin) > 2);
    let root = fork.spans.iter().find(|r| r.parent.is_none()).unwrap();
    assert_eq!(root.links.len(), 1);
    assert_eq!((root.links[0].trace_id, root.links[0].kind.as_str()), (ids::trace_id(ORIGIN), "forked_from"));
    assert!(root.start >= ts("2026-12-02T06:30:54.000Z"), "from the fork's own first line, not the copied history's");
    assert_eq!(root.usage.as_ref().unwrap().tokens.output, 50);
}
