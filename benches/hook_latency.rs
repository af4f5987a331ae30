//! Hook latency: wall time from spawning a hook command to its exit, as Claude Code pays it on
//! every hook event.
//!
//! Candidates, each fed the same captured `PreToolUse` payload
//! (`tests/fixtures/hooks/captured/04-PreToolUse.json`) on stdin:
//!
//! - `hooktel hook` with a local-mode sidecar up (started here on `127.0.0.1:0`);
//! - `/bin/true`, the floor: a process that does nothing;
//! - a trivial Rust program that reads stdin and exits, and one that also makes the hook's round trip
//!   (connect, POST the payload to the sidecar, read the status line): both compiled here with
//!   `rustc -O` (`$RUSTC`, else `rustc` on PATH), so the hook's cost is split into what any program
//!   pays, what talking to the sidecar adds, and what hooktel's own start-up adds;
//! - the usual home-grown hook: `python3 -c` that `json.load`s stdin and inserts it into a SQLite
//!   file (connect, `CREATE TABLE IF NOT EXISTS`, `INSERT`, commit);
//! - `hooktel hook` with the sidecar down (`HOOKTEL_ADDR` at a closed port): the event goes to the
//!   SQLite spool (a throwaway `HOOKTEL_DATA_DIR`); target within 2x of the time with the sidecar up.
//!
//! The candidates run round-robin (the starting one rotating every round) so that machine noise
//! spreads over all of them; medians and p90s are compared with the `/bin/true` floor measured in
//! the same run. The targets are printed as PASS/MISS lines; timing never fails the bench.
//!
//! Run: `cargo bench --bench hook_latency` (`BENCH_RUNS=N` to change the 300 runs per candidate).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_usize, metric_value, quantile, Sidecar, BIN};

const PAYLOAD: &[u8] = include_bytes!("../tests/fixtures/hooks/captured/04-PreToolUse.json");
const PAYLOAD_NAME: &str = "captured/04-PreToolUse.json";
const WARMUP_ROUNDS: usize = 10;

/// The trivial program: read stdin to its end, exit.
const TRIVIAL: &str =
    "fn main() { let mut b = Vec::new(); let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut b); }";

/// The trivial program with the hook's round trip: `argv[1]` is the sidecar's address.
const TRIVIAL_ROUND_TRIP: &str = r#"
use std::io::{Read, Write};
fn main() {
    let mut body = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut body);
    let addr = std::env::args().nth(1).expect("the sidecar's address");
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    let _ = s.set_nodelay(true);
    let mut req = format!("POST /v1/hooks HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    req.extend_from_slice(&body);
    s.write_all(&req).expect("send");
    let mut status = [0u8; 12];
    s.read_exact(&mut status).expect("answer");
    std::process::exit(if &status[9..12] == b"200" { 0 } else { 1 });
}
"#;

/// Compile `source` with `rustc -O` into `dir/name`.
fn compile(dir: &std::path::Path, name: &str, source: &str) -> String {
    let src = dir.join(format!("{name}.rs"));
    std::fs::write(&src, source).expect("write the program");
    let out = dir.join(name);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(&rustc)
        .args(["-O", "--edition", "2021", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("run {rustc}: {e}"));
    assert!(status.success(), "{rustc} could not compile {name}");
    out.to_string_lossy().into_owned()
}

/// The home-grown hook: the database path is `sys.argv[1]`.
const PYTHON_HOOK: &str = "\
import json, sqlite3, sys, time
p = json.load(sys.stdin)
db = sqlite3.connect(sys.argv[1])
db.execute('CREATE TABLE IF NOT EXISTS hook_events (ts REAL, session_id TEXT, event TEXT, tool TEXT, payload TEXT)')
db.execute('INSERT INTO hook_events VALUES (?, ?, ?, ?, ?)',
           (time.time(), p.get('session_id'), p.get('hook_event_name'), p.get('tool_name'), json.dumps(p)))
db.commit()
db.close()
";

struct Candidate {
    label: &'static str,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    samples: Vec<Duration>,
    failures: usize,
}

impl Candidate {
    fn new(label: &'static str, program: &str, args: &[&str], env: &[(&str, String)]) -> Candidate {
        Candidate {
            label,
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            samples: Vec::new(),
            failures: 0,
        }
    }

    /// Spawn, write the payload, close stdin, wait: the time from before spawn to after exit.
    fn run_once(&mut self) -> Duration {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.program));
        if let Some(mut stdin) = child.stdin.take() {
            // /bin/true may exit before reading: a broken pipe is expected there
            let _ = stdin.write_all(PAYLOAD);
        }
        let status = child.wait().expect("wait for hook");
        let took = start.elapsed();
        if !status.success() {
            self.failures += 1;
        }
        took
    }
}

struct Summary {
    median: Duration,
    p90: Duration,
}

fn summarise(samples: &[Duration]) -> Summary {
    let mut s = samples.to_vec();
    s.sort();
    Summary { median: quantile(&s, 0.5), p90: quantile(&s, 0.9) }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; this binary takes no arguments of its own
    let runs = env_usize("BENCH_RUNS", 300);
    let python = python3();

    let sidecar = Sidecar::builder().shipped_defaults().start();
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        l.local_addr().expect("local addr").to_string()
        // dropped here: nothing listens on it any more
    };
    let db_dir = std::env::temp_dir().join(format!("hooktel-bench-{}", std::process::id()));
    std::fs::create_dir_all(&db_dir).expect("temp dir");
    let db = db_dir.join("hooks.sqlite3");
    let db_arg = db.to_string_lossy().into_owned();
    let trivial = compile(&db_dir, "trivial", TRIVIAL);
    let round_trip = compile(&db_dir, "trivial_round_trip", TRIVIAL_ROUND_TRIP);

    const UP: usize = 0;
    const FLOOR: usize = 1;
    const PYTHON: usize = 2;
    const DOWN: usize = 3;
    const TRIVIAL_AT: usize = 4;
    const ROUND_TRIP: usize = 5;
    let mut candidates = [
        Candidate::new("hooktel hook, sidecar up", BIN, &["hook"], &[("HOOKTEL_ADDR", sidecar.addr.to_string())]),
        Candidate::new("/bin/true (floor)", "/bin/true", &[], &[]),
        Candidate::new("python3 json + sqlite3 hook", &python, &["-c", PYTHON_HOOK, &db_arg], &[]),
        Candidate::new(
            "hooktel hook, down: spools",
            BIN,
            &["hook"],
            &[
                ("HOOKTEL_ADDR", closed_port.clone()),
                ("HOOKTEL_DATA_DIR", db_dir.join("spool").to_string_lossy().into_owned()),
            ],
        ),
        Candidate::new("trivial Rust: reads stdin", &trivial, &[], &[]),
        Candidate::new("trivial Rust + round trip", &round_trip, &[&sidecar.addr.to_string()], &[]),
    ];

    println!("hook_latency: spawn-to-exit wall time, {runs} runs per candidate, round-robin");
    println!("payload: {PAYLOAD_NAME} ({} bytes) on stdin; hooktel: {BIN}", PAYLOAD.len());
    println!("sidecar (local mode) at {}; sidecar-down runs use closed port {closed_port}", sidecar.addr);
    println!("python hook interpreter: {python}");
    println!("cores available: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

    let started = Instant::now();
    let n = candidates.len();
    for round in 0..WARMUP_ROUNDS + runs {
        for i in 0..n {
            let c = &mut candidates[(round + i) % n];
            let took = c.run_once();
            if round >= WARMUP_ROUNDS {
                c.samples.push(took);
            }
        }
    }
    let wall = started.elapsed();

    // every `hooktel hook` run with the sidecar up must have been delivered
    let delivered = wait_for_count(&sidecar, (2 * (WARMUP_ROUNDS + runs)) as f64);
    let spooled = rusqlite::Connection::open(db_dir.join("spool/spool.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM hook_events", [], |r| r.get::<_, i64>(0)))
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&db_dir);

    let sums: Vec<Summary> = candidates.iter().map(|c| summarise(&c.samples)).collect();
    let floor = &sums[FLOOR];
    println!();
    println!("| candidate                    | median ms |   p90 ms | median / true | p90 / true | failures |");
    println!("|------------------------------|----------:|---------:|--------------:|-----------:|---------:|");
    for &i in &[FLOOR, TRIVIAL_AT, ROUND_TRIP, UP, DOWN, PYTHON] {
        let (c, s) = (&candidates[i], &sums[i]);
        println!(
            "| {:<28} | {:>9.3} | {:>8.3} | {:>12.2}x | {:>9.2}x | {:>8} |",
            c.label,
            ms(s.median),
            ms(s.p90),
            ratio(s.median, floor.median),
            ratio(s.p90, floor.p90),
            c.failures
        );
    }
    let speedup = ratio(sums[PYTHON].median, sums[UP].median);
    let speedup_p90 = ratio(sums[PYTHON].p90, sums[UP].p90);
    println!();
    println!(
        "speed-up of hooktel (sidecar up) over the python hook: {speedup:.1}x by median, {speedup_p90:.1}x by p90"
    );
    let (trivial, round_trip) = (&sums[TRIVIAL_AT], &sums[ROUND_TRIP]);
    println!(
        "against the trivial Rust program (median): hooktel {:.2}x; the round trip alone {:.2}x; hooktel / the trivial program with the round trip {:.2}x",
        ratio(sums[UP].median, trivial.median),
        ratio(round_trip.median, trivial.median),
        ratio(sums[UP].median, round_trip.median)
    );
    println!(
        "events the sidecar counted: {delivered} of {} sent with it up (warm-up included, and the round-trip program's)",
        2 * (WARMUP_ROUNDS + runs)
    );
    println!("events spooled with the sidecar down: {spooled} of {}", WARMUP_ROUNDS + runs);
    println!("total bench wall time: {:.1} s", wall.as_secs_f64());
    println!();
    println!("targets (informational; timing never fails this bench):");
    let near = ratio(sums[UP].median, sums[TRIVIAL_AT].median);
    verdict(near <= 1.4, &format!("hooktel median within 1.4x of a trivial Rust program: {near:.2}x (target <= 1.4x)"));
    let within = ratio(sums[UP].median, floor.median);
    verdict(within <= 3.0, &format!("hooktel median within 3x of /bin/true: {within:.2}x (target <= 3x)"));
    verdict(
        speedup >= 20.0,
        &format!("hooktel at least 20x faster than the python hook: {speedup:.1}x (target >= 20x)"),
    );
    let spool = ratio(sums[DOWN].median, sums[UP].median);
    verdict(spool <= 2.0, &format!("hook that has to spool within 2x of the sidecar up: {spool:.2}x (target <= 2x)"));
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn verdict(ok: bool, what: &str) {
    println!("{}  {what}", if ok { "PASS" } else { "MISS" });
}

/// The sidecar's count of accepted PreToolUse events, once it reaches `expected` (or after 5 s).
fn wait_for_count(sidecar: &Sidecar, expected: f64) -> f64 {
    let sample = r#"hooktel_hook_events_total{event="PreToolUse"}"#;
    let mut last = 0.0;
    common::poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        last = metric_value(&sidecar.metrics(), sample).unwrap_or(0.0);
        last >= expected
    });
    last
}

/// The real python3 interpreter: `python3` on PATH may be a shim (pyenv's is a shell script that
/// costs tens of milliseconds per start), which would flatter hooktel.
fn python3() -> String {
    let out =
        Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().expect("python3 on PATH");
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!exe.is_empty(), "python3 did not report sys.executable");
    exe
}
