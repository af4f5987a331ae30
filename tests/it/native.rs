//! Claude Code's own telemetry joined to its session, end to end: `hooktel install --native-telemetry`
//! sets up the hooks and points the pinned CLI's OTLP logs at the sidecar's `--otlp-listen`; then the
//! CLI runs against the scripted mock Messages API. Three sessions: the scripted scenario (every
//! chat span timed by its `api_request` event), an overloaded first try (from the transcript: an
//! `api_error` event on the chat span of the answer, attempt 2), and a request refused for good (from
//! the `api_error` telemetry event: the turn's failed try as a chat span in ERROR). Also the receiver's own rules against the real binary: what it refuses, and both
//! encodings of a captured export.

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::claude::{claude_bin, one_cli_at_a_time, Cli, Mock, Scratch, Transcript};
use crate::support::{lan_ip, Protocol, Receiver, Sidecar, Span, BIN};

const LOGS: &str = include_str!("../fixtures/otel/captured-2.1.329/otlp-logs.http-json.json");

/// POST `body` to the OTLP receiver with exactly these header lines; the status code and the answer's body.
fn post(addr: SocketAddr, path: &str, headers: &[&str], body: &[u8]) -> (u16, Vec<u8>) {
    crate::support::raw(addr, "POST", path, headers, body)
}

/// The receiver takes OTLP/HTTP in protobuf and JSON under the rules of `/v1/hooks`, and refuses
/// the rest with the status a client can act on, counted.
#[test]
fn the_otlp_receiver_takes_both_encodings_and_refuses_the_rest() {
    let sidecar = Sidecar::start(None, &[]);
    let otlp = sidecar.otlp_addr();
    let host = format!("Host: {otlp}");
    let bodies: Vec<serde_json::Value> = serde_json::from_str(LOGS).unwrap();
    for body in &bodies {
        let json = serde_json::to_vec(body).unwrap();
        let (status, answer) = post(otlp, "/v1/logs", &[&host, "Content-Type: application/json"], &json);
        assert_eq!((status, answer.as_slice()), (200, b"{}".as_slice()), "JSON gets an empty JSON answer");
        let proto = {
            use prost::Message;
            let req: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
                serde_json::from_slice(&json).unwrap();
            req.encode_to_vec()
        };
        let (status, answer) = post(otlp, "/v1/logs", &[&host, "Content-Type: application/x-protobuf"], &proto);
        assert_eq!((status, answer.len()), (200, 0), "protobuf gets an empty protobuf answer");
    }
    assert_eq!(sidecar.metric(r#"hooktel_native_requests_total{signal="logs"}"#), 2.0 * bodies.len() as f64);
    let json = serde_json::to_vec(&bodies[0]).unwrap();

    let refused = [
        (
            "a web page",
            vec![host.as_str(), "Content-Type: application/json", "Origin: http://evil.example"],
            "/v1/logs",
            403,
        ),
        ("text/plain", vec![host.as_str(), "Content-Type: text/plain"], "/v1/logs", 415),
        ("rebinding", vec!["Host: attacker.example", "Content-Type: application/json"], "/v1/logs", 403),
        ("not OTLP", vec![host.as_str(), "Content-Type: application/json"], "/v1/traces", 400),
        ("no such signal", vec![host.as_str(), "Content-Type: application/json"], "/v1/profiles", 404),
    ];
    for (what, headers, path, want) in refused {
        let body: &[u8] = if what == "not OTLP" { b"{\"resourceSpans\": 7}" } else { &json };
        assert_eq!(post(otlp, path, &headers, body).0, want, "{what}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="malformed_otlp"}"#), 1.0);
    // no session is held: the captured events are late, never a new session
    assert_eq!(sidecar.metric("hooktel_sessions_active"), 0.0);
    // (5 api_request, 4 tool_decision and 4 tool_result events, sent twice)
    crate::support::wait_until(Duration::from_secs(10), "13 events, twice, counted late", || {
        sidecar.metric("hooktel_late_events_total") == 26.0
    });
    for (event, n) in [("api_request", 10.0), ("tool_decision", 8.0), ("tool_result", 8.0)] {
        let metric = format!(r#"hooktel_native_events_total{{event="claude_code.{event}"}}"#);
        assert_eq!(sidecar.metric(&metric), n, "{event}");
    }
}

/// Beyond loopback the receiver wants the token, like `/v1/hooks`.
#[test]
fn the_otlp_receiver_beyond_loopback_wants_the_token() {
    let sidecar = Sidecar::builder().env("HOOKTEL_OTLP_LISTEN", &SocketAddr::new(lan_ip(), 0).to_string()).start();
    let otlp = sidecar.otlp_addr();
    let token = fs::read_to_string(sidecar.data_dir.join("token")).unwrap().trim().to_owned();
    let body = b"{\"resourceLogs\": []}";
    let host = format!("Host: {otlp}");
    assert_eq!(post(otlp, "/v1/logs", &[&host, "Content-Type: application/json"], body).0, 401);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(post(otlp, "/v1/logs", &[&host, "Content-Type: application/json", &bearer], body).0, 200);
}

/// What the receiver takes goes on to hooktel's own OTLP/HTTP endpoint, cut to the capture level
/// (here the default, `metadata`: Claude Code's commands redacted like a hook's, prompts never).
#[test]
fn claude_codes_telemetry_is_forwarded_cut_to_the_capture_level() {
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let otlp = sidecar.otlp_addr();
    let host = format!("Host: {otlp}");
    let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1",
        "attributes": [{"key": "event.name", "value": {"stringValue": "tool_result"}},
                       {"key": "prompt", "value": {"stringValue": "SECRET-PROMPT"}},
                       {"key": "full_command", "value": {"stringValue": "mysql -pSECRETPW db"}},
                       {"key": "tool_name", "value": {"stringValue": "Bash"}}]}]}]}]});
    let (status, _) = post(otlp, "/v1/logs", &[&host, "Content-Type: application/json"], body.to_string().as_bytes());
    assert_eq!(status, 200);
    crate::support::wait_until(Duration::from_secs(10), "the forwarded body", || !receiver.forwarded().is_empty());
    let (path, got) = receiver.forwarded().remove(0);
    assert_eq!(path, "/v1/logs");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("tool_name") && text.contains("Bash") && text.contains("mysql -p"), "{text}");
    assert!(!text.contains("SECRETPW") && !text.contains("SECRET-PROMPT"), "{text}");
    crate::support::wait_until(Duration::from_secs(5), "counted", || {
        sidecar.metric(r#"hooktel_native_forwarded_total{result="ok",signal="logs"}"#) == 1.0
    });
}

fn op(s: &Span) -> &str {
    s.attr("gen_ai.operation.name").unwrap_or_default()
}

#[test]
fn real_claude_code_telemetry_times_its_model_calls() {
    let _cli = one_cli_at_a_time();
    let receiver = Receiver::start(Protocol::Http);
    // model calls wait for Claude Code's batched telemetry, as they do by default
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_NATIVE_SETTLE_MS", "3000")]);
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    // the hooks and Claude Code's telemetry, as a user sets them up
    let install = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env("HOME", &home)
            .env("HOOKTEL_LISTEN", sidecar.addr.to_string())
            .env("HOOKTEL_OTLP_LISTEN", sidecar.otlp_addr().to_string())
            .env_remove("CLAUDE_CONFIG_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "hooktel {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = install(&["install", "--native-telemetry"]);
    assert!(said.contains("Claude Code's telemetry to http://"), "{said}");
    let settings: serde_json::Value =
        serde_json::from_slice(&fs::read(home.join(".claude/settings.json")).unwrap()).unwrap();
    let env = &settings["env"];
    assert_eq!(env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"], format!("http://{}/v1/logs", sidecar.otlp_addr()));
    assert_eq!(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], format!("http://{}/v1/traces", sidecar.otlp_addr()));
    assert!(env.get("OTEL_LOG_USER_PROMPTS").is_none(), "never the prompts");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sessions = Vec::new();
        for (name, prompt, exit) in [
            ("main", "Run the scripted scenario.", 0),
            ("retry", "[scenario:retry] hi", 0),
            ("refused", "[scenario:api-error] hi", 1),
        ] {
            let work = scratch.dir(&format!("work-{name}"));
            let mock = Mock::start(&scratch, name, &work);
            let cli = Cli::for_sidecar(claude_bin(), &scratch, &home, &sidecar);
            let run = cli.spawn(name, &work, &mock, &["-p", prompt]).wait();
            sessions.push((name, run.expect_exit(exit).session_id()));
        }
        let traces: Vec<String> = sessions.iter().map(|(_, s)| s.replace('-', "")).collect();
        let spans = receiver.wait_for(Duration::from_secs(60), "the three sessions' roots", |spans| {
            traces.iter().all(|t| spans.iter().any(|s| &s.trace_id == t && s.parent.is_empty()))
        });
        let of = |name: &str| {
            let sid = &sessions.iter().find(|(n, _)| *n == name).unwrap().1;
            let trace = sid.replace('-', "");
            (sid.clone(), spans.iter().filter(|s| s.trace_id == trace).cloned().collect::<Vec<Span>>())
        };
        assert!(sidecar.metric(r#"hooktel_native_requests_total{signal="logs"}"#) > 0.0, "no OTLP logs received");

        // the scripted scenario: every model call of the transcripts timed by its api_request event
        let (sid, main) = of("main");
        let t = Transcript::read(&home.join(".claude/projects"), &sid);
        let chats: Vec<&Span> = main.iter().filter(|s| op(s) == "chat").collect();
        assert_eq!(chats.len(), t.responses().len(), "one chat span per API response");
        for c in &chats {
            let ms: u64 = c
                .attr("hooktel.api.duration_ms")
                .unwrap_or_else(|| panic!("{} not timed: {:?}", c.span_id, c.attrs))
                .parse()
                .unwrap();
            assert_eq!(c.end_ns - c.start_ns, ms * 1_000_000, "{} lasts its duration_ms", c.span_id);
            assert_eq!(c.attr("hooktel.api.attempt"), Some("1"));
            assert!(c.attr("gen_ai.response.time_to_first_chunk").is_some(), "{:?}", c.attrs);
        }
        // every tool call: its permission decision and wait (measured by Claude Code's beta spans)
        // and its execution time; Claude Code's own spans folded in, never exported
        assert!(sidecar.metric(r#"hooktel_native_requests_total{signal="traces"}"#) > 0.0, "no beta spans received");
        let tools: Vec<&Span> = main.iter().filter(|s| op(s) == "execute_tool").collect();
        assert!(tools.len() >= 3, "{tools:?}");
        for tool in &tools {
            for attr in ["hooktel.tool.decision", "hooktel.tool.permission_wait_ms", "hooktel.tool.execution_ms"] {
                assert!(tool.attr(attr).is_some(), "{} has no {attr}: {:?}", tool.name, tool.attrs);
            }
            let run: u64 = tool.attr("hooktel.tool.execution_ms").unwrap().parse().unwrap();
            assert!(run * 1_000_000 <= tool.end_ns - tool.start_ns, "{} ran within its span", tool.name);
        }
        assert!(main.iter().all(|s| !s.name.starts_with("claude_code.")), "a beta span was exported");
        let root = main.iter().find(|s| s.parent.is_empty()).unwrap();
        let active: f64 =
            root.attr("hooktel.session.active_time.cli_s").expect("the session's active time").parse().unwrap();
        assert!(active > 0.0, "{:?}", root.attrs);

        // an overloaded first try (a `system` api_error line in the transcript): an api_error event on
        // the chat span of the answer, which is attempt 2
        let (_, retry) = of("retry");
        let turn = retry.iter().find(|s| s.name == "invoke_agent claude-code").expect("the retry turn");
        let chat = retry.iter().find(|s| op(s) == "chat" && s.parent == turn.span_id).expect("the retried call");
        assert_eq!(chat.attr("hooktel.api.attempt"), Some("2"), "{:?}", chat.attrs);
        assert_eq!(chat.status, 0, "the retry succeeded");
        let errors: Vec<_> = chat.events.iter().filter(|(n, _)| n == "api_error").collect();
        assert_eq!(errors.len(), 1, "{:?}", chat.events);
        assert_eq!(errors[0].1.get("hooktel.api.status_code").map(String::as_str), Some("529"), "{errors:?}");
        assert!(chat.attr("hooktel.api.duration_ms").is_some(), "timed by telemetry too: {:?}", chat.attrs);

        // refused for good: the turn failed, and its failed try is a chat span in ERROR
        let (_, refused) = of("refused");
        let turn = refused.iter().find(|s| s.name == "invoke_agent claude-code").expect("the failed turn");
        assert_eq!(turn.status, 2);
        let failed: Vec<&Span> = refused.iter().filter(|s| op(s) == "chat").collect();
        assert_eq!(failed.len(), 1, "the failed try: {:?}", failed.iter().map(|s| &s.name).collect::<Vec<_>>());
        assert_eq!((failed[0].status, failed[0].parent.as_str()), (2, turn.span_id.as_str()));
        assert!(!failed[0].status_message.is_empty());

        // uninstall takes back exactly what install wrote
        let said = install(&["uninstall"]);
        assert!(said.contains("removed Claude Code's telemetry settings"), "{said}");
        // (install created the file: with nothing else in it, it goes)
        assert!(!home.join(".claude/settings.json").exists(), "{said}");
    }));
    if let Err(panic) = outcome {
        eprintln!("---- hooktel serve log ----\n{}", sidecar.log());
        let metrics = sidecar.metrics();
        eprintln!(
            "---- metrics ----\n{}",
            metrics
                .lines()
                .filter(|l| !l.starts_with("#")
                    && (l.contains("native")
                        || l.contains("late")
                        || l.contains("rejected")
                        || l.contains("hook_events")))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::panic::resume_unwind(panic);
    }
}

/// Claude Code's telemetry at its default export interval (5 s: `OTEL_LOGS_EXPORT_INTERVAL` unset, as
/// a user who already exports it elsewhere and points it at hooktel has it), with the default
/// 3 s settle: every session learns from its own batches how late they come, and its model calls
/// wait that long, so every one is timed by its `api_request` event. Two sessions of the scripted
/// scenario (13 model calls each); the share of timed calls is printed.
#[test]
fn at_claude_codes_default_interval_every_model_call_is_timed() {
    let _cli = one_cli_at_a_time();
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_NATIVE_SETTLE_MS", "3000")]);
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    crate::support::claude::write_settings(&home);
    let logs = format!("http://{}/v1/logs", sidecar.otlp_addr());
    let telemetry = [
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs.as_str()),
    ];
    let mut sessions = Vec::new();
    for name in ["first", "second"] {
        let work = scratch.dir(&format!("work-{name}"));
        let mock = Mock::start_slow(&scratch, name, &work, Duration::from_millis(800));
        let cli = Cli::for_sidecar(claude_bin(), &scratch, &home, &sidecar);
        let run = cli.spawn_with(name, &work, &mock, &["-p", "Run the scripted scenario."], &telemetry).wait();
        sessions.push(run.expect_exit(0).session_id());
    }
    let traces: Vec<String> = sessions.iter().map(|s| s.replace('-', "")).collect();
    let spans = receiver.wait_for(Duration::from_secs(90), "both sessions' roots", |spans| {
        traces.iter().all(|t| spans.iter().any(|s| &s.trace_id == t && s.parent.is_empty()))
    });
    let mut untimed = Vec::new();
    let (mut chats, mut responses) = (0, 0);
    for (sid, trace) in sessions.iter().zip(&traces) {
        let t = Transcript::read(&home.join(".claude/projects"), sid);
        responses += t.responses().len();
        let mut calls: Vec<&Span> = spans.iter().filter(|s| &s.trace_id == trace && op(s) == "chat").collect();
        calls.sort_by_key(|c| c.start_ns);
        for (n, c) in calls.into_iter().enumerate() {
            chats += 1;
            match c.attr("hooktel.api.duration_ms").map(|ms| ms.parse::<u64>().unwrap()) {
                Some(ms) => {
                    assert_eq!(c.end_ns - c.start_ns, ms * 1_000_000, "{} lasts its duration_ms", c.span_id);
                    assert!(c.attr("gen_ai.response.time_to_first_chunk").is_some(), "{:?}", c.attrs);
                }
                None => untimed.push(format!("call {} of session {sid}", n + 1)),
            }
        }
    }
    eprintln!("model calls timed by api_request at the default interval: {} of {chats}", chats - untimed.len());
    assert_eq!(chats, responses, "one chat span per API response");
    assert!(chats >= 20, "two scripted sessions make about 13 model calls each: {chats}");
    assert!(sidecar.metric(r#"hooktel_native_requests_total{signal="logs"}"#) > 0.0, "no OTLP logs received");
    assert!(untimed.is_empty(), "{} of {chats} model calls not timed: {untimed:?}", untimed.len());
}
