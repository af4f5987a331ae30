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

    fn post(&mut self, path: &str, content_type: &str, body: &[u8]) -> u16 {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
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
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let collector = silent.local_addr().unwrap();
    // accept every connection and hold it, never answering
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
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
    assert!(dropped >= 1_000.0, "{dropped} not journaled");
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
