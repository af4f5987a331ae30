//! Metrics pushed over OTLP (`OTEL_METRICS_EXPORTER=otlp`), for laptops no Prometheus can scrape:
//! a real receiver decodes each push (HTTP protobuf and gRPC), and after a captured session the
//! pushed values, translated as a Collector translates them, equal `/metrics` series for series;
//! the resource names the sidecar (instance, host, and the user from the password database even
//! with `$USER` unset); a push that fails is counted.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint;

use crate::support::{
    captured_session_at, copy_captured_transcripts, prom_translate, temp_dir, wait_until, Protocol, Receiver, Sidecar,
};

/// The user this test runs as, from the password database (`id -un`).
fn user() -> String {
    let out = std::process::Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The sum of the samples of `text` whose line starts with `prefix` and holds `label`.
fn sum_of(text: &str, prefix: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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
        // the model calls' spans wait for the transcripts' last reads, which a loaded machine delays
        .env("HOOKTEL_SETTLE_MS", "2000")
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
        wait_until(Duration::from_secs(10), "the session's end, its tokens and its model calls counted", || {
            let text = sidecar.metrics();
            sidecar.metric(r#"hooktel_sessions_ended_total{agent="claude-code",reason="other"}"#) == 1.0
                && sidecar
                    .metric(r#"hooktel_tokens_total{agent="claude-code",model="claude-sonnet-5-5",project="proj",repo="",type="output"}"#)
                    == 445.0
                && text.contains("hooktel_tool_duration_seconds_count")
                && sum_of(&text, "gen_ai_client_token_usage_sum{", r#"gen_ai_token_type="output""#)
                    == sum_of(&text, "hooktel_tokens_total{", r#"type="output""#)
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
            r#"hooktel_tokens_total{agent="claude-code",model="claude-sonnet-5-5",project="proj",type="output"}"#,
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
        genai_client_metrics(&last, &sidecar.metrics());
    }
}

/// The OpenTelemetry GenAI client metrics in the push, under their own names, attribute keys and
/// the conventions' bucket boundaries: one observation per model call, whose tokens add up to
/// hooktel's own counters (input with the cache reads and writes, as `gen_ai.usage.input_tokens`).
fn genai_client_metrics(push: &ExportMetricsServiceRequest, scraped: &str) {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let scope = &push.resource_metrics[0].scope_metrics[0];
    assert_eq!(push.resource_metrics[0].schema_url, "https://opentelemetry.io/schemas/1.42.0");
    assert_eq!(scope.schema_url, "https://opentelemetry.io/schemas/1.42.0");
    let histogram = |name: &str| {
        let m = scope.metrics.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("{name} pushed"));
        match &m.data {
            Some(Data::Histogram(h)) => (m.unit.clone(), h.data_points.clone()),
            other => panic!("{name}: {other:?}"),
        }
    };
    let text = |p: &HistogramDataPoint, k: &str| {
        p.attributes.iter().find(|kv| kv.key == k).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(format!("int {i}")),
            _ => None,
        })
    };
    let (unit, tokens) = histogram("gen_ai.client.token.usage");
    assert_eq!(unit, "{token}");
    let (unit, durations) = histogram("gen_ai.client.operation.duration");
    assert_eq!(unit, "s");
    let powers_of_4: Vec<f64> = (0..14).map(|i| 4f64.powi(i)).collect();
    let doubling: Vec<f64> = (0..14).map(|i| 0.01 * 2f64.powi(i)).collect();
    for p in &tokens {
        assert_eq!(p.explicit_bounds, powers_of_4);
    }
    for p in &durations {
        assert_eq!(p.explicit_bounds.len(), doubling.len());
        assert!(p.explicit_bounds.iter().zip(&doubling).all(|(a, b)| (a - b).abs() < 1e-9), "{:?}", p.explicit_bounds);
    }
    for p in tokens.iter().chain(&durations) {
        assert_eq!(text(p, "gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(text(p, "gen_ai.provider.name").as_deref(), Some("anthropic"));
        assert_eq!(text(p, "gen_ai.request.model").as_deref(), Some("claude-sonnet-5-5"));
        assert_eq!(text(p, "server.address").as_deref(), Some("api.anthropic.com"));
        assert_eq!(text(p, "server.port").as_deref(), Some("int 443"));
        assert_eq!(text(p, "error.type"), None, "no model call failed");
    }
    let of_type =
        |t: &str| tokens.iter().filter(|p| text(p, "gen_ai.token.type").as_deref() == Some(t)).collect::<Vec<_>>();
    let (input, output) = (of_type("input"), of_type("output"));
    let calls: u64 = durations.iter().map(|p| p.count).sum();
    assert!(calls >= 5, "{calls} model calls");
    assert_eq!(input.iter().map(|p| p.count).sum::<u64>(), calls, "one observation per call");
    assert_eq!(output.iter().map(|p| p.count).sum::<u64>(), calls);
    let counted = |kind: &str| sum_of(scraped, "hooktel_tokens_total{", &format!("type=\"{kind}\""));
    let summed = |points: &[&HistogramDataPoint]| points.iter().map(|p| p.sum.unwrap_or(0.0)).sum::<f64>();
    assert_eq!(summed(&output), counted("output"));
    assert_eq!(summed(&input), counted("input") + counted("cache_read") + counted("cache_creation"));
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
