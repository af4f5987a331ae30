//! Tests of the session state machine. Here, what they share: hook payload builders (`simple`,
//! `tool`), an event from a payload (`event`), a run of payloads through the state machine (`run`),
//! captured agent-team runs (`team_events`, `team_run`), and checks on what comes out (`named`,
//! `assert_tree`). The tests themselves, by concern: `tree` (one session's span tree: pairing, order,
//! timeouts, bounds), `teams` (agent teams, teammates, tasks, forks), `native` (Claude Code's own
//! telemetry) and `reads` (spans waiting for the transcript reads their end asked for).

use std::collections::HashSet;

use opentelemetry::trace::SpanId;
use serde_json::{json, Value};

use super::{Sessions, Settings};
use crate::ingest::agents::claude_code::normalize;
use crate::model::capture::Capture;
use crate::model::event::Event;
use crate::model::span::SpanRecord;

mod gemini;
mod native;
mod reads;
mod teams;
mod tree;

const MS: u64 = 1_000_000;
const S1: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";

fn event(payload: &Value, at: u64) -> Event {
    normalize(payload.as_object().unwrap(), at, Capture::Metadata).unwrap()
}

fn settings() -> Settings {
    Settings { settle_ns: 100 * MS, idle_timeout_ns: 60_000 * MS, ..Settings::default() }
}

/// Feed (payload, firing time) pairs, all received at `now`, then let everything settle.
fn run(events: &[(Value, u64)]) -> Vec<SpanRecord> {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    for (p, at) in events {
        s.ingest(event(p, *at), *at, &mut out);
    }
    s.tick(u64::MAX / 2, &mut out);
    out
}

fn named<'a>(spans: &'a [SpanRecord], name: &str) -> Vec<&'a SpanRecord> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// One root, no dangling parent, no span twice.
fn assert_tree(spans: &[SpanRecord]) {
    let roots: Vec<_> = spans.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(roots.len(), 1, "roots: {roots:?}");
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    assert_eq!(ids.len(), spans.len(), "a span id handed out twice");
    for s in spans {
        if let Some(p) = s.parent {
            assert!(ids.contains(&p), "dangling parent of {}", s.name);
        }
    }
}

fn tool(event: &str, id: &str, extra: Value) -> Value {
    let mut p = json!({"session_id": S1, "hook_event_name": event, "prompt_id": "p1",
                       "tool_name": "Bash", "tool_use_id": id, "tool_input": {"command": "ls"}});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn simple(event: &str, extra: Value) -> Value {
    let mut p = json!({"session_id": S1, "hook_event_name": event, "prompt_id": "p1"});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn team_events(run: &str) -> Vec<Event> {
    crate::testdata::team_events(run)
}

fn team_run(run: &str) -> Vec<SpanRecord> {
    crate::testdata::team_run(run, settings())
}
