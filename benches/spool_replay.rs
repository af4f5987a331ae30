//! Export spool replay: how fast spans spooled while the collector refused them are delivered once
//! it answers again, in spans per second, beside a baseline measured in the same run: the same
//! number of spans exported as they finish to a collector that answers.
//!
//! Both phases run the release-built `hooktel serve` against an in-process OTLP/HTTP receiver
//! (tests/it/support) and feed it `BENCH_SESSIONS` sessions (default 2000; 7 spans each: root, turn,
//! 5 tool calls) straight over `POST /v1/hooks`. The replay rate is timed from the first span the
//! recovered collector receives to the last (the probe backoff before the first one is not
//! replay). Machines here are noisy: read the ratio. Run: `cargo bench --bench spool_replay`.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{http, temp_dir, Protocol, Receiver, Sidecar};

const SPANS_PER_SESSION: usize = 7;

fn feed(sidecar: &Sidecar, sessions: usize) {
    for i in 0..sessions {
        let sid = format!("00000000-0000-4000-8000-{i:012}");
        let mut events = vec![
            format!(r#"{{"session_id":"{sid}","hook_event_name":"SessionStart","source":"startup","cwd":"/w/bench"}}"#),
            format!(r#"{{"session_id":"{sid}","hook_event_name":"UserPromptSubmit","prompt_id":"p1"}}"#),
        ];
        for t in 0..5 {
            for ev in ["PreToolUse", "PostToolUse"] {
                events.push(format!(
                    r#"{{"session_id":"{sid}","hook_event_name":"{ev}","prompt_id":"p1","tool_name":"Bash","tool_use_id":"toolu_{i}_{t}","tool_input":{{"command":"cargo test"}},"duration_ms":12}}"#
                ));
            }
        }
        events.push(format!(r#"{{"session_id":"{sid}","hook_event_name":"Stop","prompt_id":"p1"}}"#));
        events.push(format!(r#"{{"session_id":"{sid}","hook_event_name":"SessionEnd","reason":"other"}}"#));
        for e in events {
            let (status, _) = http(sidecar.addr, "POST", "/v1/hooks", e.as_bytes());
            assert_eq!(status, 200);
        }
    }
}

fn main() {
    let sessions = std::env::var("BENCH_SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000usize);
    let total = sessions * SPANS_PER_SESSION;
    let env = [("HOOKTEL_SETTLE_MS", "50")];

    // baseline: the collector answers; spans are exported as sessions finish
    let healthy = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&healthy), &env);
    let started = Instant::now();
    feed(&sidecar, sessions);
    healthy.wait_for(Duration::from_secs(300), "every span, exported directly", |s| s.len() >= total);
    let direct = started.elapsed();
    drop(sidecar);

    // the collector refuses while the sessions run: everything goes to the spool
    let data = temp_dir("bench-replay");
    let refusing = Receiver::start(Protocol::Http);
    refusing.refuse_next(usize::MAX);
    let sidecar = Sidecar::start(Some(&refusing), &[env[0], ("HOOKTEL_DATA_DIR", data.to_str().unwrap())]);
    feed(&sidecar, sessions);
    support::wait_until(Duration::from_secs(300), "every span spooled", || {
        sidecar.metric("hooktel_sessions_active") == 0.0
            && sidecar.metric(r#"hooktel_spool_items{spool="export"}"#) > 0.0
            && sidecar.metric("hooktel_ingest_queue_depth") == 0.0
    });
    std::thread::sleep(Duration::from_millis(500)); // the last batches reach the spool
    let spooled = sidecar.metric(r#"hooktel_spool_items{spool="export"}"#);
    let spool_bytes = sidecar.metric(r#"hooktel_spool_bytes{spool="export"}"#);
    refusing.refuse_next(0);
    // time from the first replayed span to the last
    support::wait_until(Duration::from_secs(60), "the first replayed span", || !refusing.spans().is_empty());
    let first = Instant::now();
    refusing.wait_for(Duration::from_secs(300), "every span, replayed", |s| s.len() >= total);
    let replay = first.elapsed();
    let received = refusing.spans().len();
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&data);

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    println!("spool_replay: {sessions} sessions, {total} spans, OTLP/HTTP to an in-process receiver");
    println!();
    println!("| phase                                   | spans  | seconds | spans/s |");
    println!("|-----------------------------------------|-------:|--------:|--------:|");
    println!(
        "| baseline: exported as sessions finish   | {total:>6} | {:>7.2} | {:>7.0} |",
        direct.as_secs_f64(),
        rate(total, direct)
    );
    println!(
        "| replay of the export spool              | {received:>6} | {:>7.2} | {:>7.0} |",
        replay.as_secs_f64(),
        rate(received, replay)
    );
    println!();
    println!("spooled: {spooled} batches, {:.1} MB; received after recovery: {received} of {total}", spool_bytes / 1e6);
    println!(
        "replay rate / baseline rate: {:.2}x (the baseline includes ingest; replay is export alone)",
        rate(received, replay) / rate(total, direct)
    );
}
