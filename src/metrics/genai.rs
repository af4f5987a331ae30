//! The OpenTelemetry GenAI client metrics of model calls, so that dashboards made for any GenAI
//! workload read hooktel's data: `gen_ai.client.token.usage` and `gen_ai.client.operation.duration`,
//! histograms with the bucket boundaries the conventions give, one observation per chat span.
//!
//! They live in the one registry under the names the standard OTLP-to-Prometheus translation makes
//! of them (`gen_ai_client_token_usage`, `gen_ai_client_operation_duration_seconds`, `.` in
//! attribute keys as `_`), so `/metrics` serves what a Collector would; the push sends them under
//! their OpenTelemetry names and attribute keys ([`otel_name`], [`otel_attribute`]).

use prometheus::{HistogramOpts, HistogramVec};

use crate::metrics::Metrics;
use crate::model::ids::SpanKey;
use crate::model::semconv;
use crate::model::span::{SpanRecord, Status};

/// `gen_ai.client.token.usage` in the registry.
pub(crate) const TOKEN_USAGE: &str = "gen_ai_client_token_usage";
/// `gen_ai.client.operation.duration` in the registry (its unit `s` becomes `_seconds`).
pub(crate) const OPERATION_DURATION: &str = "gen_ai_client_operation_duration_seconds";

/// The conventions' boundaries for `gen_ai.client.token.usage`: powers of 4 from 1 to 64 Mi.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// The conventions' boundaries for `gen_ai.client.operation.duration`: 10 ms doubling to 81.92 s.
const DURATION_BUCKETS: [f64; 14] =
    [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

/// The labels of both, as Prometheus names them and as OpenTelemetry does. Every value is bounded:
/// the operation and provider are fixed, the model capped like every model label, the address and
/// port come from the configuration, the token type is `input` or `output`, the error a status code.
const LABELS: [(&str, &str); 7] = [
    ("gen_ai_operation_name", semconv::OPERATION_NAME),
    ("gen_ai_provider_name", semconv::PROVIDER_NAME),
    ("gen_ai_request_model", semconv::REQUEST_MODEL),
    ("server_address", semconv::SERVER_ADDRESS),
    ("server_port", semconv::SERVER_PORT),
    ("gen_ai_token_type", semconv::TOKEN_TYPE),
    ("error_type", semconv::ERROR_TYPE),
];

/// The two histograms.
pub(crate) struct GenAi {
    pub(crate) token_usage: HistogramVec,
    pub(crate) operation_duration: HistogramVec,
}

impl GenAi {
    pub(crate) fn new() -> GenAi {
        let histogram = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid metric")
        };
        let labels = |skip: &str| LABELS.iter().map(|(p, _)| *p).filter(|p| *p != skip).collect::<Vec<_>>();
        GenAi {
            token_usage: histogram(
                TOKEN_USAGE,
                "Input and output tokens of each model call (OpenTelemetry GenAI gen_ai.client.token.usage).",
                &TOKEN_BUCKETS,
                &labels("error_type"),
            ),
            operation_duration: histogram(
                OPERATION_DURATION,
                "Duration of each model call (OpenTelemetry GenAI gen_ai.client.operation.duration).",
                &DURATION_BUCKETS,
                &labels("gen_ai_token_type"),
            ),
        }
    }
}

impl Metrics {
    /// A finished model call: its duration, and its input (cache reads and writes included, as
    /// `gen_ai.usage.input_tokens` counts them) and output tokens. A call that failed has no usage:
    /// only its duration, with its `error.type`.
    pub(crate) fn model_call(&self, rec: &SpanRecord) {
        if rec.key != SpanKey::Chat {
            return;
        }
        let attrs = rec.attributes();
        let attr = |key: &str| {
            attrs.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned()).unwrap_or_default()
        };
        let model = self.models.label(&attr(semconv::REQUEST_MODEL)).to_owned();
        let (address, port) = (attr(semconv::SERVER_ADDRESS), attr(semconv::SERVER_PORT));
        let error = match (&rec.status, attr(semconv::ERROR_TYPE)) {
            (Status::Error(_), e) if e.is_empty() => semconv::ERROR_OTHER.to_owned(),
            (_, e) => e,
        };
        let common = ["chat", semconv::ANTHROPIC, model.as_str(), address.as_str(), port.as_str()];
        let seconds = rec.end.saturating_sub(rec.start) as f64 / 1e9;
        let mut labels = common.to_vec();
        labels.push(&error);
        self.genai.operation_duration.with_label_values(&labels).observe(seconds);
        if let Some(u) = &rec.usage {
            for (kind, n) in [("input", u.tokens.all_input()), ("output", u.tokens.output)] {
                let mut labels = common.to_vec();
                labels.push(kind);
                self.genai.token_usage.with_label_values(&labels).observe(n as f64);
            }
        }
    }
}

/// The OpenTelemetry name of a registry family: the GenAI metrics' own, hooktel's as they are.
pub(crate) fn otel_name(family: &str) -> &str {
    match family {
        TOKEN_USAGE => "gen_ai.client.token.usage",
        OPERATION_DURATION => "gen_ai.client.operation.duration",
        other => other,
    }
}

/// The OpenTelemetry key of a label of `family`: the GenAI metrics' attribute keys, hooktel's
/// labels as they are.
pub(crate) fn otel_attribute<'a>(family: &str, label: &'a str) -> &'a str {
    if family != TOKEN_USAGE && family != OPERATION_DURATION {
        return label;
    }
    LABELS.iter().find(|(p, _)| *p == label).map_or(label, |(_, key)| key)
}
