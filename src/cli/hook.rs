//! `hooktel hook`: the command Claude Code runs for every hook event.
//!
//! Reads one payload on stdin, stamps the time, POSTs it to the sidecar over a plain blocking TCP
//! connection, and exits 0, whatever happens. It never writes to stdout (Claude Code reads a hook's
//! stdout as instructions), never starts Tokio or OpenTelemetry (it must start in about a
//! millisecond), and reading stdin and every network step have a deadline, so a stdin left open
//! or a down or hung sidecar costs at most a few times `HOOKTEL_HOOK_TIMEOUT_MS` (and a parent that
//! has not written its payload at all, 2 s). What it cannot deliver goes to the SQLite spool, which
//! the sidecar drains when it is back.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::cli::config::HookSettings;
use crate::cli::http1::{self, HttpError, Request};
use crate::model::payload::{self, RECEIVED_AT_HEADER};
use crate::model::time;
use crate::store::data_dir;

/// Largest body kept in the spool. A payload over 16 KiB is cut to about 64 KiB before it travels, so
/// a larger body is not JSON a hook sends.
const MAX_SPOOLED_BYTES: usize = 1024 * 1024;

/// Largest payload read from stdin. Claude Code's payloads are kilobytes, tool outputs aside, and
/// those are cut below; the rest of a larger input is left unread.
const MAX_STDIN_BYTES: u64 = 64 * 1024 * 1024;

/// Why an event did not reach the sidecar.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Undelivered {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The sidecar answered, but not 2xx (e.g. 503 when its queue is full).
    #[error("sidecar answered {0}")]
    Status(u16),
}

/// The whole hook command. Always succeeds.
/// What `hooktel hook --help` (or `hooktel hook` on a terminal) says.
pub const HELP: &str = "\
The command hook: reads one Claude Code hook payload on stdin and hands it to the sidecar
(HOOKTEL_ADDR, default 127.0.0.1:4388); when the sidecar is away, it keeps the payload in the
data directory's spool (HOOKTEL_DATA_DIR) for the sidecar to drain. Claude Code runs it for every
hook event: it always exits 0 and prints nothing.

Usage: hooktel hook < payload.json
       hooktel hook --agent codex < payload.json    (Codex CLI's hooks)
       hooktel hook --agent gemini < payload.json   (Gemini CLI's hooks)

Set it up with `hooktel install [--agent codex|gemini]`; check it with `hooktel doctor`.
";

/// The agent `hooktel hook`'s arguments name: `Some(None)` for none (Claude Code), `Some(Some(name))`
/// for `--agent <name>` or `--agent=<name>`, `None` for anything else (the help is printed).
pub fn agent_of_args(args: &[std::ffi::OsString]) -> Option<Option<String>> {
    let text = |a: &std::ffi::OsString| a.to_str().map(str::to_owned);
    match args {
        [] => Some(None),
        [flag, name] if flag == "--agent" => text(name).map(Some),
        [one] => one.to_str()?.strip_prefix("--agent=").map(|n| Some(n.to_owned())),
        _ => None,
    }
}

pub fn run(agent: Option<String>) -> std::process::ExitCode {
    ignore_termination();
    data_dir::private_files();
    let settings = HookSettings::from_env();
    let at = time::now_ns();
    let body = read_stdin(settings.timeout, MAX_STDIN_BYTES);
    if body.is_empty() {
        return std::process::ExitCode::SUCCESS;
    }
    let on = |var| std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut body = cut_large_payload(body);
    if let Some(name) = agent {
        // a name hooktel does not read is sent as `unknown`: refused and counted by the sidecar
        // (`unknown_agent`), never taken for Claude Code's
        let name = crate::model::agent::Agent::named(&name).map_or("unknown", |a| a.name());
        body = mark_as(body, payload::AGENT, &format!("\"{name}\""));
    }
    if on("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS") {
        body = mark(body, payload::AGENT_TEAMS);
    }
    if on("CLAUDE_CODE_ENABLE_TELEMETRY") {
        body = mark(body, payload::NATIVE_TELEMETRY);
    }
    match deliver(&settings, &body, at) {
        Ok(()) => {}
        // refused for want of the token: the spool is drained by the sidecar itself, token or not
        Err(why @ Undelivered::Status(401)) => keep_undelivered(&settings, &body, at, &why),
        // the sidecar read it and refused it for good (malformed): keeping it would replay it forever
        Err(Undelivered::Status(s)) if (400..500).contains(&s) => {}
        Err(why) => keep_undelivered(&settings, &body, at, &why),
    }
    std::process::ExitCode::SUCCESS
}

/// How long the first byte of the payload is waited for, at least: an agent under load can write
/// it late (a loaded 2-core machine saw Claude Code write it after 500 ms, and the event was lost).
pub(crate) const FIRST_BYTE_WAIT: Duration = Duration::from_secs(2);

/// The payload: stdin until it closes, `max` bytes, or the deadline, whichever comes first. The
/// first byte is waited for up to `deadline` or [`FIRST_BYTE_WAIT`], whichever is longer; the rest
/// up to `deadline` after it. Claude Code writes the payload and closes stdin; a stdin that stays
/// open (a terminal, a stuck parent) must not hang the hook, so what arrived by the deadline is what
/// is sent.
#[cfg(unix)]
pub(crate) fn read_stdin(deadline: Duration, max: u64) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut until = Instant::now() + deadline.max(FIRST_BYTE_WAIT);
    let mut body = Vec::new();
    // larger than StdinLock's own buffer, so every read goes straight to the descriptor that poll watches
    let mut buf = vec![0u8; 64 * 1024];
    while (body.len() as u64) < max {
        let left = until.saturating_duration_since(Instant::now());
        let mut ready = libc::pollfd { fd: stdin.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the length of the call.
        match unsafe { libc::poll(&mut ready, 1, ms) } {
            0 => break, // the deadline
            n if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            n if n < 0 => break,
            _ => {}
        }
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if body.is_empty() {
                    until = until.min(Instant::now() + deadline);
                }
                body.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    body.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    body
}

#[cfg(not(unix))]
pub(crate) fn read_stdin(_deadline: Duration, max: u64) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = std::io::stdin().lock().take(max).read_to_end(&mut body);
    body
}

/// Claude Code sends SIGTERM to hooks still running while it shuts down (seen on `StopFailure`,
/// about 10 ms after the hook started), which would lose the event mid-send. The client's whole run
/// is bounded by its own timeouts, so it finishes its delivery instead of dying; SIGKILL still works.
fn ignore_termination() {
    #[cfg(unix)]
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
}

/// Claude Code runs hooks with its own environment: when agent teams are on for the session
/// (`CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS`), the payload says so (`hooktel_agent_teams`), so that the
/// sidecar holds the session's spans until it knows the team they belong to; when its own telemetry
/// is (`CLAUDE_CODE_ENABLE_TELEMETRY`), likewise (`hooktel_native_telemetry`), so that its model
/// calls wait for their first batch. The `field` (set to `true`) goes in after the opening brace;
/// the rest stays byte for byte.
fn mark(body: Vec<u8>, field: &str) -> Vec<u8> {
    if body.windows(field.len()).any(|w| w == field.as_bytes()) {
        return body;
    }
    mark_as(body, field, "true")
}

/// `field` set to `value` (JSON text) first in the payload's object, the rest byte for byte. A
/// payload of its own with the same key at its top level would win (the last of duplicate keys).
fn mark_as(body: Vec<u8>, field: &str, value: &str) -> Vec<u8> {
    let Some(brace) = body.iter().position(|b| !b.is_ascii_whitespace()).filter(|&i| body[i] == b'{') else {
        return body;
    };
    let empty = body[brace + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let field = format!("\"{field}\":{value}{}", if empty { "" } else { "," });
    let mut out = Vec::with_capacity(body.len() + field.len());
    out.extend_from_slice(&body[..=brace]);
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(&body[brace + 1..]);
    out
}

/// Payloads small enough are sent byte for byte; larger ones have their long contents cut.
fn cut_large_payload(body: Vec<u8>) -> Vec<u8> {
    if body.len() <= payload::MAX_TOOL_RESPONSE_BYTES {
        return body;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut map)) => {
            if payload::trim_payload(&mut map) {
                serde_json::to_vec(&map).unwrap_or(body)
            } else {
                body
            }
        }
        _ => body,
    }
}

/// POST the payload to the sidecar's `/v1/hooks`; `Ok` only on a 2xx reply.
pub(crate) fn deliver(settings: &HookSettings, body: &[u8], at: u64) -> Result<(), Undelivered> {
    post(settings, "/v1/hooks", body, at)
}

/// POST `body` to `path`; the token goes only where the sidecar wants it (beyond loopback, or after a
/// `401`).
fn post(settings: &HookSettings, path: &str, body: &[u8], at: u64) -> Result<(), Undelivered> {
    let headers = format!("{RECEIVED_AT_HEADER}: {at}\r\n");
    let request = Request { method: "POST", path, headers: &headers, body, timeout: settings.timeout, max_body: 0 };
    match http1::send_to_sidecar(&settings.addr, &request, || settings.token())?.status {
        200..300 => Ok(()),
        status => Err(Undelivered::Status(status)),
    }
}

/// Keep an event the sidecar did not take in the spool, with its firing time. Only if that fails
/// too (disk full, spool locked past the timeout) is it lost, and said so on stderr (never stdout).
fn keep_undelivered(settings: &HookSettings, body: &[u8], at: u64, why: &Undelivered) {
    if body.len() > MAX_SPOOLED_BYTES {
        // not a payload the sidecar would take (after cutting, real ones are under 100 KiB): keeping
        // it would only grow spool.db, which never shrinks
        let _ = writeln!(
            std::io::stderr(),
            "hooktel: event not delivered to {} ({why}) and not spooled: {} bytes is no hook payload",
            settings.addr,
            body.len()
        );
        return;
    }
    if let Err(e) = crate::store::hook_spool::append(&settings.data_dir, at, body, settings.timeout) {
        crate::store::hook_spool::note_drop(&settings.data_dir, &e);
        let _ = writeln!(
            std::io::stderr(),
            "hooktel: event not delivered to {} ({why}) and not spooled in {} ({e}); {} bytes lost",
            settings.addr,
            settings.data_dir.display(),
            body.len()
        );
    }
}

/// `hooktel emit NAME [KEY=VALUE...]`: send one custom event. Values that read as JSON numbers,
/// booleans or null keep that type; anything else is a string. Exits 0 when the sidecar took the
/// event or it was spooled for it, 1 when neither worked, 2 on a malformed `KEY=VALUE`.
pub fn emit(name: &str, pairs: &[String], session: Option<&str>, time: Option<&str>) -> std::process::ExitCode {
    data_dir::private_files();
    let settings = HookSettings::from_env();
    let mut attributes = serde_json::Map::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            eprintln!("hooktel emit: {pair:?} is not KEY=VALUE");
            return std::process::ExitCode::from(2);
        };
        let value = match serde_json::from_str::<serde_json::Value>(v) {
            Ok(j @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null)) => j,
            _ => serde_json::Value::String(v.to_owned()),
        };
        attributes.insert(k.to_owned(), value);
    }
    let at = match time {
        None => time::now_ns(),
        Some(t) => match time::rfc3339_ns(t).or_else(|| t.parse::<f64>().ok().and_then(time::unix_seconds_ns)) {
            Some(at) => at,
            None => {
                eprintln!("hooktel emit: --time {t:?} is neither RFC 3339 nor Unix seconds");
                return std::process::ExitCode::from(2);
            }
        },
    };
    let event = serde_json::json!({
        "name": name,
        "session_id": session,
        "timestamp": at as f64 / 1e9,
        "attributes": attributes,
    });
    let body = serde_json::to_vec(&event).unwrap_or_default();
    let why = match post(&settings, "/v1/events", &body, at) {
        Ok(()) => return std::process::ExitCode::SUCCESS,
        Err(Undelivered::Status(401)) => {
            eprintln!(
                "hooktel emit: the sidecar wants its token (set HOOKTEL_TOKEN, or HOOKTEL_DATA_DIR to its data dir)"
            );
            return std::process::ExitCode::FAILURE;
        }
        Err(Undelivered::Status(s)) if (400..500).contains(&s) => {
            eprintln!("hooktel emit: the sidecar refused the event ({s})");
            return std::process::ExitCode::FAILURE;
        }
        Err(why) => why,
    };
    let spooled = session.map(|sid| {
        let ev = crate::model::payload::CustomEvent {
            name: name.to_owned(),
            session_id: Some(sid.to_owned()),
            timestamp: None,
            attributes,
        };
        let payload = serde_json::to_vec(&ev.into_payload(sid)).unwrap_or_default();
        crate::store::hook_spool::append(&settings.data_dir, at, &payload, settings.timeout)
    });
    match spooled {
        Some(Ok(())) => std::process::ExitCode::SUCCESS,
        Some(Err(e)) => {
            crate::store::hook_spool::note_drop(&settings.data_dir, &e);
            eprintln!("hooktel emit: not delivered to {} ({why}) and not spooled ({e})", settings.addr);
            std::process::ExitCode::FAILURE
        }
        None => {
            eprintln!(
                "hooktel emit: not delivered to {} ({why}); an event without --session is not spooled",
                settings.addr
            );
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mark goes in after the opening brace, once; what is not a JSON object stays as it came.
    #[test]
    fn agent_teams_are_marked_in_the_payload() {
        let marked = |b: &str| String::from_utf8(mark(b.as_bytes().to_vec(), payload::AGENT_TEAMS)).unwrap();
        assert_eq!(marked(r#"{"session_id":"s"}"#), r#"{"hooktel_agent_teams":true,"session_id":"s"}"#);
        assert_eq!(marked(" { }"), r#" {"hooktel_agent_teams":true }"#);
        let once = marked(r#"{"a":1}"#);
        assert_eq!(marked(&once), once, "marked once");
        for untouched in ["[1]", "not json", ""] {
            assert_eq!(marked(untouched), untouched);
        }
        let v: serde_json::Value = serde_json::from_str(&marked(r#"{"session_id":"s","x":[1]}"#)).unwrap();
        assert_eq!((v["hooktel_agent_teams"].as_bool(), v["session_id"].as_str()), (Some(true), Some("s")));
        // and Claude Code's telemetry, beside it
        let both = mark(marked(r#"{"session_id":"s"}"#).into_bytes(), payload::NATIVE_TELEMETRY);
        let v: serde_json::Value = serde_json::from_slice(&both).unwrap();
        assert_eq!(
            (v["hooktel_agent_teams"].as_bool(), v["hooktel_native_telemetry"].as_bool()),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn the_agent_comes_from_the_arguments() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(agent_of_args(&args(&[])), Some(None));
        assert_eq!(agent_of_args(&args(&["--agent", "codex"])), Some(Some("codex".into())));
        assert_eq!(agent_of_args(&args(&["--agent=codex"])), Some(Some("codex".into())));
        for help in [&["--help"][..], &["--agent"], &["codex"], &["--agent", "codex", "x"]] {
            assert_eq!(agent_of_args(&args(help)), None, "{help:?}");
        }
    }

    /// The agent's name goes first in the object, as a JSON string, even where the payload's text
    /// names the field already (a tool's input may).
    #[test]
    fn the_agent_is_marked_in_the_payload() {
        let body = br#"{"session_id":"s","tool_input":{"command":"echo hooktel_agent"}}"#.to_vec();
        let marked = mark_as(body, payload::AGENT, r#""codex""#);
        let v: serde_json::Value = serde_json::from_slice(&marked).unwrap();
        assert_eq!(v["hooktel_agent"], "codex");
        assert_eq!(v["tool_input"]["command"], "echo hooktel_agent");
    }
}
