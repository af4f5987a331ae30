//! Metrics pushed over OTLP (`OTEL_METRICS_EXPORTER=otlp`), for laptops no Prometheus can scrape:
//! a real receiver decodes each push (HTTP protobuf and gRPC), and after a captured session the
//! pushed values, translated as a Collector translates them, equal `/metrics` series for series;
//! the resource names the sidecar (instance, host, and the user from the password database even
//! with `$USER` unset); a push that fails is counted.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;

use crate::support::{
    captured_session_at, copy_captured_transcripts, prom_translate, temp_dir, wait_until, Protocol, Receiver, Sidecar,
};

/// The user this test runs as, from the password database (`id -un`).
fn user() -> String {
    let out = std::process::Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn pushing_sidecar(receiver: &Receiver) -> Sidecar {
    let endpoint = match receiver.protocol {
        Protocol::Http => format!("{}/v1/metrics", receiver.endpoint()),
        Protocol::Grpc => receiver.endpoint(),
    };
    Sidecar::builder()
        .env("OTEL_METRICS_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", receiver.protocol_name())
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .env_removed("USER")
        .start()
}

#[test]
fn pushed_metrics_equal_what_metrics_serves() {
    for protocol in [Protocol::Http, Protocol::Grpc] {
        let receiver = Receiver::start(protocol);
        let sidecar = pushing_sidecar(&receiver);
        let dir = temp_dir("push");
        let transcript = copy_captured_transcripts(dir.path());
        for payload in captured_session_at(&transcript) {
            let (status, body) = sidecar.request("POST", "/v1/hooks", payload.to_string().as_bytes());
            assert_eq!(status, 200, "{body}");
        }
        wait_until(Duration::from_secs(10), "the session's end and its tokens counted", || {
            sidecar.metric(r#"hooktel_sessions_ended_total{reason="other"}"#) == 1.0
                && sidecar.metric(r#"hooktel_tokens_total{model="claude-sonnet-5-5",project="proj",type="output"}"#)
                    == 445.0
                && sidecar.metrics().contains("hooktel_tool_duration_seconds_count")
        });
        // once the values rest, the last push and a scrape agree on every series
        let differ = prom_translate::push_equals_scrape(
            || sidecar.metrics(),
            || receiver.last_metrics(),
            Duration::from_secs(15),
        );
        assert!(differ.is_empty(), "{protocol:?}: push and scrape disagree:\n{}", differ.join("\n"));
        let scraped = prom_translate::series(&sidecar.metrics());
        for must in [
            r#"hooktel_tokens_total{model="claude-sonnet-5-5",project="proj",type="output"}"#,
            "hooktel_tool_duration_seconds_count",
        ] {
            assert!(scraped.keys().any(|k| k.starts_with(must)), "{must} in {scraped:?}");
        }
        assert!(sidecar.metric(r#"hooktel_metric_pushes_total{result="ok"}"#) >= 1.0);

        // the resource says which sidecar, on which host, for which user ($USER is unset here)
        let last = receiver.last_metrics().unwrap();
        let resource = last.resource_metrics[0].resource.as_ref().unwrap();
        let attr = |k: &str| {
            resource.attributes.iter().find(|kv| kv.key == k).and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                }
            })
        };
        assert_eq!(attr("service.name").as_deref(), Some("hooktel"));
        assert_eq!(attr("user.name"), Some(user()), "{resource:?}");
        assert!(
            attr("host.name").is_some_and(|h| !h.is_empty()) && attr("service.instance.id").is_some(),
            "{resource:?}"
        );
        let info = format!(
            r#"hooktel_info{{host="{}",user="{}",version="{}"}}"#,
            attr("host.name").unwrap(),
            user(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(sidecar.metric(&info), 1.0, "{}", sidecar.metrics());
    }
}

#[test]
fn a_push_that_fails_is_counted_and_the_sidecar_goes_on() {
    // a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let sidecar = Sidecar::builder()
        .env("OTEL_METRICS_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &format!("http://{closed}/v1/metrics"))
        .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
        .start();
    wait_until(Duration::from_secs(15), "a failed push counted", || {
        sidecar.metric(r#"hooktel_metric_pushes_total{result="failed"}"#) >= 1.0
    });
    assert_eq!(sidecar.request("GET", "/healthz", b"").0, 200);
    assert!(sidecar.log().contains("Could not push metrics over OTLP"), "{}", sidecar.log());
}

#[test]
fn an_unknown_metrics_exporter_is_refused_at_start() {
    let out = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OTEL_METRICS_EXPORTER", "zipkin")
        .env("HOOKTEL_DATA_DIR", crate::support::temp_dir("data").path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("OTEL_METRICS_EXPORTER: \"zipkin\" is not an exporter hooktel has"), "{out:?}");
}
