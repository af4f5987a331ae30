//! What may leave the machine: the capture level, and the redacted summary of a tool's input.
//!
//! Prompts, tool inputs and tool outputs can hold secrets. At the default level (`metadata`) hooktel
//! exports names, ids, timings, paths and a truncated, redacted command line; no prompt text and no
//! tool output. `none` drops the input summary too; `full` adds prompts, inputs and outputs (clipped).

use opentelemetry::KeyValue;
use serde_json::Value;

use crate::model::payload::truncate_utf8;

/// Longest text attribute at `full` capture. Backends cap attribute sizes too (Jaeger and Tempo keep
/// tens of KiB); past a few KiB a span stops being readable anyway.
pub(crate) const FULL_MAX: usize = 4096;

/// Longest command line in the default summary: enough to recognise it, short enough to skim.
const COMMAND_MAX: usize = 160;

/// How much of the content of a session is exported (`HOOKTEL_CAPTURE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Capture {
    /// Names, ids, timings and status only.
    None,
    /// Plus a redacted summary of tool inputs: paths, patterns, URLs without query, a clipped command.
    #[default]
    Metadata,
    /// Plus prompts, full tool inputs and outputs, messages (each clipped to 4 KiB).
    Full,
}

impl Capture {
    pub(crate) fn prompts(self) -> bool {
        self == Capture::Full
    }
    pub(crate) fn outputs(self) -> bool {
        self == Capture::Full
    }
    /// The error text of a failed call: its first line at the default level (it can quote output).
    pub(crate) fn error_text(self, error: &str) -> String {
        match self {
            Capture::Full => clip(error, FULL_MAX),
            _ => clip(error.lines().next().unwrap_or_default(), 200),
        }
    }
}

/// Attributes describing a tool's input at this capture level.
pub(crate) fn tool_input(input: &Value, capture: Capture) -> Vec<KeyValue> {
    let mut out = Vec::new();
    match capture {
        Capture::None => {}
        Capture::Full => out.push(KeyValue::new("hooktel.tool.input", clip_json(input, FULL_MAX))),
        Capture::Metadata => {
            let field = |k: &str| input.get(k).and_then(Value::as_str);
            for key in ["file_path", "notebook_path", "path"] {
                if let Some(v) = field(key) {
                    out.push(KeyValue::new(format!("hooktel.tool.input.{key}"), clip(v, 512)));
                }
            }
            if let Some(v) = field("pattern") {
                out.push(KeyValue::new("hooktel.tool.input.pattern", clip(v, 120)));
            }
            if let Some(v) = field("command") {
                out.push(KeyValue::new("hooktel.tool.input.command", redact_command(v)));
            }
            if let Some(v) = field("url") {
                out.push(KeyValue::new("hooktel.tool.input.url", strip_query(v)));
            }
            if let Some(v) = field("subagent_type") {
                out.push(KeyValue::new("hooktel.tool.input.subagent_type", clip(v, 120)));
            }
        }
    }
    out
}

/// `s` cut to at most `max` bytes, with an ellipsis when cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_owned()
    } else {
        format!("{}…", truncate_utf8(s, max))
    }
}

/// A JSON value as text, clipped.
pub(crate) fn clip_json(v: &Value, max: usize) -> String {
    match v {
        Value::String(s) => clip(s, max),
        other => clip(&other.to_string(), max),
    }
}

fn strip_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    // drop credentials in `scheme://user:pass@host`
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => clip(&format!("{}{}", &url[..s + 3], &url[at + 1..]), 512),
        _ => clip(url, 512),
    }
}

/// Words in a key name that mark its value as a secret.
const SECRET_NAMES: &[&str] =
    &["token", "secret", "passw", "apikey", "api_key", "api-key", "auth", "credential", "private"];

/// A command line with likely secrets masked, then clipped: values of `NAME=...`/`--name=...` when the
/// name looks secret, the word after `Bearer`/`--password`/`--token`/`-p<secret>`-style flags,
/// credentials in URLs, and long opaque tokens (24+ characters mixing letters and digits, no `/`).
pub(crate) fn redact_command(cmd: &str) -> String {
    let mut out = Vec::new();
    let mut mask_next = false;
    for word in cmd.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let masked = if mask_next {
            mask_next = false;
            "***".to_owned()
        } else if let Some((name, _)) = word.split_once('=').filter(|(n, _)| is_secret_name(n)) {
            format!("{name}=***")
        } else if word.contains("://") && word.contains('@') {
            strip_query(word)
        } else if looks_like_token(word) {
            "***".to_owned()
        } else {
            word.to_owned()
        };
        let bare = lower.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
        if bare == "bearer" || bare == "basic" || (bare.starts_with('-') && is_secret_name(bare) && !word.contains('='))
        {
            mask_next = true;
        }
        out.push(masked);
    }
    clip(&out.join(" "), COMMAND_MAX)
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| n.contains(s))
}

fn looks_like_token(word: &str) -> bool {
    let w = word.trim_matches(|c: char| "\"'`(),;".contains(c));
    w.len() >= 24
        && !w.contains('/')
        && w.chars().any(|c| c.is_ascii_digit())
        && w.chars().any(|c| c.is_ascii_alphabetic())
        && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+=:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_lose_their_secrets() {
        let r = redact_command("curl -H 'Authorization: Bearer abc.def' https://u:pw@h.example/x?k=v");
        assert!(!r.contains("abc.def"), "{r}");
        assert!(!r.contains("pw@"), "{r}");
        assert!(!r.contains("k=v"), "{r}");
        let r = redact_command("GITHUB_TOKEN=ghp_x deploy --password hunter2 --api-key=zzz");
        assert!(!r.contains("ghp_x") && !r.contains("hunter2") && !r.contains("zzz"), "{r}");
        assert!(!redact_command("echo sk-ant-api03-AbCdEf0123456789xyz").contains("AbCdEf"));
        assert_eq!(redact_command("ls -la /tmp && cargo test"), "ls -la /tmp && cargo test");
    }

    #[test]
    fn long_commands_are_clipped() {
        assert!(redact_command(&"echo hi ".repeat(100)).len() <= COMMAND_MAX + 3);
    }

    #[test]
    fn capture_levels_differ() {
        let input = json!({"file_path": "/a", "content": "body"});
        assert!(tool_input(&input, Capture::None).is_empty());
        let meta = format!("{:?}", tool_input(&input, Capture::Metadata));
        assert!(meta.contains("/a") && !meta.contains("body"));
        assert!(format!("{:?}", tool_input(&input, Capture::Full)).contains("body"));
    }
}
