//! Sidecar load: events per second `hooktel serve` sustains, and its memory with 10,000 sessions
//! held open and after they end.
//!
//! Starts the release-built `hooktel serve` in local mode (no OTLP endpoint, `HOOKTEL_SETTLE_MS=200`,
//! a day-long idle timeout) and drives it from concurrent client threads, each over one persistent
//! keep-alive HTTP/1.1 connection (a small std-only client; the sidecar replies `200` with an empty
//! body).
//!
//! - Phase 1 opens the sessions (random UUIDs) without ending them: `SessionStart`,
//!   `UserPromptSubmit` with a `prompt_id`, then `PreToolUse`/`PostToolUse` pairs with distinct
//!   `tool_use_id`s; payloads are modelled on `tests/fixtures/hooks/captured/`, about 1 KB each.
//!   Each thread steps through its sessions round-robin, so all of them are open at once.
//!   Reported: events/s (events accepted / wall time) and the sidecar's `VmRSS` after start
//!   (baseline) and with every session open, plus `VmHWM`.
//! - Phase 2 sends `SessionEnd` for every session, waits until `/metrics` shows
//!   `hooktel_sessions_active 0` and two more seconds, and reads `VmRSS` again.
//! - The two phases run `BENCH_CYCLES` times (default 2) with fresh sessions: if the RSS left after
//!   cycle 1 is reused by cycle 2, memory is retained by the allocator rather than leaked.
//!
//! Replies other than 200 are counted (503 means the ingest queue was full; those requests are
//! retried after 5 ms). The load generator runs on the same cores as the sidecar, so events/s is a
//! lower bound. Targets are printed as PASS/MISS lines; timing never fails the bench.
//!
//! Run: `cargo bench --bench sidecar_load`. Knobs: `BENCH_SESSIONS` (10000), `BENCH_THREADS` (16),
//! `BENCH_TOOL_PAIRS` (4 tool calls per session, so 10 events per session in phase 1), `BENCH_CYCLES` (2),
//! `BENCH_LINGER_SECS` (0; keep the sidecar up that long after the report, to inspect it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{env_usize, mb, metric_sum, metric_value, quantile, Memory, Rng, Sidecar};
use serde_json::{json, Value};

const CWD: &str = "/home/dev/proj";
/// Times a request is retried after a 503 or a broken connection before it is given up.
const MAX_RETRIES: usize = 2000;
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// One session's identity, fixed for both phases.
struct Plan {
    session_id: String,
    prompt_id: String,
    tool_use_ids: Vec<String>,
}

/// What one client thread saw.
#[derive(Default)]
struct Tally {
    accepted: u64,
    status_503: u64,
    status_other: u64,
    /// Requests given up after `MAX_RETRIES`.
    given_up: u64,
    reconnects: u64,
    /// Per-request latency in microseconds (last attempt only).
    latencies_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.accepted += o.accepted;
        self.status_503 += o.status_503;
        self.status_other += o.status_other;
        self.given_up += o.given_up;
        self.reconnects += o.reconnects;
        self.latencies_us.extend(o.latencies_us);
    }
}

/// A keep-alive HTTP/1.1 connection to `/v1/hooks`.
struct Conn {
    addr: SocketAddr,
    io: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
    line: String,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, io: None, request: Vec::with_capacity(4096), line: String::new() }
    }

    fn connect(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.io.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.set_write_timeout(Some(Duration::from_secs(30)))?;
            self.io = Some(BufReader::with_capacity(16 * 1024, s));
        }
        Ok(self.io.as_mut().expect("just connected"))
    }

    /// POST one payload; returns the reply's status. The connection is dropped on any error.
    fn post(&mut self, body: &[u8]) -> std::io::Result<u16> {
        let r = self.exchange(body);
        if r.is_err() {
            self.io = None;
        }
        r
    }

    fn exchange(&mut self, body: &[u8]) -> std::io::Result<u16> {
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        self.request.clear();
        write!(
            self.request,
            "POST /v1/hooks HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-hooktel-received-at: {at}\r\n\r\n",
            self.addr,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        let mut request = std::mem::take(&mut self.request);
        let mut line = std::mem::take(&mut self.line);
        let result = (|| {
            let io = self.connect()?;
            io.get_mut().write_all(&request)?;
            line.clear();
            if io.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            let status: u16 = line
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status: {line:?}")))?;
            let (mut length, mut close) = (0usize, false);
            loop {
                line.clear();
                if io.read_line(&mut line)? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed in headers"));
                }
                let header = line.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    } else if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
                        close = true;
                    }
                }
            }
            std::io::copy(&mut io.by_ref().take(length as u64), &mut std::io::sink())?;
            Ok((status, close))
        })();
        request.clear();
        self.request = request;
        self.line = line;
        let (status, close) = result?;
        if close {
            self.io = None;
        }
        Ok(status)
    }

    /// POST until accepted (retrying 503s and broken connections), counting everything in `t`.
    fn send(&mut self, body: &[u8], t: &mut Tally) {
        for _ in 0..MAX_RETRIES {
            let start = Instant::now();
            match self.post(body) {
                Ok(200) => {
                    t.accepted += 1;
                    t.latencies_us.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    return;
                }
                Ok(503) => {
                    t.status_503 += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                Ok(_) => {
                    t.status_other += 1;
                    return;
                }
                Err(_) => {
                    t.reconnects += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        }
        t.given_up += 1;
    }
}

/// Realistic filler text: source code and shell output of the sort tools return.
fn filler(len: usize, seed: u64) -> String {
    const TEXT: &str = "fn handle(req: Request) -> Result<Response, Error> {\n    let body = req.body();\n    \
        tracing::info!(len = body.len(), \"request\");\n    parse(body).map(respond)\n}\n\
        test session::tests::tool_spans_nest ... ok\ntest server::tests::rejects_large ... ok\n\
        drwxr-xr-x  5 dev dev  4096 Mar  3 10:12 src\n-rw-r--r--  1 dev dev  1289 Mar  3 10:12 Cargo.toml\n";
    let start = (seed as usize) % TEXT.len();
    TEXT.chars().cycle().skip(start).take(len).collect()
}

fn base(plan: &Plan, event: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("session_id".into(), json!(plan.session_id));
    m.insert(
        "transcript_path".into(),
        json!(format!("/home/dev/.claude/projects/-home-dev-proj/{}.jsonl", plan.session_id)),
    );
    m.insert("cwd".into(), json!(CWD));
    m.insert("hook_event_name".into(), json!(event));
    m
}

fn turn(plan: &Plan, event: &str) -> serde_json::Map<String, Value> {
    let mut m = base(plan, event);
    m.insert("prompt_id".into(), json!(plan.prompt_id));
    m.insert("permission_mode".into(), json!("default"));
    m.insert("effort".into(), json!({"level": "medium"}));
    m
}

/// The tool input and response of tool call `k`, rotating through Bash, Read, Edit and Grep.
fn tool(k: usize, seed: u64) -> (&'static str, Value, Value) {
    match k % 4 {
        0 => (
            "Bash",
            json!({"command": "cargo test --all-targets 2>&1 | tail -20", "description": "Run the test suite"}),
            json!({"stdout": filler(900, seed), "stderr": "", "interrupted": false, "isImage": false,
                   "noOutputExpected": false}),
        ),
        1 => (
            "Read",
            json!({"file_path": format!("{CWD}/src/server.rs"), "offset": 1, "limit": 80}),
            json!({"type": "text", "file": {"filePath": format!("{CWD}/src/server.rs"), "content": filler(900, seed),
                   "numLines": 12, "startLine": 1, "totalLines": 181}}),
        ),
        2 => (
            "Edit",
            json!({"file_path": format!("{CWD}/src/server.rs"), "old_string": filler(220, seed),
                   "new_string": filler(260, seed + 7), "replace_all": false}),
            json!({"filePath": format!("{CWD}/src/server.rs"), "oldString": filler(220, seed),
                   "newString": filler(260, seed + 7), "userModified": false, "replaceAll": false,
                   "structuredPatch": [{"oldStart": 40, "oldLines": 3, "newStart": 40, "newLines": 4}]}),
        ),
        _ => (
            "Grep",
            json!({"pattern": "fn [a-z_]+\\(", "path": format!("{CWD}/src"), "output_mode": "files_with_matches"}),
            json!({"mode": "files_with_matches", "numFiles": 6, "filenames": [
                "src/server.rs", "src/session.rs", "src/client.rs", "src/config.rs", "src/export.rs", "src/pipeline.rs"],
                "content": filler(600, seed)}),
        ),
    }
}

/// The phase-1 payloads of one session, in the order it sends them.
fn session_events(plan: &Plan, seed: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = base(plan, "SessionStart");
    start.insert("source".into(), json!("startup"));
    start.insert("model".into(), json!("claude-sonnet-4-5-20250929"));
    out.push(start);
    let mut prompt = turn(plan, "UserPromptSubmit");
    prompt.insert("prompt".into(), json!(format!("Fix the failing test in src/server.rs. {}", filler(900, seed))));
    out.push(prompt);
    for (k, id) in plan.tool_use_ids.iter().enumerate() {
        let (name, input, response) = tool(k, seed + k as u64);
        let mut pre = turn(plan, "PreToolUse");
        pre.insert("tool_name".into(), json!(name));
        pre.insert("tool_input".into(), input.clone());
        pre.insert("tool_use_id".into(), json!(id));
        out.push(pre);
        let mut post = turn(plan, "PostToolUse");
        post.insert("tool_name".into(), json!(name));
        post.insert("tool_input".into(), input);
        post.insert("tool_response".into(), response);
        post.insert("tool_use_id".into(), json!(id));
        post.insert("duration_ms".into(), json!(20 + (seed + k as u64) % 900));
        out.push(post);
    }
    out.into_iter().map(|m| serde_json::to_vec(&Value::Object(m)).expect("serialisable")).collect()
}

fn session_end(plan: &Plan) -> Vec<u8> {
    let mut end = base(plan, "SessionEnd");
    end.insert("prompt_id".into(), json!(plan.prompt_id));
    end.insert("reason".into(), json!("other"));
    serde_json::to_vec(&Value::Object(end)).expect("serialisable")
}

/// utime + stime of a process, in seconds (`/proc/<pid>/stat`, USER_HZ = 100).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // fields after the `(comm)`, which may hold spaces
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after `(comm)` and state
    (ticks(11) + ticks(12)) / 100.0
}

/// What one cycle (phase 1 then phase 2) measured.
struct Cycle {
    p1: Tally,
    p2: Tally,
    phase1_wall: Duration,
    phase1_cpu: f64,
    phase2_wall: Duration,
    /// Sessions active and events counted by the sidecar once phase 1 was taken in.
    active_held: f64,
    events_counted: f64,
    open_wait: Duration,
    close_wait: Duration,
    active_left: f64,
    held: Memory,
    after: Memory,
}

impl Cycle {
    fn rate(&self) -> f64 {
        self.p1.accepted as f64 / self.phase1_wall.as_secs_f64()
    }
}

fn main() {
    let sessions = env_usize("BENCH_SESSIONS", 10_000);
    let threads = env_usize("BENCH_THREADS", 16).min(sessions);
    let pairs = env_usize("BENCH_TOOL_PAIRS", 4);
    let cycles = env_usize("BENCH_CYCLES", 2);
    let linger = std::env::var("BENCH_LINGER_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(0u64);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);

    // 10,000 sessions open at once: over the default cap of 5,000
    let sidecar = Sidecar::builder()
        .shipped_defaults()
        .env("HOOKTEL_SETTLE_MS", "200")
        .env("HOOKTEL_IDLE_TIMEOUT_SECS", "86400")
        .env("HOOKTEL_MAX_SESSIONS", "20000")
        .start();
    let pid = sidecar.pid();
    println!("sidecar_load: hooktel serve (local mode, settle 200 ms) pid {pid} at {}", sidecar.addr);
    println!(
        "{cycles} cycle(s) of {sessions} sessions (fresh ids each cycle), {threads} client threads on keep-alive \
         connections, {pairs} tool call pairs per session"
    );
    println!("NOTE: the load generator shares the machine's {cores} cores with the sidecar");

    // let the sidecar settle, then take the baseline
    std::thread::sleep(Duration::from_millis(500));
    let baseline = sidecar.memory();

    // gates: each cycle, threads build their payloads before `start` (off the clock), run phase 1
    // up to `phase1_done`, wait for `phase2` while memory is read, and meet again at `phase2_done`
    let gate = || Arc::new(Barrier::new(threads + 1));
    let (start, phase1_done, phase2, phase2_done) = (gate(), gate(), gate(), gate());
    let addr = sidecar.addr;
    let payload_bytes = Arc::new(AtomicU64::new(0));
    let tallies: Arc<Mutex<Vec<(Tally, Tally)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for t in 0..threads {
        let (start, phase1_done, phase2, phase2_done) =
            (start.clone(), phase1_done.clone(), phase2.clone(), phase2_done.clone());
        let (payload_bytes, tallies) = (payload_bytes.clone(), tallies.clone());
        let mine = (sessions - t).div_ceil(threads);
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng::new();
            let mut conn = Conn::new(addr);
            for cycle in 0..cycles {
                let plans: Vec<Plan> = (0..mine)
                    .map(|_| Plan {
                        session_id: rng.uuid().to_string(),
                        prompt_id: rng.uuid().to_string(),
                        tool_use_ids: (0..pairs).map(|_| rng.tool_use_id()).collect(),
                    })
                    .collect();
                let events: Vec<Vec<Vec<u8>>> =
                    plans.iter().map(|p| session_events(p, rng.next_u64() % 1000)).collect();
                let ends: Vec<Vec<u8>> = plans.iter().map(session_end).collect();
                if cycle == 0 {
                    let bytes: usize = events.iter().flatten().map(Vec::len).sum();
                    payload_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                }
                let _ = conn.connect();
                let mut p1 = Tally { latencies_us: Vec::with_capacity(mine * (2 + 2 * pairs)), ..Tally::default() };
                let mut p2 = Tally { latencies_us: Vec::with_capacity(mine), ..Tally::default() };

                start.wait();
                for step in 0..2 + 2 * pairs {
                    for ev in &events {
                        conn.send(&ev[step], &mut p1);
                    }
                }
                phase1_done.wait();
                phase2.wait();
                for end in &ends {
                    conn.send(end, &mut p2);
                }
                tallies.lock().unwrap().push((p1, p2));
                phase2_done.wait();
            }
        }));
    }

    // sample RSS all along, to see its shape beyond VmHWM
    let sampling = Arc::new(AtomicBool::new(true));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, max_rss) = (sampling.clone(), max_rss.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let rss = common::proc_status_kb(pid, "VmRSS").unwrap_or(0) * 1024;
                max_rss.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let mut results = Vec::new();
    let mut metrics = String::new();
    for _ in 0..cycles {
        start.wait();
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        phase1_done.wait();
        let phase1_wall = t0.elapsed();
        let phase1_cpu = cpu_seconds(pid) - cpu0;
        let expected = sessions as f64 + results.iter().map(|c: &Cycle| c.active_left).sum::<f64>();

        // wait until the pipeline has taken in everything and every session is open
        let t1 = Instant::now();
        let mut active_held = -1.0;
        common::poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
            metrics = sidecar.metrics();
            active_held = metric_value(&metrics, "hooktel_sessions_active").unwrap_or(-1.0);
            metric_value(&metrics, "hooktel_ingest_queue_depth") == Some(0.0) && active_held >= expected
        });
        let open_wait = t1.elapsed();
        let events_counted = metric_sum(&metrics, "hooktel_hook_events_total");
        std::thread::sleep(Duration::from_millis(500));
        let held = sidecar.memory();

        phase2.wait();
        let t2 = Instant::now();
        phase2_done.wait();
        let phase2_wall = t2.elapsed();
        let mut active_left = -1.0;
        common::poll_until(Duration::from_secs(60), Duration::from_millis(100), || {
            metrics = sidecar.metrics();
            active_left = metric_value(&metrics, "hooktel_sessions_active").unwrap_or(-1.0);
            active_left == 0.0
        });
        let close_wait = t2.elapsed() - phase2_wall;
        std::thread::sleep(Duration::from_secs(2));
        let after = sidecar.memory();

        let (mut p1, mut p2) = (Tally::default(), Tally::default());
        for (a, b) in tallies.lock().unwrap().drain(..) {
            p1.merge(a);
            p2.merge(b);
        }
        results.push(Cycle {
            p1,
            p2,
            phase1_wall,
            phase1_cpu,
            phase2_wall,
            active_held,
            events_counted,
            open_wait,
            close_wait,
            active_left,
            held,
            after,
        });
    }
    for h in handles {
        h.join().expect("client thread");
    }
    metrics = sidecar.metrics();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();

    report(sessions, pairs, baseline, &results, &metrics, &max_rss, payload_bytes.load(Ordering::Relaxed));

    if linger > 0 {
        println!("\nBENCH_LINGER_SECS: leaving the sidecar (pid {pid}) up for {linger} s for inspection");
        std::thread::sleep(Duration::from_secs(linger));
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    sessions: usize,
    pairs: usize,
    baseline: Memory,
    results: &[Cycle],
    metrics: &str,
    max_rss: &AtomicU64,
    payload_bytes: u64,
) {
    let first = &results[0];
    println!();
    println!("| cycle | phase                     | events | wall s | events/s | 503s | other non-200 | reconnects |");
    println!("|------:|---------------------------|-------:|-------:|---------:|-----:|--------------:|-----------:|");
    for (i, c) in results.iter().enumerate() {
        let row = |name: &str, t: &Tally, wall: Duration| {
            println!(
                "| {:>5} | {name:<25} | {:>6} | {:>6.2} | {:>8.0} | {:>4} | {:>13} | {:>10} |",
                i + 1,
                t.accepted,
                wall.as_secs_f64(),
                t.accepted as f64 / wall.as_secs_f64(),
                t.status_503,
                t.status_other + t.given_up,
                t.reconnects
            );
        };
        row("1: open sessions, no end", &c.p1, c.phase1_wall);
        row("2: SessionEnd for all", &c.p2, c.phase2_wall);
    }
    println!();
    let avg_payload = payload_bytes as f64 / (sessions * (2 + 2 * pairs)) as f64;
    println!("phase 1 payloads: average {avg_payload:.0} bytes");
    for (i, c) in results.iter().enumerate() {
        let mut lat = c.p1.latencies_us.clone();
        lat.sort_unstable();
        let (l50, l99, lmax) =
            if lat.is_empty() { (0, 0, 0) } else { (quantile(&lat, 0.5), quantile(&lat, 0.99), lat[lat.len() - 1]) };
        println!(
            "cycle {}: request latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; sidecar CPU {:.1} us/event \
             ({:.0}% of one core)",
            i + 1,
            l50 as f64 / 1e3,
            l99 as f64 / 1e3,
            lmax as f64 / 1e3,
            c.phase1_cpu * 1e6 / c.p1.accepted.max(1) as f64,
            100.0 * c.phase1_cpu / c.phase1_wall.as_secs_f64()
        );
        println!(
            "cycle {}: sidecar counted {} events in all, {} sessions active after phase 1 (+{:.2} s); \
             {} active {:.2} s after the last SessionEnd",
            i + 1,
            c.events_counted,
            c.active_held,
            c.open_wait.as_secs_f64(),
            c.active_left,
            c.close_wait.as_secs_f64()
        );
    }
    for family in ["hooktel_ingest_rejected_total", "hooktel_late_events_total", "hooktel_spans_dropped_total"] {
        println!("sidecar {family}: {}", metric_sum(metrics, family));
    }
    let given_up: u64 = results.iter().map(|c| c.p1.given_up + c.p2.given_up).sum();
    if given_up > 0 {
        println!("WARNING: {given_up} requests given up after {MAX_RETRIES} attempts");
    }

    println!();
    println!("| sidecar memory                          | VmRSS MB | VmHWM MB |");
    println!("|-----------------------------------------|---------:|---------:|");
    let mem = |name: &str, m: Memory| println!("| {name:<39} | {:>8.1} | {:>8.1} |", mb(m.rss), mb(m.hwm));
    mem("baseline (after start)", baseline);
    for (i, c) in results.iter().enumerate() {
        mem(&format!("cycle {}: {sessions} sessions open", i + 1), c.held);
        mem(&format!("cycle {}: all ended + 2 s", i + 1), c.after);
    }
    let growth = first.held.rss.saturating_sub(baseline.rss);
    let back_limit = baseline.rss + growth / 4;
    println!(
        "max VmRSS sampled every 50 ms: {:.1} MB; cycle 1 growth with sessions open {:.1} MB ({:.1} KB/session)",
        mb(max_rss.load(Ordering::Relaxed)),
        mb(growth),
        growth as f64 / 1024.0 / sessions as f64
    );
    if let Some(last) = results.last().filter(|_| results.len() > 1) {
        println!(
            "after-end RSS, cycle {} vs cycle 1: {:+.1} MB, against {:.1} MB of growth per {sessions} sessions held \
             (far less: the memory freed by ended sessions is reused, not leaked)",
            results.len(),
            (last.after.rss as f64 - first.after.rss as f64) / (1024.0 * 1024.0),
            mb(growth)
        );
    }

    println!();
    println!("targets (informational; timing never fails this bench; load generator on the same cores):");
    let rate = first.rate();
    verdict(rate >= 20_000.0, &format!("events/s sustained, cycle 1: {rate:.0} (target >= 20000)"));
    let peak = results.iter().map(|c| c.held.hwm.max(c.held.rss)).max().unwrap_or(0);
    verdict(
        peak < 200 * 1024 * 1024,
        &format!("peak RSS (VmHWM) with {sessions} sessions held: {:.1} MB (target < 200 MB)", mb(peak)),
    );
    verdict(
        first.after.rss <= back_limit,
        &format!(
            "RSS after all sessions ended, cycle 1: {:.1} MB (target <= baseline + 25% of growth = {:.1} MB)",
            mb(first.after.rss),
            mb(back_limit)
        ),
    );
    let non200: u64 =
        results.iter().map(|c| c.p1.status_503 + c.p1.status_other + c.p2.status_503 + c.p2.status_other).sum();
    verdict(non200 == 0, &format!("non-200 replies: {non200} (target 0)"));
}

fn verdict(ok: bool, what: &str) {
    println!("{}  {what}", if ok { "PASS" } else { "MISS" });
}
