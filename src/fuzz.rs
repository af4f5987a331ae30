//! Never a panic, never a wrap: every parser of outside input (hook payloads, custom events, event
//! logs, transcripts, RFC 3339 times, settings.json) over arbitrary bytes, mutated real payloads and
//! extreme numbers (u64::MAX, 1e300, negative, far-future dates). Deterministic (a fixed seed), so a
//! failure reproduces. Compiled for tests only.

use serde_json::{json, Value};

use crate::ingest::accept;
use crate::model::capture::Capture;
use crate::model::time;
use crate::pipeline::sessions::{Sessions, Settings};
use crate::testdata::{Rng, CAPTURED};
use crate::usage::logs::claude_code::Ledger;
use crate::usage::pricing::PriceTable;

/// The fuzz loops' inputs, from the shared generator.
impl Rng {
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        (0..self.below(max)).map(|_| self.next() as u8).collect()
    }
    /// A real payload with a few bytes flipped, inserted or removed.
    fn mutate(&mut self, real: &[u8]) -> Vec<u8> {
        let mut b = real.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(b.len() + 1);
            match self.below(3) {
                0 if at < b.len() => b[at] = self.next() as u8,
                1 => b.insert(at, self.next() as u8),
                _ if at < b.len() => {
                    b.remove(at);
                }
                _ => {}
            }
        }
        b
    }
    fn extreme(&mut self) -> Value {
        let pick = [
            json!(u64::MAX),
            json!(i64::MIN),
            json!(-1),
            json!(1e300),
            json!(-1e300),
            json!(f64::MIN_POSITIVE),
            json!(0),
            json!("9999-12-31T23:59:59Z"),
            json!("0000-01-01T00:00:00Z"),
            json!("2026-11-21T04:31:23+0é00"),
            json!(""),
            json!("x".repeat(70_000)),
            json!(null),
            json!([[[[[]]]]]),
            json!({"a": {"b": {"c": u64::MAX}}}),
        ];
        pick[self.below(pick.len())].clone()
    }
}

#[test]
fn hook_payloads_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    let mut sessions = Sessions::new(Settings::default());
    let mut out = Vec::new();
    let keys =
        ["duration_ms", "timestamp", "session_id", "tool_use_id", "prompt_id", "agent_id", "tool_response", "cwd"];
    for i in 0..6_000u64 {
        let real = CAPTURED[rng.below(CAPTURED.len())].as_bytes();
        let body = match rng.below(3) {
            0 => rng.bytes(512),
            1 => rng.mutate(real),
            _ => {
                let mut v: Value = serde_json::from_slice(real).unwrap();
                for _ in 0..1 + rng.below(3) {
                    v[keys[rng.below(keys.len())]] = rng.extreme();
                }
                serde_json::to_vec(&v).unwrap()
            }
        };
        for capture in [Capture::None, Capture::Metadata, Capture::Full] {
            if let Ok(ev) = accept::parse(&body, i.wrapping_mul(1_000_003), capture) {
                // what the journal keeps replays to the same event (a restart changes no span)
                let replayed = accept::parse(&ev.raw, ev.at, capture).expect("the journal's payload parses");
                let show = |e: &crate::model::event::Event| format!("{:?} {:?} {:?}", e.kind, e.attrs, e.cwd);
                assert_eq!(show(&replayed), show(&ev), "{capture:?}");
                sessions.ingest(ev, i, &mut out);
            }
        }
        if i % 500 == 0 {
            sessions.tick(u64::MAX / 2 + i, &mut out);
        }
    }
    for r in &out {
        assert!(r.start <= r.end, "{}", r.name);
    }
}

#[test]
fn custom_events_and_times_never_panic() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..6_000 {
        let text = String::from_utf8_lossy(&rng.bytes(40)).into_owned();
        let _ = time::rfc3339_ns(&text);
        let _ = time::rfc3339_ns(&format!("2026-11-21T04:31:{text}"));
        let v = rng.extreme();
        let _ = time::timestamp_ns(&v);
        let body = json!({"name": "n", "session_id": "s", "timestamp": v, "attributes": {"k": rng.extreme()}});
        if let Ok(ev) =
            serde_json::from_slice::<crate::model::payload::CustomEvent>(&serde_json::to_vec(&body).unwrap())
        {
            let _ = ev.timestamp.as_ref().map(time::timestamp_ns);
            let payload = serde_json::to_vec(&ev.into_payload("s")).unwrap();
            let _ = accept::parse(&payload, 1, Capture::Metadata);
        }
    }
}

#[test]
fn transcripts_and_event_logs_never_panic() {
    let mut rng = Rng(0x5eed_0003);
    let real = include_bytes!(
        "../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f.jsonl"
    );
    let prices = PriceTable::builtin();
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..300 {
        let mut bytes = match rng.below(3) {
            0 => rng.bytes(4096),
            1 => rng.mutate(real),
            _ => {
                let usage = json!({"input_tokens": rng.extreme(), "output_tokens": rng.extreme(),
                    "cache_read_input_tokens": u64::MAX, "cache_creation_input_tokens": u64::MAX});
                let line = json!({"type": "assistant", "requestId": "r", "timestamp": rng.extreme(),
                    "message": {"id": format!("m{i}"), "model": "claude-opus-4-5", "usage": usage}});
                format!("{line}\n{line}\n").into_bytes()
            }
        };
        bytes.push(b'\n');
        let mut ledger = Ledger::default();
        let read = ledger.read(&bytes, &prices);
        for d in &read.deltas {
            assert!(d.cost.is_finite() && d.cost >= 0.0, "cost {}", d.cost);
        }
        let log = tmp.path().join("events.jsonl");
        std::fs::write(&log, &bytes).unwrap();
        let _ = crate::backfill::event_log::events_from_jsonl(&log, "n");
    }
}

#[test]
fn settings_files_never_panic() {
    let mut rng = Rng(0x5eed_0004);
    let real = include_bytes!("../tests/fixtures/settings/settings.command-hooks.json");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("settings.json");
    for _ in 0..300 {
        let bytes = if rng.below(2) == 0 { rng.bytes(256) } else { rng.mutate(real) };
        std::fs::write(&path, &bytes).unwrap();
        let _ = crate::cli::install::install(
            &path,
            crate::cli::install::HookKind::Command,
            "hooktel hook",
            "http://x",
            Some("http://127.0.0.1:4387"),
            Some("hooktel statusline"),
        );
        std::fs::write(&path, &bytes).unwrap();
        let _ = crate::cli::install::uninstall(&path);
    }
}

/// The count of a body's elements before decoding never panics, and never counts fewer messages than
/// prost then builds from it: real OTLP exports (protobuf and JSON), mutated, and arbitrary bytes.
#[test]
fn body_shapes_never_panic_nor_undercount() {
    use crate::ingest::shape;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message;
    let mut rng = Rng(0x5eed_0005);
    let fixture = include_str!("../tests/fixtures/otel/captured-2.1.329/otlp-logs.http-json.json");
    let real: Vec<Value> = serde_json::from_str(fixture).unwrap();
    let protos: Vec<Vec<u8>> = real
        .iter()
        .map(|b| serde_json::from_value::<ExportLogsServiceRequest>(b.clone()).unwrap().encode_to_vec())
        .collect();
    let jsons: Vec<Vec<u8>> = real.iter().map(|b| serde_json::to_vec(b).unwrap()).collect();
    for i in 0..3_000 {
        let _ = shape::json(&rng.mutate(&jsons[i % jsons.len()]));
        let _ = shape::protobuf(&rng.bytes(64));
        let _ = shape::json(&rng.bytes(64));
        let body = rng.mutate(&protos[i % protos.len()]);
        let (Ok(counted), Ok(req)) = (shape::protobuf(&body), ExportLogsServiceRequest::decode(&body[..])) else {
            continue;
        };
        let built: usize = req
            .resource_logs
            .iter()
            .map(|rl| {
                1 + rl
                    .scope_logs
                    .iter()
                    .map(|sl| 1 + sl.log_records.iter().map(|r| 1 + r.attributes.len()).sum::<usize>())
                    .sum::<usize>()
            })
            .sum();
        assert!(built <= counted, "built {built} messages, counted {counted}");
    }
}
