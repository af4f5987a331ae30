//! Metrics cost: nanoseconds per event of keeping hooktel's Prometheus metrics, in process (no
//! sidecar, no HTTP), against baselines measured in the same run.
//!
//! One `Metrics::new(true, true)` (the default: `project` and `repo` labels) is fed label values with a realistic
//! spread, drawn ahead of time so that no generator is timed: 34 hook event names weighted as a
//! tool-heavy session sends them, 30 tool names (built-in and MCP, Zipf-like), 5 models (one of
//! them unpriced), 5 projects, tool statuses mostly `ok`. Tool `SpanRecord`s are built as the
//! session state hands them out (session and call ids, metadata capture of the input, response
//! sizes, `hooktel.tool.duration_ms` on 90%, a few with a span event or an error).
//!
//! Timed, each as a loop over the pre-drawn values, median of `BENCH_RUNS` runs of about
//! `BENCH_RUN_MS` ms, on 1 thread and on 2 threads sharing the one `Metrics` (the server's Tokio
//! workers both count `hook_event`s; 2 cores here):
//! - baselines: the empty loop with a plain (not inlined) function call, `AtomicU64::fetch_add`
//!   (shared by both threads when 2), an uncontended-then-contended `Mutex<u64>` lock and add;
//! - `hook_event(name, ts)`, `span_finished(&tool record)`, `span_finished(&turn record)`,
//!   `count_usage(agent, model, place, usage, cost, priced)`;
//! - their parts: `LabelCap::label`, `IntCounterVec::with_label_values(..).inc()`, `SpanRecord::attr`.
//!
//! Then the amortised metrics cost of one hook event as the sidecar pays it (`hook_event` and the
//! queue gauge on every event, `span_finished` per finished span at the rate the event mix closes
//! spans), and the cost of one scrape with the series the runs left (plus one model call per model and
//! project, so that token and cost series carry exemplars as tool series do): `Metrics::render()`, the
//! classic text, and `Metrics::render_openmetrics()`, OpenMetrics with exemplars. Targets are printed as
//! PASS/MISS lines; timing never fails the bench.
//!
//! Run: `cargo bench --bench metrics_cost`. Knobs: `BENCH_RUNS` (7), `BENCH_RUN_MS` (40).

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{env_usize, quantile, Rng};
use hooktel::metrics::{LabelCap, Metrics, Place};
use hooktel::model::ids::{self, SpanKey};
use hooktel::model::span::{SpanEvent, SpanRecord, SpanUsage, Status, ToolRun, ToolStatus, TurnOutcome};
use hooktel::model::tokens::TokenUsage;
use opentelemetry::KeyValue;

/// Pre-drawn values per sequence (a power of two).
const SEQ: usize = 1 << 14;

/// Hook event names and their weights in a tool-heavy session (per 1000 events).
const EVENTS: &[(&str, u32)] = &[
    ("PreToolUse", 330),
    ("PostToolUse", 310),
    ("PostToolUseFailure", 20),
    ("UserPromptSubmit", 60),
    ("Stop", 55),
    ("StopFailure", 3),
    ("SubagentStart", 20),
    ("SubagentStop", 20),
    ("Notification", 30),
    ("PermissionRequest", 40),
    ("PermissionDenied", 5),
    ("SessionStart", 10),
    ("SessionEnd", 9),
    ("PreCompact", 3),
    ("PostCompact", 3),
    ("InstructionsLoaded", 12),
    ("ConfigChange", 2),
    ("CwdChanged", 4),
    ("FileChanged", 20),
    ("WorktreeCreate", 1),
    ("WorktreeRemove", 1),
    ("TaskCreated", 8),
    ("TaskCompleted", 8),
    ("TeammateIdle", 2),
    ("Elicitation", 1),
    ("ElicitationResult", 1),
    ("TokenUsageUpdated", 15),
    ("Setup", 1),
    ("PostToolBatch", 3),
    ("UserPromptExpansion", 1),
    ("MessageDisplayed", 1),
    ("ModelChanged", 1),
    ("PlanModeChanged", 1),
    ("BackgroundTaskFinished", 2),
];

const TOOLS: &[(&str, u32)] = &[
    ("Read", 300),
    ("Bash", 240),
    ("Edit", 140),
    ("Grep", 90),
    ("Glob", 50),
    ("Write", 40),
    ("TodoWrite", 40),
    ("Agent", 20),
    ("WebFetch", 12),
    ("WebSearch", 10),
    ("NotebookEdit", 2),
    ("BashOutput", 6),
    ("KillShell", 2),
    ("ExitPlanMode", 3),
    ("Skill", 4),
    ("ListMcpResourcesTool", 1),
    ("ReadMcpResourceTool", 1),
    ("mcp__github__get_pull_request", 8),
    ("mcp__github__list_issues", 6),
    ("mcp__github__create_issue", 3),
    ("mcp__linear__search_issues", 4),
    ("mcp__linear__create_issue", 2),
    ("mcp__playwright__browser_navigate", 6),
    ("mcp__playwright__browser_click", 6),
    ("mcp__playwright__browser_snapshot", 6),
    ("mcp__sentry__get_issue_details", 3),
    ("mcp__postgres__query", 5),
    ("mcp__slack__post_message", 1),
    ("mcp__context7__get_library_docs", 5),
    ("mcp__memory__search_nodes", 2),
];

const STATUSES: &[(&str, u32)] = &[("ok", 900), ("error", 60), ("denied", 15), ("interrupted", 10), ("incomplete", 15)];
const MODELS: &[(&str, u32)] = &[
    ("claude-sonnet-5-5", 50),
    ("claude-opus-5-5", 25),
    ("claude-haiku-5-5", 20),
    ("claude-opus-4-5", 4),
    ("mystery-1", 1),
];
const PROJECTS: &[(&str, u32)] = &[("api", 40), ("web", 25), ("infra", 15), ("dotfiles", 10), ("acme-api", 10)];

/// Everything the timed loops read; drawn before timing.
struct Ctx {
    metrics: Metrics,
    events: Vec<&'static str>,
    times: Vec<f64>,
    tool_spans: Vec<SpanRecord>,
    turn_spans: Vec<SpanRecord>,
    usage: Vec<(&'static str, Place, TokenUsage, f64, bool)>,
    cap: LabelCap,
    counter: AtomicU64,
    mutex: Mutex<u64>,
}

struct Op {
    label: &'static str,
    run: fn(&Ctx, usize),
}

#[inline(never)]
fn plain(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 7
}

const FLOOR: usize = 0;
const HOOK_EVENT: usize = 3;
const SPAN_TOOL: usize = 4;
const SPAN_TURN: usize = 5;
const GAUGE: usize = 10;

fn ops() -> Vec<Op> {
    vec![
        Op {
            label: "baseline: loop + plain fn call",
            run: |c, i| {
                black_box(plain(c.times[i].to_bits()));
            },
        },
        Op {
            label: "baseline: AtomicU64::fetch_add",
            run: |c, i| {
                black_box(c.counter.fetch_add(black_box(i as u64) & 1, Ordering::Relaxed));
            },
        },
        Op {
            label: "baseline: Mutex<u64> lock + add",
            run: |c, i| *c.mutex.lock().unwrap_or_else(|e| e.into_inner()) += black_box(i as u64) & 1,
        },
        Op { label: "hook_event(name, ts)", run: |c, i| c.metrics.hook_event(c.events[i], c.times[i]) },
        Op { label: "span_finished(tool span)", run: |c, i| c.metrics.span_finished(&c.tool_spans[i]) },
        Op { label: "span_finished(turn span)", run: |c, i| c.metrics.span_finished(&c.turn_spans[i]) },
        Op {
            label: "count_usage(model, place, ...)",
            run: |c, i| {
                let (model, place, usage, cost, priced) = &c.usage[i];
                c.metrics.count_usage(hooktel::model::agent::Agent::ClaudeCode, model, place, usage, *cost, *priced)
            },
        },
        Op {
            label: "part: LabelCap::label",
            run: |c, i| {
                black_box(c.cap.label(c.events[i]));
            },
        },
        Op {
            label: "part: with_label_values(..).inc()",
            run: |c, i| c.metrics.hook_events.with_label_values(&[c.events[i]]).inc(),
        },
        Op {
            label: "part: SpanRecord::attr (3 per tool)",
            run: |c, i| {
                black_box(c.tool_spans[i].attr("hooktel.tool.duration_ms"));
            },
        },
        Op { label: "part: IntGauge inc (queue_depth)", run: |c, _| c.metrics.queue_depth.inc() },
    ]
}

fn main() {
    let runs = env_usize("BENCH_RUNS", 7);
    let run_ms = env_usize("BENCH_RUN_MS", 40) as u64;
    let ctx = Ctx::new(0x5eed);
    let ops = ops();

    println!("metrics_cost: ns per call of hooktel's metrics, {runs} runs of ~{run_ms} ms per op and thread count");
    println!(
        "label spread: {} event names, {} tools, {} statuses, {} models (1 unpriced), {} projects; {} pre-drawn values",
        EVENTS.len(),
        TOOLS.len(),
        STATUSES.len(),
        MODELS.len(),
        PROJECTS.len(),
        SEQ
    );
    println!("cores available: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

    // warm every op (and every label value) once, then size the loops
    for op in &ops {
        for i in 0..SEQ {
            (op.run)(&ctx, i);
        }
    }
    let iters: Vec<usize> = ops.iter().map(|op| calibrate(&ctx, op, Duration::from_millis(run_ms))).collect();

    let started = Instant::now();
    let mut one = vec![Vec::new(); ops.len()];
    let mut two = vec![Vec::new(); ops.len()];
    for run in 0..runs {
        for k in 0..ops.len() {
            let i = (run + k) % ops.len();
            one[i].push(single(&ctx, &ops[i], iters[i]));
            two[i].push(pair(&ctx, &ops[i], iters[i]));
        }
    }
    let wall = started.elapsed();

    let med = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        (quantile(&s, 0.5), s[0], s[s.len() - 1])
    };
    let floor1 = med(&one[FLOOR]).0;
    let floor2 = med(&two[FLOOR]).0;
    println!();
    println!(
        "| op                                   | 1 thread ns | min..max         | net of floor | 2 threads ns/op | min..max         | 2 thr / 1 thr |"
    );
    println!(
        "|--------------------------------------|------------:|------------------|-------------:|----------------:|------------------|--------------:|"
    );
    for (i, op) in ops.iter().enumerate() {
        let (m1, lo1, hi1) = med(&one[i]);
        let (m2, lo2, hi2) = med(&two[i]);
        let net = if i == FLOOR { "-".to_string() } else { format!("{:.1}", m1 - floor1) };
        println!(
            "| {:<36} | {:>11.1} | {:>7.1}..{:<7.1} | {:>12} | {:>15.1} | {:>7.1}..{:<7.1} | {:>12.2}x |",
            op.label,
            m1,
            lo1,
            hi1,
            net,
            m2,
            lo2,
            hi2,
            m2 / m1
        );
    }
    println!(
        "(ns per call, medians over runs; 2 threads: both run the op on the one shared Metrics at once, ns = each \
         thread's wall time per call, averaged over the two; floor 1 thread {floor1:.1} ns, 2 threads {floor2:.1} ns)"
    );
    println!("total timed wall time: {:.1} s", wall.as_secs_f64());

    // the sidecar's cost per hook event: hook_event + the queue gauge (inc, later sub) on every
    // event, span_finished for the spans the events close
    let total_w: u32 = EVENTS.iter().map(|e| e.1).sum();
    let weight = |names: &[&str]| {
        EVENTS.iter().filter(|e| names.contains(&e.0)).map(|e| e.1).sum::<u32>() as f64 / total_w as f64
    };
    let tool_rate = weight(&["PostToolUse", "PostToolUseFailure"]);
    let turn_rate = weight(&["Stop", "StopFailure"]);
    for (label, runs, floor) in [("1 thread", &one, floor1), ("2 threads", &two, floor2)] {
        let net = |i: usize| med(&runs[i]).0 - floor;
        let gauge = net(GAUGE);
        let per_event = net(HOOK_EVENT) + 2.0 * gauge + tool_rate * net(SPAN_TOOL) + turn_rate * net(SPAN_TURN);
        println!(
            "per hook event, {label}: {per_event:.0} ns = hook_event {:.0} + 2 gauge updates {:.0} + {tool_rate:.2} tool \
             spans x {:.0} + {turn_rate:.2} turn spans x {:.0} (net of the floor)",
            net(HOOK_EVENT),
            2.0 * gauge,
            net(SPAN_TOOL),
            net(SPAN_TURN)
        );
    }

    // one model call per (model, project), so that token and cost series have exemplars as tool series do
    for (i, (model, project)) in MODELS.iter().flat_map(|m| PROJECTS.iter().map(move |p| (m.0, p.0))).enumerate() {
        let session = format!("0000{i:04}-3e2c-45c5-8192-58e43d4a510f");
        let key = format!("msg_{i}");
        let tokens = TokenUsage { input: 10, output: 20, cache_read: 30, ..TokenUsage::default() };
        let usage = SpanUsage { tokens, cost: 0.01, models: vec![model.to_owned()] };
        let rec = SpanRecord::new(
            ids::trace_id(&session),
            ids::span_id(&session, SpanKey::Chat, &key),
            SpanKey::Chat,
            format!("chat {model}"),
            (1, 2),
            session.as_str().into(),
        );
        ctx.metrics.span_finished(&SpanRecord { usage: Some(usage), project: project.into(), ..rec });
    }

    // one scrape, with the series the runs left: the classic text, and OpenMetrics with exemplars
    let scrape = |label: &str, render: &dyn Fn() -> Vec<u8>| -> (Duration, usize) {
        let text = render();
        let series = text.split(|&b| b == b'\n').filter(|l| !l.is_empty() && l[0] != b'#').count();
        let exemplars = text.windows(4).filter(|w| w == b" # {").count();
        let mut renders: Vec<Duration> = (0..50)
            .map(|_| {
                let t0 = Instant::now();
                black_box(render());
                t0.elapsed()
            })
            .collect();
        renders.sort();
        let median = quantile(&renders, 0.5);
        println!(
            "{label}: {:.0} us per scrape (median of 50, p90 {:.0} us) for {series} samples ({exemplars} with an \
             exemplar), {} KB of text",
            median.as_secs_f64() * 1e6,
            quantile(&renders, 0.9).as_secs_f64() * 1e6,
            text.len() / 1024
        );
        (median, series)
    };
    let (render, series) = scrape("render()", &|| ctx.metrics.render());
    let (openmetrics, _) = scrape("render_openmetrics()", &|| ctx.metrics.render_openmetrics());

    println!();
    println!("targets (informational; timing never fails this bench):");
    let per_event = med(&one[HOOK_EVENT]).0 - floor1
        + 2.0 * (med(&one[GAUGE]).0 - floor1)
        + tool_rate * (med(&one[SPAN_TOOL]).0 - floor1)
        + turn_rate * (med(&one[SPAN_TURN]).0 - floor1);
    verdict(per_event < 1000.0, &format!("metrics per hook event, 1 thread: {per_event:.0} ns (target < 1 us)"));
    let contended = med(&two[HOOK_EVENT]).0 / med(&one[HOOK_EVENT]).0;
    verdict(
        contended < 4.0,
        &format!("hook_event with 2 threads contending: {contended:.2}x its 1-thread cost (target < 4x)"),
    );
    verdict(
        render < Duration::from_millis(10),
        &format!("render() with {series} samples: {:.2} ms (target < 10 ms)", render.as_secs_f64() * 1e3),
    );
    let ratio = openmetrics.as_secs_f64() / render.as_secs_f64();
    verdict(
        openmetrics < Duration::from_millis(10) && ratio < 1.5,
        &format!(
            "render_openmetrics() with exemplars: {:.2} ms, {ratio:.2}x render() (target < 10 ms and < 1.5x)",
            openmetrics.as_secs_f64() * 1e3
        ),
    );
}

fn verdict(ok: bool, what: &str) {
    println!("{}  {what}", if ok { "PASS" } else { "MISS" });
}

/// Iterations of `op` that take about `target`.
fn calibrate(ctx: &Ctx, op: &Op, target: Duration) -> usize {
    let mut n = 1024;
    loop {
        let t = time(ctx, op, n, 0);
        if t >= target / 8 || n >= 1 << 30 {
            let per = t.as_secs_f64() / n as f64;
            return ((target.as_secs_f64() / per.max(1e-12)) as usize).clamp(1024, 1 << 30);
        }
        n *= 4;
    }
}

fn time(ctx: &Ctx, op: &Op, iters: usize, offset: usize) -> Duration {
    let f = op.run;
    let t0 = Instant::now();
    for i in 0..iters {
        f(ctx, (offset + i) & (SEQ - 1));
    }
    t0.elapsed()
}

/// ns per call on one thread.
fn single(ctx: &Ctx, op: &Op, iters: usize) -> f64 {
    time(ctx, op, iters, 0).as_secs_f64() * 1e9 / iters as f64
}

/// ns per call on each of two threads running at once (mean of the two).
fn pair(ctx: &Ctx, op: &Op, iters: usize) -> f64 {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    time(ctx, op, iters, t * SEQ / 2)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    times.iter().map(|t| t.as_secs_f64() * 1e9 / iters as f64).sum::<f64>() / 2.0
}

impl Ctx {
    fn new(seed: u64) -> Ctx {
        let mut rng = Rng::seeded(seed);
        let sessions: Vec<(String, &str)> = (0..64).map(|_| (rng.uuid().to_string(), rng.weighted(PROJECTS))).collect();
        let events = (0..SEQ).map(|_| rng.weighted(EVENTS)).collect();
        let times = (0..SEQ).map(|i| 1_795_235_481.0 + i as f64 * 0.37).collect();
        let tool_spans = (0..SEQ)
            .map(|_| {
                let (session, project) = &sessions[rng.below(sessions.len() as u64) as usize];
                tool_span(&mut rng, session, project)
            })
            .collect();
        let turn_spans = (0..SEQ)
            .map(|_| {
                let (session, project) = &sessions[rng.below(sessions.len() as u64) as usize];
                turn_span(&mut rng, session, project)
            })
            .collect();
        let usage = (0..SEQ)
            .map(|_| {
                let model = rng.weighted(MODELS);
                let u = TokenUsage {
                    input: rng.below(40) + 1,
                    output: rng.below(3000) + 20,
                    cache_read: rng.below(150_000) + 10_000,
                    cache_write_5m: 0,
                    cache_write_1h: rng.below(6000),
                    web_search: 0,
                };
                let priced = model != "mystery-1";
                let project = rng.weighted(PROJECTS);
                let place = Place {
                    project: project.into(),
                    repo: format!("github.com/acme/{project}"),
                    branch: "main".into(),
                };
                (model, place, u, if priced { 0.0123 } else { 0.0 }, priced)
            })
            .collect();
        Ctx {
            metrics: Metrics::new(true, true),
            events,
            times,
            tool_spans,
            turn_spans,
            usage,
            cap: LabelCap::default(),
            counter: AtomicU64::new(0),
            mutex: Mutex::new(0),
        }
    }
}

/// A tool span as `SessionState::record` hands it out (metadata capture, the default).
fn tool_span(rng: &mut Rng, session: &str, project: &str) -> SpanRecord {
    let tool = rng.weighted(TOOLS);
    let status = rng.weighted(STATUSES);
    let call_id = rng.tool_use_id();
    let prompt_id = rng.uuid().to_string();
    let start = 1_795_235_481_000_000_000 + rng.below(3_600_000_000_000);
    let ms = match tool {
        "Bash" | "Agent" | "WebFetch" => 200 + rng.below(120_000),
        _ => 2 + rng.below(400),
    };
    let mut attrs = vec![
        KeyValue::new("gen_ai.operation.name", "execute_tool"),
        KeyValue::new("gen_ai.tool.name", tool),
        KeyValue::new("gen_ai.tool.call.id", call_id.clone()),
    ];
    match tool {
        "Read" | "Edit" | "Write" => attrs
            .push(KeyValue::new("hooktel.tool.input.file_path", format!("/home/dev/projects/{project}/src/lib.rs"))),
        "Bash" => attrs.push(KeyValue::new("hooktel.tool.input.command", "cargo test -p api -- --nocapture")),
        "Grep" | "Glob" => attrs.push(KeyValue::new("hooktel.tool.input.pattern", "fn main")),
        "Agent" => attrs.push(KeyValue::new("hooktel.tool.input.subagent_type", "Explore")),
        t if t.starts_with("mcp__") => attrs.push(KeyValue::new("hooktel.mcp.server", "github")),
        _ => {}
    }
    attrs.push(KeyValue::new("hooktel.tool.response_bytes", rng.below(40_000) as i64));
    attrs.push(KeyValue::new("hooktel.payload_bytes", 900 + rng.below(40_000) as i64));
    if rng.below(10) == 0 {
        attrs.push(KeyValue::new("gen_ai.agent.id", "a7ca175cf2fd2156a"));
    }
    let mut events = Vec::new();
    if rng.below(20) == 0 {
        events.push(SpanEvent {
            name: "PermissionRequest".into(),
            at: start + 1_000_000,
            attrs: vec![KeyValue::new("gen_ai.tool.name", tool)],
        });
    }
    let incomplete = status == "incomplete";
    let duration_ms = (!incomplete && rng.below(10) != 0).then_some(ms);
    let tool_status = match status {
        "ok" => ToolStatus::Ok,
        "error" => ToolStatus::Error,
        "interrupted" => ToolStatus::Interrupted,
        "denied" => ToolStatus::Denied,
        _ => ToolStatus::Incomplete,
    };
    let span_status = match status {
        "ok" | "incomplete" => Status::Unset,
        "denied" => Status::Error("permission denied: rule".into()),
        other => Status::Error(other.into()),
    };
    let span_id = ids::span_id(session, SpanKey::Tool, &call_id);
    let end = start + ms * 1_000_000 + 3_000_000;
    SpanRecord {
        parent: Some(ids::span_id(session, SpanKey::Turn, &prompt_id)),
        attrs,
        events,
        status: span_status,
        project: project.to_owned(),
        incomplete,
        tool: Some(ToolRun { status: tool_status, duration_ms, pull_request: None }),
        ..SpanRecord::new(
            ids::trace_id(session),
            span_id,
            SpanKey::Tool,
            format!("execute_tool {tool}"),
            (start, end),
            session.into(),
        )
    }
}

/// A turn span with its usage attributes.
fn turn_span(rng: &mut Rng, session: &str, project: &str) -> SpanRecord {
    let prompt_id = rng.uuid().to_string();
    let start = 1_795_235_481_000_000_000 + rng.below(3_600_000_000_000);
    let outcome = if rng.below(50) == 0 { "failure" } else { "stop" };
    let attrs = vec![
        KeyValue::new("gen_ai.operation.name", "invoke_agent"),
        KeyValue::new("gen_ai.agent.name", "claude-code"),
        KeyValue::new("gen_ai.provider.name", "anthropic"),
        KeyValue::new("hooktel.prompt.id", prompt_id.clone()),
    ];
    let tokens =
        TokenUsage { input: 1_000, output: 2_400, cache_read: 110_000, cache_write_5m: 9_000, ..TokenUsage::default() };
    let usage = SpanUsage { tokens, cost: 0.31, models: vec!["claude-sonnet-5-5".into()] };
    let turn = if outcome == "failure" { TurnOutcome::Failure("rate_limit".into()) } else { TurnOutcome::Stop };
    let span_id = ids::span_id(session, SpanKey::Turn, &prompt_id);
    SpanRecord {
        parent: Some(ids::span_id(session, SpanKey::Root, "")),
        attrs,
        project: project.to_owned(),
        usage: Some(usage),
        turn: Some(turn),
        ..SpanRecord::new(
            ids::trace_id(session),
            span_id,
            SpanKey::Turn,
            "invoke_agent claude-code".into(),
            (start, start + 40_000_000_000),
            session.into(),
        )
    }
}
