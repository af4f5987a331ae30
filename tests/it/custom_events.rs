//! Custom events from other producers: `POST /v1/events` and `hooktel emit`, attached to the
//! session's trace when they name one, counted by name, spooled by `emit` when the sidecar is away.

use std::process::Command;
use std::time::Duration;

use crate::support;
use crate::support::{temp_dir, Protocol, Receiver, Sidecar, BIN};

const SID: &str = "6a1b2c3d-0000-4000-8000-000000000001";
const TRACE: &str = "6a1b2c3d000040008000000000000001";

fn hook(sidecar: &Sidecar, event: &str, extra: &str) {
    let body = format!(r#"{{"session_id":"{SID}","hook_event_name":"{event}","prompt_id":"p1"{extra}}}"#);
    assert_eq!(sidecar.request("POST", "/v1/hooks", body.as_bytes()).0, 200);
}

fn emit(sidecar_addr: &str, data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("emit")
        .args(args)
        .env("HOOKTEL_ADDR", sidecar_addr)
        .env("HOOKTEL_DATA_DIR", data)
        .env_remove("HOOKTEL_SESSION_ID")
        .output()
        .unwrap()
}

#[test]
fn custom_events_join_their_session_and_are_counted() {
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    hook(&sidecar, "SessionStart", r#","source":"startup""#);
    hook(&sidecar, "UserPromptSubmit", "");
    let routed = format!(
        r#"{{"name":"routing.decision","session_id":"{SID}","timestamp":"2026-11-21T04:31:23.896Z",
            "attributes":{{"route":"fast-path","score":0.92,"retries":2,"cached":true}}}}"#
    );
    let (status, body) = sidecar.request("POST", "/v1/events", routed.as_bytes());
    assert_eq!((status, body.as_str()), (200, ""));
    let out = emit(
        &sidecar.addr.to_string(),
        &sidecar.data_dir,
        &["session.outcome", "result=success", "turns=3", "--session", SID],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    // no session: counted only
    assert_eq!(sidecar.request("POST", "/v1/events", br#"{"name":"selfheal.recovered"}"#).0, 200);
    hook(&sidecar, "Stop", "");
    hook(&sidecar, "SessionEnd", r#","reason":"other""#);

    let spans = receiver.wait_for(Duration::from_secs(20), "the root", |s| s.iter().any(|s| s.parent.is_empty()));
    let events: Vec<_> =
        spans.iter().filter(|s| s.trace_id == TRACE).flat_map(|s| s.events.iter().map(move |e| (s, e))).collect();
    let (on, routing) = events.iter().find(|(_, e)| e.0 == "routing.decision").expect("routing event in the trace");
    assert_eq!(on.name, "invoke_agent claude-code", "on the innermost open span");
    assert_eq!(routing.1.get("route").map(String::as_str), Some("fast-path"));
    assert_eq!(routing.1.get("score").map(String::as_str), Some("0.92"));
    assert_eq!(routing.1.get("retries").map(String::as_str), Some("2"));
    assert_eq!(routing.1.get("cached").map(String::as_str), Some("true"));
    let (_, outcome) = events.iter().find(|(_, e)| e.0 == "session.outcome").expect("emitted event in the trace");
    assert_eq!(outcome.1.get("turns").map(String::as_str), Some("3"));
    for name in ["routing.decision", "session.outcome", "selfheal.recovered"] {
        assert_eq!(sidecar.metric(&format!(r#"hooktel_custom_events_total{{name="{name}"}}"#)), 1.0, "{name}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="routing.decision"}"#), 0.0, "not a hook event");
}

#[test]
fn malformed_custom_events_get_a_clear_400() {
    let sidecar = Sidecar::start(None, &[]);
    for (body, reason) in [
        (&b"{nope"[..], "malformed_event"),
        (br#"{"attributes":{}}"#, "malformed_event"),
        (br#"{"name":"  "}"#, "missing_field"),
        (br#"{"name":"x","timestamp":"last tuesday"}"#, "bad_timestamp"),
    ] {
        let (status, text) = sidecar.request("POST", "/v1/events", body);
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
        assert!(!text.is_empty(), "a reason in the body");
        assert!(sidecar.metric(&format!(r#"hooktel_ingest_rejected_total{{reason="{reason}"}}"#)) >= 1.0, "{reason}");
    }
    let out = emit(&sidecar.addr.to_string(), &sidecar.data_dir, &["x", "not-a-pair"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn emit_spools_while_the_sidecar_is_away() {
    let data = temp_dir("emit-spool");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let out = emit(&closed, &data, &["recovery.done", "step=4", "--session", SID, "--time", "1795235483.5"]);
    assert!(out.status.success(), "spooled: {}", String::from_utf8_lossy(&out.stderr));
    let out = emit(&closed, &data, &["no.session"]);
    assert_eq!(out.status.code(), Some(1), "without a session there is nothing to attach it to later");

    let receiver = Receiver::start(Protocol::Grpc);
    let sidecar = Sidecar::start(Some(&receiver), &[("HOOKTEL_DATA_DIR", data.to_str().unwrap())]);
    support::wait_until(Duration::from_secs(10), "the spooled event counted", || {
        sidecar.metric(r#"hooktel_custom_events_total{name="recovery.done"}"#) == 1.0
    });
    hook(&sidecar, "SessionEnd", r#","reason":"other""#);
    let spans = receiver.wait_for(Duration::from_secs(20), "the root", |s| s.iter().any(|s| s.parent.is_empty()));
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let ev = root.events.iter().find(|e| e.0 == "recovery.done").expect("spooled event on the root");
    assert_eq!(ev.1.get("step").map(String::as_str), Some("4"));
    assert_eq!(root.start_ns, 1_795_235_483_500_000_000, "the event's own time");
    drop(sidecar);
}
