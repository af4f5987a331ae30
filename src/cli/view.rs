//! `hooktel sessions` and `hooktel show`: read-only views of the local store (`local.db`), rendered
//! as text fitted to the terminal (`layout`), whole with `--wide`, or as JSON for scripts. Nothing
//! here prints or writes; the caller prints what it gets.
//!
//! Times are shown in UTC. A session whose root span is not stored yet is still *open* (spans are
//! stored as they finish; the root, when the session ends): its finished parts are shown as they are.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};

use crate::cli::layout;
use crate::model::ids::{self, SpanKey};
use crate::model::semconv;
use crate::model::span::{SpanRecord, Status};
use crate::store::local::{self, LocalReader, SessionSummary};

/// How a view is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Text within this many columns (`None`: whole values).
    Text(Option<usize>),
    Json,
    #[default]
    Whole,
}

impl Output {
    /// `--json`, else `--wide` (whole values), else the terminal's width.
    pub fn of_flags(json: bool, wide: bool) -> Output {
        match (json, wide) {
            (true, _) => Output::Json,
            (false, true) => Output::Whole,
            (false, false) => Output::Text(super::layout::terminal_width()),
        }
    }

    fn width(self) -> Option<usize> {
        match self {
            Output::Text(w) => w,
            _ => None,
        }
    }
}

/// Recent sessions, newest first, one line each under a header.
pub fn sessions(data_dir: &Path, limit: usize, output: Output) -> anyhow::Result<String> {
    let view = list_sessions(data_dir, limit, output);
    if output == Output::Json {
        return view;
    }
    terminal_safe(view)
}

/// One session as a tree of its spans: root, turns, tool calls and subagents, compactions.
/// `session` is its id (with or without dashes) or a unique prefix of at least 4 characters.
pub fn show(data_dir: &Path, session: &str, output: Output) -> anyhow::Result<String> {
    let loaded = load(data_dir, session);
    if output == Output::Json {
        return loaded.and_then(|(s, spans)| show_json(&s, spans));
    }
    terminal_safe(loaded.map(|(s, spans)| layout::cut_lines(&show_session(&s, &spans), output.width())))
}

/// Session ids, projects, tool names and prompts come from payloads: a control character in them
/// (a window-title, clear-screen or hyperlink escape) or a bidirectional override must reach the
/// terminal as visible text, never as a command. Newlines the view itself writes stay.
fn terminal_safe(view: anyhow::Result<String>) -> anyhow::Result<String> {
    view.map(|text| escape_controls(&text)).map_err(|e| anyhow::anyhow!(escape_controls(&format!("{e:#}"))))
}

pub(crate) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n') || bidi {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn list_sessions(data_dir: &Path, limit: usize, output: Output) -> anyhow::Result<String> {
    let Some(store) = open(data_dir)? else {
        return Ok(if output == Output::Json { "[]\n".into() } else { empty(data_dir) });
    };
    let traces = store.recent(limit)?;
    if traces.is_empty() && output != Output::Json {
        return Ok(empty(data_dir));
    }
    let view =
        if output == Output::Json { sessions_json(&store, &traces) } else { sessions_table(&store, &traces, output) };
    note_set_aside(&store);
    view
}

fn sessions_table(store: &LocalReader, traces: &[String], output: Output) -> anyhow::Result<String> {
    let header = [
        "STARTED (UTC)",
        "SESSION",
        "AGENT",
        "PROJECT",
        "DURATION",
        "TURNS",
        "TOOLS",
        "FAILED",
        "SUBAGENTS",
        "IN TOKENS",
        "OUT TOKENS",
        "COST",
        "STATE",
    ];
    let mut rows = Vec::with_capacity(traces.len());
    for trace in grouped(store, traces)? {
        let s = store.summary(&trace.trace)?;
        let session = if trace.under_lead { format!("└ {}", s.session_id) } else { s.session_id.clone() };
        rows.push(vec![
            utc(s.start)[..16].to_owned(),
            session,
            s.agent.as_deref().map_or("-".into(), |a| clip(a, 16)),
            clip(&s.project, 24),
            duration(s.end.saturating_sub(s.start)),
            s.turns.to_string(),
            s.tools.to_string(),
            s.failed.to_string(),
            s.agents.to_string(),
            s.input.map_or("-".into(), count),
            s.output.map_or("-".into(), count),
            s.cost.map_or("-".into(), usd),
            state(&s).into(),
        ]);
    }
    let right = [false, false, false, false, true, true, true, true, true, true, true, true, false];
    // narrow terminals: the id to 8 characters (`show` takes a prefix), then the least telling
    // columns go (subagents, failed, turns, in tokens, duration, the coding agent), then the
    // project is clipped
    let fit = layout::Fit { shorten: Some((1, 8)), drop: &[8, 7, 5, 9, 4, 2], clip: Some((3, 8)) };
    Ok(layout::table(&header, &rows, &right, output.width(), &fit))
}

/// The sessions as JSON: one object each, with every count, whole.
fn sessions_json(store: &LocalReader, traces: &[String]) -> anyhow::Result<String> {
    let mut out = Vec::with_capacity(traces.len());
    for listed in grouped(store, traces)? {
        let s = store.summary(&listed.trace)?;
        let root = store.root(&listed.trace)?;
        out.push(serde_json::json!({
            "session_id": s.session_id,
            "agent": s.agent,
            "project": s.project,
            "started": crate::model::time::rfc3339(s.start),
            "duration_ms": s.end.saturating_sub(s.start) / 1_000_000,
            "turns": s.turns, "tool_calls": s.tools, "failed_tool_calls": s.failed, "subagents": s.agents,
            "input_tokens": s.input, "output_tokens": s.output, "cost_usd": s.cost,
            "state": state(&s),
            "team": root.as_ref().and_then(|r| r.attr(semconv::TEAM_NAME)),
            "lead_session": root.as_ref().and_then(|r| link_of(r, "team_lead")).map(session_of),
            "forked_from": root.as_ref().and_then(|r| link_of(r, "forked_from")).map(session_of),
        }));
    }
    Ok(serde_json::to_string_pretty(&out)? + "\n")
}

/// The session `session` names (its id, with or without dashes, or a unique prefix): its summary
/// and every stored span.
fn load(data_dir: &Path, session: &str) -> anyhow::Result<(SessionSummary, Vec<SpanRecord>)> {
    let Some(store) = open(data_dir)? else {
        bail!("no session matches {session:?}: no session has been recorded yet in {}", data_dir.display())
    };
    let trace = resolve(&store, session)?;
    let loaded = (store.summary(&trace)?, store.spans(&trace)?);
    note_set_aside(&store);
    Ok(loaded)
}

/// Say on stderr that stored spans were left out because they cannot be decoded: the view goes on
/// without them (one damaged row never hides every session).
fn note_set_aside(store: &LocalReader) {
    let n = store.set_aside();
    if n > 0 {
        eprintln!(
            "hooktel: {} cannot be decoded (damaged, or written by another version) and {} left out",
            plural(n as i64, "stored span"),
            if n == 1 { "is" } else { "are" }
        );
    }
}

/// One session as JSON: its summary and every span, with its attributes and links.
fn show_json(s: &SessionSummary, mut spans: Vec<SpanRecord>) -> anyhow::Result<String> {
    spans.sort_by_key(|r| (r.start, r.end));
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|r| {
            let attrs: serde_json::Map<String, serde_json::Value> =
                r.attributes().iter().map(|kv| (kv.key.to_string(), json_value(&kv.value))).collect();
            let (status, message) = match &r.status {
                Status::Error(m) => ("error", Some(m.clone())),
                Status::Ok => ("ok", None),
                Status::Unset => ("unset", None),
            };
            serde_json::json!({
                "span_id": r.span_id.to_string(),
                "parent_id": r.parent.map(|p| p.to_string()),
                "name": r.name, "kind": r.key.tag(),
                "start": crate::model::time::rfc3339(r.start), "duration_ms": r.end.saturating_sub(r.start) as f64 / 1e6,
                "status": status, "status_message": message, "incomplete": r.incomplete,
                "attributes": attrs,
                "links": r.links.iter().map(|l| serde_json::json!({
                    "trace_id": l.trace_id.to_string(), "span_id": l.span_id.to_string(), "kind": l.kind,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let out = serde_json::json!({
        "session_id": s.session_id, "agent": s.agent, "project": s.project, "state": state(s),
        "started": crate::model::time::rfc3339(s.start), "duration_ms": s.end.saturating_sub(s.start) / 1_000_000,
        "input_tokens": s.input, "output_tokens": s.output, "cost_usd": s.cost,
        "spans": spans,
    });
    Ok(serde_json::to_string_pretty(&out)? + "\n")
}

fn json_value(v: &opentelemetry::Value) -> serde_json::Value {
    match v {
        opentelemetry::Value::Bool(b) => serde_json::Value::Bool(*b),
        opentelemetry::Value::I64(i) => serde_json::Value::from(*i),
        opentelemetry::Value::F64(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        other => serde_json::Value::String(other.as_str().into_owned()),
    }
}

/// A session of the list, and whether it is shown under its team's lead.
struct Listed {
    trace: String,
    under_lead: bool,
}

/// The sessions in their order, except that a pane teammate's session follows its lead's (when
/// the lead is in the list), marked.
fn grouped(store: &LocalReader, traces: &[String]) -> anyhow::Result<Vec<Listed>> {
    let mut lead_of: HashMap<&str, String> = HashMap::new();
    for t in traces {
        if let Some(lead) = store.root(t)?.as_ref().and_then(|r| link_of(r, "team_lead")) {
            lead_of.insert(t, lead.to_string());
        }
    }
    let listed = |t: &String| lead_of.get(t.as_str()).is_some_and(|l| traces.contains(l));
    let mut out = Vec::with_capacity(traces.len());
    for t in traces.iter().filter(|t| !listed(t)) {
        out.push(Listed { trace: t.clone(), under_lead: false });
        for mate in traces.iter().filter(|m| lead_of.get(m.as_str()) == Some(t)) {
            out.push(Listed { trace: mate.clone(), under_lead: true });
        }
    }
    Ok(out)
}

/// The trace a span links to with relation `kind`.
fn link_of(r: &SpanRecord, kind: &str) -> Option<opentelemetry::trace::TraceId> {
    r.links.iter().find(|l| l.kind == kind).map(|l| l.trace_id)
}

/// A trace id as the session UUID it is.
fn session_of(trace: opentelemetry::trace::TraceId) -> String {
    uuid::Uuid::from_bytes(trace.to_bytes()).hyphenated().to_string()
}

fn show_session(s: &SessionSummary, spans: &[SpanRecord]) -> String {
    let mut out = format!("Session {}  project {}  {}\n", s.session_id, s.project, state(s));
    out.push_str(&format!("Coding agent: {}\n", s.agent.as_deref().unwrap_or("unknown")));
    let mut facts = vec![
        format!("Started {}", utc(s.start)),
        duration(s.end.saturating_sub(s.start)),
        plural(s.turns, "turn"),
        format!("{} ({} failed)", plural(s.tools, "tool call"), s.failed),
        plural(s.agents, "subagent"),
    ];
    if let Some(u) = usage(s.input, s.output, s.cost) {
        facts.push(u);
    }
    let model = spans.iter().find(|r| r.parent.is_none()).and_then(|r| r.attr(semconv::RESPONSE_MODEL));
    if let Some(m) = model.filter(|m| !m.is_empty()) {
        facts.push(m);
    }
    out.push_str(&facts.join(" · "));
    out.push('\n');
    if let Some(root) = spans.iter().find(|r| r.parent.is_none()) {
        if let Some(team) = root.attr(semconv::TEAM_NAME) {
            let agent = root.attr(semconv::TEAM_AGENT).unwrap_or_default();
            let lead =
                link_of(root, "team_lead").map(|t| format!(", lead session {}", session_of(t))).unwrap_or_default();
            out.push_str(&format!("Agent team {team}: this session is {agent}{lead}\n"));
        }
        if let Some(origin) = link_of(root, "forked_from") {
            out.push_str(&format!("Forked from session {}\n", session_of(origin)));
        }
    }
    out.push('\n');
    if s.open {
        out.push_str("(still open: spans are stored as they finish, the session root when it ends)\n");
    }
    out.push_str(&tree(spans, s.start));
    out
}

/// The store, read-only; `None` when nothing has been recorded (no file, or no table yet).
fn open(data_dir: &Path) -> anyhow::Result<Option<LocalReader>> {
    LocalReader::open(data_dir).with_context(|| format!("reading {}", data_dir.join(local::FILE).display()))
}

fn state(s: &SessionSummary) -> &'static str {
    match (s.open, s.incomplete) {
        (true, _) => "open",
        (false, true) => "incomplete",
        (false, false) => "ended",
    }
}

fn empty(data_dir: &Path) -> String {
    format!(
        "No session recorded yet (looked in {}).\n\
         hooktel keeps sessions here when it runs without an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT unset):\n  \
         hooktel install   wire the hooks into Claude Code (once)\n  \
         hooktel serve     run the sidecar, then use Claude Code; each session shows up here as it ends\n",
        data_dir.join(local::FILE).display()
    )
}

/// The trace id of the one stored session `input` names: the whole session id (with or without
/// dashes), or a prefix of at least 4 characters of it.
fn resolve(store: &LocalReader, input: &str) -> anyhow::Result<String> {
    let input = input.trim();
    let exact = ids::trace_id(input).to_string();
    if store.has(&exact)? {
        return Ok(exact);
    }
    if input.chars().count() < 4 {
        bail!("{input:?} is too short to name a session: give at least 4 characters of its id");
    }
    let hex = input.replace('-', "").to_ascii_lowercase();
    let hex = if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) { hex } else { String::new() };
    let matches = store.matching(&hex, input, 11)?;
    match matches.as_slice() {
        [] => bail!("no recorded session matches {input:?}; `hooktel sessions` lists the recent ones"),
        [(trace, _, _)] => Ok(trace.clone()),
        several => {
            let list: Vec<String> =
                several.iter().take(10).map(|(_, sid, start)| format!("  {sid}  started {}", utc(*start))).collect();
            let more = if several.len() > 10 { "\n  ..." } else { "" };
            bail!("{input:?} matches several sessions; give more of its id:\n{}{more}", list.join("\n"))
        }
    }
}

/// The spans as an indented tree, children in start order. Spans whose parent is not stored (the
/// root of an open session) are shown at the top level.
fn tree(spans: &[SpanRecord], t0: u64) -> String {
    let index: HashMap<_, _> = spans.iter().enumerate().map(|(i, r)| (r.span_id, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut tops = Vec::new();
    for (i, r) in spans.iter().enumerate() {
        match r.parent.and_then(|p| index.get(&p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => tops.push(i),
        }
    }
    let order = |v: &mut Vec<usize>| {
        v.sort_by(|&a, &b| (spans[a].start, &spans[a].name).cmp(&(spans[b].start, &spans[b].name)))
    };
    order(&mut tops);
    children.iter_mut().for_each(order);

    let mut lines = Vec::new();
    let mut stack: Vec<(usize, String, String)> =
        tops.iter().rev().map(|&i| (i, String::new(), String::new())).collect();
    while let Some((i, lead, indent)) = stack.pop() {
        lines.push((format!("{lead}{}", spans[i].name), spans[i].clone()));
        let kids = &children[i];
        for (n, &c) in kids.iter().enumerate().rev() {
            let last = n + 1 == kids.len();
            let (branch, more) = if last { ("└─ ", "   ") } else { ("├─ ", "│  ") };
            stack.push((c, format!("{indent}{branch}"), format!("{indent}{more}")));
        }
    }

    let width = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let offsets: Vec<String> =
        lines.iter().map(|(_, r)| format!("+{}", duration(r.start.saturating_sub(t0)))).collect();
    let ow = offsets.iter().map(String::len).max().unwrap_or(0);
    let durations: Vec<String> = lines.iter().map(|(_, r)| duration(r.end.saturating_sub(r.start))).collect();
    let dw = durations.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (((label, r), offset), dur) in lines.iter().zip(&offsets).zip(&durations) {
        let pad = width - label.chars().count();
        let mut line = format!("{label}{:pad$}  {offset:>ow$}  {dur:>dw$}  {}", "", status(r));
        let details = details(r);
        if !details.is_empty() {
            line.push_str("  ");
            line.push_str(&details);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn status(r: &SpanRecord) -> String {
    match &r.status {
        Status::Error(m) => format!("✗ {}", clip(m.lines().next().unwrap_or_default(), 100)),
        _ if r.incomplete => "… incomplete".into(),
        _ => "✓".into(),
    }
}

/// The input summary of a tool call and, from Claude Code's telemetry, its permission wait and
/// run time; the trigger of a compaction; the usage of a root, turn, subagent or model call; and a
/// turn's prompt when it was captured.
fn details(r: &SpanRecord) -> String {
    let mut parts = Vec::new();
    for kv in &r.attrs {
        let key = kv.key.as_str();
        let short = key.strip_prefix("hooktel.tool.input.").or(key.strip_prefix("hooktel.compaction."));
        if let Some(name) = short {
            parts.push(format!("{name}={}", quoted(&clip(&kv.value.as_str(), 80))));
        }
    }
    let ms = |key| r.attr(key).and_then(|v| v.parse::<u64>().ok()).map(|ms| duration(ms * 1_000_000));
    if let Some(wait) = ms(semconv::TOOL_PERMISSION_WAIT_MS) {
        let decision = r.attr(semconv::TOOL_DECISION).map(|d| format!(" ({d})")).unwrap_or_default();
        parts.push(format!("permission {wait}{decision}"));
    }
    if let Some(run) = ms(semconv::TOOL_EXECUTION_MS) {
        parts.push(format!("ran {run}"));
    }
    if let Some(mate) = link_of(r, "teammate") {
        parts.push(format!("→ teammate session {}", session_of(mate)));
    }
    if let Some(creator) = link_of(r, "task_created") {
        parts.push(format!("created in session {}", session_of(creator)));
    }
    if matches!(r.key, SpanKey::Root | SpanKey::Segment | SpanKey::Turn | SpanKey::Subagent | SpanKey::Chat) {
        let u = r.usage.as_ref();
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(u) =
            usage(u.map(|u| tokens(u.tokens.all_input())), u.map(|u| tokens(u.tokens.output)), u.map(|u| u.cost))
        {
            parts.push(u);
        }
    }
    if let Some(prompt) = r.attr(semconv::PROMPT) {
        parts.push(format!("prompt={}", quoted(&clip(&prompt.replace('\n', " "), 60))));
    }
    parts.join("  ")
}

fn usage(input: Option<i64>, output: Option<i64>, cost: Option<f64>) -> Option<String> {
    if input.is_none() && output.is_none() {
        return None;
    }
    let tokens = format!("{} in / {} out tokens", count(input.unwrap_or(0)), count(output.unwrap_or(0)));
    Some(match cost {
        Some(c) => format!("{tokens} · {}", usd(c)),
        None => tokens,
    })
}

fn quoted(s: &str) -> String {
    if s.is_empty() || s.contains(char::is_whitespace) {
        format!("{s:?}")
    } else {
        s.to_owned()
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix nanoseconds.
fn utc(ns: u64) -> String {
    format!("{} UTC", crate::model::time::utc_seconds(ns))
}

/// A duration for people: `64ms`, `1.2s`, `4m05s`, `2h03m`, `3d04h`.
fn duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A token count: `445`, `117.8k`, `2.3M`.
fn count(n: i64) -> String {
    match n {
        ..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn usd(c: f64) -> String {
    if c < 1.0 {
        format!("${c:.4}")
    } else {
        format!("${c:.2}")
    }
}

fn plural(n: i64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn clip(s: &str, max: usize) -> String {
    crate::model::capture::clip(s, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_reach_the_terminal_as_text() {
        let evil = "proj\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}]8;;http://x\u{1b}\\\u{202e}gpj.exe\u{9b}\r\tok\n";
        let safe = escape_controls(evil);
        assert!(!safe.chars().any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')), "{safe:?}");
        assert_eq!(
            safe,
            "proj\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{1b}]8;;http://x\\u{1b}\\\\u{202e}gpj.exe\\u{9b}\\r\\tok\n"
        );
        assert_eq!(escape_controls("héllo ✓ 🦀\n"), "héllo ✓ 🦀\n");
    }
    use crate::store::local::{LocalStore, Retention};
    use crate::testdata::{captured, CAPTURED_AT, SEC, SESSION};

    const OTHER: &str = "2cfb0000-0000-4000-8000-000000000001";

    /// The captured session, ended, and a later one still open (its root not stored yet).
    fn store() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut store = LocalStore::open(dir, Retention::default()).unwrap();
        let now = CAPTURED_AT + 3600 * SEC;
        store.insert(&captured(SESSION, CAPTURED_AT), now).unwrap();
        let open: Vec<_> =
            captured(OTHER, CAPTURED_AT + 600 * SEC).into_iter().filter(|r| r.parent.is_some()).collect();
        store.insert(&open, now).unwrap();
        tmp
    }

    fn line_of<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    fn cells(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn sessions_lists_newest_first_with_counts_usage_and_state() {
        let tmp = store();
        let dir = tmp.path();
        let text = sessions(dir, 20, Output::Whole).unwrap();
        println!("{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("STARTED (UTC)"), "{text}");
        assert!(lines[1].contains(OTHER) && lines[2].contains(SESSION), "newest first:\n{text}");
        // date time session project duration turns tools failed agents in out cost state
        assert_eq!(
            cells(lines[2]),
            [
                "2026-11-21",
                "04:31",
                SESSION,
                "claude-code",
                "proj",
                "3.6s",
                "1",
                "4",
                "1",
                "1",
                "117.8k",
                "445",
                "$0.0762",
                "ended"
            ]
        );
        // while open, the usage of the turns and subagents stored so far
        assert_eq!(cells(lines[1])[10..], ["117.8k", "445", "$0.0762", "open"]);
        assert_eq!(cells(lines[1])[3], "claude-code", "an open session's agent, from its turn");
        assert_eq!(sessions(dir, 1, Output::Whole).unwrap().lines().count(), 2);
    }

    #[test]
    fn show_renders_the_tree_with_subagent_failure_and_usage() {
        let tmp = store();
        let dir = tmp.path();
        let text = show(dir, "2cfb142e", Output::Whole).unwrap();
        println!("{text}");
        let indent = |needle: &str| line_of(&text, needle).chars().take_while(|c| !c.is_alphanumeric()).count();
        assert!(text.starts_with(&format!("Session {SESSION}  project proj  ended\n")), "{text}");
        assert!(text.contains("1 turn · 4 tool calls (1 failed) · 1 subagent"), "{text}");
        assert_eq!(indent("claude-code session"), 0);
        assert!(indent("invoke_agent claude-code") > 0);
        let agent = indent("execute_tool Agent");
        assert!(indent("invoke_agent Explore") > agent, "the subagent hangs under its Agent call:\n{text}");
        assert!(indent("execute_tool Glob") > indent("invoke_agent Explore"), "{text}");
        assert_eq!(indent("command=false"), agent, "{text}");
        let failed = line_of(&text, "command=false");
        assert!(failed.contains("✗ Exit code 1"), "{failed}");
        assert!(line_of(&text, "command=\"echo hello-from-bash\"").contains('✓'));
        assert!(line_of(&text, "execute_tool Glob").contains("pattern=*.md"));
        assert!(line_of(&text, "invoke_agent Explore").contains("out tokens"));
        assert!(line_of(&text, "claude-code session").contains("117.8k in / 445 out tokens · $0.0762"));
        // each model call with its own tokens and cost, under its turn or its subagent
        let chats: Vec<&str> = text.lines().filter(|l| l.contains("chat claude-sonnet-5-5")).collect();
        assert_eq!(chats.len(), 5, "{text}");
        assert!(chats.iter().all(|l| l.contains("23.6k in /") && l.contains(" out tokens · $0.01")), "{text}");
        assert!(chats.iter().filter(|l| indent(l) > indent("invoke_agent Explore")).count() == 2, "{text}");
    }

    /// An agent team with a pane teammate: the list puts the teammate's session under its lead's;
    /// `show` says which team and role, and the lead's Agent call points to the teammate's session;
    /// the teammate's task says where it was created.
    #[test]
    fn a_team_is_grouped_in_the_list_and_drawn_in_show() {
        const LEAD: &str = "859c7e3e-8fa0-4df2-8d03-c77a415fe327";
        let tmp = tempfile::tempdir().unwrap();
        let mut store = LocalStore::open(
            tmp.path(),
            Retention { max_age: std::time::Duration::from_secs(u64::MAX / 4), ..Retention::default() },
        )
        .unwrap();
        let spans = crate::testdata::team_run(
            "tmux-panes-2.1.332",
            crate::pipeline::sessions::Settings {
                settle_ns: 100_000_000,
                idle_timeout_ns: 60_000_000_000,
                ..Default::default()
            },
        );
        store.insert(&spans, 1_796_193_100 * SEC).unwrap();
        let mate = spans.iter().find(|r| r.parent.is_none() && !r.links.is_empty()).unwrap().session_id.to_string();
        let list = sessions(tmp.path(), 20, Output::Whole).unwrap();
        let rows: Vec<&str> = list.lines().skip(1).collect();
        assert_eq!(rows.len(), 2, "{list}");
        assert!(
            rows[0].contains(LEAD) && rows[1].contains(&format!("└ {mate}")),
            "the teammate under its lead:\n{list}"
        );
        let lead_view = show(tmp.path(), LEAD, Output::Whole).unwrap();
        assert!(lead_view.contains("Agent team session-859c7e3e: this session is team-lead"), "{lead_view}");
        assert!(
            line_of(&lead_view, "execute_tool Agent").contains(&format!("→ teammate session {mate}")),
            "{lead_view}"
        );
        let mate_view = show(tmp.path(), &mate, Output::Whole).unwrap();
        assert!(mate_view.contains(&format!("this session is worker, lead session {LEAD}")), "{mate_view}");
        assert!(line_of(&mate_view, "task Echo check").contains(&format!("created in session {LEAD}")), "{mate_view}");
    }

    /// On an 80- or 120-column terminal both views fit, the list by shortening ids and shedding
    /// columns, the tree by cutting lines; `--wide` keeps the whole values.
    #[test]
    fn views_fit_the_terminal_and_wide_keeps_everything() {
        let tmp = store();
        let dir = tmp.path();
        for width in [80, 120] {
            for text in [
                sessions(dir, 20, Output::Text(Some(width))).unwrap(),
                show(dir, "2cfb142e", Output::Text(Some(width))).unwrap(),
            ] {
                let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
                assert!(widest <= width, "{widest} > {width}:\n{text}");
            }
        }
        let narrow = sessions(dir, 20, Output::Text(Some(80))).unwrap();
        assert!(narrow.contains("2cfb142e ") && !narrow.contains(SESSION), "a prefix `show` takes:\n{narrow}");
        assert!(narrow.contains("COST") && narrow.contains("STATE"), "cost and state stay:\n{narrow}");
        let wide = sessions(dir, 20, Output::Whole).unwrap();
        assert!(wide.contains(SESSION) && wide.lines().any(|l| l.chars().count() > 120), "{wide}");
    }

    /// `--json`: the list and the session as JSON, every value whole; the spans with their attributes.
    #[test]
    fn json_views_carry_every_value_whole() {
        let tmp = store();
        let dir = tmp.path();
        let list: serde_json::Value = serde_json::from_str(&sessions(dir, 20, Output::Json).unwrap()).unwrap();
        let ended = list.as_array().unwrap().iter().find(|s| s["session_id"] == SESSION).unwrap();
        assert_eq!((ended["output_tokens"].as_i64(), ended["state"].as_str()), (Some(445), Some("ended")));
        assert_eq!(ended["started"].as_str().map(|s| s.ends_with('Z')), Some(true));
        let one: serde_json::Value = serde_json::from_str(&show(dir, "2cfb142e", Output::Json).unwrap()).unwrap();
        assert_eq!(one["session_id"], SESSION);
        let spans = one["spans"].as_array().unwrap();
        assert_eq!(spans.len(), crate::testdata::CAPTURED_SPANS);
        let bash = spans.iter().find(|s| s["attributes"]["hooktel.tool.input.command"] == "false").unwrap();
        assert_eq!((bash["status"].as_str(), bash["kind"].as_str()), (Some("error"), Some("tool")));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(sessions(empty.path(), 20, Output::Json).unwrap(), "[]\n");
    }

    /// A tool call timed by Claude Code's telemetry says how long it waited for permission and ran.
    #[test]
    fn a_tool_call_shows_its_permission_wait_and_run_time() {
        let mut tool = captured(SESSION, CAPTURED_AT).into_iter().find(|r| r.key == SpanKey::Tool).unwrap();
        assert!(!details(&tool).contains("permission"), "{}", details(&tool));
        tool.attrs.push(opentelemetry::KeyValue::new(semconv::TOOL_PERMISSION_WAIT_MS, 4250_i64));
        tool.attrs.push(opentelemetry::KeyValue::new(semconv::TOOL_DECISION, "accept"));
        tool.attrs.push(opentelemetry::KeyValue::new(semconv::TOOL_EXECUTION_MS, 64_i64));
        let text = details(&tool);
        assert!(text.contains("permission 4.2s (accept)  ran 64ms"), "{text}");
    }

    #[test]
    fn show_accepts_the_id_with_or_without_dashes_or_a_unique_prefix() {
        let tmp = store();
        let dir = tmp.path();
        let full = show(dir, SESSION, Output::Whole).unwrap();
        for id in [SESSION.replace('-', ""), SESSION.to_uppercase(), "2cfb142e-3e2c".into(), "2cfb1".into()] {
            assert_eq!(show(dir, &id, Output::Whole).unwrap(), full, "{id}");
        }
        let several = show(dir, "2cfb", Output::Whole).unwrap_err().to_string();
        assert!(several.contains("several") && several.contains(SESSION) && several.contains(OTHER), "{several}");
        let short = show(dir, "2cf", Output::Whole).unwrap_err().to_string();
        assert!(short.contains("at least 4"), "{short}");
        let none = show(dir, "ffff", Output::Whole).unwrap_err().to_string();
        assert!(none.contains("no recorded session matches"), "{none}");
        // an open session: its parts at the top level, said to be open
        let open = show(dir, OTHER, Output::Whole).unwrap();
        assert!(open.contains("still open"), "{open}");
        assert_eq!(line_of(&open, "invoke_agent claude-code").find("invoke"), Some(0), "{open}");
    }

    #[test]
    fn an_empty_store_says_how_to_record_sessions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let text = sessions(&dir, 20, Output::Whole).unwrap();
        assert!(text.starts_with("No session recorded yet"), "{text}");
        assert!(text.contains("hooktel serve") && text.contains("hooktel install"), "{text}");
        assert!(!dir.join(local::FILE).exists(), "a view creates nothing");
        assert!(show(&dir, SESSION, Output::Whole).unwrap_err().to_string().contains("no session has been recorded"));
        drop(LocalStore::open(&dir, Retention::default()).unwrap());
        assert_eq!(sessions(&dir, 20, Output::Whole).unwrap(), text);
    }

    #[test]
    fn formats() {
        assert_eq!(utc(CAPTURED_AT), "2026-11-21 04:31:21 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 * SEC), "2000-02-29 00:00:00 UTC");
        let ms = 1_000_000;
        assert_eq!(
            [0, 64 * ms, 1_234 * ms, 245 * SEC, 7_380 * SEC, 3 * 86_400 * SEC + 4 * 3600 * SEC].map(duration),
            ["0ms", "64ms", "1.2s", "4m05s", "2h03m", "3d04h"]
        );
        assert_eq!([445, 117_820, 2_300_000].map(count), ["445", "117.8k", "2.3M"]);
        assert_eq!((usd(0.07625), usd(12.5)), ("$0.0762".into(), "$12.50".into()));
    }
}
