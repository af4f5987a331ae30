//! Hosted backends, as a team reaches them: OTLP over https with credentials, against TLS receivers
//! on loopback with a CA made by the test ([`support::tls`]). Spans over http/protobuf and gRPC,
//! a private CA through `OTEL_EXPORTER_OTLP_CERTIFICATE` and the platform's store through
//! `SSL_CERT_FILE`, mutual TLS, gzip checked by the receiver, every TLS failure named and counted,
//! refused credentials that lose nothing and deliver once, the standard switches, the push's
//! temporality and units, partial success, timeouts, forwarding with the signal's own settings,
//! and `hooktel doctor` checking the real path.

use std::time::Duration;

use crate::support::tls::{Backend, TestCa};
use crate::support::{
    assert_tree, captured_session, temp_dir, wait_until, without_inherited_settings, Receiver, Sidecar, SidecarBuilder,
    BIN,
};

const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";
const WAIT: Duration = Duration::from_secs(30);

/// The captured 2.1.329 session, through `hooktel hook`.
fn replay(sidecar: &Sidecar) {
    for payload in captured_session() {
        let out = sidecar.hook(&payload);
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    }
}

/// Wait until `cond()` holds; on timeout, fail with the sidecar's log.
fn wait_logged(sidecar: &Sidecar, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; the sidecar's log:\n{}",
            sidecar.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn root_arrived(spans: &[crate::support::Span]) -> bool {
    spans.iter().any(|s| s.trace_id == TRACE && s.parent.is_empty())
}

/// A sidecar sending everything to `endpoint` (a base URL) over `protocol`, with `env` on top.
fn sidecar_to(endpoint: &str, protocol: &str, env: &[(&str, &str)]) -> Sidecar {
    let mut b =
        Sidecar::builder().env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint).env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start()
}

/// `hooktel serve` that must refuse to start; its stderr.
fn refused_at_start(env: &[(&str, &str)]) -> String {
    let dir = temp_dir("refused");
    let mut cmd = std::process::Command::new(BIN);
    without_inherited_settings(&mut cmd);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--otlp-listen", "off"]).env("HOOKTEL_DATA_DIR", dir.path());
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "started with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn spans_push_and_forwarding_reach_an_https_backend_with_a_private_ca_over_http_and_grpc() {
    let ca = TestCa::new("private");
    let server = ca.issue("server", &["localhost"], false);
    let backend = Backend::builder("collector").server_cert(&server).auth("x-api-key", "k-123").start();
    for protocol in ["http/protobuf", "grpc"] {
        let ca_file = ca.ca_file();
        let sidecar = sidecar_to(
            &backend.origin(),
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.to_str().unwrap()),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k-123"),
                ("OTEL_METRICS_EXPORTER", "otlp"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ],
        );
        let before = backend.spans().len();
        replay(&sidecar);
        let spans = backend.wait_for(WAIT, "the session over TLS", |s| root_arrived(&s[before..]));
        assert_tree(&spans[before..], TRACE);
        wait_until(WAIT, "a metrics push over TLS", || {
            backend.received().iter().any(|r| r.path.contains("etrics") && r.grpc == (protocol == "grpc"))
        });
        // Claude Code's own telemetry goes on with the logs signal's settings: TLS, the header
        let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1",
            "attributes": [{"key": "event.name", "value": {"stringValue": "tool_result"}}]}]}]}]});
        let host = format!("Host: {}", sidecar.otlp_addr());
        let (status, _) = crate::support::raw(
            sidecar.otlp_addr(),
            "POST",
            "/v1/logs",
            &[&host, "Content-Type: application/json"],
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 200);
        wait_until(WAIT, "the forwarded logs", || {
            sidecar.metric(r#"hooktel_native_forwarded_total{result="ok",signal="logs"}"#) == 1.0
        });
        let got = backend.received();
        let mine: Vec<_> = got.iter().filter(|r| r.grpc == (protocol == "grpc")).collect();
        assert!(mine.iter().any(|r| r.path.contains("ogs") && r.answered == 200), "{protocol}: forwarded logs");
        for r in &mine {
            let ua = r.headers.get("user-agent").map(String::as_str).unwrap_or_default();
            assert!(ua.starts_with(concat!("hooktel/", env!("CARGO_PKG_VERSION"))), "{protocol}: User-Agent {ua:?}");
            assert_eq!(r.headers.get("x-api-key").map(String::as_str), Some("k-123"), "{protocol} {}", r.path);
        }
        // pushed metrics carry units
        let pushed = backend.metrics();
        let units: Vec<(String, String)> = pushed
            .last()
            .unwrap()
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| (m.name.clone(), m.unit.clone()))
            .collect();
        assert!(units.iter().all(|(_, u)| !u.is_empty()), "{units:?}");
        assert!(units.contains(&("hooktel_tool_duration_seconds".into(), "s".into())), "{units:?}");
        assert!(units.contains(&("hooktel_tool_calls_total".into(), "{call}".into())), "{units:?}");
    }
}

#[test]
fn the_platform_trust_store_is_used_and_ssl_cert_file_reaches_it() {
    let ca = TestCa::new("platform");
    let backend = Backend::builder("collector").server_cert(&ca.issue("server", &["localhost"], false)).start();
    // the system's bundle does not know the test CA: refused, named, counted, kept
    let sidecar = sidecar_to(&backend.origin(), "http/protobuf", &[]);
    replay(&sidecar);
    wait_until(WAIT, "the TLS failure counted", || {
        sidecar.metric(r#"hooktel_export_failures_total{reason="tls"}"#) >= 1.0
    });
    wait_until(WAIT, "the spans spooled", || sidecar.metric(r#"hooktel_spool_items{spool="export"}"#) > 0.0);
    // the count comes before the line, and the line crosses a pipe: wait for it
    wait_until(WAIT, "the TLS failure explained", || sidecar.log().contains("not signed by a CA trusted here"));
    let log = sidecar.log();
    assert!(log.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"), "the fix names the variable: {log}");
    assert!(backend.spans().is_empty());
    drop(sidecar);
    // SSL_CERT_FILE: what a laptop's own CA bundle looks like to the platform verifier on Linux
    let ca_file = ca.ca_file();
    let sidecar = sidecar_to(&backend.origin(), "grpc", &[("SSL_CERT_FILE", ca_file.to_str().unwrap())]);
    replay(&sidecar);
    let spans = backend.wait_for(WAIT, "the session through the platform store", root_arrived);
    assert_tree(&spans, TRACE);
}

#[test]
fn each_tls_failure_is_named_with_its_fix() {
    let ca = TestCa::new("failures");
    let ca_file = ca.ca_file();
    let ca_file = ca_file.to_str().unwrap();
    let wrong_name = Backend::builder("wrong-name").server_cert(&ca.issue("other", &["otel.example"], false)).start();
    let expired = Backend::builder("expired").server_cert(&ca.issue("old", &["localhost"], true)).start();
    let plain = Receiver::start(crate::support::Protocol::Http);
    let cases = [
        (wrong_name.origin(), "for another name", "host name the certificate was issued for"),
        (expired.origin(), "expired", "CA"),
        (format!("https://localhost:{}", plain.addr.port()), "does not speak TLS", "use http://"),
    ];
    for (endpoint, said, fix) in cases {
        for protocol in ["http/protobuf", "grpc"] {
            let dir = temp_dir("doctor");
            let out = std::process::Command::new(BIN)
                .arg("doctor")
                .env("HOME", dir.path())
                .env("HOOKTEL_ADDR", "127.0.0.1:9")
                .env("HOOKTEL_DATA_DIR", dir.path())
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
                .env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file)
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stdout);
            let line = report.lines().skip_while(|l| !l.contains("] exporter:")).take(2).collect::<Vec<_>>().join("\n");
            assert!(
                line.contains("[FAIL]") && line.contains(said) && line.contains("[tls]"),
                "{protocol} {endpoint}:\n{report}"
            );
            assert!(line.contains(fix), "{protocol} {endpoint}: the fix\n{report}");
        }
    }
    // and the sidecar counts it under its own reason
    let sidecar = sidecar_to(&expired.origin(), "http/protobuf", &[("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file)]);
    replay(&sidecar);
    wait_until(WAIT, "counted as tls", || sidecar.metric(r#"hooktel_export_failures_total{reason="tls"}"#) >= 1.0);
}

#[test]
fn mutual_tls_sends_the_client_certificate_and_says_when_it_is_missing() {
    let ca = TestCa::new("mtls");
    let backend =
        Backend::builder("collector").server_cert(&ca.issue("server", &["localhost"], false)).client_ca(&ca).start();
    let client = ca.issue("client", &["hooktel-laptop"], false);
    let ca_file = ca.ca_file();
    let (ca_file, cert, key) = (ca_file.to_str().unwrap(), client.cert.to_str().unwrap(), client.key.to_str().unwrap());
    for protocol in ["http/protobuf", "grpc"] {
        // without one: the handshake fails, and the fix says which variables
        let sidecar = sidecar_to(&backend.origin(), protocol, &[("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file)]);
        replay(&sidecar);
        wait_logged(&sidecar, "a refused handshake", || {
            sidecar.metric(r#"hooktel_export_failures_total{reason="tls"}"#) >= 1.0
        });
        // the count comes before the log line, which crosses a pipe
        wait_logged(&sidecar, "the fix in the log", || sidecar.log().contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"));
        drop(sidecar);
        let before = backend.spans().len();
        let sidecar = sidecar_to(
            &backend.origin(),
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", ca_file),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", cert),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key),
            ],
        );
        replay(&sidecar);
        let spans = backend.wait_for(WAIT, "the session over mutual TLS", |s| root_arrived(&s[before..]));
        assert_tree(&spans[before..], TRACE);
    }
    // a key without its certificate, or a file that is not there, stops serve with the variable's name
    let err = refused_at_start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://localhost:1"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key),
    ]);
    assert!(err.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY") && err.contains("needs its certificate"), "{err}");
    let err = refused_at_start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://localhost:1"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
    ]);
    assert!(err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read /nonexistent/ca.pem"), "{err}");
}

#[test]
fn gzip_is_sent_when_asked_and_a_value_that_is_not_a_compression_is_refused() {
    let ca = TestCa::new("gzip");
    let backend =
        Backend::builder("gzip-only").server_cert(&ca.issue("server", &["localhost"], false)).require_gzip().start();
    let ca_file = ca.ca_file();
    for protocol in ["http/protobuf", "grpc"] {
        let before = backend.spans().len();
        let sidecar = sidecar_to(
            &backend.origin(),
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.to_str().unwrap()),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ],
        );
        replay(&sidecar);
        backend.wait_for(WAIT, "gzip-compressed spans", |s| root_arrived(&s[before..]));
        let got = backend.received();
        assert!(
            got.iter().filter(|r| r.grpc == (protocol == "grpc")).all(|r| r.gzip),
            "{protocol}: every request gzip"
        );
        if protocol == "http/protobuf" {
            assert!(got.iter().any(|r| r.headers.get("content-encoding").map(String::as_str) == Some("gzip")));
        } else {
            assert!(got.iter().any(|r| r.headers.get("grpc-encoding").map(String::as_str) == Some("gzip")));
        }
    }
    let err = refused_at_start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:1"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
    ]);
    assert!(err.contains("OTEL_EXPORTER_OTLP_COMPRESSION: \"brotli\": use gzip or none"), "{err}");
}

#[test]
fn refused_credentials_keep_the_spans_and_deliver_them_once_when_accepted() {
    let ca = TestCa::new("auth");
    let ca_file = ca.ca_file();
    let ca_file = ca_file.to_str().unwrap();
    // an expired key, renewed at the backend while the sidecar keeps trying (HTTP 401)
    let backend = Backend::builder("hosted")
        .server_cert(&ca.issue("server", &["localhost"], false))
        .auth("authorization", "Basic c2VjcmV0a2V5")
        .start();
    backend.refuse_credentials(3);
    let env = [
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file),
        ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Basic%20c2VjcmV0a2V5"),
    ];
    let sidecar = sidecar_to(&backend.origin(), "http/protobuf", &env);
    replay(&sidecar);
    wait_until(WAIT, "a refusal counted", || {
        sidecar.metric(r#"hooktel_export_failures_total{reason="unauthorized"}"#) >= 1.0
    });
    let spans = backend.wait_for(Duration::from_secs(60), "the session once the key is accepted", root_arrived);
    assert_tree(&spans, TRACE);
    wait_until(WAIT, "the spool emptied", || sidecar.metric(r#"hooktel_spool_items{spool="export"}"#) == 0.0);
    assert_eq!(sidecar.metric(r#"hooktel_spans_dropped_total{reason="rejected"}"#), 0.0);
    wait_until(WAIT, "the refusal explained", || {
        let log = sidecar.log();
        log.contains("credentials refused") && log.contains("OTEL_EXPORTER_OTLP_HEADERS")
    });
    let log = sidecar.log();
    assert!(!log.contains("c2VjcmV0a2V5"), "the key in a log line: {log}");
    drop(sidecar);

    // a mistyped key over gRPC: UNAUTHENTICATED; the sidecar restarted with the right one sends
    // what it kept, once
    let backend = Backend::builder("hosted-grpc")
        .server_cert(&ca.issue("server2", &["localhost"], false))
        .auth("x-honeycomb-team", "right-key")
        .start();
    let data = temp_dir("auth-data");
    let start = |key: &str| {
        let headers = format!("x-honeycomb-team={key}");
        let mut b: SidecarBuilder = Sidecar::builder()
            .data_dir(data.path())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &backend.origin())
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file);
        b = b.env("OTEL_EXPORTER_OTLP_HEADERS", &headers);
        b.start()
    };
    let mut wrong = start("wrong-key");
    replay(&wrong);
    wait_until(WAIT, "the root spooled", || {
        wrong.metric(r#"hooktel_export_failures_total{reason="unauthorized"}"#) >= 1.0
            && wrong.metric(r#"hooktel_spool_items{spool="export"}"#) > 0.0
            && wrong.metric(r#"hooktel_sessions_active"#) == 0.0
    });
    assert!(wrong.terminate(Duration::from_secs(15)));
    assert!(backend.spans().is_empty());
    let right = start("right-key");
    let spans = backend.wait_for(WAIT, "the kept session, after the restart", root_arrived);
    assert_tree(&spans, TRACE);
    wait_until(WAIT, "the spool emptied", || right.metric(r#"hooktel_spool_items{spool="export"}"#) == 0.0);
    assert_tree(&backend.spans(), TRACE);
}

#[test]
fn the_standard_switches_keep_spans_home_and_the_resource_is_the_users() {
    let ca = TestCa::new("switches");
    let backend = Backend::builder("collector").server_cert(&ca.issue("server", &["localhost"], false)).start();
    let ca_file = ca.ca_file();
    let ca_file = ca_file.to_str().unwrap();
    for switch in [("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "none")] {
        let sidecar =
            sidecar_to(&backend.origin(), "http/protobuf", &[("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file), switch]);
        replay(&sidecar);
        wait_until(WAIT, "the session in the local store", || {
            let out = std::process::Command::new(BIN)
                .args(["sessions", "--json"])
                .env("HOOKTEL_DATA_DIR", &sidecar.data_dir)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains("2cfb142e-3e2c-45c5-8192-58e43d4a510f")
        });
        let (_, status) = sidecar.request("GET", "/v1/status", b"");
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["export"]["mode"], "local", "{switch:?}");
        assert_eq!(status["export"]["because"], format!("{}={}", switch.0, switch.1));
        assert!(backend.received().is_empty(), "{switch:?}: something left the machine");
    }
    assert!(refused_at_start(&[("OTEL_TRACES_EXPORTER", "zipkin")]).contains("OTEL_TRACES_EXPORTER: \"zipkin\""));
    assert!(refused_at_start(&[("OTEL_SDK_DISABLED", "yes")]).contains("OTEL_SDK_DISABLED: \"yes\": use true or false"));

    // the resource: percent-decoded, service.name from the list, nothing the user set overridden
    let sidecar = sidecar_to(
        &backend.origin(),
        "http/protobuf",
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=ml%20platform,service.name=agents,host.name=ci-runner-7,service.version=pinned",
            ),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ],
    );
    replay(&sidecar);
    let spans = backend.wait_for(WAIT, "the session", root_arrived);
    let r = &spans[0].resource;
    assert_eq!(r.get("team").map(String::as_str), Some("ml platform"));
    assert_eq!(r.get("service.name").map(String::as_str), Some("agents"));
    assert_eq!(r.get("host.name").map(String::as_str), Some("ci-runner-7"));
    assert_eq!(r.get("service.version").map(String::as_str), Some("pinned"));
    assert!(r.contains_key("service.instance.id") && r.contains_key("user.name"));
    // a variable hooktel does not read is named, not silently ignored
    let log = sidecar.log();
    assert!(
        log.contains("does not read these OpenTelemetry variables") && log.contains("OTEL_TRACES_SAMPLER"),
        "{log}"
    );
}

#[test]
fn delta_temporality_pushes_what_changed_since_the_last_accepted_push() {
    let ca = TestCa::new("delta");
    let backend = Backend::builder("datadog")
        .server_cert(&ca.issue("server", &["localhost"], false))
        .prefix("")
        .ok_status(202)
        .start();
    let ca_file = ca.ca_file();
    let sidecar = Sidecar::builder()
        .env("OTEL_METRICS_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &format!("{}/v1/metrics", backend.origin()))
        .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.to_str().unwrap())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .start();
    replay(&sidecar);
    wait_until(WAIT, "the session counted", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="PreToolUse"}"#) == 4.0
    });
    wait_logged(&sidecar, "pushes after the session", || backend.metrics().len() >= 8);
    std::thread::sleep(Duration::from_millis(600));
    let pushes = backend.metrics();
    let mut total = 0.0;
    for push in &pushes {
        for m in push.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
            if m.name != "hooktel_hook_events_total" {
                continue;
            }
            let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) = &m.data else { panic!() };
            assert_eq!(sum.aggregation_temporality, 1, "delta");
            for p in &sum.data_points {
                let pre = p.attributes.iter().any(|kv| format!("{:?}", kv.value).contains("\"PreToolUse\""));
                if let (true, Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v))) =
                    (pre, p.value)
                {
                    assert!(p.start_time_unix_nano < p.time_unix_nano);
                    total += v;
                }
            }
        }
    }
    // the deltas of all pushes add up to the counter: nothing counted twice, nothing lost
    assert_eq!(total, 4.0, "{} pushes", pushes.len());
    assert!(sidecar.metric(r#"hooktel_metric_pushes_total{result="ok"}"#) >= 8.0, "a 202 is success");
}

#[test]
fn partial_success_and_timeouts_are_counted_as_what_they_are() {
    let ca = TestCa::new("partial");
    let backend = Backend::builder("collector").server_cert(&ca.issue("server", &["localhost"], false)).start();
    backend.reject_spans(2);
    let ca_file = ca.ca_file();
    let sidecar = sidecar_to(
        &backend.origin(),
        "http/protobuf",
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.to_str().unwrap())],
    );
    replay(&sidecar);
    backend.wait_for(WAIT, "the session", root_arrived);
    wait_until(WAIT, "rejected spans counted", || {
        sidecar.metric(r#"hooktel_spans_dropped_total{reason="partial_success"}"#) >= 2.0
    });
    // the count comes before the line, and the line crosses a pipe: wait for it
    wait_until(WAIT, "the partial success explained", || {
        let log = sidecar.log();
        log.contains("refused some of them") && log.contains("span too old")
    });
    drop(sidecar);

    // a backend that takes the connection and never answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(conns);
    });
    let sidecar = sidecar_to(&endpoint, "http/protobuf", &[("OTEL_EXPORTER_OTLP_TIMEOUT", "300")]);
    replay(&sidecar);
    wait_until(WAIT, "a timeout counted as one", || {
        sidecar.metric(r#"hooktel_export_failures_total{reason="timeout"}"#) >= 1.0
    });
    assert_eq!(sidecar.metric(r#"hooktel_export_failures_total{reason="other"}"#), 0.0);
    drop(sidecar);
    drop(held);
}

#[test]
fn forwarding_follows_each_signals_endpoint_and_says_when_there_is_none() {
    let receiver = Receiver::start(crate::support::Protocol::Http);
    let sidecar = Sidecar::builder()
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &format!("{}/v1/traces", receiver.endpoint()))
        .start();
    wait_until(WAIT, "the forwarding said", || sidecar.log().matches("is not forwarded").count() == 2);
    let log = sidecar.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("is not forwarded")).collect();
    assert!(lines[0].contains("signals=logs") && lines[0].contains("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"), "{log}");
    assert!(lines[1].contains("signals=metrics") && lines[1].contains("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"), "{log}");
    let forwarded: Vec<&str> = log.lines().filter(|l| l.contains("telemetry is forwarded")).collect();
    assert!(forwarded.len() == 1 && forwarded[0].contains("/v1/traces"), "{log}");
}

#[test]
fn doctor_checks_the_real_path_through_the_sidecar() {
    let ca = TestCa::new("doctor");
    let ca_file = ca.ca_file();
    let ca_file = ca_file.to_str().unwrap();
    let backend = Backend::builder("hosted")
        .server_cert(&ca.issue("server", &["localhost"], false))
        .prefix("/otlp")
        .auth("authorization", "Basic a2V5")
        .start();
    let doctor = |sidecar: &Sidecar| {
        let out = std::process::Command::new(BIN)
            .arg("doctor")
            .env("HOME", sidecar.data_dir.as_path())
            .env("HOOKTEL_ADDR", sidecar.addr.to_string())
            .env("HOOKTEL_DATA_DIR", &sidecar.data_dir)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let exporter_line =
        |report: &str| report.lines().find(|l| l.contains("] exporter:")).unwrap_or_default().to_owned();
    let cases: [(&str, &str, &str, &str); 3] = [
        ("/otlp", "Authorization=Basic%20a2V5", "[ok  ]", "accepts an empty OTLP export"),
        ("/otlp", "Authorization=Basic%20bm9wZQ", "[unauthorized]", "OTEL_EXPORTER_OTLP_HEADERS"),
        ("", "Authorization=Basic%20a2V5", "[not_found]", "the endpoint's path"),
    ];
    for (path, headers, want, fix) in cases {
        let sidecar = sidecar_to(
            &format!("{}{path}", backend.origin()),
            "http/protobuf",
            &[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file),
                ("OTEL_EXPORTER_OTLP_HEADERS", headers),
                ("HOOKTEL_FORWARD_ENDPOINT", "off"),
            ],
        );
        let report = doctor(&sidecar);
        let line = exporter_line(&report);
        assert!(line.contains(want) && line.contains("the sidecar's"), "{path} {headers}:\n{report}");
        assert!(report.contains(fix), "{path} {headers}: the fix\n{report}");
        assert!(!report.contains("a2V5") && !report.contains("bm9wZQ"), "a credential in the report:\n{report}");
    }
}

/// The recipes of docs/exporting.md, each block of variables as a user pastes it.
fn recipes() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/exporting.md")).unwrap();
    let section = doc.split("\n## Hosted backends\n").nth(1).unwrap().split("\n## ").next().unwrap();
    section
        .split("\n### ")
        .skip(1)
        .map(|part| {
            let (heading, rest) = part.split_once('\n').unwrap();
            let block = rest.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
            (heading.trim().to_owned(), block.to_owned())
        })
        .collect()
}

/// The variables a block sets, run through `sh` with `secrets` in its environment.
fn run_block(block: &str, secrets: &[(&str, &str)]) -> Vec<(String, String)> {
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(format!("{block}\nenv"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(secrets.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{block}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("OTEL_"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `https://vendor.example[:port]/path` → the backend's origin, the path kept.
fn to_backend(url: &str, backend: &Backend) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{}{path}", backend.origin())
}

/// Every recipe, against a receiver that enforces that vendor's documented path and auth shape:
/// the spans arrive, the metrics push too where the recipe turns it on (delta where the vendor
/// takes only that), and the credentials go only where they are meant to.
#[test]
fn every_hosted_backend_recipe_in_the_docs_reaches_a_receiver_shaped_like_that_vendor() {
    let ca = TestCa::new("vendors");
    let client = ca.issue("laptop", &["laptop"], false);
    let ca_file = ca.ca_file().display().to_string();
    let server = || ca.issue("server", &["localhost"], false);
    let recipes = recipes();
    let names: Vec<&str> = recipes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Grafana Cloud",
            "Honeycomb",
            "Datadog",
            "Langfuse",
            "Arize Phoenix Cloud",
            "Arize AX",
            "A Collector behind TLS"
        ],
        "every recipe has its vendor's receiver here"
    );
    for (name, block) in &recipes {
        let (secrets, backend): (Vec<(&str, &str)>, Backend) = match name.as_str() {
            "Grafana Cloud" => (
                vec![("GRAFANA_INSTANCE_ID", "123456"), ("GRAFANA_TOKEN", "glc_test")],
                Backend::builder("grafana")
                    .server_cert(&server())
                    .http_only()
                    .prefix("/otlp")
                    .auth("authorization", "Basic MTIzNDU2OmdsY190ZXN0")
                    .start(),
            ),
            "Honeycomb" => (
                vec![("HONEYCOMB_API_KEY", "hc-key")],
                Backend::builder("honeycomb")
                    .server_cert(&server())
                    .auth("x-honeycomb-team", "hc-key")
                    .signal_auth("metrics", "x-honeycomb-dataset", "hooktel-metrics")
                    .start(),
            ),
            "Datadog" => (
                vec![("DD_API_KEY", "dd-key")],
                Backend::builder("datadog")
                    .server_cert(&server())
                    .http_only()
                    .auth("dd-api-key", "dd-key")
                    .refusal(403)
                    .ok_status(202)
                    .delta_only()
                    .start(),
            ),
            "Langfuse" => (
                vec![("LANGFUSE_PUBLIC_KEY", "pk-lf-1"), ("LANGFUSE_SECRET_KEY", "sk-lf-2")],
                Backend::builder("langfuse")
                    .server_cert(&server())
                    .http_only()
                    .prefix("/api/public/otel")
                    .auth("authorization", "Basic cGstbGYtMTpzay1sZi0y")
                    .auth("x-langfuse-ingestion-version", "4")
                    .start(),
            ),
            "Arize Phoenix Cloud" => (
                vec![("PHOENIX_SPACE", "my-space"), ("PHOENIX_API_KEY", "px-key")],
                Backend::builder("phoenix-cloud")
                    .server_cert(&server())
                    .http_only()
                    .prefix("/s/my-space")
                    .auth("authorization", "Bearer px-key")
                    .start(),
            ),
            "Arize AX" => (
                vec![("ARIZE_SPACE_ID", "sp-1"), ("ARIZE_API_KEY", "ax-key")],
                Backend::builder("arize")
                    .server_cert(&server())
                    .auth("arize-space-id", "sp-1")
                    .auth("arize-api-key", "ax-key")
                    .require_resource("model_id")
                    .start(),
            ),
            "A Collector behind TLS" => {
                (vec![], Backend::builder("collector").server_cert(&server()).client_ca(&ca).require_gzip().start())
            }
            other => panic!("no receiver for the recipe {other:?}"),
        };
        let mut env = run_block(block, &secrets);
        for (k, v) in env.iter_mut() {
            if k.ends_with("_ENDPOINT") {
                *v = to_backend(v, &backend);
            }
            *v = v
                .replace("/etc/hooktel/corp-ca.pem", &ca_file)
                .replace("/etc/hooktel/laptop.pem", client.cert.to_str().unwrap())
                .replace("/etc/hooktel/laptop-key.pem", client.key.to_str().unwrap());
        }
        let pushes = env.iter().any(|(k, v)| k == "OTEL_METRICS_EXPORTER" && v == "otlp");
        let mut b = Sidecar::builder().env("SSL_CERT_FILE", &ca_file).env("OTEL_METRIC_EXPORT_INTERVAL", "200");
        for (k, v) in &env {
            b = b.env(k, v);
        }
        let sidecar = b.start();
        replay(&sidecar);
        let spans = backend.wait_for(WAIT, &format!("{name}: the session"), root_arrived);
        assert_tree(&spans, TRACE);
        if pushes {
            wait_logged(&sidecar, &format!("{name}: a metrics push taken"), || !backend.metrics().is_empty());
        }
        // no request was refused: every one had the vendor's path, credentials and protocol
        let refused: Vec<_> = backend.received().into_iter().filter(|r| !(200..300).contains(&r.answered)).collect();
        assert!(
            refused.is_empty(),
            "{name}: refused {:?}\n{}",
            refused.iter().map(|r| (&r.path, r.answered)).collect::<Vec<_>>(),
            sidecar.log()
        );
        let log = sidecar.log();
        for (_, secret) in secrets.iter().filter(|(var, _)| var.ends_with("_KEY") || var.ends_with("_TOKEN")) {
            assert!(!log.contains(secret), "{name}: a key in the log:\n{log}");
        }
    }
}

/// The real Claude Code CLI, its hooks into the sidecar, the sidecar's spans over https with
/// credentials and gzip to a backend that demands both.
#[test]
fn a_real_claude_code_session_reaches_an_https_backend() {
    use crate::support::claude::{claude_bin, one_cli_at_a_time, write_settings, Cli, Mock, Scratch};
    let _cli = one_cli_at_a_time();
    let ca = TestCa::new("e2e");
    let backend = Backend::builder("hosted")
        .server_cert(&ca.issue("server", &["localhost"], false))
        .prefix("/otlp")
        .auth("authorization", "Bearer e2e-key")
        .require_gzip()
        .start();
    let ca_file = ca.ca_file();
    let sidecar = Sidecar::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("{}/otlp", backend.origin()))
        .env("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20e2e-key")
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.to_str().unwrap())
        .env("HOOKTEL_SETTLE_MS", "1000")
        .start();
    let scratch = Scratch::new();
    let (home, work) = (scratch.dir("home"), scratch.dir("work"));
    write_settings(&home);
    let mock = Mock::start(&scratch, "https", &work);
    let cli = Cli::for_sidecar(claude_bin(), &scratch, &home, &sidecar);
    let run = cli.spawn("https", &work, &mock, &["-p", "Run the scripted scenario."]).wait();
    let session = run.expect_exit(0).session_id();
    let trace = session.replace('-', "");
    let spans = backend.wait_for(Duration::from_secs(60), "the real session's root", |s| {
        s.iter().any(|s| s.trace_id == trace && s.parent.is_empty())
    });
    assert_tree(&spans, &trace);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(names.iter().any(|n| n.starts_with("chat ")), "model calls: {names:?}");
    assert!(names.iter().any(|n| n.starts_with("execute_tool ")), "tool calls: {names:?}");
    assert!(backend.received().iter().all(|r| r.gzip && r.answered == 200), "every request gzip and taken");
    assert_eq!(sidecar.metric(r#"hooktel_export_failures_total{reason="tls"}"#), 0.0);
}

/// A backend's answer is outside input too: one that answers an export with an endless body is read
/// no further than the client's bound (64 KiB), the export counts as taken, and the sidecar's memory
/// stays where it was (sampled on the real binary).
#[test]
fn an_endless_answer_is_read_no_further_than_its_bound() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut out = stream;
                let head =
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n";
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                // 1 MiB chunks, up to 2 GiB, until the client hangs up
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..2048 {
                    let framed =
                        [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk.clone(), b"\r\n".to_vec()].concat();
                    if out.write_all(&framed).is_err() {
                        return;
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    let sidecar = sidecar_to(&endpoint, "http/protobuf", &[]);
    let before = crate::support::peak_rss_mib(sidecar.pid());
    replay(&sidecar);
    // the session's seven spans (its transcripts are not readable here, so no model calls)
    wait_logged(&sidecar, "the session's spans taken", || sidecar.metric("hooktel_spans_exported_total") >= 7.0);
    assert_eq!(sidecar.metric(r#"hooktel_spool_items{spool="export"}"#), 0.0);
    let peak = crate::support::peak_rss_mib(sidecar.pid());
    let streamed = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(streamed < 2048, "the sidecar read the whole 2 GiB answer ({streamed} MiB)");
    assert!(peak < before + 64.0, "peak RSS {peak:.1} MiB against {before:.1} MiB at start");
    assert_eq!(sidecar.metric(r#"hooktel_export_failures_total{reason="other"}"#), 0.0);
}

/// A proxy the gRPC export would not go through is said at start, not silently ignored.
#[test]
fn a_proxy_that_grpc_does_not_use_is_said() {
    let receiver = Receiver::start(crate::support::Protocol::Grpc);
    let sidecar = sidecar_to(&receiver.endpoint(), "grpc", &[("HTTPS_PROXY", "http://proxy.corp:3128")]);
    wait_until(WAIT, "the warning", || sidecar.log().contains("gRPC export does not go through a proxy"));
    let quiet = sidecar_to(&receiver.endpoint(), "grpc", &[]);
    assert!(!quiet.log().contains("does not go through a proxy"), "{}", quiet.log());
}
