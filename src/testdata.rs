//! Test data built from real captures: the captured Claude Code 2.1.329 session, its hook payloads
//! (for the pipeline's and the fuzz tests) and as the pipeline hands it out (for the store's and the
//! views' tests). Compiled for tests only.

use crate::model::capture::Capture;
use crate::model::span::SpanRecord;
use crate::pipeline::sessions::{Sessions, Settings};
use crate::usage::accountant::SessionUsage;
use crate::usage::logs::claude_code::Ledger;
use crate::usage::pricing::PriceTable;

/// xorshift64: deterministic inputs for the fuzz and property tests (a failure reproduces), no
/// extra crate. Tests add the generators they need in their own `impl Rng`.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 for `n` = 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

pub(crate) const SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";

/// 2026-11-21 04:31:21 UTC, when the captured session ran.
pub(crate) const CAPTURED_AT: u64 = 1_795_235_481 * SEC;
pub(crate) const SEC: u64 = crate::model::time::NS_PER_SEC;

/// Spans of the captured session: 7 from its hooks (root, turn, 4 tools, subagent), 5 model calls
/// from its transcripts (3 of the main agent, 2 of the subagent).
pub(crate) const CAPTURED_SPANS: usize = 12;
pub(crate) const MS: u64 = 1_000_000;

/// The hook payloads of the real captured 2.1.329 session, in firing order.
pub(crate) const CAPTURED: &[&str] = &[
    include_str!("../tests/fixtures/hooks/captured/01-SessionStart.json"),
    include_str!("../tests/fixtures/hooks/captured/02-UserPromptSubmit.json"),
    include_str!("../tests/fixtures/hooks/captured/03-MessageDisplay.json"),
    include_str!("../tests/fixtures/hooks/captured/04-PreToolUse.json"),
    include_str!("../tests/fixtures/hooks/captured/05-SubagentStart.json"),
    include_str!("../tests/fixtures/hooks/captured/06-PreToolUse.json"),
    include_str!("../tests/fixtures/hooks/captured/07-PostToolUse.json"),
    include_str!("../tests/fixtures/hooks/captured/08-PreToolUse.json"),
    include_str!("../tests/fixtures/hooks/captured/09-PostToolUse.json"),
    include_str!("../tests/fixtures/hooks/captured/10-PostToolBatch.json"),
    include_str!("../tests/fixtures/hooks/captured/11-SubagentStop.json"),
    include_str!("../tests/fixtures/hooks/captured/12-PostToolUse.json"),
    include_str!("../tests/fixtures/hooks/captured/13-PostToolBatch.json"),
    include_str!("../tests/fixtures/hooks/captured/14-PreToolUse.json"),
    include_str!("../tests/fixtures/hooks/captured/15-PostToolUseFailure.json"),
    include_str!("../tests/fixtures/hooks/captured/16-PostToolBatch.json"),
    include_str!("../tests/fixtures/hooks/captured/17-MessageDisplay.json"),
    include_str!("../tests/fixtures/hooks/captured/18-Stop.json"),
    include_str!("../tests/fixtures/hooks/captured/19-SessionEnd.json"),
];

const TRANSCRIPTS: &[&str] = &[
    include_str!(
        "../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f.jsonl"
    ),
    include_str!(
        "../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f/subagents/agent-a7ca175cf2fd2156a.jsonl"
    ),
];

/// The captured session's own telemetry (Claude Code's OTLP export of it) of one signal, as the
/// ingest path makes it into events: from the logs, its `api_request`, `tool_decision` and
/// `tool_result` events; from the beta traces, its `llm_request` and tool spans; from the metrics,
/// its session counters.
pub(crate) fn captured_native(capture: Capture, signal: crate::model::otlp::Signal) -> Vec<crate::model::event::Event> {
    use crate::ingest::native::{events, Encoding, Signal};
    let fixture = match signal {
        Signal::Logs => include_str!("../tests/fixtures/otel/captured-2.1.329/otlp-logs.http-json.json"),
        Signal::Traces => include_str!("../tests/fixtures/otel/captured-2.1.329/otlp-traces.http-json.json"),
        Signal::Metrics => include_str!("../tests/fixtures/otel/captured-2.1.329/otlp-metrics.http-json.json"),
    };
    let bodies: Vec<serde_json::Value> = serde_json::from_str(fixture).unwrap();
    let mut out = Vec::new();
    for body in bodies {
        for (payload, at) in events(&serde_json::to_vec(&body).unwrap(), signal, Encoding::Json).unwrap() {
            out.push(crate::ingest::accept::parse(&serde_json::to_vec(&payload).unwrap(), at, capture).unwrap());
        }
    }
    out
}

/// The usage deltas of the captured session's transcripts (main, then its subagent).
pub(crate) fn captured_deltas() -> Vec<crate::usage::logs::Delta> {
    TRANSCRIPTS.iter().flat_map(|t| Ledger::default().read(t.as_bytes(), &PriceTable::builtin()).deltas).collect()
}

/// The captured session as the pipeline hands it out: its hook payloads fired 200 ms apart from
/// `start` (about as they did: its model calls fall inside its turn), with the usage of its real
/// transcripts, their times moved by as much as `start` is from [`CAPTURED_AT`]. `session`
/// replaces its session id.
pub(crate) fn captured(session: &str, start: u64) -> Vec<SpanRecord> {
    let mut sessions = Sessions::new(Settings { settle_ns: 100 * MS, ..Settings::default() });
    let mut out = Vec::new();
    let shift = |t: u64| (t as i128 + start as i128 - CAPTURED_AT as i128) as u64;
    for (i, payload) in CAPTURED.iter().enumerate() {
        let payload = payload.replace(SESSION, session);
        let at = start + i as u64 * 200 * MS;
        let ev = crate::ingest::accept::parse(payload.as_bytes(), at, Capture::Metadata).unwrap();
        sessions.ingest(ev, at, &mut out);
    }
    for transcript in TRANSCRIPTS {
        for mut delta in Ledger::default().read(transcript.as_bytes(), &PriceTable::builtin()).deltas {
            if let Some(r) = &mut delta.response {
                (r.start, r.end) = (shift(r.start), shift(r.end));
            }
            sessions.add_usage(&SessionUsage { session_id: session.into(), delta }, 0);
        }
    }
    sessions.tick(start + 60 * SEC, &mut out);
    assert_eq!(out.len(), CAPTURED_SPANS);
    out
}

/// A captured agent-team run (`tests/fixtures/teams/<run>/hooks.jsonl`): each payload as an
/// event at its capture time.
pub(crate) fn team_events(run: &str) -> Vec<crate::model::event::Event> {
    let path = format!("{}/tests/fixtures/teams/{run}/hooks.jsonl", env!("CARGO_MANIFEST_DIR"));
    let lines = std::fs::read_to_string(path).unwrap();
    lines
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let at = (v["ts"].as_f64().unwrap() * 1e9) as u64;
            crate::ingest::agents::claude_code::normalize(v["payload"].as_object().unwrap(), at, Capture::Metadata)
                .unwrap()
        })
        .collect()
}

/// A captured agent-team run through the state machine with `settings`, everything handed out at
/// the end.
pub(crate) fn team_run(run: &str, settings: crate::pipeline::sessions::Settings) -> Vec<SpanRecord> {
    let mut s = crate::pipeline::sessions::Sessions::new(settings);
    let mut out = Vec::new();
    for ev in team_events(run) {
        let at = ev.at;
        s.ingest(ev, at, &mut out);
    }
    s.tick(u64::MAX / 2, &mut out);
    out
}
