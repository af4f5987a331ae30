//! Transcript parsing: how many MB/s of Claude Code transcript `Ledger::read` gets through on one
//! core, against baselines measured in the same run on the same bytes.
//!
//! A transcript set of `BENCH_TRANSCRIPT_MB` (MB = 2^20 bytes) is generated from the real fixture
//! lines of `tests/fixtures/transcripts/` used as templates (every id, uuid and timestamp fresh):
//! sessions of turns, each a prompt line with `promptId`, attachments, then responses written one
//! line per content block (thinking, text, tool_use), each line repeating the response's usage under
//! a unique `message.id`/`requestId`, each tool call followed by its result, sizable and repeated
//! in `toolUseResult` (Read with `cat -n` content, Bash output, Edit with the whole `originalFile`,
//! Write, Grep, Glob, Agent, ...), and around them queue, api-request, system, last-prompt,
//! cost-state lines. Subagent transcripts (`agentId`, mostly a haiku model), a share of 2.1.29-style
//! sessions with growing placeholder usage, compactions, `<synthetic>` and API-error lines, and
//! models priced, aliased (dated, `[1m]`, Bedrock) and unpriced are in the mix. Most bytes are not
//! usage lines, as in real transcripts; the mix is printed. Fields the fixtures redact (prompt
//! snapshots, api-request bodies and blobs) are filled with a few KB of text, an assumption. The
//! files are written under the system temporary directory and removed at the end.
//!
//! Variants, each over the whole set on one thread, round-robin (the first rotating every run),
//! median of `BENCH_RUNS` by the thread's CPU time (other processes disturb it less than wall time,
//! which is printed too):
//! - split lines only: the same memchr-free `split` + blank check as `Ledger::read` (floor);
//! - serde_json `IgnoredAny` per line: JSON validation alone, building nothing;
//! - serde_json `Value` per line (+ reading `type` and `message.usage`): the naive parser;
//! - `Ledger::read` of each whole file in memory: the figure;
//! - `Ledger::read` in 16 KiB growth steps from the saved offset: a file read while it grows, partial
//!   last lines included (Claude Code appends whole lines, so this is the pessimistic case);
//! - file read + `Ledger::read`: open, seek, `read_to_end` as `accounting` does (page cache warm).
//!
//! Then `Ledger::read` and `IgnoredAny` over each kind of line alone (up to 8 MB of each), to show
//! where the time goes, and `Ledger::read` over the same lines with the bulk of `message` moved out
//! of it (renamed, or `content` moved to the top level on assistant lines): hooktel's own code on
//! both sides, what serde's `untagged` costs on `message`.
//!
//! Correctness guard: the usage, cost and per-(prompt, agent) and per-model totals of the generated
//! set are kept while generating; what each ledger variant counts must equal them (printed
//! OK/MISMATCH). Targets are printed as PASS/MISS lines; nothing here fails the bench.
//!
//! Run: `cargo bench --bench transcript_parse`. Knobs: `BENCH_TRANSCRIPT_MB` (200), `BENCH_RUNS`
//! (5), `BENCH_SEED` (1; the set is a function of it), `BENCH_KEEP_FILES=1` to leave the files.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{env_usize, mb, quantile, Rng};
use hooktel::model::tokens::TokenUsage;
use hooktel::usage::logs::claude_code::Ledger;
use hooktel::usage::logs::Delta;
use hooktel::usage::pricing::{self, PriceTable, Service};
use serde::Deserialize;
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transcripts");
const CAPTURED: &str = "captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f.jsonl";
const CAPTURED_AGENT: &str =
    "captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f/subagents/agent-a7ca175cf2fd2156a.jsonl";
const REAL: &str = "real-2.1.197/-home-dev-proj/02bdf4d0-26a2-4933-84b0-132a1d9fb0ee.jsonl";
const SYNTHETIC: &str = "synthetic-2.1.329/-home-dev-projects-acme-api/3f6c2a8e-9b1d-4e7a-8c5f-2d4b6a1e9c07.jsonl";
const LEGACY: &str = "legacy-2.1.29-partial-usage.jsonl";

/// Growth step of the incremental variant.
const STEP: usize = 16 * 1024;
/// Bytes of each kind of line kept for the per-kind table.
const SAMPLE_CAP: usize = 8 * 1024 * 1024;
/// `accounting`'s cap on one read.
const MAX_READ: u64 = 64 * 1024 * 1024;

fn main() {
    let target = env_usize("BENCH_TRANSCRIPT_MB", 200) as u64 * 1024 * 1024;
    let runs = env_usize("BENCH_RUNS", 5);
    let seed = std::env::var("BENCH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1u64);
    let keep = std::env::var("BENCH_KEEP_FILES").is_ok_and(|v| v == "1");
    let prices = PriceTable::builtin();

    let dir = std::env::temp_dir().join(format!("hooktel-bench-transcripts-{}", std::process::id()));
    let t0 = Instant::now();
    let mut gen = Gen::new(seed, &prices);
    let set = gen.set(target, &dir);
    let gen_time = t0.elapsed();

    println!("transcript_parse: transcript bytes per second on one thread, {runs} runs per variant, round-robin");
    println!(
        "set: {} files ({} sessions, {} subagent transcripts), {:.1} MB, {} lines, seed {seed}; generated and \
         written in {:.1} s to {}",
        set.files.len(),
        gen.sessions,
        set.files.len() - gen.sessions,
        mb(set.bytes),
        gen.mix.iter().map(|m| m.lines).sum::<u64>(),
        gen_time.as_secs_f64(),
        dir.display()
    );
    let sizes = {
        let mut s: Vec<u64> = set.files.iter().map(|f| f.bytes.len() as u64).collect();
        s.sort_unstable();
        s
    };
    println!(
        "file sizes: median {:.0} KB, p90 {:.0} KB, max {:.1} MB",
        quantile(&sizes, 0.5) as f64 / 1024.0,
        quantile(&sizes, 0.9) as f64 / 1024.0,
        mb(*sizes.last().unwrap_or(&0))
    );
    println!("cores available: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    print_mix(&gen.mix, set.bytes);

    let variants: Vec<Variant> = vec![
        Variant { label: "split lines only (floor)", ledger: false, run: split_only },
        Variant { label: "serde_json IgnoredAny per line", ledger: false, run: ignored_any },
        Variant { label: "serde_json Value per line (naive)", ledger: false, run: value_per_line },
        Variant { label: "Ledger::read, whole file in memory", ledger: true, run: ledger_whole },
        Variant { label: "Ledger::read, 16 KiB growth steps", ledger: true, run: ledger_steps },
        Variant { label: "file read + Ledger::read", ledger: true, run: ledger_disk },
    ];
    const LEDGER: usize = 3;
    const STEPS: usize = 4;
    const VALUE: usize = 2;

    // correctness guard, untimed; it also warms every path once
    let detailed = detailed_totals(&set, &prices);
    let mut samples: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); variants.len()];
    let mut totals: Vec<Totals> = vec![Totals::default(); variants.len()];
    for (i, v) in variants.iter().enumerate() {
        totals[i] = (v.run)(&set, &prices);
    }
    let started = Instant::now();
    let n = variants.len();
    for run in 0..runs {
        for i in 0..n {
            let v = (run + i) % n;
            let (wall0, cpu0) = (Instant::now(), thread_cpu());
            let t = black_box((variants[v].run)(black_box(&set), &prices));
            samples[v].push((wall0.elapsed(), thread_cpu().saturating_sub(cpu0)));
            totals[v].check_same(&t);
        }
    }
    let wall = started.elapsed();

    let rate = |d: Duration| mb(set.bytes) / d.as_secs_f64().max(1e-9);
    let summaries: Vec<Summary> = samples
        .iter()
        .map(|s| {
            let mut w: Vec<Duration> = s.iter().map(|x| x.0).collect();
            let mut c: Vec<Duration> = s.iter().map(|x| x.1).collect();
            w.sort();
            c.sort();
            Summary { wall: quantile(&w, 0.5), cpu: quantile(&c, 0.5), fastest: w[0], slowest: w[w.len() - 1] }
        })
        .collect();
    let lines: u64 = gen.mix.iter().map(|m| m.lines).sum();
    println!();
    println!(
        "| variant                               | MB/s CPU | MB/s wall | min..max MB/s wall | CPU s/pass | ns/line | vs Ledger |"
    );
    println!(
        "|---------------------------------------|---------:|----------:|-------------------:|-----------:|--------:|----------:|"
    );
    for (v, s) in variants.iter().zip(&summaries) {
        println!(
            "| {:<37} | {:>8.0} | {:>9.0} | {:>8.0}..{:<9.0} | {:>10.3} | {:>7.0} | {:>8.2}x |",
            v.label,
            rate(s.cpu),
            rate(s.wall),
            rate(s.slowest),
            rate(s.fastest),
            s.cpu.as_secs_f64(),
            s.cpu.as_secs_f64() * 1e9 / lines as f64,
            summaries[LEDGER].cpu.as_secs_f64() / s.cpu.as_secs_f64().max(1e-9),
        );
    }
    println!(
        "(medians; CPU = the bench thread's CPU time, less disturbed by other processes than wall time; vs Ledger: \
         the Ledger's median CPU time over the variant's, above 1x the variant is faster)"
    );
    println!(
        "16 KiB growth steps: {:.1} MB handed to Ledger::read for {:.1} MB of files (partial last lines handed again, \
         and scanned back to their start by `rposition`, at every step they span)",
        mb(totals[STEPS].passed),
        mb(set.bytes)
    );
    println!("total timed wall time: {:.1} s", wall.as_secs_f64());

    by_kind(&gen, &prices, runs);

    println!();
    println!("correctness guard (generated totals vs counted):");
    let exp = &gen.expected;
    println!(
        "generated: {} responses counted, {} lines skipped by design (<synthetic>, API errors), {} placeholder lines; \
         usage in {} out {} cache_read {} cache_write_5m {} cache_write_1h {} web_search {}; cost ${:.4}",
        exp.responses,
        exp.skipped_lines,
        exp.placeholder_lines,
        exp.total.input,
        exp.total.output,
        exp.total.cache_read,
        exp.total.cache_write_5m,
        exp.total.cache_write_1h,
        exp.total.web_search,
        exp.cost
    );
    for (v, t) in variants.iter().zip(&totals).filter(|(v, _)| v.ledger) {
        let ok = t.usage == exp.total && close(t.cost, exp.cost) && t.bad_lines == 0 && t.complete && t.consistent;
        println!(
            "{}  {:<37} usage {}, cost ${:.4}, {} deltas, {} bad lines, offsets at EOF: {}, same every run: {}",
            if ok { "OK      " } else { "MISMATCH" },
            v.label,
            if t.usage == exp.total { "equal" } else { "DIFFERENT" },
            t.cost,
            t.deltas,
            t.bad_lines,
            t.complete,
            t.consistent
        );
        if t.usage != exp.total {
            println!("          counted: {:?}", t.usage);
        }
    }
    let by_model_ok = detailed.by_model == exp.by_model;
    let by_prompt_ok = detailed.by_prompt == exp.by_prompt;
    println!(
        "{}  per model ({} models) and per (prompt, agent) ({} keys) totals of Ledger::read: {} / {}",
        if by_model_ok && by_prompt_ok { "OK      " } else { "MISMATCH" },
        exp.by_model.len(),
        exp.by_prompt.len(),
        if by_model_ok { "equal" } else { "DIFFERENT" },
        if by_prompt_ok { "equal" } else { "DIFFERENT" },
    );
    let priced = detailed.unpriced_models.is_empty() || detailed.unpriced_models == ["claude-nova-1".to_string()];
    println!(
        "{}  unpriced models reported: {:?} (only the generated unpriced one expected)",
        if priced { "OK      " } else { "MISMATCH" },
        detailed.unpriced_models
    );

    println!();
    println!("targets (informational; timing never fails this bench):");
    let ledger = rate(summaries[LEDGER].cpu);
    verdict(ledger >= 100.0, &format!("Ledger::read on one core: {ledger:.0} MB/s (target >= 100 MB/s)"));
    let naive = rate(summaries[VALUE].cpu);
    verdict(
        ledger >= naive,
        &format!("Ledger::read at least as fast as the naive Value parser: {:.2}x (target >= 1x)", ledger / naive),
    );

    if keep {
        println!("\nBENCH_KEEP_FILES=1: the set stays in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

type Parser<'a> = &'a dyn Fn(&[u8]);

/// The same line with the bulk of `message` moved out of it, where the ledger does not need it: on
/// assistant lines `message.content` goes to a top-level key, elsewhere `message` is renamed. What
/// `Ledger::read` then saves is what serde's `untagged` costs on those bytes (it buffers the whole
/// value of `message` into its `Content` tree, copying escaped strings, and for a string value
/// formats it with `{:?}` into the error of the failed `Message` attempt); an unknown key is only
/// skipped.
fn move_message_bulk(line: &[u8], order: &KeyOrder) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(line).expect("a generated line is JSON");
    let assistant = v["type"] == "assistant";
    if let Some(o) = v.as_object_mut() {
        match o.remove("message") {
            Some(Value::Object(mut m)) if assistant => {
                if let Some(content) = m.remove("content") {
                    o.insert("content_".into(), content);
                }
                o.insert("message".into(), Value::Object(m));
            }
            Some(m) => {
                o.insert("message_".into(), m);
            }
            None => {}
        }
    }
    let mut out = serde_json::to_vec(&InOrder(&v, order)).expect("serialize");
    out.push(b'\n');
    out
}

/// The parsers over the lines of each kind alone: where the time goes, and what `message` costs.
fn by_kind(gen: &Gen, prices: &PriceTable, runs: usize) {
    let ledger = |b: &[u8]| {
        black_box(Ledger::default().read(b, prices));
    };
    let ignored = |b: &[u8]| {
        for line in lines(b) {
            black_box(serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok());
        }
    };
    println!();
    println!(
        "by line kind (each kind's lines alone, up to {} MB of each, at least 16 MB per timing; CPU MB/s, medians, \
         round-robin; 'moved out': the same lines with the bulk of `message` moved out of it):",
        SAMPLE_CAP >> 20
    );
    println!(
        "| line kind                           | Ledger | Ledger, moved out | gain  | IgnoredAny | share of Ledger |"
    );
    println!(
        "|-------------------------------------|-------:|------------------:|------:|-----------:|----------------:|"
    );
    let (mut secs, mut secs_moved) = (0.0, 0.0);
    let mut rows = Vec::new();
    for (i, name) in KIND_NAMES.iter().enumerate() {
        let sample = &gen.samples[i];
        if sample.is_empty() {
            continue;
        }
        let moved: Vec<u8> = lines(sample).flat_map(|l| move_message_bulk(l, &gen.order)).collect();
        let inputs: [(&[u8], Parser); 3] = [(sample, &ledger), (&moved, &ledger), (sample, &ignored)];
        let mut times: [Vec<f64>; 3] = Default::default();
        for run in 0..runs.max(3) {
            for k in 0..inputs.len() {
                let p = (run + k) % inputs.len();
                let (bytes, parse) = inputs[p];
                let reps = (16 << 20) / bytes.len() + 1;
                let c0 = thread_cpu();
                for _ in 0..reps {
                    parse(black_box(bytes));
                }
                let took = thread_cpu().saturating_sub(c0).as_secs_f64().max(1e-9);
                times[p].push(mb((bytes.len() * reps) as u64) / took);
            }
        }
        let r = times.each_mut().map(|t| {
            t.sort_by(f64::total_cmp);
            quantile(t, 0.5)
        });
        // seconds the whole set's lines of this kind take in the ledger, as they are and moved out
        let kind_mb = mb(gen.mix[i].bytes);
        secs += kind_mb / r[0];
        secs_moved += kind_mb * (moved.len() as f64 / sample.len() as f64) / r[1];
        rows.push((name, r, kind_mb / r[0]));
    }
    for (name, [ledger, moved, ignored], kind_secs) in rows {
        println!(
            "| {name:<35} | {ledger:>6.0} | {moved:>17.0} | {:>4.2}x | {ignored:>10.0} | {:>14.1}% |",
            moved / ledger,
            100.0 * kind_secs / secs.max(1e-9)
        );
    }
    let total = mb(gen.mix.iter().map(|m| m.bytes).sum());
    println!(
        "(share: each kind's bytes in the set over its Ledger rate.) Estimated from these rates, Ledger::read on the \
         whole set: {:.0} MB/s as it is, {:.0} MB/s with the bulk of `message` skipped rather than buffered ({:.2}x)",
        total / secs.max(1e-9),
        total / secs_moved.max(1e-9),
        secs / secs_moved.max(1e-9)
    );
}

fn verdict(ok: bool, what: &str) {
    println!("{}  {what}", if ok { "PASS" } else { "MISS" });
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// CPU time of the calling thread (user + system).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Summary {
    wall: Duration,
    cpu: Duration,
    fastest: Duration,
    slowest: Duration,
}

struct Variant {
    label: &'static str,
    /// Whether it counts usage (and so is held to the correctness guard).
    ledger: bool,
    run: fn(&Set, &PriceTable) -> Totals,
}

// ---------------------------------------------------------------------------------------------
// The variants

/// What one pass over the set counted.
#[derive(Clone, Copy, Debug)]
struct Totals {
    usage: TokenUsage,
    cost: f64,
    deltas: u64,
    bad_lines: u64,
    lines: u64,
    /// Bytes handed to the parser (more than the file when partial lines are handed again).
    passed: u64,
    /// Every ledger's offset reached its file's end.
    complete: bool,
    /// Every timed pass counted what the first did.
    consistent: bool,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            usage: TokenUsage::default(),
            cost: 0.0,
            deltas: 0,
            bad_lines: 0,
            lines: 0,
            passed: 0,
            complete: true,
            consistent: true,
        }
    }
}

impl Totals {
    fn add(&mut self, deltas: &[Delta], bad_lines: u64) {
        for d in deltas {
            self.usage.add(d.usage);
            self.cost += d.cost;
        }
        self.deltas += deltas.len() as u64;
        self.bad_lines += bad_lines;
    }

    fn check_same(&mut self, o: &Totals) {
        let same = self.usage == o.usage
            && self.cost.to_bits() == o.cost.to_bits()
            && self.deltas == o.deltas
            && self.lines == o.lines;
        self.consistent &= same;
    }
}

struct File {
    path: PathBuf,
    bytes: Vec<u8>,
}

struct Set {
    files: Vec<File>,
    bytes: u64,
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The complete lines of `bytes`, split as `Ledger::read` splits them.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = bytes.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    bytes[..end].split(|&b| b == b'\n').filter(|l| !is_blank(l))
}

fn split_only(set: &Set, _: &PriceTable) -> Totals {
    let mut t = Totals::default();
    let mut sum = 0u64;
    for f in &set.files {
        for line in lines(&f.bytes) {
            t.lines += 1;
            sum += line.len() as u64;
        }
    }
    black_box(sum);
    t
}

fn ignored_any(set: &Set, _: &PriceTable) -> Totals {
    let mut t = Totals::default();
    for f in &set.files {
        for line in lines(&f.bytes) {
            t.lines += 1;
            if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err() {
                t.bad_lines += 1;
            }
        }
    }
    t
}

fn value_per_line(set: &Set, _: &PriceTable) -> Totals {
    let mut t = Totals::default();
    for f in &set.files {
        for line in lines(&f.bytes) {
            t.lines += 1;
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => {
                    if v.get("type").and_then(Value::as_str) == Some("assistant") {
                        let out = v.pointer("/message/usage/output_tokens").and_then(Value::as_u64);
                        t.usage.output += out.unwrap_or(0);
                    }
                }
                Err(_) => t.bad_lines += 1,
            }
        }
    }
    t
}

fn ledger_whole(set: &Set, prices: &PriceTable) -> Totals {
    let mut t = Totals::default();
    for f in &set.files {
        let mut l = Ledger::default();
        let r = l.read(&f.bytes, prices);
        t.add(&r.deltas, r.bad_lines);
        t.complete &= l.offset == f.bytes.len() as u64;
    }
    t
}

fn ledger_steps(set: &Set, prices: &PriceTable) -> Totals {
    let mut t = Totals::default();
    for f in &set.files {
        let mut l = Ledger::default();
        let mut upto = 0;
        while upto < f.bytes.len() {
            upto = (upto + STEP).min(f.bytes.len());
            let from = l.offset as usize;
            let r = l.read(&f.bytes[from..upto], prices);
            t.passed += (upto - from) as u64;
            t.add(&r.deltas, r.bad_lines);
        }
        t.complete &= l.offset == f.bytes.len() as u64;
    }
    t
}

fn ledger_disk(set: &Set, prices: &PriceTable) -> Totals {
    let mut t = Totals::default();
    for f in &set.files {
        let mut l = Ledger::default();
        let bytes = new_bytes(&f.path, l.offset).expect("read a generated transcript");
        let r = l.read(&bytes, prices);
        t.add(&r.deltas, r.bad_lines);
        t.complete &= l.offset == f.bytes.len() as u64;
    }
    t
}

/// As `accounting::new_bytes`: the file from `offset`, at most `MAX_READ` bytes.
fn new_bytes(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity((len - offset).min(MAX_READ) as usize);
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Totals of `Ledger::read` (whole files) split by model and by (prompt, agent), untimed.
struct Detailed {
    by_model: HashMap<String, TokenUsage>,
    by_prompt: HashMap<(Option<String>, Option<String>), TokenUsage>,
    unpriced_models: Vec<String>,
}

fn detailed_totals(set: &Set, prices: &PriceTable) -> Detailed {
    let mut d = Detailed { by_model: HashMap::new(), by_prompt: HashMap::new(), unpriced_models: Vec::new() };
    for f in &set.files {
        for delta in Ledger::default().read(&f.bytes, prices).deltas {
            d.by_model.entry(delta.model.clone()).or_default().add(delta.usage);
            d.by_prompt.entry((delta.prompt_id, delta.agent_id)).or_default().add(delta.usage);
            if !delta.priced && !d.unpriced_models.contains(&delta.model) {
                d.unpriced_models.push(delta.model);
            }
        }
    }
    d
}

// ---------------------------------------------------------------------------------------------
// The generated set

/// Kinds of line, for the printed mix.
#[derive(Clone, Copy)]
enum Kind {
    Assistant,
    Prompt,
    ToolResult,
    Attachment,
    ApiRequest,
    System,
    Meta,
    Skipped,
}

const KIND_NAMES: [&str; 8] = [
    "assistant (usage, one per block)",
    "user prompt / compact summary",
    "user tool_result",
    "attachment",
    "api-request, -blob, -shape",
    "system",
    "queue, last-prompt, cost-state, ...",
    "<synthetic> and API-error lines",
];

#[derive(Clone, Copy, Default)]
struct Mix {
    lines: u64,
    bytes: u64,
}

fn print_mix(mix: &[Mix], total: u64) {
    println!();
    println!("| line kind                           |   lines |     MB | share of bytes | bytes/line |");
    println!("|-------------------------------------|--------:|-------:|---------------:|-----------:|");
    for (name, m) in KIND_NAMES.iter().zip(mix) {
        println!(
            "| {name:<35} | {:>7} | {:>6.1} | {:>13.1}% | {:>10.0} |",
            m.lines,
            mb(m.bytes),
            100.0 * m.bytes as f64 / total.max(1) as f64,
            m.bytes as f64 / m.lines.max(1) as f64
        );
    }
}

/// What the generated set holds, kept while generating.
#[derive(Default)]
struct Expected {
    total: TokenUsage,
    cost: f64,
    responses: u64,
    skipped_lines: u64,
    placeholder_lines: u64,
    by_model: HashMap<String, TokenUsage>,
    by_prompt: HashMap<(Option<String>, Option<String>), TokenUsage>,
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "request",
    "handler",
    "token",
    "expiry",
    "test",
    "should",
    "return",
    "error",
    "when",
    "config",
    "file",
    "is",
    "missing",
    "I'll",
    "check",
    "update",
    "session",
    "cache",
    "and",
    "then",
    "run",
    "suite",
    "fails",
    "because",
    "of",
    "an",
    "off-by-one",
    "in",
    "parser",
    "let",
    "me",
    "look",
    "at",
    "`src/lib.rs`",
    "first",
    "**note**",
    "—",
    "migration",
    "schema",
    "value",
    "retry",
    "timeout",
    "user",
    "middleware",
    "route",
    "query",
];
const IDENTS: &[&str] = &[
    "config",
    "session",
    "token",
    "handler",
    "request",
    "response",
    "cache",
    "user_id",
    "expires_at",
    "payload",
    "router",
    "db",
    "pool",
    "claims",
    "secret",
    "headers",
    "ctx",
    "state",
    "items",
    "result",
    "path",
    "offset",
];
const TYPES: &[&str] = &["Config", "Session", "Claims", "Router", "Request", "Response", "Error", "State", "Pool"];
const CRATES: &[&str] = &["serde", "tokio", "hyper", "axum", "sqlx", "tracing", "anyhow", "jsonwebtoken", "chrono"];

/// Text to cut tool outputs, prompts and answers from.
struct Corpus {
    code: Vec<String>,
    log: Vec<String>,
}

impl Corpus {
    fn new(rng: &mut Rng) -> Corpus {
        let code = (0..6000).map(|_| Corpus::code_line(rng)).collect();
        let log = (0..3000).map(|_| Corpus::log_line(rng)).collect();
        Corpus { code, log }
    }

    fn code_line(rng: &mut Rng) -> String {
        let ind = "    ".repeat(rng.below(4) as usize);
        let (a, b, c) = (rng.pick(IDENTS), rng.pick(IDENTS), rng.pick(IDENTS));
        let (t, w1, w2) = (rng.pick(TYPES), rng.pick(WORDS), rng.pick(WORDS));
        let n = rng.below(5000);
        match rng.below(14) {
            0 => format!("{ind}let {a} = {b}.{c}(&{a}, \"{w1} {w2}\")?;"),
            1 => format!("{ind}// {w1} {w2} {a} {} {}", rng.pick(WORDS), rng.pick(WORDS)),
            2 => format!("{ind}pub fn {a}(&self, {b}: &str) -> Result<{t}, Error> {{"),
            3 | 4 => format!("{ind}}}"),
            5 => format!("{ind}if {a}.is_empty() {{ return Err(Error::msg(\"{w1} {w2}: {{}}\", {b})); }}"),
            6 => format!("import {{ {t} }} from '../{a}/{b}';"),
            7 => format!("{ind}def {a}(self, {b}):"),
            8 => format!("{ind}return f\"{w1} {{{a}}} — {w2}\""),
            9 => format!("\t{a}: {n},"),
            10 => String::new(),
            11 => format!("{ind}const {}: &str = \"/api/v1/{a}/{b}\";", a.to_uppercase()),
            12 => format!("{ind}assert_eq!({a}.{b}, {n}, \"{w1}\\n{w2}\");"),
            _ => format!("{ind}{a}.{b}({c}, {n}); # {w1} ✓"),
        }
    }

    fn log_line(rng: &mut Rng) -> String {
        let (a, b, c) = (rng.pick(IDENTS), rng.pick(IDENTS), rng.pick(IDENTS));
        match rng.below(9) {
            0 => format!("   Compiling {} v{}.{}.{}", rng.pick(CRATES), rng.below(3), rng.below(40), rng.below(20)),
            1 | 2 => format!("test {a}::{b}::{c} ... ok"),
            3 => format!("warning: unused variable: `{a}`"),
            4 => format!("  --> src/{a}/{b}.rs:{}:{}", rng.below(900), rng.below(80)),
            5 => format!("src/{a}/{b}.rs:{}:    let {c} = {a}.{b}();", rng.below(900)),
            6 => format!("\u{1b}[32m✓\u{1b}[0m {a} {b} ({} ms)", rng.below(900)),
            7 => format!("drwxr-xr-x  5 dev dev  4096 Nov 21 04:31 {a}"),
            _ => format!("error[E0308]: mismatched types: expected `{}`, found `&str`", rng.pick(TYPES)),
        }
    }

    fn cut<'a>(lines: &'a [String], rng: &mut Rng, n: usize) -> impl Iterator<Item = &'a String> {
        let start = rng.below(lines.len() as u64) as usize;
        lines.iter().cycle().skip(start).take(n)
    }

    fn code(&self, rng: &mut Rng, lo: u64, hi: u64) -> String {
        let n = rng.log(lo, hi) as usize;
        let mut s = String::new();
        for l in Corpus::cut(&self.code, rng, n) {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// As Read returns a file: `cat -n` numbering.
    fn numbered(&self, rng: &mut Rng, n: usize) -> String {
        let mut s = String::new();
        for (i, l) in Corpus::cut(&self.code, rng, n).enumerate() {
            let _ = writeln!(s, "{:>6}\t{l}", i + 1);
        }
        s
    }

    fn log(&self, rng: &mut Rng, lo: u64, hi: u64) -> String {
        let n = rng.log(lo, hi) as usize;
        let mut s = String::new();
        for l in Corpus::cut(&self.log, rng, n) {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// About `lo..=hi` bytes of prose (log-uniform).
    fn prose(&self, rng: &mut Rng, lo: u64, hi: u64) -> String {
        let bytes = rng.log(lo, hi) as usize;
        let mut s = String::new();
        while s.len() < bytes {
            for _ in 0..rng.range(6, 16) {
                s.push_str(rng.pick(WORDS));
                s.push(' ');
            }
            s.push_str(if rng.chance(0.2) { ".\n\n- " } else { ". " });
        }
        s
    }
}

/// Fixture lines the generated ones are made from.
struct Templates {
    prompt: Value,
    assistant: Value,
    legacy_assistant: Value,
    tool_result: Value,
    agent_result: Value,
    session_start: Vec<Value>,
    prompt_snapshot: Value,
    date: Value,
    file_attachment: Value,
    queue: Vec<Value>,
    api_request_shape: Value,
    api_request_blob: Value,
    api_request: Value,
    atis_latch: Value,
    last_prompt: Value,
    tools_used: Value,
    stop_hook_summary: Value,
    turn_duration: Value,
    cost_state: Value,
    file_history: Value,
    ai_title: Value,
    mode: Value,
    compact_boundary: Value,
    compact_summary: Value,
}

fn fixture(rel: &str) -> Vec<Value> {
    let path = Path::new(FIXTURES).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).expect("fixture line is JSON")).collect()
}

/// The top-level keys of a JSON object line, in the order written.
struct KeysInOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeysInOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(KeysInOrder(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// The order of top-level keys of each `type` of line, as Claude Code writes them (`Value` sorts its
/// keys): the keys of every fixture line of that type, a key not seen yet placed after the one it
/// follows.
type KeyOrder = HashMap<String, HashMap<String, usize>>;

fn key_order() -> KeyOrder {
    let mut orders: HashMap<String, Vec<String>> = HashMap::new();
    for rel in [CAPTURED, CAPTURED_AGENT, REAL, SYNTHETIC, LEGACY] {
        let text = std::fs::read_to_string(Path::new(FIXTURES).join(rel)).expect("fixture");
        for line in text.lines() {
            let KeysInOrder(keys) = serde_json::from_str(line).expect("fixture line is an object");
            let kind = serde_json::from_str::<Value>(line).ok().and_then(|v| v["type"].as_str().map(str::to_owned));
            let order = orders.entry(kind.unwrap_or_default()).or_default();
            let mut after: Option<usize> = None;
            for k in keys {
                let at = match order.iter().position(|o| *o == k) {
                    Some(i) => i,
                    None => {
                        let i = after.map_or(0, |a| a + 1);
                        order.insert(i, k);
                        i
                    }
                };
                after = Some(at);
            }
        }
    }
    orders.into_iter().map(|(t, keys)| (t, keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect())).collect()
}

/// A line serialized with its top-level keys in the order of its type (nested objects keep
/// `Value`'s order).
struct InOrder<'a>(&'a Value, &'a KeyOrder);

impl serde::Serialize for InOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(o) = self.0 else { return self.0.serialize(s) };
        let order = o.get("type").and_then(Value::as_str).and_then(|t| self.1.get(t));
        let mut entries: Vec<(&String, &Value)> = o.iter().collect();
        entries.sort_by_key(|(k, _)| order.and_then(|o| o.get(*k)).copied().unwrap_or(usize::MAX));
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn field<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or_default()
}

impl Templates {
    fn load() -> Templates {
        let captured = fixture(CAPTURED);
        let agent = fixture(CAPTURED_AGENT);
        let real = fixture(REAL);
        let synthetic = fixture(SYNTHETIC);
        let legacy = fixture(LEGACY);
        let all: Vec<&Value> = captured.iter().chain(&agent).chain(&real).chain(&synthetic).chain(&legacy).collect();
        let find = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
            all.iter().find(|v| pred(v)).map(|v| (*v).clone()).unwrap_or_else(|| panic!("no fixture line: {what}"))
        };
        let kind = |v: &Value, k: &str| field(v, "/type") == k;
        let attachment = |k: &'static str| move |v: &Value| field(v, "/attachment/type") == k;
        let content_type = |v: &Value| field(v, "/message/content/0/type").to_owned();
        let session_start = ["environment", "model", "deferred_tools_delta", "agent_listing_delta", "session_context"]
            .iter()
            .map(|k| find(k, &attachment(k)))
            .chain([
                // the real skill listing (5 KB), not the captured one, which the fixture redacts
                real.iter().find(|v| field(v, "/attachment/type") == "skill_listing").cloned().expect("skill_listing"),
                find("remote_session_change", &attachment("remote_session_change")),
            ])
            .collect();
        Templates {
            prompt: find("prompt", &|v| kind(v, "user") && v.pointer("/message/content").is_some_and(Value::is_string)),
            assistant: captured.iter().find(|v| kind(v, "assistant")).cloned().expect("assistant"),
            legacy_assistant: legacy.iter().find(|v| kind(v, "assistant")).cloned().expect("legacy assistant"),
            tool_result: find("bash result", &|v| {
                content_type(v) == "tool_result" && v.pointer("/toolUseResult/stdout").is_some()
            }),
            agent_result: find("agent result", &|v| v.pointer("/toolUseResult/agentId").is_some()),
            session_start,
            prompt_snapshot: find("prompt_snapshot", &attachment("prompt_snapshot")),
            date: find("date", &attachment("date")),
            file_attachment: find("file", &attachment("file")),
            queue: captured.iter().filter(|v| kind(v, "queue-operation")).cloned().collect(),
            api_request_shape: find("api-request-shape", &|v| kind(v, "api-request-shape")),
            api_request_blob: find("api-request-blob", &|v| kind(v, "api-request-blob")),
            api_request: find("api-request", &|v| kind(v, "api-request")),
            atis_latch: find("atis-latch", &|v| kind(v, "atis-latch")),
            last_prompt: find("last-prompt", &|v| kind(v, "last-prompt")),
            tools_used: find("tools-used", &|v| kind(v, "tools-used")),
            stop_hook_summary: find("stop_hook_summary", &|v| field(v, "/subtype") == "stop_hook_summary"),
            turn_duration: find("turn_duration", &|v| field(v, "/subtype") == "turn_duration"),
            cost_state: find("cost-state", &|v| kind(v, "cost-state")),
            file_history: find("file-history-snapshot", &|v| kind(v, "file-history-snapshot")),
            ai_title: find("ai-title", &|v| kind(v, "ai-title")),
            mode: find("mode", &|v| kind(v, "mode")),
            compact_boundary: find("compact_boundary", &|v| field(v, "/subtype") == "compact_boundary"),
            compact_summary: find("compact summary", &|v| {
                kind(v, "user") && field(v, "/message/content").starts_with("This session is being continued")
            }),
        }
    }
}

/// Models of main sessions, with weights: priced, aliased and one unpriced.
const MAIN_MODELS: &[(&str, u32)] = &[
    ("claude-sonnet-5-5", 45),
    ("claude-opus-5-5", 22),
    ("claude-opus-4-5-20251101", 8),
    ("claude-sonnet-4-5-20250929[1m]", 6),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", 5),
    ("claude-fable-5-2", 5),
    ("claude-haiku-5-5", 5),
    ("claude-nova-1", 4),
];
const SUBAGENT_MODELS: &[(&str, u32)] = &[("claude-haiku-5-5", 70), ("claude-sonnet-5-5", 30)];
const LEGACY_MODELS: &[(&str, u32)] = &[("claude-opus-4-5-20251101", 60), ("claude-sonnet-4-5-20250929", 40)];

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Read,
    Bash,
    Edit,
    Write,
    Grep,
    Glob,
    TodoWrite,
    Agent,
    WebFetch,
    Mcp,
}

const MAIN_TOOLS: &[(Tool, u32)] = &[
    (Tool::Read, 28),
    (Tool::Bash, 24),
    (Tool::Edit, 14),
    (Tool::Grep, 9),
    (Tool::Glob, 5),
    (Tool::Write, 4),
    (Tool::TodoWrite, 5),
    (Tool::Agent, 3),
    (Tool::WebFetch, 2),
    (Tool::Mcp, 4),
];
const SUBAGENT_TOOLS: &[(Tool, u32)] = &[(Tool::Read, 40), (Tool::Grep, 25), (Tool::Glob, 15), (Tool::Bash, 20)];

/// One transcript file being written.
struct Transcript {
    out: Vec<u8>,
    session_id: String,
    agent_id: Option<String>,
    cwd: String,
    version: &'static str,
    legacy: bool,
    prompt_id: Option<String>,
    last_uuid: Option<String>,
    clock_ms: u64,
    model: &'static str,
    /// Tokens in context, which cache reads grow with.
    context: u64,
    us_geo: bool,
}

struct Gen<'p> {
    rng: Rng,
    corpus: Corpus,
    t: Templates,
    /// Where each top-level key goes in a line.
    order: KeyOrder,
    prices: &'p PriceTable,
    expected: Expected,
    mix: [Mix; 8],
    /// The first `SAMPLE_CAP` bytes of lines of each kind, for the per-kind table.
    samples: [Vec<u8>; 8],
    sessions: usize,
}

impl<'p> Gen<'p> {
    fn new(seed: u64, prices: &'p PriceTable) -> Gen<'p> {
        let mut rng = Rng::seeded(seed);
        let corpus = Corpus::new(&mut rng);
        Gen {
            rng,
            corpus,
            t: Templates::load(),
            order: key_order(),
            prices,
            expected: Expected::default(),
            mix: [Mix::default(); 8],
            samples: Default::default(),
            sessions: 0,
        }
    }

    /// Sessions until `target` bytes, written under `dir` and kept in memory.
    fn set(&mut self, target: u64, dir: &Path) -> Set {
        let _ = std::fs::remove_dir_all(dir);
        let mut set = Set { files: Vec::new(), bytes: 0 };
        while set.bytes < target {
            let project = self.rng.pick(&["api", "web", "infra", "acme-api", "dotfiles"]);
            let session_size = self.rng.log(40 << 10, 8 << 20).min(target - set.bytes + (16 << 10));
            let files = self.session(project, session_size);
            for (rel, bytes) in files {
                let path = dir.join(format!("-home-dev-projects-{project}")).join(rel);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("create the set's directory");
                std::fs::write(&path, &bytes).expect("write a generated transcript");
                set.bytes += bytes.len() as u64;
                set.files.push(File { path, bytes });
            }
            self.sessions += 1;
        }
        set
    }

    fn new_transcript(&mut self, session_id: &str, project: &str, legacy: bool) -> Transcript {
        Transcript {
            out: Vec::new(),
            session_id: session_id.to_owned(),
            agent_id: None,
            cwd: format!("/home/dev/projects/{project}"),
            version: if legacy { "2.1.29" } else { "2.1.329" },
            legacy,
            prompt_id: None,
            last_uuid: None,
            clock_ms: 1_795_235_481_000 + self.rng.below(10_000_000_000),
            model: "",
            context: self.rng.range(12_000, 30_000),
            us_geo: !legacy && self.rng.chance(0.1),
        }
    }

    /// One session: the main transcript and its subagents' (relative path, bytes).
    fn session(&mut self, project: &str, size: u64) -> Vec<(String, Vec<u8>)> {
        let session_id = self.rng.uuid().to_string();
        let legacy = self.rng.chance(0.1);
        let mut tr = self.new_transcript(&session_id, project, legacy);
        tr.model = self.rng.weighted(if legacy { LEGACY_MODELS } else { MAIN_MODELS });
        let mut subagents = Vec::new();
        if !legacy {
            for q in self.t.queue.clone() {
                self.emit(&mut tr, Kind::Meta, q);
            }
            for a in self.t.session_start.clone() {
                self.emit_filled(&mut tr, Kind::Attachment, a, 2048);
            }
            let shape = self.t.api_request_shape.clone();
            self.emit_filled(&mut tr, Kind::ApiRequest, shape, 1024);
            let mode = self.t.mode.clone();
            self.emit(&mut tr, Kind::Meta, mode);
        }
        let mut turn = 0;
        while (tr.out.len() as u64) < size {
            self.turn(&mut tr, turn, &mut subagents);
            turn += 1;
        }
        let mut files = vec![(format!("{session_id}.jsonl"), tr.out)];
        for (agent_id, bytes) in subagents {
            files.push((format!("{session_id}/subagents/agent-{agent_id}.jsonl"), bytes));
        }
        files
    }

    fn turn(&mut self, tr: &mut Transcript, turn: usize, subagents: &mut Vec<(String, Vec<u8>)>) {
        let rng = &mut self.rng;
        let text = if rng.chance(0.1) { self.corpus.code(rng, 20, 150) } else { String::new() };
        let prompt = self.corpus.prose(rng, 40, 1500) + &text;
        // 2.1.29 wrote no promptId
        tr.prompt_id = if tr.legacy { None } else { Some(rng.uuid().to_string()) };
        if !tr.legacy {
            let mut q = self.t.queue[0].clone();
            q["content"] = json!(prompt);
            self.emit(tr, Kind::Meta, q);
        }
        let mut p = self.t.prompt.clone();
        p["message"]["content"] = json!(prompt);
        self.emit(tr, Kind::Prompt, p);
        if !tr.legacy {
            let snapshot = self.t.prompt_snapshot.clone();
            self.emit_filled(tr, Kind::Attachment, snapshot, 3072);
            if turn == 0 {
                let date = self.t.date.clone();
                self.emit(tr, Kind::Attachment, date);
            }
            if self.rng.chance(0.15) {
                let mut f = self.t.file_attachment.clone();
                let content = self.corpus.code(&mut self.rng, 10, 400);
                f["attachment"]["content"]["file"]["content"] = json!(content);
                self.emit(tr, Kind::Attachment, f);
            }
            let fh = self.t.file_history.clone();
            self.emit(tr, Kind::Meta, fh);
        }
        let responses = self.rng.log(1, 25);
        let mut tools_used = Vec::new();
        for r in 0..responses {
            let last = r + 1 == responses;
            let n_tools = if last { 0 } else { self.rng.weighted(&[(1usize, 70), (2, 20), (3, 10)]) };
            let calls = self.response(tr, n_tools, MAIN_TOOLS);
            for (tool, id) in calls {
                tools_used.push(tool);
                self.tool_result(tr, tool, &id, subagents);
            }
            if !last && self.rng.chance(0.02) {
                self.skipped_line(tr);
            }
        }
        if !tr.legacy {
            let mut s = self.t.stop_hook_summary.clone();
            s["toolUseID"] = json!(self.rng.uuid().to_string());
            self.emit(tr, Kind::System, s);
            let mut d = self.t.turn_duration.clone();
            d["durationMs"] = json!(self.rng.range(2_000, 600_000));
            self.emit(tr, Kind::System, d);
            let mut lp = self.t.last_prompt.clone();
            lp["lastPrompt"] = json!(prompt.chars().take(200).collect::<String>());
            lp["leafUuid"] = json!(tr.last_uuid);
            self.emit(tr, Kind::Meta, lp);
            let names: Vec<&str> = tools_used.iter().map(|t| tool_name(*t)).collect();
            let mut tu = self.t.tools_used.clone();
            tu["tools"] = json!(names);
            self.emit(tr, Kind::Meta, tu);
            let latch = self.t.atis_latch.clone();
            self.emit(tr, Kind::Meta, latch);
            let mut cs = self.t.cost_state.clone();
            cs["totalCostUSD"] = json!(self.expected.cost);
            self.emit(tr, Kind::Meta, cs);
            if turn == 0 {
                let title = self.t.ai_title.clone();
                self.emit(tr, Kind::Meta, title);
            }
        }
        if tr.context > 150_000 || self.rng.chance(0.01) {
            // compaction: a boundary and a long summary prompt (with a promptId), a smaller context
            let b = self.t.compact_boundary.clone();
            self.emit(tr, Kind::System, b);
            let mut s = self.t.compact_summary.clone();
            tr.prompt_id = if tr.legacy { None } else { Some(self.rng.uuid().to_string()) };
            s["message"]["content"] = json!(self.corpus.prose(&mut self.rng, 3_000, 12_000));
            self.emit(tr, Kind::Prompt, s);
            tr.context = self.rng.range(15_000, 30_000);
        }
    }

    /// One API response: its blocks, one line each, repeating its usage. Returns the tool calls.
    fn response(&mut self, tr: &mut Transcript, n_tools: usize, tools: &[(Tool, u32)]) -> Vec<(Tool, String)> {
        let rng = &mut self.rng;
        let msg_id = rng.base62("msg_01", 22);
        let req_id = rng.base62("req_011C", 18);
        let output = rng.log(20, 4000);
        let write = rng.log(50, 8000);
        let usage = TokenUsage {
            input: if rng.chance(0.1) { rng.range(500, 5000) } else { rng.range(1, 40) },
            output,
            cache_read: tr.context,
            cache_write_5m: 0,
            cache_write_1h: 0,
            web_search: if !tr.legacy && rng.chance(0.03) { rng.range(1, 3) } else { 0 },
        };
        let usage = match (tr.legacy, rng.below(10)) {
            (true, _) | (false, 0..=2) => TokenUsage { cache_write_5m: write, ..usage },
            (false, 3) => TokenUsage { cache_write_5m: write / 3, cache_write_1h: write - write / 3, ..usage },
            _ => TokenUsage { cache_write_1h: write, ..usage },
        };
        let fast = tr.model == "claude-opus-5-5" && rng.chance(0.2);
        tr.context += usage.input + usage.cache_write() + output;

        let mut blocks = Vec::new();
        if rng.chance(0.4) {
            let thinking = self.corpus.prose(rng, 100, 3000);
            blocks.push(json!({"type": "thinking", "thinking": thinking, "signature": rng.base62("Eq", 300)}));
        }
        if n_tools == 0 || rng.chance(0.6) {
            blocks.push(json!({"type": "text", "text": self.corpus.prose(rng, 30, 2500)}));
        }
        let mut calls = Vec::new();
        for _ in 0..n_tools {
            let tool = self.rng.weighted(tools);
            let id = self.rng.base62("toolu_01", 22);
            let input = self.tool_input(tool);
            blocks.push(json!({"type": "tool_use", "id": id, "name": tool_name(tool), "input": input}));
            calls.push((tool, id));
        }

        if !tr.legacy {
            let blob = self.t.api_request_blob.clone();
            self.emit_filled(tr, Kind::ApiRequest, blob, 2048);
            let mut req = self.t.api_request.clone();
            req["id"] = json!(self.rng.uuid().to_string());
            self.emit_filled(tr, Kind::ApiRequest, req, 1024);
        }
        let n = blocks.len();
        let partial = tr.legacy && n > 1;
        let service = Service { fast, us_geo: tr.us_geo };
        let request_ref = self.rng.uuid().to_string();
        for (i, block) in blocks.into_iter().enumerate() {
            let mut line_usage = usage;
            if partial && i + 1 < n {
                // 2.1.29 wrote growing placeholder counts before the final ones
                line_usage.output = (output * (i as u64 + 1) / n as u64).max(1);
                self.expected.placeholder_lines += 1;
            }
            let mut v = if tr.legacy { self.t.legacy_assistant.clone() } else { self.t.assistant.clone() };
            let m = &mut v["message"];
            m["id"] = json!(msg_id);
            m["model"] = json!(tr.model);
            m["content"] = json!([block]);
            m["stop_reason"] =
                if i + 1 < n { Value::Null } else { json!(if n_tools > 0 { "tool_use" } else { "end_turn" }) };
            m["usage"] = usage_json(&line_usage, service, tr.legacy);
            v["requestId"] = json!(req_id);
            if !tr.legacy {
                v["apiBlockIndex"] = json!(i);
                v["requestRef"] = json!(request_ref);
                v["requestedModel"] = json!(tr.model);
            }
            self.emit(tr, Kind::Assistant, v);
        }

        let e = &mut self.expected;
        e.responses += 1;
        e.total.add(usage);
        e.cost += self.prices.lookup(tr.model).map_or(0.0, |p| pricing::cost(p, &usage, service));
        e.by_model.entry(tr.model.to_owned()).or_default().add(usage);
        e.by_prompt.entry((tr.prompt_id.clone(), tr.agent_id.clone())).or_default().add(usage);
        calls
    }

    /// A line the ledger must not count: a `<synthetic>` reply or an API error (with usage).
    fn skipped_line(&mut self, tr: &mut Transcript) {
        if tr.legacy {
            return;
        }
        let mut v = self.t.assistant.clone();
        let u = TokenUsage { input: 12, output: 34, ..TokenUsage::default() };
        v["message"]["id"] = json!(self.rng.base62("msg_01", 22));
        v["requestId"] = json!(self.rng.base62("req_011C", 18));
        v["message"]["usage"] = usage_json(&u, Service::default(), false);
        if self.rng.chance(0.5) {
            v["message"]["model"] = json!("<synthetic>");
            v["message"]["content"] = json!([{"type": "text", "text": "No response requested."}]);
        } else {
            v["message"]["model"] = json!(tr.model);
            v["isApiErrorMessage"] = json!(true);
            v["message"]["content"] = json!([{"type": "text", "text": "API Error: 529 Overloaded"}]);
        }
        self.expected.skipped_lines += 1;
        self.emit(tr, Kind::Skipped, v);
    }

    fn path(&mut self) -> String {
        let (a, b) = (self.rng.pick(IDENTS), self.rng.pick(IDENTS));
        format!("/home/dev/projects/acme-api/src/{a}/{b}.rs")
    }

    fn tool_input(&mut self, tool: Tool) -> Value {
        let path = self.path();
        let rng = &mut self.rng;
        match tool {
            Tool::Read => json!({"file_path": path}),
            Tool::Bash => json!({"command": format!("cargo test -p {} -- {}", rng.pick(CRATES), rng.pick(IDENTS)),
                                  "description": "Run the tests"}),
            Tool::Edit => json!({"file_path": path, "old_string": self.corpus.code(rng, 1, 20),
                                  "new_string": self.corpus.code(rng, 1, 30), "replace_all": false}),
            Tool::Write => json!({"file_path": path, "content": self.corpus.code(rng, 10, 400)}),
            Tool::Grep => json!({"pattern": rng.pick(IDENTS), "path": "src", "output_mode": "content", "-n": true}),
            Tool::Glob => json!({"pattern": "**/*.rs"}),
            Tool::TodoWrite => {
                let todos: Vec<Value> = (0..rng.range(2, 8))
                    .map(|_| json!({"content": self.corpus.prose(rng, 60, 60), "status": "pending", "activeForm": "Working"}))
                    .collect();
                json!({"todos": todos})
            }
            Tool::Agent => json!({"description": "Explore the code", "prompt": self.corpus.prose(rng, 600, 600),
                                   "subagent_type": "Explore", "run_in_background": false}),
            Tool::WebFetch => json!({"url": "https://docs.rs/tokio/latest/tokio/", "prompt": "How do I time out?"}),
            Tool::Mcp => json!({"owner": "acme", "repo": "api", "title": self.corpus.prose(rng, 60, 60)}),
        }
    }

    /// The user line with a tool's result: `message.content` and `toolUseResult` as Claude Code
    /// writes them for that tool (the output usually twice).
    fn tool_result(&mut self, tr: &mut Transcript, tool: Tool, id: &str, subagents: &mut Vec<(String, Vec<u8>)>) {
        let path = self.path();
        let rng = &mut self.rng;
        let c = &self.corpus;
        let mut error = false;
        let (content, result): (Value, Value) = match tool {
            Tool::Read => {
                let n = rng.log(20, 1200) as usize;
                let numbered = c.numbered(rng, n);
                let raw = c.code(rng, n as u64, n as u64);
                let file = json!({"filePath": path, "content": raw, "numLines": n, "startLine": 1, "totalLines": n});
                (json!(numbered), json!({"type": "text", "file": file}))
            }
            Tool::Bash if rng.chance(0.08) => {
                error = true;
                let out = format!("Exit code 101\n{}", c.log(rng, 3, 200));
                (json!(out.clone()), json!(format!("Error: {out}")))
            }
            Tool::Bash => {
                let out = c.log(rng, 1, 400);
                let result = json!({"stdout": out, "stderr": "", "interrupted": false, "isImage": false,
                                    "noOutputExpected": false});
                (json!(out), result)
            }
            Tool::Edit => {
                let original = c.code(rng, 30, 1500);
                let snippet = c.numbered(rng, 12);
                let patch_lines: Vec<String> = Corpus::cut(&c.code, rng, 12)
                    .enumerate()
                    .map(|(i, l)| format!("{}{l}", ["-", "+", " "][i % 3]))
                    .collect();
                let result = json!({"filePath": path, "oldString": c.code(rng, 4, 4), "newString": c.code(rng, 6, 6),
                    "originalFile": original, "structuredPatch": [{"oldStart": 10, "oldLines": 8, "newStart": 10,
                    "newLines": 12, "lines": patch_lines}], "userModified": false, "replaceAll": false});
                let text = format!(
                    "The file {path} has been updated. Here's the result of running `cat -n` on a snippet of the \
                     edited file:\n{snippet}"
                );
                (json!(text), result)
            }
            Tool::Write => {
                let content = c.code(rng, 10, 400);
                let result = json!({"type": "create", "filePath": path, "content": content, "structuredPatch": [],
                                    "originalFile": null});
                (json!(format!("File created successfully at: {path}")), result)
            }
            Tool::Grep => {
                let n = rng.log(1, 150) as usize;
                let out = c.log(rng, n as u64, n as u64);
                (
                    json!(out.clone()),
                    json!({"mode": "content", "numFiles": n / 3 + 1, "filenames": [], "content": out,
                                            "numLines": n}),
                )
            }
            Tool::Glob => {
                let files: Vec<String> = (0..rng.log(1, 100)).map(|_| format!("src/{}.rs", rng.pick(IDENTS))).collect();
                (
                    json!(files.join("\n")),
                    json!({"filenames": files, "durationMs": 12, "numFiles": files.len(),
                                                  "truncated": false}),
                )
            }
            Tool::TodoWrite => (
                json!("Todos have been modified successfully. Ensure that you continue to use the todo list."),
                json!({"oldTodos": [], "newTodos": [{"content": c.prose(rng, 60, 60), "status": "in_progress"}]}),
            ),
            Tool::WebFetch => {
                let page = c.prose(rng, 500, 8000);
                (
                    json!(page.clone()),
                    json!({"bytes": page.len() * 4, "code": 200, "codeText": "OK", "result": page,
                                             "durationMs": 840, "url": "https://docs.rs/tokio/latest/tokio/"}),
                )
            }
            Tool::Mcp => {
                let body = json!({"number": rng.below(5000), "url": "https://github.com/acme/api/issues/1",
                                  "state": "open", "body": c.prose(rng, 400, 400)})
                .to_string();
                (json!([{"type": "text", "text": body.clone()}]), json!([{"type": "text", "text": body}]))
            }
            Tool::Agent => {
                let (agent_id, bytes) = self.subagent(tr);
                let summary = self.corpus.prose(&mut self.rng, 300, 4000);
                subagents.push((agent_id.clone(), bytes));
                let mut v = self.t.agent_result.clone();
                v["message"]["content"][0]["tool_use_id"] = json!(id);
                v["message"]["content"][0]["content"][0]["text"] = json!(summary);
                v["toolUseResult"]["agentId"] = json!(agent_id);
                v["toolUseResult"]["content"][1]["text"] = json!(summary);
                self.emit(tr, Kind::ToolResult, v);
                return;
            }
        };
        tr.context += content.to_string().len() as u64 / 4;
        let mut v = self.t.tool_result.clone();
        v["message"]["content"] = json!([{"tool_use_id": id, "type": "tool_result", "content": content,
                                          "is_error": error}]);
        v["toolUseResult"] = result;
        v["sourceToolAssistantUUID"] = json!(tr.last_uuid);
        if tr.legacy {
            if let Some(o) = v.as_object_mut() {
                o.remove("permissionDecision");
                o.remove("entrypoint");
            }
        }
        self.emit(tr, Kind::ToolResult, v);
    }

    /// A subagent's transcript, spawned from `parent`'s current prompt.
    fn subagent(&mut self, parent: &Transcript) -> (String, Vec<u8>) {
        let agent_id = format!("a{}", self.rng.hex(16));
        let mut tr = self.new_transcript(&parent.session_id.clone(), "acme-api", parent.legacy);
        tr.cwd = parent.cwd.clone();
        tr.clock_ms = parent.clock_ms;
        tr.agent_id = Some(agent_id.clone());
        tr.prompt_id = parent.prompt_id.clone();
        tr.model = self.rng.weighted(if parent.legacy { LEGACY_MODELS } else { SUBAGENT_MODELS });
        tr.context = self.rng.range(10_000, 40_000);
        let mut p = self.t.prompt.clone();
        p["message"]["content"] = json!(self.corpus.prose(&mut self.rng, 600, 600));
        self.emit(&mut tr, Kind::Prompt, p);
        if !tr.legacy {
            for a in self.t.session_start.clone().into_iter().take(3) {
                self.emit_filled(&mut tr, Kind::Attachment, a, 2048);
            }
        }
        let responses = self.rng.log(2, 30);
        let mut none = Vec::new();
        for r in 0..responses {
            let n_tools = if r + 1 == responses { 0 } else { self.rng.weighted(&[(1usize, 60), (2, 30), (3, 10)]) };
            for (tool, id) in self.response(&mut tr, n_tools, SUBAGENT_TOOLS) {
                self.tool_result(&mut tr, tool, &id, &mut none);
            }
        }
        (agent_id, tr.out)
    }

    /// A template with its redacted fields filled with about `bytes` of text.
    fn emit_filled(&mut self, tr: &mut Transcript, kind: Kind, mut v: Value, bytes: u64) {
        let fill = |slot: Option<&mut Value>, rng: &mut Rng| {
            if let Some(s) = slot.filter(|s| s.as_str().is_some_and(|s| s.contains("redacted"))) {
                *s = json!(self.corpus.prose(rng, bytes / 2, bytes * 3 / 2));
            }
        };
        for key in ["/attachment/_fixture_note", "/shape", "/message", "/params", "/tail"] {
            fill(v.pointer_mut(key), &mut self.rng);
        }
        for key in ["/cacheControl", "/requestDigest"] {
            if let Some(s) = v.pointer_mut(key) {
                *s = json!(self.rng.hex(64));
            }
        }
        if let Some(h) = v.get_mut("hash") {
            *h = json!(self.rng.hex(64));
        }
        self.emit(tr, kind, v);
    }

    /// Stamp a line with the transcript's identity and a fresh uuid and time, and write it.
    fn emit(&mut self, tr: &mut Transcript, kind: Kind, mut v: Value) {
        tr.clock_ms += self.rng.range(5, 4000);
        let ts = timestamp(tr.clock_ms);
        if let Some(o) = v.as_object_mut() {
            if o.contains_key("uuid") {
                let uuid = self.rng.uuid().to_string();
                if o.contains_key("parentUuid") {
                    o.insert("parentUuid".into(), json!(tr.last_uuid));
                }
                o.insert("uuid".into(), json!(uuid));
                tr.last_uuid = Some(uuid);
            }
            for (key, value) in [
                ("sessionId", json!(tr.session_id)),
                ("timestamp", json!(ts)),
                ("cwd", json!(tr.cwd)),
                ("version", json!(tr.version)),
            ] {
                if let Some(slot) = o.get_mut(key) {
                    *slot = value;
                }
            }
            if o.contains_key("promptId") {
                match &tr.prompt_id {
                    Some(p) => o.insert("promptId".into(), json!(p)),
                    None => o.remove("promptId"),
                };
            }
            if let Some(agent) = &tr.agent_id {
                if o.contains_key("isSidechain") {
                    o.insert("isSidechain".into(), json!(true));
                }
                if o.contains_key("uuid") {
                    o.insert("agentId".into(), json!(agent));
                }
            } else {
                o.remove("agentId");
            }
        }
        let before = tr.out.len();
        serde_json::to_writer(&mut tr.out, &InOrder(&v, &self.order)).expect("serialize a generated line");
        tr.out.push(b'\n');
        let m = &mut self.mix[kind as usize];
        m.lines += 1;
        m.bytes += (tr.out.len() - before) as u64;
        if self.samples[kind as usize].len() < SAMPLE_CAP {
            self.samples[kind as usize].extend_from_slice(&tr.out[before..]);
        }
    }
}

fn tool_name(tool: Tool) -> &'static str {
    match tool {
        Tool::Read => "Read",
        Tool::Bash => "Bash",
        Tool::Edit => "Edit",
        Tool::Write => "Write",
        Tool::Grep => "Grep",
        Tool::Glob => "Glob",
        Tool::TodoWrite => "TodoWrite",
        Tool::Agent => "Agent",
        Tool::WebFetch => "WebFetch",
        Tool::Mcp => "mcp__github__create_issue",
    }
}

/// `usage` as Claude Code writes it (2.1.329), or as 2.1.29 did (no 1-hour split, speed, geo).
fn usage_json(u: &TokenUsage, service: Service, legacy: bool) -> Value {
    if legacy {
        return json!({
            "input_tokens": u.input, "cache_creation_input_tokens": u.cache_write(),
            "cache_read_input_tokens": u.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write(), "ephemeral_1h_input_tokens": 0},
            "output_tokens": u.output, "service_tier": "standard"
        });
    }
    json!({
        "input_tokens": u.input, "cache_creation_input_tokens": u.cache_write(),
        "cache_read_input_tokens": u.cache_read, "output_tokens": u.output,
        "output_tokens_details": {"thinking_tokens": 0},
        "server_tool_use": {"web_search_requests": u.web_search, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": u.cache_write_1h, "ephemeral_5m_input_tokens": u.cache_write_5m},
        "inference_geo": if service.us_geo { "us" } else { "" }, "iterations": [],
        "speed": if service.fast { "fast" } else { "standard" }, "fallback_credit": null
    })
}

/// Milliseconds since the epoch as `2026-11-21T04:31:22.147Z`.
fn timestamp(ms: u64) -> String {
    let ts = jiff::Timestamp::from_millisecond(i64::try_from(ms).expect("a bench clock")).expect("in jiff's range");
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
