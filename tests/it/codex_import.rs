//! `hooktel import` of Codex CLI rollouts, as a user runs it: the real captured session (Codex CLI
//! 0.171.0: a turn, then `codex exec resume` and a second) replayed live through `hooktel hook --agent
//! codex` into one sidecar, its rollout growing as Codex wrote it, and the same rollout imported into
//! another: the same spans, ids, parents, names and statuses; imported twice, or after the live
//! capture with the same data directory, nothing is sent again. The sidecar's view of the session
//! (`GET /v1/sessions/<uuid>`) names its agent. A hostile rollout (a line over the
//! line bound, garbage lines) imports what it holds, in bounded memory.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, temp_dir, Protocol, Receiver, Sidecar, Span, BIN};

const SESSION: &str = "01a25161-28d6-7671-b0d0-eb9d5a34b666";
const TRACE: &str = "01a2516128d67671b0d0eb9d5a34b666";
const ROLLOUT: &str = "rollout-2026-12-07T16-40-51-01a25161-28d6-7671-b0d0-eb9d5a34b666.jsonl";

fn captured() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex/captured-0.171.0")
}

/// For each hook payload of `hooks.jsonl`, in order: the last rollout line (its `ordinal`) Codex had
/// written when the hook fired, read from the two files' contents (a prompt's hook before its
/// message is recorded, a tool call's after its `function_call`, its end after its
/// `item_completed`, a turn's `Stop` after its last `token_usage_record`).
const WRITTEN_BEFORE_HOOK: [usize; 21] =
    [0, 6, 8, 11, 11, 12, 13, 16, 18, 19, 21, 25, 26, 27, 29, 31, 33, 34, 36, 40, 41];

/// The hook payload that resumes the session (`SessionStart`, `source: resume`).
const RESUME: usize = 13;

/// `hooktel hook --agent codex` with `payload`, as Codex runs it.
fn hook(sidecar: &Sidecar, payload: &Value) {
    crate::support::codex::hook_as("codex", sidecar, payload.to_string().as_bytes());
}

/// `hooktel import args` into `data` (to `otlp` when given, else the local store), with `env`: its
/// output.
fn import(data: &Path, args: &[&str], otlp: Option<&Receiver>, env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("import").args(args).env("HOOKTEL_DATA_DIR", data).env("HOOKTEL_RETENTION_DAYS", "36500");
    support::without_inherited_settings(&mut cmd);
    cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT").env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if let Some(r) = otlp {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", r.endpoint()).env("OTEL_EXPORTER_OTLP_PROTOCOL", r.protocol_name());
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "import failed: {said}{}", String::from_utf8_lossy(&out.stderr));
    said
}

/// The rollout's lines, in order.
fn rollout_lines() -> Vec<String> {
    fs::read_to_string(captured().join(ROLLOUT)).unwrap().lines().map(str::to_owned).collect()
}

/// What identifies a span across the two paths besides its id: its kind and its key (turn id, call
/// id, response id; the root has none).
fn key_of(s: &Span) -> String {
    for attr in ["hooktel.prompt.id", "gen_ai.tool.call.id", "gen_ai.response.id"] {
        if let Some(v) = s.attr(attr) {
            return format!("{attr}={v}");
        }
    }
    s.name.clone()
}

/// The captured session, replayed live: every hook through `hooktel hook --agent codex` into a
/// sidecar exporting to `receiver`, the rollout at `rollout` written up to where Codex had written
/// it when each hook fired. Returns the sidecar once every span is out.
fn replay_live(receiver: &Receiver, rollout: &Path) -> Sidecar {
    fs::create_dir_all(rollout.parent().unwrap()).unwrap();
    let sidecar = Sidecar::builder().exporting_to(receiver).start();
    let lines = rollout_lines();
    let hooks: Vec<Value> = fs::read_to_string(captured().join("hooks.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hooks.len(), WRITTEN_BEFORE_HOOK.len());
    let mut written = 0;
    for (i, mut payload) in hooks.into_iter().enumerate() {
        if i == RESUME {
            // the first run is out (its root handed out) before `codex exec resume` starts
            receiver
                .wait_for(Duration::from_secs(20), "the first run", |s| s.iter().any(|s| s.name == "codex session"));
        }
        let upto = WRITTEN_BEFORE_HOOK[i];
        if upto + 1 > written {
            let mut f = fs::OpenOptions::new().create(true).append(true).open(rollout).unwrap();
            for line in &lines[written..=upto] {
                writeln!(f, "{line}").unwrap();
            }
            written = upto + 1;
        }
        payload["transcript_path"] = rollout.to_str().unwrap().into();
        hook(&sidecar, &payload);
    }
    assert_eq!(written, lines.len());
    // root, the resumed segment, two turns, four tool calls, five model calls
    receiver.wait_for(Duration::from_secs(30), "the live session", |s| s.len() == 13);
    sidecar
}

/// Live and imported, the same session is the same tree: every span of the first run has the same
/// id, parent, name and status (times differ: live ones are the hooks', stamped by the hook client
/// as they fire, imported ones the rollout's). The resumed run cannot have the live ids: live, a
/// resume after the session's end is a segment (`codex session resumed`) whose spans' ids include
/// the time the hook client stamped on the resuming `SessionStart`, which the rollout does not hold;
/// the import hangs that run's turn under the one root. Its spans have the live names, statuses and
/// shape all the same.
#[test]
fn an_imported_rollout_is_the_live_tree_with_the_live_ids() {
    let home = temp_dir("codex-import-home");
    let rollout = home.join(".codex/sessions/2026/12/07").join(ROLLOUT);
    let live = Receiver::start(Protocol::Http);
    let sidecar = replay_live(&live, &rollout);
    let live_spans = live.spans();
    assert!(live_spans.iter().all(|s| s.trace_id == TRACE));
    // the sidecar's view of the session names its agent too
    let (status, body) = sidecar.request("GET", &format!("/v1/sessions/{SESSION}"), b"");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &view["agent"], &view["turns"]), (200, &Value::from("codex"), &Value::from(2)), "{body}");

    let imported = Receiver::start(Protocol::Http);
    let data = temp_dir("codex-import-data");
    let said = import(&data, &[rollout.to_str().unwrap()], Some(&imported), &[]);
    assert!(said.contains("sessions: 1,") && said.contains("spans sent: 12,"), "{said}");
    let spans = imported.wait_for(Duration::from_secs(10), "the imported session", |s| s.len() == 12);
    support::assert_tree(&spans, TRACE);

    let segment = live_spans.iter().find(|s| s.name == "codex session resumed").expect("the live resumed segment");
    let by_key: HashMap<String, &Span> = spans.iter().map(|s| (key_of(s), s)).collect();
    let resumed_turn = live_spans.iter().find(|s| s.parent == segment.span_id).unwrap();
    let mut compared = 0;
    for l in live_spans.iter().filter(|s| s.span_id != segment.span_id) {
        let i = by_key.get(&key_of(l)).unwrap_or_else(|| panic!("not imported: {} {}", l.name, key_of(l)));
        assert_eq!((&i.name, i.status, &i.status_message), (&l.name, l.status, &l.status_message), "{}", key_of(l));
        if l.parent == segment.span_id {
            // the resumed run's turn: under the one root
            assert_eq!(i.parent, by_key["codex session"].span_id, "{}", key_of(l));
        } else if l.parent == resumed_turn.span_id {
            // its calls: under its turn
            assert_eq!(i.parent, by_key[&key_of(resumed_turn)].span_id, "{}", key_of(l));
        } else {
            assert_eq!((&i.span_id, &i.parent), (&l.span_id, &l.parent), "{}: the live id and parent", key_of(l));
            compared += 1;
        }
    }
    // the root, the first turn, its three calls and three model calls
    assert_eq!(compared, 8);
    let failed = by_key["gen_ai.tool.call.id=call_2_0"];
    assert_eq!((failed.status, failed.status_message.as_str()), (2, "exit code 1"), "ERROR from the exit code");
    assert_eq!(spans.iter().filter(|s| s.status == 2).count(), 1);
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!((root.attr("gen_ai.agent.name"), root.attr("hooktel.imported")), (Some("codex"), Some("true")));
    // exported under Codex's resource, as live
    for s in spans.iter().chain(&live_spans) {
        assert_eq!(s.resource.get("gen_ai.agent.name").map(String::as_str), Some("codex"), "resource of {}", s.name);
    }

    // twice: nothing sent again
    let again = import(&data, &[rollout.to_str().unwrap()], Some(&imported), &[]);
    assert!(again.contains("spans sent: 0, already imported before (skipped): 12"), "{again}");
    assert_eq!(imported.spans().len(), 12);
    // into the data directory of the sidecar that captured it live: skipped whole, nothing sent
    let after_live = import(&sidecar.data_dir, &[rollout.to_str().unwrap()], Some(&live), &[]);
    assert!(after_live.contains("sessions skipped: 1 (captured live"), "{after_live}");
    assert!(after_live.contains("sessions: 0,") && after_live.contains("spans sent: 0,"), "{after_live}");
    assert_eq!(live.spans().len(), 13, "the live session sent again");
}

/// `hooktel` with `args` and `HOOKTEL_DATA_DIR=data`: its stdout.
fn view(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).env("HOOKTEL_DATA_DIR", data).env("COLUMNS", "200").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A user with Claude Code and Codex sessions runs `hooktel import` with no path: both agents' own
/// directories are read (`~/.claude/projects`, and `$CODEX_HOME/sessions` where Codex keeps its
/// rollouts when it is set), each log read the way of the agent its first line says (the rollout
/// renamed, the transcript beside a file that is neither); `sessions` and `show` name each session's
/// agent.
#[test]
fn sessions_and_show_name_the_agent_of_each_imported_session() {
    let home = temp_dir("codex-import-agents");
    support::copy_captured_transcripts(&home.join(".claude"));
    let codex_home = home.join("elsewhere/codex");
    let day = codex_home.join("sessions/2026/12/07");
    fs::create_dir_all(&day).unwrap();
    fs::copy(captured().join(ROLLOUT), day.join("renamed.jsonl")).unwrap();
    // an empty `~/.codex/sessions`: with CODEX_HOME set, Codex's rollouts are not there
    fs::create_dir_all(home.join(".codex/sessions")).unwrap();
    let data = temp_dir("codex-import-agents-data");
    let said = import(&data, &[], None, &[("HOME", &home), ("CODEX_HOME", &codex_home)]);
    assert!(said.contains("sessions: 2,"), "{said}");

    let list = view(&data, &["sessions"]);
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..5], ["STARTED", "(UTC)", "SESSION", "AGENT", "PROJECT"], "{list}");
    let row = |sid: &str| list.lines().find(|l| l.contains(sid)).unwrap_or_else(|| panic!("{sid}:\n{list}"));
    assert_eq!(row(SESSION).split_whitespace().nth(3), Some("codex"), "{list}");
    assert_eq!(row(support::CAPTURED_SESSION).split_whitespace().nth(3), Some("claude-code"), "{list}");

    let codex = view(&data, &["show", SESSION]);
    assert_eq!(codex.lines().nth(1), Some("Coding agent: codex"), "{codex}");
    assert!(codex.contains("2 turns · 4 tool calls (1 failed)"), "{codex}");
    let claude = view(&data, &["show", support::CAPTURED_SESSION]);
    assert_eq!(claude.lines().nth(1), Some("Coding agent: claude-code"), "{claude}");
    let json: Value = serde_json::from_str(&view(&data, &["sessions", "--json"])).unwrap();
    let mut agents: Vec<&str> = json.as_array().unwrap().iter().map(|s| s["agent"].as_str().unwrap()).collect();
    agents.sort();
    assert_eq!(agents, ["claude-code", "codex"]);
}

/// A rollout is hostile input: here the captured one with, after its `session_meta`, a line one byte
/// over the line bound (64 MiB), lines that are not JSON objects, and lines that are but carry
/// nothing usable (an id of 10 KB, a usage record without a usage, a time that is no time). The
/// import takes what the file holds (the captured session's 12 spans, as from the clean file), says
/// how many lines it skipped, and holds one line at a time.
#[test]
fn a_hostile_rollout_imports_what_it_holds_in_bounded_memory() {
    let dir = temp_dir("codex-import-hostile");
    let path = dir.join(ROLLOUT);
    let lines = rollout_lines();
    let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    writeln!(f, "{}", lines[0]).unwrap();
    // one byte over the bound, the start of a JSON object that never ends
    let head = br#"{"timestamp":"2026-12-07T16:40:51.800Z","type":"response_item","payload":{"output":""#;
    f.write_all(head).unwrap();
    let over = 64 * 1024 * 1024 + 1 - head.len();
    for _ in 0..over / (1024 * 1024) {
        f.write_all(&[b'x'; 1024 * 1024]).unwrap();
    }
    f.write_all(&vec![b'x'; over % (1024 * 1024)]).unwrap();
    f.write_all(b"\n").unwrap();
    let long_id = "c".repeat(10_000);
    let garbage = [
        "not json".to_owned(),
        "[1,2]".to_owned(),
        "\u{1b}]0;title\u{7}".to_owned(),
        "{\"type\":".to_owned(),
        format!(r#"{{"timestamp":"2026-12-07T16:40:51.900Z","type":"response_item","payload":{{"type":"function_call","name":"exec_command","arguments":"{{}}","call_id":"{long_id}"}}}}"#),
        r#"{"timestamp":"2026-12-07T16:40:51.900Z","type":"token_usage_record","payload":{"response_id":"r","usage":7}}"#.to_owned(),
        r#"{"timestamp":1e306,"type":"event_msg","payload":{"type":"task_started","turn_id":"t-x"}}"#.to_owned(),
        "{}".to_owned(),
    ];
    for (i, line) in lines.iter().enumerate().skip(1) {
        writeln!(f, "{line}").unwrap();
        if let Some(g) = garbage.get(i - 1) {
            writeln!(f, "{g}").unwrap();
        }
    }
    f.write_all(&[0xff, 0xfe, b'\n']).unwrap();
    drop(f);

    let clean = temp_dir("codex-import-clean");
    let said = import(&clean, &[captured().join(ROLLOUT).to_str().unwrap()], None, &[]);
    assert!(said.contains("spans sent: 12,") && !said.contains("lines skipped"), "{said}");
    let data = temp_dir("codex-import-hostile-data");
    let mut cmd = Command::new(BIN);
    cmd.arg("import").arg(&path).env("HOOKTEL_DATA_DIR", &data).env("HOOKTEL_RETENTION_DAYS", "36500");
    support::without_inherited_settings(&mut cmd);
    let (out, peak) = support::run_sampled(&mut cmd, Duration::from_secs(120));
    let out = out.expect("import did not finish");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("sessions: 1,") && said.contains("spans sent: 12,"), "{said}");
    // the line over the bound, four that are not JSON objects, and the last one (not UTF-8)
    assert!(said.contains("session log lines skipped (longer than 64 MiB, or not a JSON object): 6"), "{said}");
    // one line at a time: the line over the bound is never held twice
    // (the line is read up to the bound before it is known to pass it: 85 MiB here; two copies of it
    // would be over 128)
    assert!(peak < 128.0, "import of a 64 MiB line peaked at {peak:.0} MiB");
    let stored = |data: &Path| {
        let conn = rusqlite::Connection::open(data.join("local.db")).unwrap();
        let mut q = conn
            .prepare("SELECT span_id, parent_id, name, status, status_message FROM spans ORDER BY span_id")
            .unwrap();
        q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
    };
    assert_eq!(stored(&data), stored(&clean), "the same spans as from the clean rollout");
}

/// What the import keys its spans by is what the hooks key the live ones by, in the captured session:
/// every `tool_use_id` of the hooks is a `call_id` of the rollout's calls (and the other way round),
/// every hook's `turn_id` a `turn_id` of its turns; and the same file always gives the same spans.
#[test]
fn the_rollouts_keys_are_the_hooks_and_the_import_is_stable() {
    use hooktel::backfill::rollouts::session_from_rollout;
    use hooktel::model::ids::{span_id, SpanKey};
    let field = |v: &Value, k: &str| v[k].as_str().map(str::to_owned);
    let hooks: Vec<Value> = fs::read_to_string(captured().join("hooks.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut tool_use_ids: Vec<String> = hooks.iter().filter_map(|h| field(h, "tool_use_id")).collect();
    tool_use_ids.sort();
    tool_use_ids.dedup();
    let mut call_ids: Vec<String> = rollout_lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["payload"]["type"] == "function_call")
        .filter_map(|l| field(&l["payload"], "call_id"))
        .collect();
    call_ids.sort();
    assert_eq!(tool_use_ids, call_ids);
    assert_eq!(call_ids, ["call_1_0", "call_1_1", "call_2_0", "call_4_0"]);

    let import = || {
        session_from_rollout(
            &captured().join(ROLLOUT),
            &hooktel::usage::pricing::PriceTable::builtin(),
            hooktel::model::capture::Capture::Metadata,
            &hooktel::model::ModelEndpoint::default(),
        )
        .unwrap()
    };
    let s = import();
    assert_eq!(s.session_id, SESSION);
    let ids: Vec<_> = s.spans.iter().map(|r| r.span_id).collect();
    for id in &call_ids {
        assert!(ids.contains(&span_id(SESSION, SpanKey::Tool, id)), "{id}");
    }
    for turn in hooks.iter().filter_map(|h| field(h, "turn_id")) {
        assert!(ids.contains(&span_id(SESSION, SpanKey::Turn, &turn)), "{turn}");
    }
    let again = import();
    assert_eq!((s.spans, s.usage), (again.spans, again.usage));
}

/// A subagent's rollout (a `spawn_agent` thread: `thread_source: "subagent"`) is no session of its
/// own: importing a directory that holds one imports its parent's session and says the subagent's
/// rollout was skipped, rather than inventing a session with the thread's id.
#[test]
fn a_subagents_rollout_is_not_imported_as_a_session() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex/subagent-0.171.0");
    let dir = temp_dir("codex-import-subagent");
    for f in fs::read_dir(&fixture).unwrap().map(|e| e.unwrap().path()) {
        if f.file_name().unwrap().to_string_lossy().starts_with("rollout-") {
            fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    let data = temp_dir("codex-import-subagent-data");
    let receiver = Receiver::start(Protocol::Http);
    let said = import(&data, &[dir.to_str().unwrap()], Some(&receiver), &[]);
    assert!(said.contains("sessions: 1,") && said.contains("Codex subagents' rollouts skipped: 1"), "{said}");
    assert!(!said.contains("not imported"), "{said}");
    let spans =
        receiver.wait_for(Duration::from_secs(10), "the parent's session", |s| s.iter().any(|s| s.parent.is_empty()));
    assert!(spans.iter().all(|s| s.trace_id == "01a25206ac287a30a79f6f883b1aa847"), "only the parent's trace");
    assert!(
        spans.iter().any(|s| s.name == "execute_tool spawn_agent"),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}
