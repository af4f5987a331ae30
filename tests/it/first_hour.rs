//! The first hour, as a new user meets hooktel: help that answers instead of hanging, addresses
//! by name, clear errors for a mistyped limit or a data directory that is a file, logs without
//! colour codes off a terminal, and a startup line that says where spans go.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{temp_dir, Protocol, Receiver, Sidecar, BIN};

/// `hooktel hook --help`, with a stdin that never closes, answers its help at once (exit 0), and so
/// does `hooktel hook` on a terminal; neither reads stdin.
#[test]
fn the_hook_answers_its_help_instead_of_waiting_on_stdin() {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["hook", "--help"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _open = child.stdin.take(); // held open: a hook reading stdin would wait for it
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "hooktel hook --help waited on stdin");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Usage: hooktel hook < payload.json") && help.contains("always exits 0"), "{help}");
    eprintln!("hook --help answered in {:?}", started.elapsed());

    // on a terminal (a pseudo-terminal), with no argument
    let scratch = temp_dir("hook-tty");
    let log = scratch.path().join("pty.log");
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/ptyrun.py"))
        .arg("--log")
        .arg(&log)
        .args(["--timeout", "10", "--", BIN, "hook"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("child exited 0") && !said.contains("child killed"),
        "the hook on a terminal did not return: {said}"
    );
    let screen = std::fs::read_to_string(&log).unwrap();
    assert!(screen.contains("Usage: hooktel hook"), "{screen}");
}

/// The pty harness itself: a child that closes its terminal and exits a moment later (as every
/// child does, for a longer moment on a loaded machine) is waited for, not reported killed.
#[test]
fn the_pty_harness_waits_for_a_child_that_closed_its_terminal() {
    let scratch = temp_dir("pty-harness");
    let log = scratch.path().join("pty.log");
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/ptyrun.py"))
        .arg("--log")
        .arg(&log)
        .args(["--timeout", "20", "--", "sh", "-c", "echo closing; exec >&- 2>&- <&-; sleep 0.5; exit 3"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    // wait status 768 = exit code 3: the harness reaped the child itself
    assert!(said.contains("child exited 768") && !said.contains("child killed"), "{said}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("closing"));
}

/// The piped hook is unchanged: a payload on stdin is delivered, nothing printed.
#[test]
fn the_hook_on_a_pipe_still_delivers_quietly() {
    let sidecar = Sidecar::start(None, &[]);
    let mut child = Command::new(BIN)
        .arg("hook")
        .env("HOOKTEL_ADDR", sidecar.addr.to_string())
        .env("HOOKTEL_DATA_DIR", &sidecar.data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let payload = br#"{"session_id":"first-hour-1","hook_event_name":"SessionStart","source":"startup"}"#;
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
    crate::support::wait_until(Duration::from_secs(5), "the event counted", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#) == 1.0
    });
}

/// A listen address by name (`localhost:0`) is resolved, not refused.
#[test]
fn a_listen_address_may_be_a_host_name() {
    let sidecar = Sidecar::builder().listen("localhost:0").start();
    assert!(sidecar.addr.ip().is_loopback(), "{}", sidecar.addr);
    assert_eq!(sidecar.request("GET", "/healthz", b"").0, 200);
}

/// `sessions --limit 0` is a usage error that says so; a data directory that is a file says that.
#[test]
fn mistakes_get_errors_that_say_what_is_wrong() {
    let dir = temp_dir("first-hour");
    let out =
        Command::new(BIN).args(["sessions", "--limit", "0"]).env("HOOKTEL_DATA_DIR", dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--limit") && err.contains("0"), "{err}");

    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--otlp-listen", "off"])
        .env("HOOKTEL_DATA_DIR", &file)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a directory") && err.contains("not-a-dir"), "{err}");
}

/// Logs written to a pipe or file carry no colour codes, and the startup line says where spans go.
#[test]
fn logs_off_a_terminal_have_no_colour_and_say_where_spans_go() {
    let receiver = Receiver::start(Protocol::Grpc);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let log = sidecar.log();
    assert!(!log.contains('\u{1b}'), "ANSI codes in a log that is not a terminal:\n{log:?}");
    let line = log.lines().find(|l| l.contains("hooktel listening")).expect("the startup line");
    assert!(line.contains(&format!("OTLP grpc to {}", receiver.endpoint())), "{line}");
}

/// `sessions` and `show` on the real binary: within `COLUMNS`, whole with `--wide`, JSON with `--json`.
#[test]
fn sessions_and_show_fit_the_terminal_or_come_whole_or_as_json() {
    let data = temp_dir("views");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transcripts/captured-2.1.329");
    let run = |args: &[&str], columns: &str| {
        let out = Command::new(BIN)
            .args(args)
            .env("HOOKTEL_DATA_DIR", data.path())
            .env("HOOKTEL_RETENTION_DAYS", "36500")
            .env("COLUMNS", columns)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["import", fixtures], "80");
    const SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
    for args in [&["sessions"][..], &["show", SESSION][..]] {
        let text = run(args, "80");
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{args:?}:\n{text}");
        let wide: Vec<&str> = args.iter().copied().chain(["--wide"]).collect();
        assert!(run(&wide, "80").lines().any(|l| l.chars().count() > 80), "{wide:?}");
    }
    let json: serde_json::Value = serde_json::from_str(&run(&["sessions", "--json"], "80")).unwrap();
    assert_eq!(json[0]["session_id"], SESSION);
    let one: serde_json::Value = serde_json::from_str(&run(&["show", "2cfb", "--json"], "80")).unwrap();
    assert!(one["spans"].as_array().is_some_and(|s| s.len() > 5));
}

/// Garbage fed to the hook: the hook still exits 0 silently; the sidecar says so in its log (and
/// counts it), so a user looking at the log sees why nothing arrived.
#[test]
fn garbage_through_the_hook_is_told_in_the_sidecars_log() {
    let sidecar = Sidecar::start(None, &[]);
    let out = sidecar.hook(b"this is not a payload");
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    crate::support::wait_until(Duration::from_secs(5), "the refusal logged", || {
        sidecar.log().lines().any(|l| l.contains("Refused a request") && l.contains("malformed_json"))
    });
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="malformed_json"}"#), 1.0);
}

/// On a terminal the log is coloured, unless `NO_COLOR` says not to.
#[test]
fn on_a_terminal_no_color_turns_the_colours_off() {
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let scratch = temp_dir("serve-tty");
        let log = scratch.path().join("pty.log");
        let mut cmd = Command::new("python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/ptyrun.py"))
            .arg("--log")
            .arg(&log)
            .args(["--timeout", "3", "--", BIN, "serve", "--listen", "127.0.0.1:0", "--otlp-listen", "off"])
            .env("HOOKTEL_DATA_DIR", scratch.path())
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("NO_COLOR")
            .env_remove("COLUMNS");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        cmd.output().unwrap();
        let screen = std::fs::read_to_string(&log).unwrap();
        assert!(screen.contains("hooktel listening"), "{screen}");
        assert_eq!(screen.contains("\u{1b}["), coloured, "NO_COLOR={no_color:?}: {screen:?}");
    }
}
