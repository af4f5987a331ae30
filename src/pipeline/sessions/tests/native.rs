//! Tests of Claude Code's own telemetry in a session: model calls timed exactly, tool calls given
//! their permission decision, wait and execution time, failed API calls as events and a failed
//! turn's ERROR chat span, the bound on what a session holds of it, and telemetry for a session not
//! held.

use super::*;
use crate::model::event::Kind;
use crate::model::ids::SpanKey;
use crate::model::span::Status;
use crate::pipeline::sessions::state::{MAX_NATIVE, MAX_WAITING};
use crate::pipeline::sessions::Ingested;
use crate::testdata::CAPTURED;
use crate::usage::accountant::SessionUsage;

/// Claude Code's own `api_request` events time each chat span exactly (it ends at the event and
/// lasts its `duration_ms`), whether they come before the transcript is read or after; the time
/// to the first token and the try are attributes; usage stays the transcript's.
#[test]
fn native_telemetry_times_the_model_calls() {
    use crate::model::otlp::Signal;
    use crate::testdata::{captured_deltas, captured_native, CAPTURED_AT};
    for native_first in [false, true] {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        for (i, p) in CAPTURED.iter().enumerate() {
            let at = CAPTURED_AT + i as u64 * 200 * MS;
            s.ingest(event(&serde_json::from_str(p).unwrap(), at), at, &mut out);
        }
        let natives: Vec<Event> = captured_native(Capture::Metadata, Signal::Logs)
            .into_iter()
            .filter(|e| matches!(e.kind, Kind::ModelCall(_)))
            .collect();
        assert_eq!(natives.len(), 5);
        let usage = |s: &mut Sessions| {
            for delta in captured_deltas() {
                s.add_usage(&SessionUsage { session_id: S1.into(), delta }, CAPTURED_AT);
            }
        };
        if !native_first {
            usage(&mut s);
        }
        for ev in natives.clone() {
            let at = ev.at;
            assert_eq!(s.ingest(ev, at, &mut out), Ingested::Accepted);
        }
        if native_first {
            usage(&mut s);
        }
        s.tick(u64::MAX / 2, &mut out);
        let chats: Vec<&SpanRecord> = out.iter().filter(|r| r.key == SpanKey::Chat).collect();
        assert_eq!(chats.len(), 5, "native first: {native_first}");
        for ev in &natives {
            let Kind::ModelCall(call) = &ev.kind else { panic!("{:?}", ev.kind) };
            let rid = call.request_id.as_deref().unwrap();
            let chat = chats.iter().find(|c| c.attr("hooktel.api.request_id").as_deref() == Some(rid)).unwrap();
            assert_eq!((chat.start, chat.end), (ev.at - call.duration_ms * MS, ev.at), "{rid}");
            assert_eq!(chat.attr("hooktel.api.attempt").as_deref(), Some("1"));
            assert!(chat.attr("gen_ai.response.time_to_first_chunk").is_some());
            assert!(chat.usage.as_ref().is_some_and(|u| u.tokens.output > 0), "usage from the transcript");
        }
    }
}

/// Claude Code's tool reports put each tool call's permission decision, wait and execution time
/// on its span: from the beta trace spans exactly (a `tool.blocked_on_user` found through its
/// parent `claude_code.tool` span, which the captured export sends in a later batch for the
/// `Agent` call), from the log events otherwise; its metrics give the root its counters. In any
/// order of arrival.
#[test]
fn native_telemetry_times_the_tool_calls() {
    use crate::model::otlp::Signal;
    use crate::testdata::{captured_native, CAPTURED_AT};
    for signals in [[Signal::Traces, Signal::Logs, Signal::Metrics], [Signal::Metrics, Signal::Logs, Signal::Traces]] {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        for (i, p) in CAPTURED.iter().enumerate() {
            let at = CAPTURED_AT + i as u64 * 200 * MS;
            s.ingest(event(&serde_json::from_str(p).unwrap(), at), at, &mut out);
        }
        let mut natives: Vec<Event> = signals.iter().flat_map(|sig| captured_native(Capture::Metadata, *sig)).collect();
        if signals[0] == Signal::Metrics {
            natives.reverse();
        }
        for ev in natives {
            let at = ev.at;
            assert_eq!(s.ingest(ev, at, &mut out), Ingested::Accepted);
        }
        s.tick(u64::MAX / 2, &mut out);
        let tool = |id: &str| out.iter().find(|r| r.attr("gen_ai.tool.call.id").as_deref() == Some(id)).unwrap();
        // (tool_use_id, exact wait of its tool.blocked_on_user, execution of its tool.execution)
        for (id, wait, execution) in [
            ("toolu_01Mock15235482140", "8", "962"),
            ("toolu_01Mock25235482140", "21", "64"),
            ("toolu_01Mock15235482513", "22", "16"),
            ("toolu_01Mock05235483479", "16", "27"),
        ] {
            let span = tool(id);
            assert_eq!(span.attr("hooktel.tool.permission_wait_ms").as_deref(), Some(wait), "{id} {signals:?}");
            assert_eq!(span.attr("hooktel.tool.execution_ms").as_deref(), Some(execution), "{id}");
            assert_eq!(span.attr("hooktel.tool.decision").as_deref(), Some("accept"), "{id}");
            assert_eq!(span.attr("hooktel.tool.decision_source").as_deref(), Some("config"), "{id}");
        }
        let root = out.iter().find(|r| r.key == SpanKey::Root).unwrap();
        assert_eq!(root.attr("hooktel.session.active_time.cli_s").as_deref(), Some("2.006"));
        // Claude Code's own spans are folded in, never exported
        assert!(out.iter().all(|r| !r.name.starts_with("claude_code.")));
    }
}

/// Without the beta traces, the log events alone: the decision, the execution time, and the
/// wait from the call's start to the decision.
#[test]
fn tool_decision_logs_give_the_wait_since_the_call_started() {
    let start = crate::testdata::CAPTURED_AT;
    let payloads = [
        (tool("PreToolUse", "toolu_1", json!({})), start),
        (
            json!({"session_id": S1, "hook_event_name": "claude_code.tool_decision", "tool_use_id": "toolu_1",
                   "decision": "accept", "decision_source": "user_temporary"}),
            start + 4_250 * MS,
        ),
        (tool("PostToolUse", "toolu_1", json!({"duration_ms": 40})), start + 4_300 * MS),
        (
            json!({"session_id": S1, "hook_event_name": "claude_code.tool_result", "tool_use_id": "toolu_1",
                   "duration_ms": "41"}),
            start + 4_300 * MS,
        ),
    ];
    let spans = run(&payloads);
    let span = named(&spans, "execute_tool Bash")[0];
    assert_eq!(span.attr("hooktel.tool.permission_wait_ms").as_deref(), Some("4250"));
    assert_eq!(span.attr("hooktel.tool.execution_ms").as_deref(), Some("41"));
    assert_eq!(span.attr("hooktel.tool.decision_source").as_deref(), Some("user_temporary"));
}

/// A failed try is an `api_error` event on its turn; the last one of a turn that failed becomes
/// a chat span in ERROR with the error's text, whichever of the two arrives first.
#[test]
fn failed_api_calls_are_events_and_a_failed_turn_gets_an_error_chat_span() {
    for error_first in [true, false] {
        let prompt = simple("UserPromptSubmit", json!({"prompt_id": "p1"}));
        let err = |attempt: u64, rid: &str| {
            simple(
                "claude_code.api_error",
                json!({"prompt_id": "p1", "request_id": rid, "model": "claude-x",
                "attempt": attempt, "duration_ms": 300, "error": "Overloaded\nSECRET", "status_code": "529"}),
            )
        };
        let failure = simple(
            "StopFailure",
            json!({"prompt_id": "p1", "error": "server_error",
            "last_assistant_message": "API Error: 529 Overloaded"}),
        );
        let mut events =
            vec![(simple("SessionStart", json!({})), 10 * MS), (prompt, 20 * MS), (err(1, "r1"), 500 * MS)];
        let last = (err(2, "r2"), 1_500 * MS);
        if error_first {
            events.extend([last, (failure, 1_600 * MS)]);
        } else {
            events.extend([(failure, 1_600 * MS), last]);
        }
        let out = run(&events);
        let turn = out.iter().find(|r| r.key == SpanKey::Turn).unwrap();
        assert_eq!(turn.events.iter().filter(|e| e.name == "api_error").count(), 2, "error first: {error_first}");
        let failed: Vec<&SpanRecord> = out.iter().filter(|r| r.key == SpanKey::Chat).collect();
        assert_eq!(failed.len(), 1, "only the try that failed for good");
        let chat = failed[0];
        assert_eq!(chat.status, Status::Error("Overloaded".into()), "first line, as the capture level lets out");
        assert_eq!(chat.parent, Some(turn.span_id));
        assert_eq!((chat.start, chat.end), (1_200 * MS, 1_500 * MS));
        assert_eq!(chat.attr("hooktel.api.request_id").as_deref(), Some("r2"));
    }
}

/// What a session holds of Claude Code's telemetry is bounded: reports of requests whose response
/// never comes (a flood of made-up request ids, of failed tries of made-up prompts, of waits for
/// tool spans never reported) stop at `MAX_WAITING` each, what ties spans together at `MAX_NATIVE`.
#[test]
fn telemetry_held_per_session_is_bounded() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    s.ingest(event(&simple("SessionStart", json!({})), MS), MS, &mut out);
    for i in 0..MAX_NATIVE as u64 + 500 {
        let ok = simple("claude_code.api_request", json!({"request_id": format!("r{i}"), "duration_ms": 5}));
        let err = simple("claude_code.api_error", json!({"prompt_id": format!("p{i}"), "error": "x"}));
        // a permission wait for a tool span never reported, and a tool span of a call never seen
        let wait = simple("claude_code.tool_decision", json!({"otel_tool_span": format!("{i:016x}"), "wait_ms": 3}));
        let tool = simple(
            "claude_code.tool",
            json!({"otel_tool_span": format!("{:016x}", (i + 1) << 40), "tool_use_id": format!("t{i}")}),
        );
        for p in [ok, err, wait, tool] {
            assert_eq!(s.ingest(event(&p, 2 * MS), 2 * MS, &mut out), Ingested::Accepted);
        }
    }
    let native = &s.live[S1].native;
    assert_eq!((native.pending.len(), native.failed_try.len()), (MAX_WAITING, MAX_WAITING));
    assert_eq!((native.waits.len(), native.tool_by_span.len()), (MAX_WAITING, MAX_NATIVE));
}

/// Telemetry never opens or resumes a session: for a session not held, it is late.
#[test]
fn native_events_of_an_unknown_session_are_late() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let ev = event(&simple("claude_code.api_request", json!({"request_id": "r", "duration_ms": 5})), 5 * MS);
    assert_eq!(s.ingest(ev, 5 * MS, &mut out), Ingested::Late);
    assert_eq!(s.active(), 0);
}

/// How long a tool span (model calls wait alike) closed at `closed` waits before it is handed out,
/// in a session opened with `start` (its fields), which got a batch of telemetry of each delay in
/// `batches` before, with the receiver on (`expected`) or not; to 50 ms.
fn native_wait(start: Value, batches: &[u64], expected: bool) -> u64 {
    let settings = Settings { native_expected: expected, native_settle_ns: 3000 * MS, ..settings() };
    let mut s = Sessions::new(settings);
    let mut out = Vec::new();
    let t0 = 1_795_235_481_700 * MS;
    s.ingest(event(&simple("SessionStart", start), t0), t0, &mut out);
    for (i, delay) in batches.iter().enumerate() {
        let arrived = t0 + (i as u64 + 1) * 1000 * MS;
        let batch = event(&simple("claude_code.batch", json!({})), arrived - delay);
        assert_eq!(s.ingest(batch, arrived, &mut out), Ingested::Accepted);
    }
    let closed = t0 + 30_000 * MS;
    s.ingest(event(&tool("PreToolUse", "t1", json!({})), closed - 5 * MS), closed - 5 * MS, &mut out);
    s.ingest(event(&tool("PostToolUse", "t1", json!({})), closed), closed, &mut out);
    let mut now = closed;
    loop {
        s.tick(now, &mut out);
        if out.iter().any(|r| r.key == SpanKey::Tool) {
            return now - closed;
        }
        assert!(now < closed + 60_000 * MS, "never handed out");
        now += 50 * MS;
    }
}

/// A session's model and tool calls wait as long as its own batches of telemetry take to arrive
/// (the longest yet, plus a second), at least the native settle time (3 s) and 15 s at most;
/// before its first batch, 5 s and a second (Claude Code's default interval) when its hooks say
/// its telemetry is on, else the native settle time; with the receiver off and no telemetry, the
/// plain settle time.
#[test]
fn a_sessions_calls_wait_as_long_as_its_own_batches_take() {
    let none = json!({});
    let on = json!({"hooktel_native_telemetry": true});
    assert_eq!(native_wait(none.clone(), &[], true), 3000 * MS, "no telemetry yet: as before");
    assert_eq!(native_wait(none.clone(), &[], false), 100 * MS, "no receiver: the plain settle time");
    assert_eq!(native_wait(on.clone(), &[], true), 6000 * MS, "telemetry on: its first batch may take 5 s");
    assert_eq!(native_wait(on.clone(), &[], false), 100 * MS, "no receiver: nothing can come");
    assert_eq!(native_wait(none.clone(), &[5000 * MS], true), 6000 * MS, "learned: 5 s and a second");
    assert_eq!(native_wait(on.clone(), &[5000 * MS, 1200 * MS], true), 6000 * MS, "the longest batch counts");
    assert_eq!(native_wait(on.clone(), &[900 * MS], true), 3000 * MS, "1 s batches: the native settle time");
    assert_eq!(native_wait(none.clone(), &[7000 * MS], false), 8000 * MS, "seen without the receiver expected");
    assert_eq!(native_wait(none, &[90_000 * MS], true), 15_000 * MS, "bounded");
}

/// A batch of a session not held is late, as any telemetry is, and holds nothing.
#[test]
fn a_batch_of_an_unknown_session_is_late() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let ev = event(&simple("claude_code.batch", json!({})), 5 * MS);
    assert_eq!(ev.kind, Kind::TelemetryBatch);
    assert_eq!(s.ingest(ev, 5000 * MS, &mut out), Ingested::Late);
    assert_eq!(s.active(), 0);
}
