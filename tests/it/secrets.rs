//! Secrets never printed, on the built binary: a password or key in an OTLP endpoint reaches no log
//! line, no `/v1/status`, no `hooktel doctor` report and no error text (with the backend down, the
//! metrics push and forwarding on); the sidecar's configuration is read only under a loopback or
//! configured `Host`, while `/metrics` answers any `Host` and names no path or endpoint; and
//! `hooktel hook`, `emit` and `doctor` send the data directory's token only where the sidecar
//! wants it (beyond loopback, or after a `401`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, temp_dir, wait_until, without_inherited_settings, Sidecar, BIN};

const PAYLOAD: &[u8] = include_bytes!("../fixtures/hooks/captured/01-SessionStart.json");

/// A port where nothing listens (bound, then let go): the backend is down.
fn down_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// None of `secrets` in `text`.
fn assert_hidden(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(!text.contains(s), "{what} shows {s:?}:\n{text}");
    }
}

/// `hooktel doctor` against `addr` with `HOOKTEL_DATA_DIR=data_dir` and `env` (this shell's
/// settings, used when no sidecar answers); its stdout and stderr.
fn doctor(addr: &str, data_dir: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(BIN);
    without_inherited_settings(&mut cmd);
    cmd.arg("doctor").env("HOME", data_dir).env("HOOKTEL_ADDR", addr).env("HOOKTEL_DATA_DIR", data_dir);
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What a case is called, the variables it sets, and what must show nowhere.
type Case<'a> = (&'a str, Vec<(String, String)>, Vec<&'a str>);

/// Row 9 and 10 of issue 19: credentials in `OTEL_EXPORTER_OTLP_ENDPOINT` (a plain password, and a
/// raw `@` in one) and a key in a signal's query, with the metrics push and forwarding on and the
/// backend down: the four lines that name the endpoint (push start, forward start, push failure,
/// forward failure), `/v1/status` and doctor (through the sidecar, and from this shell's settings
/// when it is down) show `***@host` and no query.
#[test]
fn credentials_in_the_endpoint_are_in_no_log_line_status_or_doctor_report() {
    let port = down_port();
    let cases: [Case; 2] = [
        (
            "a password",
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://aliceuser9:PASSWORD9@127.0.0.1:{port}/"))],
            vec!["aliceuser9", "PASSWORD9"],
        ),
        (
            "a raw @ in the password, a key in the query",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://aliceuser10:PASS@WORD10@127.0.0.1:{port}/")),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT".into(),
                    format!("http://bobuser10:LOGS@PASS@127.0.0.1:{port}/v1/logs?api_key=QUERYKEY10&sig=SIGNATURE10"),
                ),
            ],
            vec![
                "aliceuser10",
                "PASS@WORD10",
                "WORD10",
                "bobuser10",
                "LOGS@PASS",
                "QUERYKEY10",
                "SIGNATURE10",
                "api_key",
            ],
        ),
    ];
    for (what, env, secrets) in &cases {
        let mut b = Sidecar::builder().env("OTEL_METRICS_EXPORTER", "otlp").env("OTEL_METRIC_EXPORT_INTERVAL", "300");
        for (k, v) in env {
            b = b.env(k, v);
        }
        let sidecar = b.start();
        // Claude Code's own telemetry, for the forwarder to fail on
        let otlp = sidecar.otlp_addr();
        let (status, _) = support::raw(
            otlp,
            "POST",
            "/v1/logs",
            &[&format!("Host: {otlp}"), "Content-Type: application/json"],
            br#"{"resourceLogs":[]}"#,
        );
        assert_eq!(status, 200, "{what}");
        wait_until(Duration::from_secs(30), "the push and the forward to fail", || {
            let log = sidecar.log();
            log.contains("Could not push metrics") && log.contains("Could not forward")
        });
        let log = sidecar.log();
        for line in ["metrics are pushed over OTLP", "telemetry is forwarded", "Could not push", "Could not forward"] {
            let l = log.lines().find(|l| l.contains(line)).unwrap_or_default();
            assert!(l.contains(&format!("http://***@127.0.0.1:{port}/v1/")), "{what}: {line}:\n{log}");
        }
        assert_hidden(&log, secrets, &format!("{what}: the log"));

        let (code, status) = sidecar.request("GET", "/v1/status", b"");
        assert_eq!(code, 200, "{what}");
        let report: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(report["export"]["endpoint"], format!("http://***@127.0.0.1:{port}/v1/traces"), "{what}");
        assert_hidden(&status, secrets, &format!("{what}: /v1/status"));
        let (code, probe) = support::raw(
            sidecar.addr,
            "POST",
            "/v1/probe",
            &[&format!("Host: {}", sidecar.addr), "Content-Type: application/json"],
            b"{}",
        );
        assert_eq!(code, 200, "{what}");
        assert_hidden(&String::from_utf8_lossy(&probe), secrets, &format!("{what}: /v1/probe"));

        let report = doctor(&sidecar.addr.to_string(), &sidecar.data_dir, &[]);
        assert!(report.contains(&format!("http://***@127.0.0.1:{port}/v1/logs")), "{what}:\n{report}");
        assert_hidden(&report, secrets, &format!("{what}: doctor"));
        let here: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let down = format!("127.0.0.1:{}", down_port());
        let report = doctor(&down, &sidecar.data_dir, &here);
        assert!(report.contains("this shell's settings"), "{what}:\n{report}");
        assert_hidden(&report, secrets, &format!("{what}: doctor without the sidecar"));
    }
}

/// A backend that echoes what it was sent in its refusal (the request line with its query, the
/// `Authorization: Basic` the URL's userinfo became): the sidecar's log and doctor show its words
/// with those masked.
#[test]
fn a_backend_that_echoes_the_url_and_its_credentials_is_quoted_without_them() {
    fn echo(head: &str) -> (u16, String) {
        let auth = head.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization:")).unwrap_or_default();
        (401, format!("refused {} with {auth}", head.lines().next().unwrap_or_default()))
    }
    let backend = Recorder::start(echo);
    let endpoint = format!("http://bobuser10:LOGS@PASS@{}/v1/logs?api_key=QUERYKEY10", backend.addr);
    let sidecar = Sidecar::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://127.0.0.1:{}/", down_port()))
        .env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &endpoint)
        .start();
    let otlp = sidecar.otlp_addr();
    let host = format!("Host: {otlp}");
    let (status, _) =
        support::raw(otlp, "POST", "/v1/logs", &[&host, "Content-Type: application/json"], br#"{"resourceLogs":[]}"#);
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(30), "the forward to be refused", || sidecar.log().contains("Could not forward"));
    let heads = backend.heads();
    assert!(heads.iter().any(|h| h.contains("QUERYKEY10")), "the backend got the key: {heads:#?}");
    // base64 of "bobuser10:LOGS@PASS", as reqwest sends it
    let secrets = ["bobuser10", "LOGS@PASS", "QUERYKEY10", "Ym9idXNlcjEwOkxPR1NAUEFTUw"];
    let log = sidecar.log();
    assert!(log.contains("refused POST /v1/logs"), "the backend's words are quoted:\n{log}");
    assert_hidden(&log, &secrets, "the log");
    let report = doctor(&sidecar.addr.to_string(), &sidecar.data_dir, &[]);
    assert!(report.contains("refused POST /v1/logs"), "{report}");
    assert_hidden(&report, &secrets, "doctor");
}

/// A raw `/`, `?` or `#` in a password ends the URL's host early: no client can send there. The
/// sidecar refuses to start, naming the variable and the fix without repeating the password, and
/// doctor says the same; before, it started and printed the password in every line that named the
/// endpoint (a redaction that looked for the `@` before the first `/` found none).
#[test]
fn a_password_that_ends_the_host_early_is_refused_without_being_shown() {
    let port = down_port();
    for ends in ['/', '?', '#'] {
        let password = format!("Xq7{ends}Rt9");
        let secrets = ["aliceuser", "Xq7", "Rt9"];
        let endpoint = format!("http://aliceuser:{password}@127.0.0.1:{port}/");
        let data = temp_dir("refused");
        let mut cmd = Command::new(BIN);
        without_inherited_settings(&mut cmd);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--otlp-listen", "off"])
            .env("HOOKTEL_DATA_DIR", data.path())
            .env("HOOKTEL_LOG", "info")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_METRICS_EXPORTER", "otlp")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let exited = support::exit_within(&mut child, Duration::from_secs(3));
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_hidden(&err, &secrets, &format!("{password}: serve"));
        assert!(exited.is_some_and(|s| !s.success()), "{password}: started anyway:\n{err}");
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && err.contains("%2F %3F %23"), "{password}: {err}");
        let report = doctor(
            &format!("127.0.0.1:{}", down_port()),
            data.path(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_METRICS_EXPORTER", "otlp")],
        );
        assert_hidden(&report, &secrets, &format!("{password}: doctor"));
        assert!(report.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{password}:\n{report}");
    }
}

/// Row 11 of issue 19: a DNS-rebinding page's same-origin `GET /v1/status` comes from loopback with
/// the attacker's name in `Host` and no `Origin`. It is refused as a POST would be (`403`, counted as
/// `host_refused`); loopback names and `HOOKTEL_ALLOWED_HOSTS` still read it. `/metrics` answers any
/// `Host` (Prometheus scrapes under the pod's address) and names no path or endpoint.
#[test]
fn the_status_page_is_under_the_host_rule_and_metrics_reveal_no_paths() {
    let port = down_port();
    let sidecar = Sidecar::builder()
        .env("HOOKTEL_ALLOWED_HOSTS", "hooktel.internal")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://127.0.0.1:{port}/"))
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("http://127.0.0.1:{port}/v1/traces?api_key=ROWELEVEN"))
        .start();
    let addr = sidecar.addr;
    let attacker = format!("Host: attacker.example:{}", addr.port());
    let (code, body) = support::raw(addr, "GET", "/v1/status", &[&attacker], b"");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 403, "a rebinding page read the configuration:\n{body}");
    assert_hidden(&body, &[sidecar.data_dir.to_str().unwrap(), "ROWELEVEN", &port.to_string()], "the refusal");
    assert_eq!(support::raw(addr, "GET", "/v1/status", &[], b"").0, 403, "no Host at all");
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="host_refused"}"#), 2.0);
    for ok in [format!("Host: {addr}"), format!("Host: localhost:{}", addr.port()), "Host: hooktel.internal".into()] {
        let (code, body) = support::raw(addr, "GET", "/v1/status", &[&ok], b"");
        assert_eq!(code, 200, "{ok}");
        let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(report["data_dir"].as_str(), Some(sidecar.data_dir.to_str().unwrap()), "{ok}");
        assert_hidden(&String::from_utf8_lossy(&body), &["ROWELEVEN", "api_key"], "/v1/status");
    }
    let (code, metrics) = support::raw(addr, "GET", "/metrics", &[&attacker], b"");
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(code, 200, "Prometheus scrapes under any name");
    assert!(metrics.contains("hooktel_info{"), "{metrics}");
    assert_hidden(
        &metrics,
        &[sidecar.data_dir.to_str().unwrap(), &format!("127.0.0.1:{port}"), "ROWELEVEN", "/v1/", "/tmp"],
        "/metrics",
    );
}

/// One request as a fake sidecar received it: its head (request line and headers).
type Seen = Arc<Mutex<Vec<String>>>;

/// A fake server on loopback that records every request head and answers with `answer(head)`: a
/// status code and a body.
struct Recorder {
    addr: SocketAddr,
    seen: Seen,
}

impl Recorder {
    fn start(answer: fn(&str) -> (u16, String)) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let s = seen.clone();
        // ends with the test process; each connection is handled in turn
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let head = read_request(&mut stream);
                let (code, body) = answer(&head);
                s.lock().unwrap().push(head);
                let reply = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    if body.starts_with('[') { "application/json" } else { "text/plain" },
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Recorder { addr, seen }
    }

    fn heads(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// The request head, and its body read past (by `Content-Length`).
fn read_request(stream: &mut TcpStream) -> String {
    let head = crate::support::read_head(stream);
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0usize);
    let mut body = vec![0u8; len];
    let _ = stream.read_exact(&mut body);
    head
}

fn has_token(head: &str) -> bool {
    head.to_ascii_lowercase().contains("\r\nauthorization:")
}

/// A data directory holding a token file, as the sidecar makes it.
fn data_dir_with_token(tag: &str) -> (support::TempDir, String) {
    let dir = temp_dir(tag);
    let token = "5e3f".repeat(16);
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    (dir, token)
}

/// `hooktel hook` (or `emit`) with `HOOKTEL_ADDR=addr`, the data dir, `stdin`; its output and time.
fn client(args: &[&str], addr: &str, data_dir: &std::path::Path, stdin: &[u8]) -> (Output, Duration) {
    let mut cmd = Command::new(BIN);
    without_inherited_settings(&mut cmd);
    cmd.args(args)
        .env("HOOKTEL_ADDR", addr)
        .env("HOOKTEL_DATA_DIR", data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

/// A sidecar on loopback needs no token: `hooktel hook`, `emit` and `doctor` send it none, though
/// the data directory holds one (what listens on `HOOKTEL_ADDR` may not be the sidecar).
#[test]
fn on_loopback_the_clients_send_no_token() {
    let fake = Recorder::start(|_| (200, "[]".into()));
    let (data, token) = data_dir_with_token("loopback-token");
    for addr in [fake.addr.to_string(), format!("localhost:{}", fake.addr.port())] {
        let (out, took) = client(&["hook"], &addr, data.path(), PAYLOAD);
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let (out, _) = client(&["emit", "probe.event", "a=1"], &addr, data.path(), b"");
        assert!(out.status.success(), "{out:?}");
        let _ = doctor(&addr, data.path(), &[]);
    }
    let heads = fake.heads();
    for path in ["POST /v1/hooks ", "POST /v1/events ", "GET /v1/status ", "POST /v1/probe "] {
        assert!(heads.iter().any(|h| h.starts_with(path)), "no {path}in {heads:#?}");
    }
    for head in &heads {
        assert!(!has_token(head) && !head.contains(&token), "a token sent to loopback:\n{head}");
    }
    assert!(!data.path().join("spool.db").exists(), "delivered, nothing spooled");
}

/// Behind a published container port the sidecar sees a peer that is not loopback and answers
/// `401`: the client tries once more with the data directory's token, and the hook still exits 0,
/// silently, delivered (nothing spooled). Doctor reads the status and the probe the same way.
#[test]
fn after_a_401_the_clients_try_once_more_with_the_token() {
    fn wants_the_token(head: &str) -> (u16, String) {
        let bearer = format!("authorization: bearer {}", "5e3f".repeat(16));
        // as the sidecar: /healthz and /metrics for anyone
        if head.starts_with("GET /healthz ")
            || head.starts_with("GET /metrics ")
            || head.to_ascii_lowercase().contains(&bearer)
        {
            (200, "[]".into())
        } else {
            (401, String::new())
        }
    }
    let fake = Recorder::start(wants_the_token);
    let (data, token) = data_dir_with_token("retry-token");
    let addr = fake.addr.to_string();
    let (out, took) = client(&["hook"], &addr, data.path(), PAYLOAD);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let heads = fake.heads();
    assert_eq!(heads.len(), 2, "{heads:#?}");
    assert!(!has_token(&heads[0]), "the first try carries no token:\n{}", heads[0]);
    assert!(heads[1].contains(&format!("Authorization: Bearer {token}")), "{}", heads[1]);
    assert!(!data.path().join("spool.db").exists(), "delivered on the second try, nothing spooled");

    let report = doctor(&addr, data.path(), &[]);
    assert!(report.contains("configuration"), "doctor read the status with the token:\n{report}");
    let heads = fake.heads();
    for path in ["GET /v1/status ", "POST /v1/probe "] {
        let tries: Vec<&String> = heads.iter().filter(|h| h.starts_with(path)).collect();
        assert!(tries.len() == 2 && !has_token(tries[0]) && has_token(tries[1]), "{path}: {tries:#?}");
    }
}
