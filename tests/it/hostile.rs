//! Hostile input against the real `hooktel serve` and `hooktel hook`: what a web page, a DNS-rebinding
//! page or a stuck parent process can send. Each attack has the bound it must stay under (a status
//! code, a count, a time), checked on the built binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Sidecar};

const PAYLOAD: &[u8] = include_bytes!("../fixtures/hooks/captured/01-SessionStart.json");

/// One raw HTTP/1.1 request with exactly the given header lines; returns the status code.
fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A web page can POST to localhost without a preflight (`text/plain`, any `Origin`) and can rebind
/// its own name to 127.0.0.1 (`Host: attacker.example`): all refused, counted by reason, nothing
/// accepted. hooktel's own clients (JSON, no Origin, a loopback Host) still get through.
#[test]
fn web_pages_and_rebinding_are_refused() {
    let sidecar = Sidecar::builder().env("HOOKTEL_ALLOWED_HOSTS", "hooktel.internal, Other.Example").start();
    let addr = sidecar.addr;
    let host = format!("Host: {addr}");
    let attacks: [(&str, &str, Vec<&str>, u16); 7] = [
        (
            "simple cross-site POST",
            "/v1/hooks",
            vec![&host, "Content-Type: text/plain", "Origin: http://evil.example"],
            403,
        ),
        ("JSON with an Origin", "/v1/hooks", vec![&host, "Content-Type: application/json", "Origin: null"], 403),
        ("text/plain from a page without Origin", "/v1/hooks", vec![&host, "Content-Type: text/plain"], 415),
        ("form post", "/v1/events", vec![&host, "Content-Type: application/x-www-form-urlencoded"], 415),
        ("no content type", "/v1/hooks", vec![&host], 415),
        ("DNS rebinding", "/v1/hooks", vec!["Host: attacker.example:4388", "Content-Type: application/json"], 403),
        ("no Host at all", "/v1/hooks", vec!["Content-Type: application/json"], 403),
    ];
    for (what, path, headers, want) in &attacks {
        assert_eq!(raw(addr, "POST", path, headers, PAYLOAD), *want, "{what}");
    }
    assert_eq!(
        raw(addr, "GET", "/metrics", &[&host, "Origin: http://evil.example"], b""),
        403,
        "a page reading /metrics"
    );
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="origin_refused"}"#), 3.0);
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="unsupported_content_type"}"#), 3.0);
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="host_refused"}"#), 2.0);
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#), 0.0, "nothing was accepted");

    // hooktel's own clients: loopback names and addresses, configured names, JSON with a charset
    let json = "Content-Type: application/json; charset=utf-8";
    for ok_host in [
        host.as_str(),
        "Host: localhost:4388",
        "Host: [::1]:4388",
        "Host: HOOKTEL.internal:4388",
        "Host: other.example",
    ] {
        assert_eq!(raw(addr, "POST", "/v1/hooks", &[ok_host, json], PAYLOAD), 200, "{ok_host}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#), 5.0);
    assert_eq!(
        raw(addr, "GET", "/metrics", &["Host: 10.1.2.3:4388"], b""),
        200,
        "Prometheus scrapes under the pod's address"
    );
    assert_eq!(raw(addr, "GET", "/healthz", &["Host: 10.1.2.3:4388"], b""), 200, "probes too");
}

/// `hooktel hook` whose stdin never closes (a terminal, a stuck parent) returns within its bound,
/// exits 0, prints nothing, and still delivers a whole payload it read.
#[test]
fn a_hook_whose_stdin_never_closes_returns_in_time() {
    let sidecar = Sidecar::start(None, &[]);
    let data = support::temp_dir("hostile-stdin");
    let mut child = Command::new(support::BIN)
        .arg("hook")
        .env("HOOKTEL_ADDR", sidecar.addr.to_string())
        .env("HOOKTEL_DATA_DIR", &data)
        .env("HOOKTEL_HOOK_TIMEOUT_MS", "300")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(PAYLOAD).unwrap();
    stdin.flush().unwrap();
    // stdin stays open for the whole test
    let started = Instant::now();
    let bound = Duration::from_secs(3);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > bound * 3 {
            let _ = child.kill();
            panic!("hooktel hook with an open stdin still running after {:?}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    drop(stdin);
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(out.is_empty(), "stdout: {:?}", String::from_utf8_lossy(&out));
    assert!(took < bound, "took {took:?} (timeout 300 ms: read deadline + delivery)");
    support::wait_until(Duration::from_secs(10), "the payload read before the deadline to arrive", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#) == 1.0
    });
}
