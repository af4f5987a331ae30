//! Outages during a real Claude Code session, end to end: the pinned CLI runs the mock API's scripted
//! scenario (`tests/e2e/mock_api.py`: Bash, a failing Bash, Write, Read, two tools in parallel, Edit, an
//! `Agent` subagent) with `hooktel hook` as the command hook of every event, while
//! 1. the OTLP collector refuses every export: the sidecar keeps the spans in its export spool and, once
//!    the collector answers again, delivers each of them exactly once;
//! 2. no sidecar runs at all: the hooks spool the events into `<data dir>/spool.db` without hurting the
//!    CLI, and a sidecar started afterwards drains them into the trace, with the times the hooks fired.
//!
//! Either way the trace is checked against the transcripts the CLI wrote: one root, no dangling parent,
//! no span id twice, one `execute_tool {name}` span per tool call that ran, the subagent under the `Agent`
//! call that spawned it, and no span more than that.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support;
use crate::support::claude::{claude_bin, shell_quote, write_settings, AgentMeta, Cli, Mock, Scratch, Transcript};
use crate::support::{assert_tree, wait_until, Protocol, Receiver, Sidecar, Span};
use serde_json::Value;

const MAIN_PROMPT: &str = "Run the scripted scenario.";
/// How long the trace may take to come out once the outage is over. The export spool probes the
/// collector with backoff (1 s, doubling), so the next probe can be several seconds away.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(45);
const EXPORT_SPOOL_ITEMS: &str = r#"hooktel_spool_items{spool="export"}"#;

/// One finished run of the scenario.
pub(crate) struct Run {
    pub(crate) session: String,
    pub(crate) transcript: Transcript,
    /// How many times the CLI ran `hooktel hook`, by event (from its debug log).
    hook_runs: BTreeMap<String, usize>,
    /// The wall-clock window of the CLI process, in Unix nanoseconds.
    started_ns: u64,
    ended_ns: u64,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Run `claude -p MAIN_PROMPT` to its end with its hooks reporting to `addr` and spooling into `data_dir`;
/// the CLI must succeed, its stream-json output intact and ending in a successful `result`.
pub(crate) fn run_scenario(scratch: &Scratch, addr: String, data_dir: PathBuf) -> Run {
    run_scenario_with(scratch, addr, data_dir, &[])
}

/// [`run_scenario`] with more environment for the CLI.
pub(crate) fn run_scenario_with(scratch: &Scratch, addr: String, data_dir: PathBuf, env: &[(&str, &str)]) -> Run {
    let home = scratch.dir("home");
    write_settings(&home);
    let work = scratch.dir("work");
    fs::write(work.join("CLAUDE.md"), "# Project notes\nA throwaway project for hooktel's outage tests.\n").unwrap();
    let mock = Mock::start(scratch, "main", &work);
    let cli = Cli { bin: claude_bin(), scratch, home: home.clone(), addr, data_dir };
    let started_ns = now_ns();
    let finished = cli.spawn_with("main", &work, &mock, &["-p", MAIN_PROMPT], env).wait();
    let ended_ns = now_ns();
    let session = finished.expect_exit(0).session_id();
    // the hooks never wrote into the CLI's output: every line is a stream-json message, every result a success
    let messages: Vec<Value> = finished
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not stream-json ({e}): {l}")))
        .collect();
    let results: Vec<&Value> = messages.iter().filter(|m| m["type"] == "result").collect();
    assert!(!results.is_empty(), "no `result` message in the CLI's output");
    for result in results {
        assert_eq!(result["subtype"], "success", "the CLI's result: {result}");
        assert_eq!(result["is_error"], false, "the CLI's result: {result}");
        assert_eq!(result["session_id"].as_str(), Some(session.as_str()), "the session of the result");
    }
    let transcript = Transcript::read(&home.join(".claude/projects"), &session);
    assert!(!transcript.agents.is_empty(), "the script's subagent is missing from the transcripts of {session}");
    assert!(
        transcript.results.values().any(|r| r.never_ran),
        "the script's unknown tool call is missing from the transcripts of {session}"
    );
    let hook_runs = hook_runs(&scratch.path().join("debug.main.log"));
    Run { session, transcript, hook_runs, started_ns, ended_ns }
}

/// The runs of `hooktel hook` in the CLI's debug log, by event; each must have exited 0
/// (`Hooks: PreToolUse:Bash ['…/hooktel' hook] finished with status 0 (40ms)`,
/// `InstructionsLoaded:session_start ['…/hooktel' hook] completed with status 0`).
fn hook_runs(debug_log: &Path) -> BTreeMap<String, usize> {
    let command = format!("[{} hook]", shell_quote(support::BIN));
    let log = fs::read_to_string(debug_log).unwrap_or_else(|e| panic!("{}: {e}", debug_log.display()));
    let mut runs = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(&command)) {
        let status = line.split("with status ").nth(1).and_then(|s| s.split_whitespace().next());
        assert_eq!(status, Some("0"), "a hook run did not exit 0: {line}");
        let what = line.split("] ").nth(1).unwrap_or_default();
        let event = what.trim_start_matches("Hooks: ").split([':', ' ']).next().unwrap_or_default();
        *runs.entry(event.to_owned()).or_default() += 1;
    }
    assert!(runs.contains_key("PreToolUse"), "no run of `hooktel hook` in {}", debug_log.display());
    runs
}

/// The hex trace id of a session: its UUID without dashes.
fn trace_of(session: &str) -> String {
    session.replace('-', "").to_ascii_lowercase()
}

/// The trace of `run` arrived whole and each span once: nothing else in the receiver, one root, no
/// dangling parent, no span id twice, no span closed as incomplete (a lost closing event), one turn, one
/// `execute_tool` span per tool call that ran, the subagent under its `Agent` call, its tools under it.
fn check_trace(spans: &[Span], run: &Run) {
    let (session, t) = (run.session.as_str(), &run.transcript);
    let trace = trace_of(session);
    let strays: Vec<_> = spans.iter().filter(|s| s.trace_id != trace).map(|s| (&s.name, &s.trace_id)).collect();
    assert!(strays.is_empty(), "spans outside the session's trace: {strays:?}");
    assert_tree(spans, &trace);
    for s in spans {
        assert_eq!(s.attr("session.id"), Some(session), "session.id of {}", s.name);
        assert_ne!(s.attr("hooktel.incomplete"), Some("true"), "{} ({}) closed as incomplete", s.name, s.span_id);
    }
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.name, "claude-code session", "the root");
    let turns: Vec<&Span> = spans.iter().filter(|s| s.name == "invoke_agent claude-code").collect();
    let prompts: BTreeSet<&str> = turns.iter().map(|s| s.attr("hooktel.prompt.id").unwrap_or_default()).collect();
    assert_eq!(prompts, t.prompt_ids.iter().map(String::as_str).collect(), "the turns' prompt ids vs the transcript's");
    assert_eq!(turns.len(), t.prompt_ids.len(), "one turn per prompt");
    for turn in &turns {
        assert_eq!(turn.parent, root.span_id, "turn {} hangs under the root", turn.span_id);
        assert_eq!(turn.attr("hooktel.turn.outcome"), Some("stop"), "the outcome of turn {}", turn.span_id);
    }
    let turn_ids: BTreeSet<&str> = turns.iter().map(|s| s.span_id.as_str()).collect();

    // one execute_tool span per tool call that ran, named after its tool, failed where the call failed
    let ran = t.ran();
    let tools: Vec<&Span> = spans.iter().filter(|s| s.name.starts_with("execute_tool ")).collect();
    let mut per_call: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in &tools {
        per_call.entry(s.attr("gen_ai.tool.call.id").unwrap_or_default()).or_default().push(s);
    }
    let twice: Vec<_> = per_call.iter().filter(|(_, v)| v.len() > 1).map(|(id, v)| (id, v.len())).collect();
    assert!(twice.is_empty(), "tool calls with more than one span: {twice:?}");
    let expected: BTreeSet<&str> = ran.keys().copied().collect();
    let actual: BTreeSet<&str> = per_call.keys().copied().collect();
    assert_eq!(actual, expected, "tool spans (by gen_ai.tool.call.id) vs the transcript's tool calls that ran");
    for s in &tools {
        let id = s.attr("gen_ai.tool.call.id").unwrap();
        assert_eq!(s.name, format!("execute_tool {}", ran[id].name), "the span of call {id}");
        assert_eq!(
            s.status == 2,
            t.results[id].is_error,
            "{} {id}: span status {} vs is_error in the transcript",
            s.name,
            s.status
        );
        if ran[id].agent.is_none() {
            assert!(turn_ids.contains(s.parent.as_str()), "{} {id} hangs under {}, not a turn", s.name, s.parent);
        }
    }
    assert!(tools.iter().any(|s| s.status == 2), "the script's failing Bash call has no failed span");

    // the subagent under the Agent call that spawned it, its tool calls under it
    let subagents: Vec<&Span> =
        spans.iter().filter(|s| s.name.starts_with("invoke_agent ") && s.name != "invoke_agent claude-code").collect();
    assert_eq!(subagents.len(), t.agents.len(), "one subagent span per subagents/agent-*.meta.json");
    for AgentMeta { id: agent, agent_type, tool_use_id: spawner } in &t.agents {
        let sub = subagents
            .iter()
            .find(|s| s.attr("gen_ai.agent.id") == Some(agent.as_str()))
            .unwrap_or_else(|| panic!("no span for subagent {agent}"));
        assert_eq!(sub.name, format!("invoke_agent {agent_type}"), "the span of subagent {agent}");
        let call = per_call.get(spawner.as_str()).unwrap_or_else(|| panic!("no span for the Agent call {spawner}"));
        assert_eq!(call[0].name, "execute_tool Agent", "the call that spawned subagent {agent}");
        assert_eq!(sub.parent, call[0].span_id, "subagent {agent} hangs under the Agent call {spawner}");
        let its_calls: Vec<&str> =
            ran.iter().filter(|(_, c)| c.agent.as_deref() == Some(agent.as_str())).map(|(id, _)| *id).collect();
        assert!(!its_calls.is_empty(), "the script's subagent {agent} made no tool call");
        for id in its_calls {
            assert_eq!(per_call[id][0].parent, sub.span_id, "call {id} of subagent {agent} hangs under it");
        }
    }

    // and nothing else: the root, the turns, the tool calls, the subagents
    assert_eq!(
        spans.len(),
        expected_spans(run),
        "spans received: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

/// The spans of the session: the root, one turn per prompt, one per tool call that ran, one per
/// subagent, one per API response.
pub(crate) fn expected_spans(run: &Run) -> usize {
    let t = &run.transcript;
    1 + t.prompt_ids.len() + t.ran().len() + t.agents.len() + t.responses().len()
}

/// How many spans the export spool `<data_dir>/hooktel.db` holds.
fn export_spooled(data: &Path) -> usize {
    let conn = rusqlite::Connection::open(data.join("hooktel.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let n: i64 = conn.query_row("SELECT coalesce(sum(spans), 0) FROM export_spool", [], |r| r.get(0)).unwrap_or(0);
    n as usize
}

/// `hooktel_hook_events_total`, by event.
fn events_ingested(sidecar: &Sidecar) -> BTreeMap<String, usize> {
    let prefix = "hooktel_hook_events_total{event=\"";
    sidecar
        .metrics()
        .lines()
        .filter_map(|l| {
            let (event, value) = l.strip_prefix(prefix)?.split_once("\"} ")?;
            Some((event.to_owned(), value.trim().parse::<f64>().ok()? as usize))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The sum of a metric over its labels.
fn metric_sum(sidecar: &Sidecar, name: &str) -> f64 {
    let prefix = format!("{name}{{");
    sidecar
        .metrics()
        .lines()
        .filter(|l| l.starts_with(&prefix) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Wait until the sidecar has exported as many spans as the receiver holds (nothing in flight), then a
/// little longer: a batch delivered twice (replayed after it was already taken) would show up by then.
fn settle(sidecar: &Sidecar, receiver: &Receiver) -> Vec<Span> {
    wait_until(Duration::from_secs(10), "the exported spans to reach the receiver", || {
        sidecar.metric("hooktel_spans_exported_total") as usize == receiver.spans().len()
    });
    // not a wait for work to finish (the conditions above hold already): room for a duplicate to arrive
    std::thread::sleep(Duration::from_millis(1000));
    receiver.spans()
}

/// Run `test`; on failure print the sidecar's log, its metrics and the spans received, then fail.
fn with_diagnostics(sidecar: impl Fn() -> Option<(String, String)>, receiver: &Receiver, test: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(test)) {
        if let Some((log, metrics)) = sidecar() {
            eprintln!("---- hooktel serve log ----\n{log}");
            let samples: Vec<&str> =
                metrics.lines().filter(|l| l.starts_with("hooktel_") && !l.contains("_bucket{")).collect();
            eprintln!("---- hooktel metrics ----\n{}", samples.join("\n"));
        }
        eprintln!("---- spans received (span, parent, status, start, end, name, call id, agent id) ----");
        let mut spans = receiver.spans();
        spans.sort_by_key(|s| s.start_ns);
        for s in &spans {
            eprintln!(
                "{} {:16} {} {:.3} {:.3} {} {} {}",
                s.span_id,
                s.parent,
                s.status,
                s.start_ns as f64 / 1e9,
                s.end_ns as f64 / 1e9,
                s.name,
                s.attr("gen_ai.tool.call.id").unwrap_or("-"),
                s.attr("gen_ai.agent.id").unwrap_or("-"),
            );
        }
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn collector_refusing_during_a_real_session_then_recovering() {
    let _cli = crate::support::claude::one_cli_at_a_time();
    let started = Instant::now();
    let scratch = Scratch::new();
    let receiver = Receiver::start(Protocol::Http);
    receiver.refuse_next(usize::MAX);
    let data = scratch.dir("data");
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_DATA_DIR", data.to_str().unwrap())]);
    let diagnostics = || Some((sidecar.log(), sidecar.metrics()));
    with_diagnostics(diagnostics, &receiver, || {
        let run = run_scenario(&scratch, sidecar.addr.to_string(), data.clone());
        let trace = trace_of(&run.session);

        // the session ended at the sidecar; all of its spans went to the export spool, none to the collector
        let expected = expected_spans(&run);
        wait_until(Duration::from_secs(15), "the session closed and all its spans in the export spool", || {
            sidecar.metric(r#"hooktel_hook_events_total{event="SessionEnd"}"#) >= 1.0
                && sidecar.metric("hooktel_sessions_active") == 0.0
                && sidecar.metric(EXPORT_SPOOL_ITEMS) > 0.0
                && export_spooled(&data) >= expected
        });
        assert_eq!(export_spooled(&data), expected, "spans in the export spool (hooktel.db)");
        assert_eq!(events_ingested(&sidecar), run.hook_runs, "events ingested vs the CLI's runs of `hooktel hook`");
        assert!(metric_sum(&sidecar, "hooktel_export_failures_total") > 0.0, "export failures counted");
        assert!(receiver.requests() > 0, "the collector was asked");
        assert!(receiver.spans().is_empty(), "the refusing collector took spans");
        assert_eq!(metric_sum(&sidecar, "hooktel_spans_dropped_total"), 0.0, "spans dropped during the outage");

        // the collector answers again: the spool is replayed, the root comes out, the spool empties
        receiver.refuse_next(0);
        receiver.wait_for(RECOVERY_TIMEOUT, "the session's root after the collector recovered", |s| {
            s.iter().any(|s| s.trace_id == trace && s.parent.is_empty())
        });
        wait_until(Duration::from_secs(15), "the export spool emptied", || {
            sidecar.metric(EXPORT_SPOOL_ITEMS) == 0.0 && sidecar.metrics().contains("\nhooktel_spool_events 0\n")
        });
        let spans = settle(&sidecar, &receiver);
        check_trace(&spans, &run);
        assert_eq!(metric_sum(&sidecar, "hooktel_spans_dropped_total"), 0.0, "spans dropped");
        assert_eq!(sidecar.metric(EXPORT_SPOOL_ITEMS), 0.0, "the export spool after the replay");
    });
    eprintln!("e2e_outages: collector outage took {:.1} s", started.elapsed().as_secs_f64());
}

/// An address nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The rows of `<data_dir>/spool.db`: (firing time in Unix ns, payload).
fn spooled(data: &Path) -> Vec<(u64, Value)> {
    let file = data.join("spool.db");
    assert!(file.is_file(), "no hook spool at {}", file.display());
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn.prepare("SELECT received_at, body FROM hook_events ORDER BY received_at, id").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))).unwrap();
    rows.map(|r| {
        let (at, body) = r.unwrap();
        let payload = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("a spooled body is not JSON ({e}): {}", String::from_utf8_lossy(&body)));
        (at as u64, payload)
    })
    .collect()
}

#[test]
fn sidecar_down_during_a_real_session_then_started() {
    let _cli = crate::support::claude::one_cli_at_a_time();
    let started = Instant::now();
    let scratch = Scratch::new();
    let receiver = Receiver::start(Protocol::Http);
    let data = scratch.dir("data");
    let sidecar: std::cell::OnceCell<Sidecar> = std::cell::OnceCell::new();
    let diagnostics = || sidecar.get().map(|s| (s.log(), s.metrics()));
    with_diagnostics(diagnostics, &receiver, || {
        // nothing listens at the hooks' address during the whole session
        let run = run_scenario(&scratch, closed_port(), data.clone());
        let in_window = |ns: u64| run.started_ns <= ns && ns <= run.ended_ns;

        // the hooks spooled the session's events, stamped when they fired
        let rows = spooled(&data);
        let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
        for (at, payload) in &rows {
            assert_eq!(payload["session_id"].as_str(), Some(run.session.as_str()), "session of {payload}");
            assert!(in_window(*at), "spooled event fired at {at}, outside the CLI run: {payload}");
            *by_event.entry(payload["hook_event_name"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
        assert_eq!(by_event, run.hook_runs, "events spooled vs the CLI's runs of `hooktel hook`");
        let count = |e: &str| by_event.get(e).copied().unwrap_or(0);
        // and they are the session's: its prompts, its tool calls and subagents, its start and end
        let ran = run.transcript.ran().len();
        assert_eq!(count("SessionStart"), 1, "spooled SessionStart events: {by_event:?}");
        let prompts = run.transcript.prompt_ids.len();
        assert_eq!(count("UserPromptSubmit"), prompts, "spooled UserPromptSubmit events: {by_event:?}");
        assert_eq!(count("Stop"), prompts, "spooled Stop events: {by_event:?}");
        assert_eq!(count("PreToolUse"), ran, "spooled PreToolUse events vs tool calls that ran: {by_event:?}");
        assert_eq!(
            count("PostToolUse") + count("PostToolUseFailure"),
            ran,
            "spooled PostToolUse(Failure) events vs tool calls that ran: {by_event:?}"
        );
        let agents = run.transcript.agents.len();
        assert_eq!(count("SubagentStart"), agents, "spooled SubagentStart events: {by_event:?}");
        assert_eq!(count("SubagentStop"), agents, "spooled SubagentStop events: {by_event:?}");
        assert_eq!(count("SessionEnd"), 1, "spooled SessionEnd events: {by_event:?}");

        // the sidecar starts on that data directory and drains the spool into the trace
        let sidecar =
            sidecar.get_or_init(|| Sidecar::start(Some(&receiver), &[("HOOKTEL_DATA_DIR", data.to_str().unwrap())]));
        let trace = trace_of(&run.session);
        receiver.wait_for(Duration::from_secs(20), "the session's root from the drained spool", |s| {
            s.iter().any(|s| s.trace_id == trace && s.parent.is_empty())
        });
        wait_until(Duration::from_secs(10), "the hook spool drained", || {
            spooled(&data).is_empty() && sidecar.metrics().contains("\nhooktel_spool_events 0\n")
        });
        let spans = settle(sidecar, &receiver);
        check_trace(&spans, &run);
        assert_eq!(events_ingested(sidecar), run.hook_runs, "events ingested from the spool vs the hook runs");

        // the spans carry the times the hooks fired, not the time of the drain
        for s in &spans {
            assert!(
                in_window(s.start_ns) && in_window(s.end_ns),
                "{} ({}) spans {}..{}, outside the CLI run {}..{}",
                s.name,
                s.span_id,
                s.start_ns,
                s.end_ns,
                run.started_ns,
                run.ended_ns
            );
        }
        for s in spans.iter().filter(|s| s.name.starts_with("execute_tool ")) {
            assert!(s.start_ns < s.end_ns, "{} ({}) starts at {}, ends at {}", s.name, s.span_id, s.start_ns, s.end_ns);
        }
        assert!(spooled(&data).is_empty(), "the hook spool after the drain");
    });
    eprintln!("e2e_outages: sidecar outage took {:.1} s", started.elapsed().as_secs_f64());
}
