//! Test data built from real captures: the captured Claude Code 2.1.329 session as the pipeline
//! hands it out, shared by the store's and the views' tests. Compiled for tests only.

use crate::model::capture::Capture;
use crate::model::span::SpanRecord;
use crate::pipeline::sessions::{Sessions, Settings};
use crate::usage::accountant::SessionUsage;
use crate::usage::pricing::PriceTable;
use crate::usage::transcript::Ledger;

pub(crate) const SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";

/// 2026-11-21 04:31:21 UTC, when the captured session ran.
pub(crate) const CAPTURED_AT: u64 = 1_795_235_481 * SEC;
pub(crate) const SEC: u64 = 1_000_000_000;
pub(crate) const MS: u64 = 1_000_000;

use crate::pipeline::sessions::tests::CAPTURED;

const TRANSCRIPTS: &[&str] = &[
    include_str!(
        "../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f.jsonl"
    ),
    include_str!(
        "../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f/subagents/agent-a7ca175cf2fd2156a.jsonl"
    ),
];

/// The captured session as the pipeline hands it out: its hook payloads fired 10 ms apart from
/// `start`, with the usage of its real transcripts. `session` replaces its session id.
pub(crate) fn captured(session: &str, start: u64) -> Vec<SpanRecord> {
    let mut sessions = Sessions::new(Settings { settle_ns: 100 * MS, ..Settings::default() });
    let mut out = Vec::new();
    for (i, payload) in CAPTURED.iter().enumerate() {
        let payload = payload.replace(SESSION, session);
        let at = start + i as u64 * 10 * MS;
        let ev = crate::ingest::accept::parse(payload.as_bytes(), at, Capture::Metadata).unwrap();
        sessions.ingest(ev, at, &mut out);
    }
    for transcript in TRANSCRIPTS {
        for delta in Ledger::default().read(transcript.as_bytes(), &PriceTable::builtin()).deltas {
            sessions.add_usage(&SessionUsage { session_id: session.to_owned(), delta });
        }
    }
    sessions.tick(start + 60 * SEC, &mut out);
    assert_eq!(out.len(), 7);
    out
}
