//! The sidecar's memory under floods that fill its queues and a session's span tree (issue 19,
//! "bounded under any input"): a collector that never answers the forwarded telemetry, a journal
//! writer that falls behind, one session that opens spans and never ends them. Each runs against the
//! real `hooktel serve` and checks its peak memory (VmHWM) against the pod limit of 256 MiB.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{self, Sidecar};

/// The shipped Kubernetes limit the sidecar must stay under whatever it is sent.
const POD_LIMIT_MIB: f64 = 256.0;

/// POSTs over one keep-alive connection (a new connection per request would make the flood slower
/// than the sidecar); returns the status of each.
struct Client {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { addr, reader: BufReader::new(s) }
    }

    /// Headers first, with `Expect: 100-continue`: the body follows only when the sidecar asks for
    /// it. A request it refuses before reading the body (its share of the body budget taken) is
    /// answered at once and the connection closed; a body written into that close would be reset,
    /// and the answer lost with it.
    fn post(&mut self, path: &str, content_type: &str, body: &[u8]) -> u16 {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            self.addr,
            body.len()
        );
        self.reader.get_mut().write_all(head.as_bytes()).unwrap();
        let mut status = self.answer();
        if status == 100 {
            self.reader.get_mut().write_all(body).unwrap();
            status = self.answer();
        }
        status
    }

    /// One answer: its status, its headers and body read past.
    fn answer(&mut self) -> u16 {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut rest = vec![0; len];
        self.reader.read_exact(&mut rest).unwrap();
        status
    }
}

/// A collector that accepts every connection and holds it, never answering: its address.
fn silent_collector() -> SocketAddr {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    addr
}

/// Post `n` hook payloads made by `payload(i)` from `threads` keep-alive connections.
fn flood(addr: SocketAddr, threads: usize, n: usize, payload: impl Fn(usize) -> Vec<u8> + Sync) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            let payload = &payload;
            scope.spawn(move || {
                let mut client = Client::new(addr);
                for i in (t..n).step_by(threads) {
                    let status = client.post("/v1/hooks", "application/json", &payload(i));
                    assert!(status == 200 || status == 503, "status {status}");
                }
            });
        }
    });
}

/// Row 3: Claude Code's telemetry forwarded to a collector that accepts connections and never
/// answers. The queue was 256 bodies by count: 120 bodies of 8 MiB grew the sidecar to 1,033 MiB
/// (48 here: 452 MiB). Bounded by bytes (64 MiB), the rest is dropped and counted.
#[test]
fn forwarding_to_a_collector_that_never_answers_is_bounded_by_bytes() {
    let collector = silent_collector();
    let sidecar = Sidecar::builder()
        .env("HOOKTEL_FORWARD_ENDPOINT", &format!("http://{collector}"))
        .env("HOOKTEL_CAPTURE", "full")
        .start();
    let otlp = sidecar.otlp_addr();
    // one log record with an attribute of almost 8 MiB (the body limit): forwarded as received
    let big = "x".repeat(8 * 1024 * 1024 - 1024);
    let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1",
        "attributes": [{"key": "filler", "value": {"stringValue": big}}]}]}]}]})
    .to_string();
    drop(big);
    let mut client = Client::new(otlp);
    for _ in 0..48 {
        assert_eq!(client.post("/v1/logs", "application/json", body.as_bytes()), 200);
    }
    let dropped = sidecar.metric(r#"hooktel_native_forwarded_total{result="dropped",signal="logs"}"#);
    let peak = support::peak_rss_mib(sidecar.pid());
    println!("48 bodies of 8 MiB to a collector that never answers: peak RSS {peak:.0} MiB, {dropped} dropped");
    assert!(peak < POD_LIMIT_MIB, "peak RSS {peak:.0} MiB");
    assert!(dropped >= 30.0, "{dropped} bodies dropped");
}

/// Row 4: one session's hook events of 60 KB, journaled at `full`, while the journal writer cannot
/// commit (another process holds the journal's write lock: each commit waits out its 5 s busy
/// timeout). Its channel was unbounded: 30,000 events held 455-749 MiB (on a faster machine).
/// Bounded by bytes (16 MiB), what does not fit is not journaled, and counted.
#[test]
fn a_journal_writer_that_falls_behind_holds_a_bounded_backlog() {
    let sidecar = Sidecar::builder().env("HOOKTEL_CAPTURE", "full").start();
    let sid = "00000000-0000-4000-8000-00000000b004";
    let start = serde_json::json!({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup"});
    assert_eq!(sidecar.request("POST", "/v1/hooks", start.to_string().as_bytes()).0, 200);
    support::wait_until(Duration::from_secs(10), "the journal", || sidecar.data_dir.join("journal.db").exists());
    let lock = rusqlite::Connection::open(sidecar.data_dir.join("journal.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let filler = "n".repeat(60 * 1024);
    flood(sidecar.addr, 4, 5_000, |i| {
        serde_json::json!({"session_id": sid, "hook_event_name": "Notification", "message": format!("{i} {filler}")})
            .to_string()
            .into_bytes()
    });
    support::wait_until(Duration::from_secs(60), "the flood applied", || {
        sidecar.metric("hooktel_ingest_queue_depth") == 0.0
    });
    let peak = support::peak_rss_mib(sidecar.pid());
    let dropped = sidecar.metric(r#"hooktel_journal_dropped_total{reason="backlog"}"#);
    lock.execute_batch("COMMIT").unwrap();
    println!("5,000 events of 60 KB, journal locked: peak RSS {peak:.0} MiB, {dropped} not journaled (backlog)");
    // the debug build takes about 100 events a second here, so the old writer (2,048 rows dropped
    // per failed commit) never held more than 120 MB: the bound is the 16 MiB backlog plus the
    // sidecar's own (43 MiB measured; 73 MiB before the bound)
    assert!(peak < 64.0, "peak RSS {peak:.0} MiB");
    // the writer gives back its backlog as it gives up on a commit (every 5 s): how much is dropped at
    // the bound depends on how fast the events come
    assert!(dropped >= 100.0, "{dropped} not journaled");
}

/// Row 5: one session that starts subagents and never stops them. Nothing capped a session's open
/// spans: 400,000 `PreToolUse` and 100,000 teammates held 952 MiB. Here the spans are made heavy
/// instead of many (the debug build takes about 100 requests a second): 40 subagents, each given the
/// 128 events a span keeps, each event with as many 256-byte fields as a payload may carry (about
/// 70 KB): 358 MiB of spans. Past 10,000 spans or 32 MiB of them (`MAX_SPANS`, `MAX_SPAN_BYTES`) the
/// oldest is handed out as incomplete, and counted.
#[test]
fn a_session_that_never_ends_its_spans_is_bounded() {
    let sidecar = Sidecar::builder().env("HOOKTEL_JOURNAL_MAX_BYTES", "1048576").start();
    let sid = "00000000-0000-4000-8000-00000000b005";
    let start = serde_json::json!({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup"});
    assert_eq!(sidecar.request("POST", "/v1/hooks", start.to_string().as_bytes()).0, 200);
    let agents = 40;
    let agent = |a: usize| format!("a{a:016x}");
    for a in 0..agents {
        let p = serde_json::json!({"session_id": sid, "hook_event_name": "SubagentStart",
            "agent_type": "general-purpose", "agent_id": agent(a)});
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    let field = "f".repeat(250);
    flood(sidecar.addr, 4, agents * 128, |i| {
        let mut p = serde_json::json!({"session_id": sid, "hook_event_name": "Notification",
            "agent_id": agent(i % agents), "message": "m"});
        for f in 0..220 {
            p[format!("extra_{f:03}")] = serde_json::json!(format!("{i} {field}"));
        }
        p.to_string().into_bytes()
    });
    support::wait_until(Duration::from_secs(60), "the flood applied", || {
        sidecar.metric("hooktel_ingest_queue_depth") == 0.0
    });
    let peak = support::peak_rss_mib(sidecar.pid());
    let evicted = sidecar.metric(r#"hooktel_spans_evicted_total{kind="subagent"}"#);
    println!("{agents} subagents never stopped, 128 heavy events each: peak RSS {peak:.0} MiB, {evicted} evicted");
    assert!(peak < POD_LIMIT_MIB, "peak RSS {peak:.0} MiB");
    assert!(evicted >= 20.0, "{evicted} subagent spans evicted");
}

/// Row 2 and "one memory budget": many sessions, each within its own caps, together. Each session's
/// spans were capped (32 MiB) but nothing capped them all: a dozen sessions at their cap held over
/// 384 MiB. All open sessions now answer to the sessions' share of the memory budget (80 MiB of
/// 256): past it the heaviest hand out their oldest spans first, so a flood is paid for by the
/// sessions that flood, and a light session beside them keeps its open spans.
#[test]
fn many_sessions_answer_to_one_memory_budget() {
    let (receiver, sidecar) =
        Sidecar::builder().env("HOOKTEL_JOURNAL_MAX_BYTES", "1048576").start_exporting(support::Protocol::Http);
    let post = |p: serde_json::Value| assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    // a light session, with a turn and a tool call open while the others flood
    let light = "00000000-0000-4000-8000-00000000b0ff";
    post(serde_json::json!({"session_id": light, "hook_event_name": "SessionStart", "source": "startup"}));
    post(
        serde_json::json!({"session_id": light, "hook_event_name": "UserPromptSubmit", "prompt_id": "p1", "prompt": "hi"}),
    );
    post(serde_json::json!({"session_id": light, "hook_event_name": "PreToolUse", "prompt_id": "p1",
        "tool_name": "Bash", "tool_use_id": "toolu_light", "tool_input": {"command": "ls"}}));
    let (sessions, agents, events) = (12, 4, 120);
    let sid = |s: usize| format!("00000000-0000-4000-8000-00000000b{s:03}");
    let agent = |a: usize| format!("a{a:016x}");
    for s in 0..sessions {
        post(serde_json::json!({"session_id": sid(s), "hook_event_name": "SessionStart", "source": "startup"}));
        for a in 0..agents {
            post(serde_json::json!({"session_id": sid(s), "hook_event_name": "SubagentStart",
                "agent_type": "general-purpose", "agent_id": agent(a)}));
        }
    }
    // each event with as many 256-byte fields as a payload may carry (about 70 KB as span events):
    // 12 sessions of 4 subagents given 120 such events each hold 400 MiB of spans, 33 MiB a session
    let field = "f".repeat(250);
    flood(sidecar.addr, 4, sessions * agents * events, |i| {
        let mut p = serde_json::json!({"session_id": sid(i % sessions), "hook_event_name": "Notification",
            "agent_id": agent(i / sessions % agents), "message": "m"});
        for f in 0..220 {
            p[format!("extra_{f:03}")] = serde_json::json!(format!("{i} {field}"));
        }
        p.to_string().into_bytes()
    });
    support::wait_until(Duration::from_secs(60), "the flood applied", || {
        sidecar.metric("hooktel_ingest_queue_depth") == 0.0
    });
    let peak = support::peak_rss_mib(sidecar.pid());
    let held = sidecar.metric("hooktel_sessions_held_bytes") / 1048576.0;
    let evicted = sidecar.metric(r#"hooktel_spans_evicted_total{kind="subagent"}"#);
    println!(
        "{sessions} sessions flooding: peak RSS {peak:.0} MiB, sessions hold {held:.0} MiB, {evicted} spans evicted"
    );
    assert!(peak < POD_LIMIT_MIB, "peak RSS {peak:.0} MiB");
    assert!(held <= 80.0, "the sessions hold {held:.0} MiB");
    assert!(evicted >= 12.0, "{evicted} subagent spans evicted");
    // the light session kept its open tool call: it ends as called, not as evicted
    post(serde_json::json!({"session_id": light, "hook_event_name": "PostToolUse", "prompt_id": "p1",
        "tool_name": "Bash", "tool_use_id": "toolu_light", "tool_input": {"command": "ls"}, "tool_response": {}}));
    post(serde_json::json!({"session_id": light, "hook_event_name": "SessionEnd", "reason": "exit"}));
    let trace = light.replace('-', "");
    let spans = receiver.wait_for(Duration::from_secs(30), "the light session's spans", |spans| {
        spans.iter().any(|s| s.trace_id == trace && s.name.contains("session"))
    });
    let tool = spans.iter().find(|s| s.trace_id == trace && s.name == "execute_tool Bash").expect("its tool span");
    assert_eq!(tool.attr("hooktel.tool.status"), Some("ok"), "{tool:?}");
}

/// "Every holder of memory answers to the budget": the ingest queue was bounded by count (65,536
/// events), not bytes. While the pipeline waits on an exporter that does not return (a collector
/// that takes connections and never answers: up to 30 s an export, again at each probe), every hook
/// event accepted waits in the queue, payload and all: a payload of many fields of 1 KB is not cut
/// (only strings over 1 KiB are), so each holds about its size, and a few hundred hold gigabytes.
/// An event now holds its bytes of the bodies' share of the memory budget until the pipeline has
/// applied it; past it a hook gets `503` (the hook client keeps it in its spool), counted as
/// `queue_full`.
#[test]
fn a_stalled_pipeline_queues_events_within_the_budget() {
    let collector = silent_collector();
    // an export waits for the silent collector longer than the test runs: the pipeline, once
    // stalled, stays stalled (with the default 10 s, a failed export let it drain some of the queue
    // now and then, and how much depended on how busy the machine was)
    let sidecar = Sidecar::builder()
        .exporting(format!("http://{collector}"), "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "600000")
        .env("HOOKTEL_MAX_SESSIONS", "1")
        .env("HOOKTEL_CAPTURE", "full")
        .env("HOOKTEL_JOURNAL_MAX_BYTES", "1048576")
        .start();
    // each new session closes the one before (the cap is 1): a batch of spans for the exporter per
    // event, until the exporter's channel is full and the pipeline waits on it
    let sid = |i: usize| format!("00000000-0000-4000-8000-{i:012}");
    let mut client = Client::new(sidecar.addr);
    let mut i = 0;
    // stalled: events wait in the queue, and none leaves it in a second (a pipeline that is only slow,
    // on a loaded machine, drains it: the flood below would then be taken, not refused)
    let depth = || sidecar.metric("hooktel_ingest_queue_depth");
    support::wait_until(Duration::from_secs(90), "the pipeline stalled", || {
        i += 1;
        let p = serde_json::json!({"session_id": sid(i), "hook_event_name": "SessionStart", "source": "startup"});
        assert_eq!(client.post("/v1/hooks", "application/json", p.to_string().as_bytes()), 200);
        if i <= 100 || depth() < 2.0 {
            return false;
        }
        let before = depth();
        std::thread::sleep(Duration::from_secs(1));
        depth() >= before
    });
    // 600 events of 1,000 fields of 1 KB: 600 MB offered while the pipeline waits (400 held 236 MiB)
    let mut payload = serde_json::json!({"session_id": sid(i), "hook_event_name": "Notification", "message": "m"});
    for f in 0..1_000 {
        payload[format!("extra_{f:04}")] = serde_json::json!("x".repeat(1_000));
    }
    let body = payload.to_string();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (body, refused) = (&body, &refused);
            scope.spawn(move || {
                let mut client = Client::new(sidecar.addr);
                for _ in 0..150 {
                    match client.post("/v1/hooks", "application/json", body.as_bytes()) {
                        200 => {}
                        503 => {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            // a refusal closes the connection
                            client = Client::new(sidecar.addr);
                        }
                        other => panic!("status {other}"),
                    }
                }
            });
        }
    });
    let peak = support::peak_rss_mib(sidecar.pid());
    let refused = refused.into_inner();
    let counted = sidecar.metric(r#"hooktel_ingest_rejected_total{reason="queue_full"}"#)
        + sidecar.metric(r#"hooktel_ingest_rejected_total{reason="body_budget_full"}"#);
    println!("600 events of 1 MB, pipeline stalled: peak RSS {peak:.0} MiB, {refused} refused");
    assert!(peak < POD_LIMIT_MIB, "peak RSS {peak:.0} MiB");
    // the queue holds at most the bodies' share (32 MiB: about 30 such events), the rest is refused
    // while the pipeline is stalled: 577 of 600 on an idle machine; on a loaded one the pipeline can
    // still apply some while it stalls (526 to 537 under four busy loops, 411 beside a parallel build
    // and test run), so over half is asked, as before the bound none was refused
    assert!(refused >= 300 && counted == refused as f64, "{refused} refused, {counted} counted");
}
