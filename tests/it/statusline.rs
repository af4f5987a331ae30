//! `hooktel statusline` and `GET /v1/sessions/<uuid>` on the built binary: the captured session's
//! hooks and transcripts go to a real sidecar, then the real `hooktel statusline` reads a status-line
//! JSON on stdin and prints the session's model, turns, tokens and cost; nothing (exit 0, quickly)
//! when the sidecar is away or the input is hostile; `install --statusline` keeps a user's own.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    self, captured_session_at, copy_captured_transcripts, lan_ip, temp_dir, wait_until, Sidecar, BIN, CAPTURED_SESSION,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// Claude Code's own `cost-state` for the captured session: 118,265 tokens of all types, $0.07625.
const COST_STATE_USD: f64 = 0.07625;

/// Run the built `hooktel statusline` against `addr` with `stdin`.
pub(crate) fn statusline(addr: &str, stdin: &[u8]) -> (Output, Duration) {
    let data = temp_dir("statusline");
    let mut cmd = Command::new(BIN);
    support::without_inherited_settings(&mut cmd);
    let mut child = cmd
        .arg("statusline")
        .env("HOOKTEL_ADDR", addr)
        .env("HOOKTEL_DATA_DIR", data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hooktel statusline");
    let started = Instant::now();
    let mut input = child.stdin.take().unwrap();
    // a command that stops reading early closes the pipe: not an error of the test
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

/// What Claude Code sends a status-line command (the fields hooktel reads, and some it does not).
pub(crate) fn status_json(session: &str) -> Vec<u8> {
    json!({
        "hook_event_name": "Status",
        "session_id": session,
        "transcript_path": "/tmp/x.jsonl",
        "cwd": "/home/dev/proj",
        "model": {"id": "claude-sonnet-5-5", "display_name": "Sonnet 5.5"},
        "workspace": {"current_dir": "/home/dev/proj", "project_dir": "/home/dev/proj"},
        "version": "2.1.332",
        "cost": {"total_cost_usd": 0.07625, "total_duration_ms": 9000}
    })
    .to_string()
    .into_bytes()
}

fn post(sidecar: &Sidecar, payload: &Value) {
    let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
}

/// The sidecar's view of `session`, once its cost has reached `usd`.
pub(crate) fn view_when_cost(sidecar: &Sidecar, session: &str, usd: f64) -> Value {
    let mut view = Value::Null;
    wait_until(WAIT, "the session's cost in its view", || {
        let (status, body) = sidecar.request("GET", &format!("/v1/sessions/{session}"), b"");
        view = serde_json::from_str(&body).unwrap_or(Value::Null);
        status == 200 && view["cost_usd"].as_f64().is_some_and(|c| (c - usd).abs() < 1e-9)
    });
    view
}

fn line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The captured session's numbers, exactly as Claude Code counted them, in the view and on the line;
/// still there just after the session ended; every spelling of the UUID finds it.
#[test]
fn the_status_line_shows_the_sessions_model_turns_tokens_and_cost() {
    let dir = temp_dir("statusline");
    let transcript = copy_captured_transcripts(&dir);
    let sidecar = Sidecar::start(None, &[]);
    let addr = sidecar.addr.to_string();
    let payloads = captured_session_at(&transcript);
    let (end, before_end) = payloads.split_last().unwrap();
    assert_eq!(end["hook_event_name"], "SessionEnd");

    // before any event: unknown, and nothing printed
    assert_eq!(sidecar.request("GET", &format!("/v1/sessions/{CAPTURED_SESSION}"), b"").0, 404);
    assert_eq!(line(&statusline(&addr, &status_json(CAPTURED_SESSION)).0), "");

    for p in before_end {
        post(&sidecar, p);
    }
    let view = view_when_cost(&sidecar, CAPTURED_SESSION, COST_STATE_USD);
    assert_eq!(view["model"], "claude-sonnet-5-5");
    assert_eq!(view["agent"], "claude-code");
    assert_eq!(view["turns"], 1);
    assert_eq!(view["tokens"], json!({"input": 60, "output": 445, "cache_read": 102400, "cache_creation": 15360}));
    assert_eq!(view["ended"], false);
    let (out, _) = statusline(&addr, &status_json(CAPTURED_SESSION));
    assert_eq!(line(&out), "claude-sonnet-5-5 · 1 turn · 118.3k tokens · $0.08\n");

    // ended: still shown (a status line rendered as the session closes does not go blank)
    post(&sidecar, end);
    wait_until(WAIT, "the view to say the session ended", || {
        let (_, body) = sidecar.request("GET", &format!("/v1/sessions/{CAPTURED_SESSION}"), b"");
        serde_json::from_str::<Value>(&body).is_ok_and(|v| v["ended"] == true)
    });
    let upper = CAPTURED_SESSION.to_uppercase();
    assert_eq!(
        line(&statusline(&addr, &status_json(&upper)).0),
        "claude-sonnet-5-5 · 1 turn · 118.3k tokens · $0.08\n"
    );
    let simple = CAPTURED_SESSION.replace('-', "");
    let (status, body) = sidecar.request("GET", &format!("/v1/sessions/{simple}"), b"");
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()["session_id"].as_str()),
        (200, Some(CAPTURED_SESSION))
    );

    // the id is a UUID or nothing is looked up; an unknown one is 404; only GET
    for bad in ["not-a-uuid", "..%2f..%2fetc", "2cfb142e-3e2c-45c5-8192-58e43d4a510f0", "%1b%5b2J"] {
        assert_eq!(sidecar.request("GET", &format!("/v1/sessions/{bad}"), b"").0, 400, "{bad}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="bad_session_id"}"#), 4.0);
    assert_eq!(sidecar.request("GET", "/v1/sessions/00000000-0000-4000-8000-000000000000", b"").0, 404);
    assert_eq!(sidecar.request("POST", &format!("/v1/sessions/{CAPTURED_SESSION}"), b"{}").0, 405);
}

/// Nothing printed, exit 0, and quickly: with the sidecar away, a hung one, input that is not
/// Claude Code's (huge, not JSON, a session id with control characters), an unknown session.
#[test]
fn the_status_line_prints_nothing_when_there_is_nothing_to_show() {
    let sidecar = Sidecar::start(None, &[]);
    let addr = sidecar.addr.to_string();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    // a sidecar that accepts and never answers
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_addr = hung.local_addr().unwrap().to_string();
    let huge = vec![b'{'; 64 << 20];
    let control = json!({"session_id": "2cfb142e-3e2c-45c5-8192-58e43d4a510f\u{1b}]0;pwned\u{7}"}).to_string();
    let cases: [(&str, &str, &[u8]); 7] = [
        ("sidecar away", &closed, &status_json(CAPTURED_SESSION)),
        ("sidecar hung", &hung_addr, &status_json(CAPTURED_SESSION)),
        ("unknown session", &addr, &status_json("00000000-0000-4000-8000-000000000000")),
        ("not JSON", &addr, b"\x1b[2J not json"),
        ("64 MiB of input", &addr, &huge),
        ("control characters in the id", &addr, control.as_bytes()),
        ("not a UUID", &addr, br#"{"session_id": "../../v1/status"}"#),
    ];
    for (what, at, stdin) in cases {
        let (out, took) = statusline(at, stdin);
        assert_eq!(line(&out), "", "{what}");
        assert!(out.stderr.is_empty(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        // the hook's default timeout (500 ms) per step, a few of them at most
        assert!(took < Duration::from_secs(3), "{what} took {took:?}");
    }
    drop(hung);
}

/// A model name from a transcript is outside input: its control characters never reach the terminal.
#[test]
fn a_hostile_model_name_reaches_the_terminal_as_text() {
    let dir = temp_dir("statusline-hostile");
    let transcript = copy_captured_transcripts(&dir);
    let evil = "claude\\u001b]0;pwned\\u0007\\u202e-x";
    let subagent = transcript.with_extension("").join(format!("subagents/agent-{}.jsonl", support::CAPTURED_AGENT));
    for file in [&transcript, &subagent] {
        let text = std::fs::read_to_string(file).unwrap().replace("claude-sonnet-5-5", evil);
        std::fs::write(file, text).unwrap();
    }
    let sidecar = Sidecar::start(None, &[]);
    let payloads = captured_session_at(&transcript);
    for p in &payloads[..payloads.len() - 1] {
        post(&sidecar, p);
    }
    wait_until(WAIT, "the hostile model in the view", || {
        let (_, body) = sidecar.request("GET", &format!("/v1/sessions/{CAPTURED_SESSION}"), b"");
        serde_json::from_str::<Value>(&body).is_ok_and(|v| v["model"].as_str().is_some_and(|m| m.contains('\u{1b}')))
    });
    let out = line(&statusline(&sidecar.addr.to_string(), &status_json(CAPTURED_SESSION)).0);
    assert!(out.starts_with("claude\\u{1b}]0;pwned\\u{7}\\u{202e}-x · 1 turn · "), "{out:?}");
    assert!(!out.trim_end().chars().any(|c| c.is_control() || c == '\u{202e}'), "{out:?}");
}

/// Beyond loopback a session's view needs the token, as `/v1/status` does.
#[test]
fn beyond_loopback_a_sessions_view_needs_the_token() {
    let sidecar = Sidecar::builder().listen(&SocketAddr::new(lan_ip(), 0).to_string()).start();
    let token = std::fs::read_to_string(sidecar.data_dir.join("token")).unwrap().trim().to_owned();
    let path = format!("/v1/sessions/{CAPTURED_SESSION}");
    assert_eq!(support::raw(sidecar.addr, "GET", &path, &[], b"").0, 401);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(support::raw(sidecar.addr, "GET", &path, &[&bearer], b"").0, 404);
}

fn install(home: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).env("HOME", home).env_remove("CLAUDE_CONFIG_DIR").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn settings(home: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(home.join(".claude/settings.json")).unwrap()).unwrap()
}

/// `install --statusline` sets hooktel's status line, once; a user's own is left alone (and said
/// so); `uninstall` removes hooktel's only.
#[test]
fn install_sets_the_status_line_and_keeps_a_users_own() {
    let home = temp_dir("statusline-install");
    let report = install(home.path(), &["install", "--statusline"]);
    let command = settings(home.path())["statusLine"]["command"].as_str().unwrap().to_owned();
    assert_eq!(settings(home.path())["statusLine"]["type"], "command");
    assert!(command.ends_with(" statusline") && command.contains("hooktel"), "{command}");
    assert!(report.contains("statusLine: set to"), "{report}");
    assert!(install(home.path(), &["install", "--statusline"]).contains("nothing to change"));
    // a key the user added to hooktel's status line, and hooktel's command moved: the key stays
    let mut with_padding = settings(home.path());
    with_padding["statusLine"]["padding"] = json!(2);
    with_padding["statusLine"]["command"] = json!("/old/place/hooktel statusline");
    std::fs::write(home.path().join(".claude/settings.json"), with_padding.to_string()).unwrap();
    assert!(install(home.path(), &["install", "--statusline"]).contains("statusLine: set to"));
    let line = &settings(home.path())["statusLine"];
    assert_eq!((&line["command"], &line["padding"]), (&json!(command), &json!(2)), "{line}");
    assert!(install(home.path(), &["install", "--statusline"]).contains("nothing to change"));
    let report = install(home.path(), &["uninstall"]);
    assert!(report.contains("removed hooktel's statusLine"), "{report}");
    assert!(!home.path().join(".claude/settings.json").exists(), "nothing else was in it");

    let theirs = json!({"statusLine": {"type": "command", "command": "~/.claude/my-line.sh", "padding": 0}});
    std::fs::create_dir_all(home.path().join(".claude")).unwrap();
    std::fs::write(home.path().join(".claude/settings.json"), theirs.to_string()).unwrap();
    let report = install(home.path(), &["install", "--statusline"]);
    assert!(report.contains("statusLine already runs \"~/.claude/my-line.sh\": left alone"), "{report}");
    assert_eq!(settings(home.path())["statusLine"], theirs["statusLine"]);
    assert!(settings(home.path())["hooks"]["Stop"].is_array(), "the hooks went in all the same");
    install(home.path(), &["uninstall"]);
    assert_eq!(settings(home.path()), theirs, "uninstall leaves the user's status line");
}
