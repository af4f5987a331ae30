//! `hooktel statusline`: the command for Claude Code's `statusLine` setting. Reads the session's JSON
//! on stdin, asks the sidecar for its view of that session (`GET /v1/sessions/<uuid>`) and prints one
//! short line: model, turns, tokens, cost, and the spend budgets' use when the sidecar has them.
//!
//! It starts like `hooktel hook` (no Tokio, no OpenTelemetry, the hook's address, token and
//! timeouts) and prints nothing, exit 0, when the sidecar is away, the input is not what Claude Code
//! sends, or the session is unknown: a blank status line, never an error in the user's terminal.
//! What it prints from outside (the model's name) has its control characters escaped.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::cli::config::HookSettings;
use crate::cli::http1::{self, Request};
use crate::cli::view::escape_controls;

/// Largest input read: Claude Code's status-line JSON is a few kilobytes.
const MAX_STDIN_BYTES: u64 = 256 * 1024;

/// Largest answer read from the sidecar (its view of a session is a few hundred bytes).
const MAX_ANSWER_BYTES: u64 = 16 * 1024;

/// Longest model name printed, in characters.
const MAX_MODEL_CHARS: usize = 40;

/// What `hooktel statusline --help` (or on a terminal) says.
pub const HELP: &str = "\
The status line: reads Claude Code's status-line JSON on stdin and prints one line about that
session from the sidecar (HOOKTEL_ADDR, default 127.0.0.1:4388): model, turns, tokens, cost, and
the day's and the session's budget use when the sidecar has budgets.
Prints nothing when the sidecar is away or does not know the session.

Usage: hooktel statusline < status.json

Set it up with `hooktel install --statusline`.
";

/// The whole command. Always exits 0.
pub fn run() -> std::process::ExitCode {
    let settings = HookSettings::from_env();
    let input = crate::cli::hook::read_stdin(settings.timeout, MAX_STDIN_BYTES);
    if let Some(line) = status_line(&settings, &input) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    std::process::ExitCode::SUCCESS
}

/// The line for the session `input` names, or `None` (nothing to print).
fn status_line(settings: &HookSettings, input: &[u8]) -> Option<String> {
    let input: serde_json::Value = serde_json::from_slice(input).ok()?;
    let session = uuid::Uuid::try_parse(input.get("session_id")?.as_str()?).ok()?;
    let path = format!("/v1/sessions/{}", session.hyphenated());
    let request = Request {
        method: "GET",
        path: &path,
        headers: "",
        body: b"",
        timeout: settings.timeout,
        max_body: MAX_ANSWER_BYTES,
    };
    let answer = http1::send_to_sidecar(&settings.addr, &request, || settings.token()).ok()?;
    if answer.status != 200 {
        return None;
    }
    let view: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    let fallback = input.pointer("/model/display_name").and_then(|m| m.as_str()).unwrap_or_default();
    Some(render(&view, fallback))
}

/// `model · N turns · 12.4k tokens · $0.42 · day 45% of $50 · session 21% of $2`, from the sidecar's
/// view; the model Claude Code names (`fallback`) until the sidecar has counted a response.
fn render(view: &serde_json::Value, fallback: &str) -> String {
    let model = view["model"].as_str().filter(|m| !m.is_empty()).unwrap_or(fallback);
    let mut line = String::new();
    if !model.is_empty() {
        let model: String = model.chars().take(MAX_MODEL_CHARS).collect();
        let _ = write!(line, "{} · ", escape_controls(&model));
    }
    let turns = view["turns"].as_u64().unwrap_or(0);
    let tokens: u64 = ["input", "output", "cache_read", "cache_creation"]
        .iter()
        .map(|k| view["tokens"][k].as_u64().unwrap_or(0))
        .fold(0, u64::saturating_add);
    let cost = view["cost_usd"].as_f64().filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0);
    let _ =
        write!(line, "{turns} turn{} · {} tokens · {}", if turns == 1 { "" } else { "s" }, count(tokens), usd(cost));
    for scope in ["day", "session"] {
        let budget = &view["budget"][scope];
        let limit = budget["limit_usd"].as_f64().filter(|l| l.is_finite() && *l > 0.0);
        let spent = budget["spent_usd"].as_f64().filter(|s| s.is_finite() && *s >= 0.0);
        if let (Some(limit), Some(spent)) = (limit, spent) {
            let _ = write!(line, " · {scope} {} of {}", percent(spent / limit), usd(limit).replace(".00", ""));
        }
    }
    line
}

/// A share as a whole percentage: `<1%` for a start (not a misleading 0%), capped at 9999% (a tiny
/// budget is not a thousand digits).
fn percent(share: f64) -> String {
    let pct = share * 100.0;
    if pct > 0.0 && pct < 0.5 {
        return "<1%".into();
    }
    format!("{:.0}%", pct.min(9999.0))
}

/// A count as people read it at a glance: 812, 12.4k, 3.1M.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// Dollars with cents (then as a count from $1,000 on).
fn usd(x: f64) -> String {
    if x >= 1000.0 {
        format!("${}", count(x as u64))
    } else {
        format!("${x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_short_line() {
        let view = json!({"model": "claude-sonnet-5-5", "turns": 3,
            "tokens": {"input": 60, "output": 445, "cache_read": 102400, "cache_creation": 15360}, "cost_usd": 0.07625});
        assert_eq!(render(&view, "Sonnet"), "claude-sonnet-5-5 · 3 turns · 118.3k tokens · $0.08");
        let fresh = json!({"model": "", "turns": 1, "tokens": {}, "cost_usd": 0.0});
        assert_eq!(render(&fresh, "Opus"), "Opus · 1 turn · 0 tokens · $0.00");
        assert_eq!(render(&fresh, ""), "1 turn · 0 tokens · $0.00");
        let budgets = json!({"turns": 2, "tokens": {"output": 10}, "cost_usd": 0.5, "budget": {
            "day": {"limit_usd": 50.0, "spent_usd": 22.5}, "session": {"limit_usd": 2.5, "spent_usd": 0.5}}});
        assert_eq!(
            render(&budgets, "Opus"),
            "Opus · 2 turns · 10 tokens · $0.50 · day 45% of $50 · session 20% of $2.50"
        );
        let over = json!({"budget": {"day": {"limit_usd": 1e-300, "spent_usd": 1e300}, "session": {"limit_usd": 0}}});
        assert_eq!(render(&over, ""), "0 turns · 0 tokens · $0.00 · day 9999% of $0");
    }

    #[test]
    fn nothing_hostile_reaches_the_terminal() {
        let view = json!({"model": "m\u{1b}]0;pwned\u{7}\u{202e}x", "turns": 1, "tokens": {"input": u64::MAX, "output": 5},
            "cost_usd": 1e306});
        let line = render(&view, "");
        assert!(!line.chars().any(|c| c.is_control() || c == '\u{202e}'), "{line:?}");
        assert!(line.ends_with("18446744073.7G tokens · $18446744073.7G"), "{line}");
        let long = render(&json!({"model": "x".repeat(10_000)}), "");
        assert!(long.chars().count() < 100, "{long}");
    }

    #[test]
    fn counts_at_a_glance() {
        assert_eq!((count(812), count(12_400), count(3_100_000)), ("812".into(), "12.4k".into(), "3.1M".into()));
        assert_eq!((usd(0.421), usd(1234.5)), ("$0.42".into(), "$1.2k".into()));
        assert_eq!([percent(0.0), percent(0.0015), percent(0.006), percent(0.954)], ["0%", "<1%", "1%", "95%"]);
    }
}
