//! The Prometheus registry: every metric name, help text and label in one place (with its unit, for
//! the push). Label values are capped (`caps`) so that no producer can grow the series count without
//! bound; what a finished span or a usage delta counts is in `spans`.
//!
//! Never a session id in a label: a series' latest span (and so its session's trace) is its exemplar
//! (`exemplars`), rendered in the OpenMetrics exposition (`openmetrics`) and pushed over OTLP.
//! Counting is cheap (atomic adds); rendering happens on scrape.
//! Warnings caused by outside input are rate-limited here too: counted always, logged at most once
//! per kind per [`WARN_EVERY`](crate::model::time::WARN_EVERY), with the number left out.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

mod caps;
pub(crate) mod exemplars;
pub(crate) mod genai;
pub(crate) mod openmetrics;
mod spans;

use crate::model::agent::{Agent, PerAgent};
use crate::model::time::now_ns;
pub use caps::LabelCap;
use caps::PairCap;

use crate::model::time::Throttle;

/// Tool durations run from a few milliseconds (Read) to many minutes (a build, a test suite).
const TOOL_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

/// Where usage was spent, for the labels of tokens and cost: the session's project (the basename
/// of its first `cwd`), and its repository (`host/owner/repo`) and branch, empty outside one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub project: String,
    pub repo: String,
    pub branch: String,
}

/// What a spool holds, as its gauges publish it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpoolDepth {
    /// Hook events, or span batches.
    pub(crate) items: u64,
    pub(crate) bytes: u64,
    /// When the oldest item was spooled (Unix ns).
    pub(crate) oldest_at: Option<u64>,
}

pub struct Metrics {
    registry: Registry,
    /// The name of every registered family: `/metrics` leaves out a labelled family until it has a
    /// series, and docs/metrics.md is checked against all of them.
    family_names: Vec<String>,
    /// `hooktel_info{version, host, user}` = 1: who runs this sidecar, for dashboards to split and
    /// filter by (joined on `job`, `instance`).
    pub(crate) info: prometheus::IntGaugeVec,
    /// Pushes of these metrics over OTLP, by result (ok, failed).
    pub(crate) metric_pushes: IntCounterVec,
    /// Agent teams: sessions in a team by role, teammates by mode, tasks by outcome, and the tokens
    /// and cost of the teams' model calls by role (team names are per lead session: no label).
    pub(crate) team_sessions: IntCounterVec,
    pub(crate) teammates: IntCounterVec,
    pub(crate) teammates_active: IntGauge,
    pub(crate) tasks: IntCounterVec,
    pub(crate) team_tokens: IntCounterVec,
    pub(crate) team_tool_calls: IntCounterVec,
    pub(crate) team_cost: prometheus::CounterVec,
    /// Whether tokens, cost and tool calls carry a `project` label (`HOOKTEL_PROJECT_LABEL`).
    project_label: bool,
    /// Whether tokens, cost and tool calls carry a `repo` label, and cost is counted by branch
    /// (`HOOKTEL_REPO_LABEL`).
    repo_label: bool,
    /// Cost by (repository, branch): a counter of its own, so that branches, which come and go,
    /// do not multiply the series of tokens, cost and tool calls.
    pub(crate) branch_cost: prometheus::CounterVec,
    /// The cost of model calls shared among the MCP servers whose tool results they read.
    pub(crate) mcp_cost: prometheus::CounterVec,
    /// Checkouts looked up, by result (repo, no_repo, cached, dropped).
    pub(crate) vcs_lookups: IntCounterVec,
    pub hook_events: IntCounterVec,
    pub(crate) ingest_rejected: IntCounterVec,
    pub(crate) late_events: IntCounter,
    /// Values taken in another form than they came, by reason: `implausible_time` (an event time
    /// before 2020 or over a day ahead, taken as its arrival), `non_finite` (a number that is not
    /// finite, removed from a span before it is kept or sent).
    pub(crate) bad_values: IntCounterVec,
    pub(crate) tool_calls: IntCounterVec,
    pub(crate) tool_duration: HistogramVec,
    /// Pull requests Bash calls opened, by forge (`provider`): divides cost into cost per pull request.
    pub(crate) pull_requests: IntCounterVec,
    pub(crate) tokens: IntCounterVec,
    pub(crate) cost: prometheus::CounterVec,
    pub(crate) unpriced_tokens: IntCounterVec,
    pub(crate) transcript_errors: IntCounterVec,
    pub(crate) sessions_started: IntCounterVec,
    pub(crate) sessions_ended: IntCounterVec,
    pub(crate) sessions_active: IntGauge,
    /// About what the open sessions hold, in bytes (bounded by their share of the memory budget).
    pub(crate) sessions_held: IntGauge,
    pub(crate) turns: IntCounterVec,
    pub(crate) subagents: IntCounterVec,
    pub(crate) custom_events: IntCounterVec,
    /// OTLP requests of Claude Code's own telemetry accepted, by signal (logs, metrics, traces).
    pub(crate) native_requests: IntCounterVec,
    /// Claude Code's telemetry events joined to a session, by event (api_request, api_error).
    pub(crate) native_events: IntCounterVec,
    /// Bodies of Claude Code's telemetry forwarded to hooktel's endpoint, by signal and result.
    pub(crate) native_forwarded: IntCounterVec,
    pub(crate) spans_exported: IntCounter,
    pub(crate) spans_stored: IntCounter,
    pub(crate) spans_dropped: IntCounterVec,
    pub(crate) export_failures: IntCounterVec,
    pub queue_depth: IntGauge,
    pub(crate) last_event_timestamp: Gauge,
    pub(crate) spool_events: IntGauge,
    pub(crate) spool_events_by: prometheus::IntGaugeVec,
    pub(crate) spool_bytes: prometheus::IntGaugeVec,
    pub(crate) spool_oldest_age: prometheus::GaugeVec,
    /// The spend budgets set, in USD, by scope (`day`, `session`); no series for a scope not set.
    pub(crate) budget_usd: prometheus::GaugeVec,
    /// Spend against each budget set: today's (UTC), and the largest of an open session's.
    pub(crate) budget_spent_usd: prometheus::GaugeVec,
    /// 1 while a spool can be opened and read, 0 while it cannot (read-only or broken data dir).
    pub(crate) spool_usable: prometheus::IntGaugeVec,
    pub(crate) spool_dropped: IntCounterVec,
    pub(crate) journal_failures: IntCounter,
    pub(crate) journal_full: IntCounter,
    /// Events and usage not journaled, by reason: `backlog` (the writer was behind by the
    /// journal backlog's share of the memory budget).
    pub(crate) journal_dropped: IntCounterVec,
    /// Spans of one session handed out before their end because the session had its most open
    /// spans, by kind (tool, subagent, other).
    pub(crate) spans_evicted: IntCounterVec,
    event_names: LabelCap,
    custom_names: LabelCap,
    tools: LabelCap,
    mcp_servers: LabelCap,
    models: LabelCap,
    projects: LabelCap,
    repos: LabelCap,
    agent_types: LabelCap,
    sources: LabelCap,
    end_reasons: LabelCap,
    tool_projects: PairCap,
    model_projects: PairCap,
    repo_branches: PairCap,
    /// Counts that went to an `other` series because a cap was reached, by metric.
    pub label_overflow: IntCounterVec,
    /// The OpenTelemetry GenAI client metrics of model calls.
    genai: genai::GenAi,
    /// The latest span behind each series of tokens, cost, tool calls and tool durations.
    exemplars: exemplars::Exemplars,
    unpriced_logged: Mutex<HashSet<String>>,
    /// Per kind of input-caused warning: when it was last logged, and how many since were not.
    warned: Mutex<std::collections::HashMap<&'static str, Throttle>>,
}

impl Metrics {
    pub fn new(project_label: bool, repo_label: bool) -> Metrics {
        let registry = Registry::new();
        let family_names = std::cell::RefCell::new(Vec::new());
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            family_names.borrow_mut().extend(c.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(c).expect("unique metric")
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        // the agent first, the place last: the order the values are given in (`spans`)
        let with_place = |labels: &[&'static str]| {
            let mut l = vec!["agent"];
            l.extend(labels);
            if project_label {
                l.push("project");
            }
            if repo_label {
                l.push("repo");
            }
            l
        };
        let tool_duration = HistogramVec::new(
            HistogramOpts::new("hooktel_tool_duration_seconds", "Tool call durations, as Claude Code timed them.")
                .buckets(TOOL_BUCKETS.to_vec()),
            &["tool", "mcp_server"],
        )
        .expect("valid metric");
        reg(Box::new(tool_duration.clone()));
        let cost = prometheus::CounterVec::new(
            Opts::new(
                "hooktel_cost_usd_total",
                "Cost in USD of the tokens counted, by agent and model (price table in docs/metrics.md).",
            ),
            &with_place(&["model"]),
        )
        .expect("valid metric");
        reg(Box::new(cost.clone()));
        let branch_cost = prometheus::CounterVec::new(
            Opts::new(
                "hooktel_branch_cost_usd_total",
                "Cost in USD of the tokens counted, by agent, repository and branch (empty outside a repository).",
            ),
            &["agent", "repo", "branch"],
        )
        .expect("valid metric");
        if repo_label {
            reg(Box::new(branch_cost.clone()));
        }
        let mcp_cost = prometheus::CounterVec::new(
            Opts::new(
                "hooktel_mcp_cost_usd_total",
                "Cost in USD of the model calls that read MCP servers' tool results, shared among the results each read, by agent and MCP server.",
            ),
            &["agent", "mcp_server"],
        )
        .expect("valid metric");
        reg(Box::new(mcp_cost.clone()));
        let last_event_timestamp =
            Gauge::new("hooktel_last_event_timestamp_seconds", "Unix time of the last hook event accepted.")
                .expect("valid metric");
        reg(Box::new(last_event_timestamp.clone()));
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let g = prometheus::IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        let spool_oldest_age = prometheus::GaugeVec::new(
            Opts::new("hooktel_spool_oldest_age_seconds", "Age of the oldest spooled item, by spool (hook, export)."),
            &["spool"],
        )
        .expect("valid metric");
        reg(Box::new(spool_oldest_age.clone()));
        let usd_gauges = |name: &str, help: &str| {
            let g = prometheus::GaugeVec::new(Opts::new(name, help), &["scope"]).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        let budget_usd = usd_gauges(
            "hooktel_budget_usd",
            "Spend budget in USD, by scope (day: a UTC day, HOOKTEL_BUDGET_USD_PER_DAY; session: HOOKTEL_BUDGET_USD_PER_SESSION).",
        );
        let budget_spent_usd = usd_gauges(
            "hooktel_budget_spent_usd",
            "Spend in USD against a budget, by scope (day: today's, UTC; session: the largest of an open session's).",
        );
        let genai = genai::GenAi::new();
        reg(Box::new(genai.token_usage.clone()));
        reg(Box::new(genai.operation_duration.clone()));
        Metrics {
            genai,
            budget_usd,
            budget_spent_usd,
            spool_events: gauge(
                "hooktel_spool_events",
                "Items waiting in the SQLite spools (hook events and span batches).",
            ),
            spool_events_by: gauges("hooktel_spool_items", "Items waiting, by spool (hook, export).", &["spool"]),
            spool_usable: gauges(
                "hooktel_spool_usable",
                "1 while the spool can be opened and read, 0 while it cannot (read-only or broken data dir), by spool.",
                &["spool"],
            ),
            spool_bytes: gauges("hooktel_spool_bytes", "Bytes waiting, by spool (hook, export).", &["spool"]),
            spool_oldest_age,
            spool_dropped: counters(
                "hooktel_spool_dropped_total",
                "Items dropped from a spool, by spool and reason (full, write_failed).",
                &["spool", "reason"],
            ),
            journal_failures: counter(
                "hooktel_journal_write_failures_total",
                "Journal rows not written (disk full, locked): open sessions may not survive a restart.",
            ),
            journal_full: counter(
                "hooktel_journal_full_total",
                "Events and usage not journaled because the journal is at its size cap: a restart loses them.",
            ),
            journal_dropped: counters(
                "hooktel_journal_dropped_total",
                "Events and usage not journaled, by reason (backlog: the journal writer was too far behind): a restart loses them.",
                &["reason"],
            ),
            spans_evicted: counters(
                "hooktel_spans_evicted_total",
                "Spans handed out before their end (incomplete) because their session had its most open spans, by kind (tool, subagent, other).",
                &["kind"],
            ),
            project_label,
            repo_label,
            branch_cost,
            mcp_cost,
            vcs_lookups: counters(
                "hooktel_vcs_lookups_total",
                "Checkouts looked up from a session's cwd, by result (repo, no_repo, cached, dropped: the reader's queue was full).",
                &["result"],
            ),
            hook_events: counters("hooktel_hook_events_total", "Hook events accepted, by hook_event_name.", &["event"]),
            ingest_rejected: counters("hooktel_ingest_rejected_total", "Requests refused, by reason.", &["reason"]),
            late_events: counter(
                "hooktel_late_events_total",
                "Events that arrived after their session's spans were exported; not applied.",
            ),
            bad_values: counters(
                "hooktel_bad_values_total",
                "Values fixed before they reached a span, by reason (implausible_time, non_finite).",
                &["reason"],
            ),
            tool_calls: counters(
                "hooktel_tool_calls_total",
                "Tool calls finished, by agent, tool, status (ok, error, interrupted, denied, incomplete) and MCP server.",
                &with_place(&["tool", "status", "mcp_server"]),
            ),
            tool_duration,
            pull_requests: counters(
                "hooktel_pull_requests_total",
                "Pull requests (merge requests) opened by Bash tool calls, by agent and provider (github, gitlab, gitea).",
                &with_place(&["provider"]),
            ),
            tokens: counters(
                "hooktel_tokens_total",
                "Tokens used, from the agents' session logs, by agent, model and type (input, output, cache_read, cache_creation).",
                &with_place(&["model", "type"]),
            ),
            cost,
            unpriced_tokens: counters(
                "hooktel_unpriced_tokens_total",
                "Tokens of models missing from the price table (counted at cost 0), by agent and model.",
                &["agent", "model"],
            ),
            transcript_errors: counters(
                "hooktel_transcript_errors_total",
                "Transcripts or lines skipped, by reason (missing, unreadable, bad_line).",
                &["reason"],
            ),
            sessions_started: counters(
                "hooktel_sessions_started_total",
                "SessionStart events, by agent and source (startup, resume, clear, compact).",
                &["agent", "source"],
            ),
            sessions_ended: counters(
                "hooktel_sessions_ended_total",
                "Sessions ended, by agent and reason (SessionEnd's reason, idle_timeout, or evicted).",
                &["agent", "reason"],
            ),
            sessions_active: gauge("hooktel_sessions_active", "Sessions with an open root span."),
            sessions_held: gauge(
                "hooktel_sessions_held_bytes",
                "About what the open sessions hold (spans, ids, reports waiting), bounded by their share of the memory budget.",
            ),
            turns: counters(
                "hooktel_turns_total",
                "Turns finished, by agent and outcome (stop, failure).",
                &["agent", "outcome"],
            ),
            subagents: counters("hooktel_subagents_total", "Subagents finished, by agent type.", &["agent_type"]),
            custom_events: counters(
                "hooktel_custom_events_total",
                "Custom events accepted (POST /v1/events, hooktel emit), by name.",
                &["name"],
            ),
            native_requests: counters(
                "hooktel_native_requests_total",
                "OTLP requests of Claude Code's own telemetry accepted on --otlp-listen, by signal.",
                &["signal"],
            ),
            native_events: counters(
                "hooktel_native_events_total",
                "Claude Code telemetry events joined to their session, by event.",
                &["event"],
            ),
            native_forwarded: counters(
                "hooktel_native_forwarded_total",
                "Bodies of Claude Code's telemetry forwarded to hooktel's OTLP endpoint, by signal and result (ok, failed, dropped).",
                &["signal", "result"],
            ),
            spans_exported: counter("hooktel_spans_exported_total", "Spans the OTLP receiver accepted."),
            spans_stored: counter("hooktel_spans_stored_total", "Spans kept in the local store (local mode)."),
            spans_dropped: counters("hooktel_spans_dropped_total", "Spans not exported, by reason.", &["reason"]),
            export_failures: counters(
                "hooktel_export_failures_total",
                "Failed OTLP export calls, by reason.",
                &["reason"],
            ),
            queue_depth: gauge("hooktel_ingest_queue_depth", "Events accepted and waiting for the pipeline."),
            last_event_timestamp,
            event_names: LabelCap::default(),
            custom_names: LabelCap::default(),
            tools: LabelCap::default(),
            mcp_servers: LabelCap::default(),
            models: LabelCap::default(),
            projects: LabelCap::default(),
            repos: LabelCap::default(),
            agent_types: LabelCap::default(),
            sources: LabelCap::default(),
            end_reasons: LabelCap::default(),
            tool_projects: PairCap::default(),
            model_projects: PairCap::default(),
            repo_branches: PairCap::default(),
            label_overflow: counters(
                "hooktel_label_overflow_total",
                "Counts folded into an `other` series because a metric reached its series cap, by metric.",
                &["metric"],
            ),
            info: gauges("hooktel_info", "1, labelled with the sidecar's version, host and user.", &["version", "host", "user"]),
            metric_pushes: counters(
                "hooktel_metric_pushes_total",
                "Pushes of these metrics over OTLP (OTEL_METRICS_EXPORTER=otlp), by result (ok, failed).",
                &["result"],
            ),
            team_sessions: counters(
                "hooktel_team_sessions_total",
                "Sessions finished that belonged to an agent team, by role (lead, teammate: a pane teammate's own session).",
                &["role"],
            ),
            teammates: counters(
                "hooktel_teammates_total",
                "Teammates finished, by mode (in_process, pane).",
                &["mode"],
            ),
            teammates_active: gauge(
                "hooktel_teammates_active",
                "Agent-team teammates of open sessions: in-process ones, and pane teammates' own sessions.",
            ),
            tasks: counters(
                "hooktel_tasks_total",
                "Tasks of task lists, by outcome (created; then completed or incomplete).",
                &["outcome"],
            ),
            team_tool_calls: counters(
                "hooktel_team_tool_calls_total",
                "Tool calls of agent teams, by role (lead, teammate) and status.",
                &["role", "status"],
            ),
            team_tokens: counters(
                "hooktel_team_tokens_total",
                "Tokens of agent teams' model calls, by role (lead, teammate) and type.",
                &["role", "type"],
            ),
            team_cost: {
                let c = prometheus::CounterVec::new(
                    Opts::new("hooktel_team_cost_usd_total", "Cost in USD of agent teams' model calls, by role."),
                    &["role"],
                )
                .expect("valid metric");
                reg(Box::new(c.clone()));
                c
            },
            exemplars: exemplars::Exemplars::default(),
            unpriced_logged: Mutex::new(HashSet::new()),
            warned: Mutex::new(std::collections::HashMap::new()),
            family_names: family_names.into_inner(),
            registry,
        }
    }

    /// Count one accepted hook event under its (capped) name.
    pub fn hook_event(&self, name: &str, at_unix_seconds: f64) {
        self.hook_events.with_label_values(&[self.event_names.label(name)]).inc();
        self.last_event_timestamp.set(at_unix_seconds);
    }

    /// Count one accepted custom event under its (capped) name.
    pub(crate) fn custom_event(&self, name: &str) {
        self.custom_events.with_label_values(&[self.custom_names.label(name)]).inc();
    }

    pub(crate) fn session_started(&self, agent: Agent, source: &str) {
        self.sessions_started.with_label_values(&[agent.name(), self.sources.label(source)]).inc();
    }

    pub(crate) fn session_ended(&self, agent: Agent, reason: &str) {
        self.sessions_ended.with_label_values(&[agent.name(), self.end_reasons.label(reason)]).inc();
    }

    /// Sessions hooktel closed itself (`idle_timeout`, `evicted`), by agent.
    pub(crate) fn sessions_closed(&self, closed: PerAgent, reason: &'static str) {
        for (agent, n) in closed.counts() {
            self.sessions_ended.with_label_values(&[agent.name(), reason]).inc_by(n);
        }
    }

    /// Record a spool's depth; `hooktel_spool_events` is the total over every spool.
    pub(crate) fn spool_depth(&self, spool: &str, d: &SpoolDepth) {
        self.spool_events_by.with_label_values(&[spool]).set(i64::try_from(d.items).unwrap_or(i64::MAX));
        self.spool_bytes.with_label_values(&[spool]).set(i64::try_from(d.bytes).unwrap_or(i64::MAX));
        let age = d.oldest_at.map_or(0.0, |at| now_ns().saturating_sub(at) as f64 / 1e9);
        self.spool_oldest_age.with_label_values(&[spool]).set(age);
        let total = ["hook", "export"].iter().map(|s| self.spool_events_by.with_label_values(&[s]).get()).sum();
        self.spool_events.set(total);
    }

    /// Whether a warning of `kind` caused by outside input may be logged now: `Some(n)` with the
    /// number of its kind left out since the last one, or `None` within [`WARN_EVERY`](crate::model::time::WARN_EVERY) of it (a flood
    /// of bad requests must not become a flood of log lines).
    pub(crate) fn may_warn(&self, kind: &'static str) -> Option<u64> {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        warned.entry(kind).or_default().allow(std::time::Instant::now())
    }

    /// Every metric's current values: what `/metrics` renders and what is pushed over OTLP.
    pub(crate) fn families(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Every series' exemplar now, for the OTLP push (what [`render_openmetrics`](Self::render_openmetrics) shows).
    pub(crate) fn exemplars(&self) -> exemplars::ExemplarSet {
        self.exemplars.snapshot()
    }

    /// Every registered metric family's name, including those without a series yet.
    pub fn family_names(&self) -> &[String] {
        &self.family_names
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        // encoding into a Vec cannot fail for well-formed metrics
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }

    /// The OpenMetrics exposition of every metric, with exemplars (`application/openmetrics-text`).
    pub fn render_openmetrics(&self) -> Vec<u8> {
        openmetrics::render(&self.registry.gather(), &self.exemplars.snapshot()).into_bytes()
    }
}

/// A family's unit (UCUM, as OTLP carries it), for the push. Seconds and bytes are `s` and `By`:
/// the standard OTLP-to-Prometheus translation finds `seconds` / `bytes` already in the name and
/// adds nothing. Everything counted is a `{annotation}`, which the translation drops. So the pushed
/// names come back as `/metrics` spells them.
pub(crate) fn unit(family: &str) -> &'static str {
    match family {
        n if n.ends_with("_seconds") => "s",
        n if n.ends_with("_bytes") => "By",
        n if n.contains("cost_usd") || n.starts_with("hooktel_budget_") => "{USD}",
        n if n.contains("tokens") => "{token}",
        n if n.contains("tool_calls") => "{call}",
        n if n.contains("session") => "{session}",
        n if n.starts_with("hooktel_spans_") => "{span}",
        n if n.contains("failures") => "{failure}",
        "hooktel_hook_events_total"
        | "hooktel_custom_events_total"
        | "hooktel_native_events_total"
        | "hooktel_late_events_total"
        | "hooktel_journal_full_total"
        | "hooktel_journal_dropped_total"
        | "hooktel_spool_events"
        | "hooktel_ingest_queue_depth" => "{event}",
        "hooktel_turns_total" => "{turn}",
        "hooktel_subagents_total" | "hooktel_teammates_total" | "hooktel_teammates_active" => "{agent}",
        "hooktel_tasks_total" => "{task}",
        "hooktel_pull_requests_total" => "{pull_request}",
        "hooktel_ingest_rejected_total" | "hooktel_native_requests_total" => "{request}",
        "hooktel_metric_pushes_total" => "{push}",
        "hooktel_vcs_lookups_total" => "{lookup}",
        "hooktel_native_forwarded_total" => "{body}",
        "hooktel_spool_items" | "hooktel_spool_dropped_total" => "{item}",
        "hooktel_transcript_errors_total" => "{error}",
        "hooktel_label_overflow_total" | "hooktel_bad_values_total" => "{value}",
        "hooktel_spool_usable" => "{boolean}",
        "hooktel_info" => "{info}",
        genai::TOKEN_USAGE => "{token}",
        genai::OPERATION_DURATION => "s",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::caps::{MAX_LABEL_BYTES, MAX_LABEL_VALUES};
    use crate::model::ids::SpanKey;
    use crate::model::span::{SpanRecord, SpanUsage, Subject, ToolRun, ToolStatus};
    use crate::model::tokens::TokenUsage;

    #[test]
    fn every_family_has_a_unit() {
        let m = Metrics::new(true, false);
        for name in m.family_names() {
            assert!(!unit(name).is_empty(), "{name} has no unit");
        }
    }

    #[test]
    fn label_values_are_capped() {
        let cap = LabelCap::default();
        for i in 0..MAX_LABEL_VALUES {
            assert_eq!(cap.label(&format!("e{i}")), format!("e{i}"));
        }
        assert_eq!(cap.label("one-too-many"), "other");
        assert_eq!(LabelCap::default().label(&"x".repeat(8000)).len(), MAX_LABEL_BYTES);
        assert_eq!(cap.label("e0"), "e0");
    }

    /// End reasons were counted against the cap meant for start sources: 100 sources left every
    /// end reason folded into `other`.
    #[test]
    fn end_reasons_have_a_cap_of_their_own() {
        let m = Metrics::new(false, false);
        for i in 0..MAX_LABEL_VALUES {
            m.session_started(Agent::ClaudeCode, &format!("source-{i}"));
        }
        m.session_ended(Agent::ClaudeCode, "prompt_input_exit");
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"hooktel_sessions_ended_total{agent="claude-code",reason="prompt_input_exit"} 1"#),
            "{text}"
        );
    }

    /// A tool call's `mcp_server` is its MCP server, empty for any other tool, and `other` with its
    /// tool once the tools' cap is reached: a capped tool's calls stay one series, not one per server.
    #[test]
    fn mcp_servers_have_a_label_that_folds_with_their_tool() {
        let m = Metrics::new(false, false);
        let call = |i: u8, name: &str| {
            let rec = finished(SpanKey::Tool, i, "api");
            let tool = Some(ToolRun { status: ToolStatus::Ok, duration_ms: Some(10), pull_request: None });
            m.span_finished(&SpanRecord { subject: Some(Subject::Tool(name.into())), tool, ..rec });
        };
        call(1, "Read");
        for i in 0..MAX_LABEL_VALUES {
            call(2, &format!("mcp__s{i}__read"));
        }
        call(3, "mcp__late__read");
        let text = String::from_utf8(m.render()).unwrap();
        for want in [
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="",status="ok",tool="Read"} 1"#,
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="s0",status="ok",tool="mcp__s0__read"} 1"#,
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="s98",status="ok",tool="mcp__s98__read"} 1"#,
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="other",status="ok",tool="other"} 2"#,
            r#"hooktel_tool_duration_seconds_count{mcp_server="s0",tool="mcp__s0__read"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == want), "no line {want}");
        }
    }

    #[test]
    fn renders_events_by_name() {
        let m = Metrics::new(true, false);
        m.hook_event("TokenUsageUpdated", 5.0);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"hooktel_hook_events_total{event="TokenUsageUpdated"} 1"#), "{text}");
        assert!(text.contains("hooktel_last_event_timestamp_seconds 5"), "{text}");
    }

    fn place(project: &str) -> Place {
        Place { project: project.into(), ..Place::default() }
    }

    fn finished(key: SpanKey, span: u8, project: &str) -> SpanRecord {
        let sid = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
        let (trace, span) = (crate::model::ids::trace_id(sid), opentelemetry::trace::SpanId::from_bytes([span; 8]));
        let rec =
            SpanRecord::new(trace, span, key, "span".into(), (1_000_000_000, 1_765_000_000_000_000_000), sid.into());
        SpanRecord { project: project.into(), ..rec }
    }

    /// A finished model call leaves its trace and span on the token and cost series its usage was
    /// counted under, a tool call on its call and duration series; the OpenMetrics exposition shows
    /// them, the classic text does not.
    #[test]
    fn finished_spans_leave_exemplars_on_the_series_they_moved() {
        for project_label in [true, false] {
            let m = Metrics::new(project_label, false);
            let u =
                TokenUsage { input: 3, output: 4, cache_read: 0, cache_write_5m: 0, cache_write_1h: 0, web_search: 0 };
            m.count_usage(Agent::ClaudeCode, "claude-opus-5-5", &place("api"), &u, 0.5, true);
            let mut usage = SpanUsage::default();
            usage.add("claude-opus-5-5", u, 0.5);
            m.span_finished(&SpanRecord { usage: Some(usage), ..finished(SpanKey::Chat, 7, "api") });
            let tool = SpanRecord {
                subject: Some(Subject::Tool("Bash".into())),
                tool: Some(ToolRun { status: ToolStatus::Ok, duration_ms: Some(300), pull_request: None }),
                ..finished(SpanKey::Tool, 9, "api")
            };
            m.span_finished(&tool);
            let text = String::from_utf8(m.render_openmetrics()).unwrap();
            let project = if project_label { r#",project="api""# } else { "" };
            let tool_project = if project_label { r#"project="api","# } else { "" };
            let ex = |span: &str, v: &str| {
                format!(
                    r#" # {{trace_id="2cfb142e3e2c45c5819258e43d4a510f",span_id="{span}"}} {v} 1765000000.000000000"#
                )
            };
            for want in [
                format!(
                    r#"hooktel_tokens_total{{agent="claude-code",model="claude-opus-5-5"{project},type="input"}} 3{}"#,
                    ex("0707070707070707", "3")
                ),
                format!(
                    r#"hooktel_tokens_total{{agent="claude-code",model="claude-opus-5-5"{project},type="output"}} 4{}"#,
                    ex("0707070707070707", "4")
                ),
                format!(
                    r#"hooktel_cost_usd_total{{agent="claude-code",model="claude-opus-5-5"{project}}} 0.5{}"#,
                    ex("0707070707070707", "0.5")
                ),
                format!(
                    r#"hooktel_tool_calls_total{{agent="claude-code",mcp_server="",{tool_project}status="ok",tool="Bash"}} 1{}"#,
                    ex("0909090909090909", "1")
                ),
                format!(
                    r#"hooktel_tool_duration_seconds_bucket{{mcp_server="",tool="Bash",le="0.5"}} 1{}"#,
                    ex("0909090909090909", "0.3")
                ),
            ] {
                assert!(text.lines().any(|l| l == want), "project label {project_label}: no line {want}\nin:\n{text}");
            }
            // no tokens of a type, no exemplar on its series
            assert!(!text.lines().any(|l| l.contains(r#"type="cache_read""#) && l.contains(" # {")), "{text}");
            assert!(!String::from_utf8(m.render()).unwrap().contains("trace_id"));
        }
    }

    /// Past the (model, project) cap, a model call's exemplars go where its usage was counted: the
    /// (`other`, `other`) series.
    #[test]
    fn exemplars_follow_usage_into_other() {
        let m = Metrics::new(true, false);
        let u = TokenUsage { input: 3, ..TokenUsage::default() };
        for i in 0..caps::MAX_PAIRS {
            m.count_usage(Agent::ClaudeCode, &format!("m{}", i / 20), &place(&format!("p{}", i % 20)), &u, 0.0, true);
        }
        m.count_usage(Agent::ClaudeCode, "m0", &place("late"), &u, 0.0, true);
        let mut usage = SpanUsage::default();
        usage.add("m0", u, 0.0);
        m.span_finished(&SpanRecord { usage: Some(usage), ..finished(SpanKey::Chat, 7, "late") });
        let text = String::from_utf8(m.render_openmetrics()).unwrap();
        let line = text.lines().find(|l| l.contains(" # {")).unwrap_or_else(|| panic!("no exemplar in {text}"));
        assert!(
            line.starts_with(
                r#"hooktel_tokens_total{agent="claude-code",model="other",project="other",type="input"} 3 # "#
            ),
            "{line}"
        );
    }

    /// Tokens, cost and tool calls carry the session's repository; cost is also counted by
    /// (repository, branch), whose pairs are capped on their own; switched off, neither exists.
    #[test]
    fn repo_label_and_cost_by_branch() {
        let u = TokenUsage { input: 3, output: 4, ..TokenUsage::default() };
        let at = |repo: &str, branch: &str| Place { project: "api".into(), repo: repo.into(), branch: branch.into() };
        let m = Metrics::new(true, true);
        m.count_usage(
            Agent::ClaudeCode,
            "claude-opus-5-5",
            &at("github.com/acme/widgets", "feature/ABC-1"),
            &u,
            0.5,
            true,
        );
        m.count_usage(Agent::ClaudeCode, "claude-opus-5-5", &at("github.com/acme/widgets", "main"), &u, 0.25, true);
        m.count_usage(Agent::ClaudeCode, "claude-opus-5-5", &at("", ""), &u, 0.125, true);
        let tool = SpanRecord {
            repo: "github.com/acme/widgets".into(),
            subject: Some(Subject::Tool("Bash".into())),
            tool: Some(ToolRun { status: ToolStatus::Ok, duration_ms: Some(300), pull_request: None }),
            ..finished(SpanKey::Tool, 9, "api")
        };
        m.span_finished(&tool);
        let text = String::from_utf8(m.render()).unwrap();
        for want in [
            r#"hooktel_cost_usd_total{agent="claude-code",model="claude-opus-5-5",project="api",repo="github.com/acme/widgets"} 0.75"#,
            r#"hooktel_cost_usd_total{agent="claude-code",model="claude-opus-5-5",project="api",repo=""} 0.125"#,
            r#"hooktel_tokens_total{agent="claude-code",model="claude-opus-5-5",project="api",repo="github.com/acme/widgets",type="output"} 8"#,
            r#"hooktel_branch_cost_usd_total{agent="claude-code",branch="feature/ABC-1",repo="github.com/acme/widgets"} 0.5"#,
            r#"hooktel_branch_cost_usd_total{agent="claude-code",branch="main",repo="github.com/acme/widgets"} 0.25"#,
            r#"hooktel_branch_cost_usd_total{agent="claude-code",branch="",repo=""} 0.125"#,
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="",project="api",repo="github.com/acme/widgets",status="ok",tool="Bash"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == want), "no line {want}\nin:\n{text}");
        }
        let ex = String::from_utf8(m.render_openmetrics()).unwrap();
        assert!(ex.lines().any(|l| l.starts_with(r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="",project="api",repo="github.com/acme/widgets",status="ok",tool="Bash"} 1 # {"#)), "{ex}");
        for i in 0..caps::MAX_PAIRS {
            m.count_usage(Agent::ClaudeCode, "m", &at("github.com/acme/widgets", &format!("b{i}")), &u, 1.0, true);
        }
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"hooktel_branch_cost_usd_total{agent="claude-code",branch="other",repo="other"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"hooktel_label_overflow_total{metric="hooktel_branch_cost_usd_total"} 3"#));

        let off = Metrics::new(true, false);
        off.count_usage(Agent::ClaudeCode, "claude-opus-5-5", &at("github.com/acme/widgets", "main"), &u, 0.5, true);
        // a tool call that opened a pull request, in a repository: counted, without the label
        let opened = SpanRecord {
            tool: Some(ToolRun {
                status: ToolStatus::Ok,
                duration_ms: Some(300),
                pull_request: Some(crate::model::pull_request::Forge::GitHub),
            }),
            ..tool
        };
        off.span_finished(&opened);
        let text = String::from_utf8(off.render()).unwrap();
        for want in [
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="",project="api",status="ok",tool="Bash"} 1"#,
            r#"hooktel_pull_requests_total{agent="claude-code",project="api",provider="github"} 1"#,
            r#"hooktel_cost_usd_total{agent="claude-code",model="claude-opus-5-5",project="api"} 0.5"#,
        ] {
            assert!(text.lines().any(|l| l == want), "no line {want}\nin:\n{text}");
        }
        assert!(!text.contains("repo=") && !text.contains("hooktel_branch_cost"), "{text}");
        assert!(!off.family_names().iter().any(|f| f == "hooktel_branch_cost_usd_total"));
    }

    /// A model call's cost goes to the MCP servers whose results it read, each its share; servers
    /// past the cap fold into `other` with the tool calls' own.
    #[test]
    fn mcp_servers_get_their_share_of_the_cost_of_the_calls_that_read_them() {
        let m = Metrics::new(true, true);
        let shares = [("files".to_owned(), 0.5), ("db".to_owned(), 0.25)];
        m.count_mcp_cost(Agent::ClaudeCode, &shares, 0.8);
        m.count_mcp_cost(Agent::ClaudeCode, &shares[..1], 0.2);
        m.count_mcp_cost(Agent::ClaudeCode, &[], 5.0);
        let text = String::from_utf8(m.render()).unwrap();
        for want in [
            r#"hooktel_mcp_cost_usd_total{agent="claude-code",mcp_server="files"} 0.5"#,
            r#"hooktel_mcp_cost_usd_total{agent="claude-code",mcp_server="db"} 0.2"#,
        ] {
            assert!(text.lines().any(|l| l == want), "no line {want}\nin:\n{text}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("hooktel_mcp_cost_usd_total{")).count(), 2, "{text}");
        for i in 0..caps::MAX_LABEL_VALUES {
            m.count_mcp_cost(Agent::ClaudeCode, &[(format!("s{i}"), 1.0)], 1.0);
        }
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"hooktel_mcp_cost_usd_total{agent="claude-code",mcp_server="other"} 2"#), "{text}");
    }

    /// Each agent's tokens, cost, unpriced tokens, tool calls, turns and sessions are series of
    /// their own, exemplars included; past the cap a combination folds into `other` under its agent.
    #[test]
    fn each_agent_has_series_of_its_own() {
        let m = Metrics::new(true, true);
        let u = TokenUsage { input: 3, output: 4, ..TokenUsage::default() };
        let at = Place { project: "api".into(), repo: "github.com/acme/widgets".into(), branch: "main".into() };
        m.count_usage(Agent::ClaudeCode, "gpt-5.5", &at, &u, 0.5, true);
        m.count_usage(Agent::Codex, "gpt-5.5", &at, &u, 0.0, false);
        for agent in Agent::ALL {
            let tool = SpanRecord {
                agent,
                repo: at.repo.clone(),
                subject: Some(Subject::Tool("Bash".into())),
                tool: Some(ToolRun { status: ToolStatus::Error, duration_ms: Some(300), pull_request: None }),
                ..finished(SpanKey::Tool, 9, "api")
            };
            m.span_finished(&tool);
            let turn = SpanRecord {
                agent,
                turn: Some(crate::model::span::TurnOutcome::Stop),
                ..finished(SpanKey::Turn, 8, "api")
            };
            m.span_finished(&turn);
            m.session_started(agent, "startup");
        }
        m.session_ended(Agent::Codex, "other");
        let mut idled = PerAgent::default();
        idled.add(Agent::ClaudeCode, 2);
        m.sessions_closed(idled, "idle_timeout");
        let text = String::from_utf8(m.render()).unwrap();
        let place = r#"project="api",repo="github.com/acme/widgets""#;
        for want in [
            format!(r#"hooktel_tokens_total{{agent="claude-code",model="gpt-5.5",{place},type="input"}} 3"#),
            format!(r#"hooktel_tokens_total{{agent="codex",model="gpt-5.5",{place},type="input"}} 3"#),
            format!(r#"hooktel_cost_usd_total{{agent="claude-code",model="gpt-5.5",{place}}} 0.5"#),
            format!(r#"hooktel_cost_usd_total{{agent="codex",model="gpt-5.5",{place}}} 0"#),
            r#"hooktel_unpriced_tokens_total{agent="codex",model="gpt-5.5"} 7"#.into(),
            r#"hooktel_branch_cost_usd_total{agent="claude-code",branch="main",repo="github.com/acme/widgets"} 0.5"#
                .into(),
            format!(r#"hooktel_tool_calls_total{{agent="codex",mcp_server="",{place},status="error",tool="Bash"}} 1"#),
            format!(
                r#"hooktel_tool_calls_total{{agent="claude-code",mcp_server="",{place},status="error",tool="Bash"}} 1"#
            ),
            r#"hooktel_turns_total{agent="claude-code",outcome="stop"} 1"#.into(),
            r#"hooktel_turns_total{agent="codex",outcome="stop"} 1"#.into(),
            r#"hooktel_sessions_started_total{agent="codex",source="startup"} 1"#.into(),
            r#"hooktel_sessions_started_total{agent="claude-code",source="startup"} 1"#.into(),
            r#"hooktel_sessions_ended_total{agent="codex",reason="other"} 1"#.into(),
            r#"hooktel_sessions_ended_total{agent="claude-code",reason="idle_timeout"} 2"#.into(),
        ] {
            assert!(text.lines().any(|l| l == want), "no line {want}\nin:\n{text}");
        }
        assert!(!text.contains(r#"hooktel_unpriced_tokens_total{agent="claude-code""#), "{text}");
        assert!(!text.contains(r#"agent="codex",reason="idle_timeout""#), "{text}");
        let ex = String::from_utf8(m.render_openmetrics()).unwrap();
        for agent in ["claude-code", "codex"] {
            let series = format!(r#"hooktel_tool_calls_total{{agent="{agent}",mcp_server="",{place},status="error","#);
            assert!(ex.lines().any(|l| l.starts_with(&series) && l.contains(" # {")), "{series} in {ex}");
        }
        // the cap counts (agent, model, project, repo): past it, each agent's usage folds apart
        for i in 0..caps::MAX_PAIRS {
            m.count_usage(Agent::ClaudeCode, &format!("m{}", i % 50), &place_of(i), &u, 0.0, true);
        }
        m.count_usage(Agent::Codex, "late", &at, &u, 0.0, true);
        let text = String::from_utf8(m.render()).unwrap();
        let folded = r#"hooktel_tokens_total{agent="codex",model="other",project="other",repo="other",type="input"} 3"#;
        assert!(text.lines().any(|l| l == folded), "{text}");
    }

    fn place_of(i: usize) -> Place {
        Place { project: format!("p{}", i / 50), repo: String::new(), branch: String::new() }
    }

    #[test]
    fn project_label_can_be_switched_off() {
        let u = TokenUsage { input: 3, output: 4, cache_read: 5, cache_write_5m: 1, cache_write_1h: 1, web_search: 0 };
        let on = Metrics::new(true, false);
        on.count_usage(Agent::ClaudeCode, "claude-opus-5-5", &place("api"), &u, 0.5, true);
        let text = String::from_utf8(on.render()).unwrap();
        assert!(
            text.contains(r#"hooktel_tokens_total{agent="claude-code",model="claude-opus-5-5",project="api",type="cache_creation"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hooktel_cost_usd_total{agent="claude-code",model="claude-opus-5-5",project="api"} 0.5"#),
            "{text}"
        );
        let off = Metrics::new(false, false);
        off.count_usage(Agent::ClaudeCode, "mystery", &place("api"), &u, 0.0, false);
        let text = String::from_utf8(off.render()).unwrap();
        assert!(text.contains(r#"hooktel_tokens_total{agent="claude-code",model="mystery",type="input"} 3"#), "{text}");
        assert!(text.contains(r#"hooktel_unpriced_tokens_total{agent="claude-code",model="mystery"} 14"#), "{text}");
        assert!(!text.contains("project="), "{text}");
    }
}
