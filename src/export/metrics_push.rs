//! Pushing hooktel's metrics over OTLP (`OTEL_METRICS_EXPORTER=otlp`), for machines no Prometheus
//! can scrape: every interval, the very registry `/metrics` renders, converted to OTLP with
//! cumulative temporality, the same names and the labels as attributes, so that the standard
//! OTLP-to-Prometheus translation gives back the scraped series (`hooktel_tokens_total`, ...). One
//! registry, so push and scrape can never disagree. A failed push is tried again a few times within
//! the interval, then left to the next (cumulative values lose nothing); every push is counted.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{LabelPair, MetricFamily, MetricType};
use prost::Message;

use crate::export::otlp::Protocol;
use crate::metrics::Metrics;

/// Where and how often to push (from the standard `OTEL_*` variables, read by `cli::config`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PushSettings {
    /// The full URL: `.../v1/metrics` for http/protobuf, the collector's address for grpc.
    pub(crate) endpoint: String,
    pub(crate) protocol: Protocol,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) headers: Vec<(String, String)>,
}

/// Tries per push; the backoff between them stays well inside any sensible interval.
const TRIES: u32 = 3;

/// Why a push did not go through.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PushError(String);

fn push_error(e: impl std::fmt::Display) -> PushError {
    PushError(e.to_string())
}

/// The OTLP request for the registry's `families` now: one resource (`resource`), one scope.
pub(crate) fn request(
    families: &[MetricFamily],
    resource: Resource,
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families.iter().filter_map(|f| metric(f, start_ns, now_ns)).collect();
    let scope = InstrumentationScope {
        name: "hooktel".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics { scope: Some(scope), metrics, schema_url: String::new() }],
            schema_url: String::new(),
        }],
    }
}

/// One metric family as an OTLP metric: a counter a monotonic cumulative sum, a gauge a gauge, a
/// histogram a cumulative histogram (Prometheus's cumulative bucket counts made per-bucket).
fn metric(f: &MetricFamily, start_ns: u64, now_ns: u64) -> Option<Metric> {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let number = |m: &prometheus::proto::Metric, v: f64| NumberDataPoint {
        attributes: attributes(m.get_label()),
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let data = match f.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: f.get_metric().iter().map(|m| number(m, m.get_counter().get_value())).collect(),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: f.get_metric().iter().map(|m| number(m, m.get_gauge().get_value())).collect(),
        }),
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: f.get_metric().iter().map(|m| histogram_point(m, start_ns, now_ns)).collect(),
            aggregation_temporality: cumulative,
        }),
        // hooktel registers no summaries or untyped metrics
        _ => return None,
    };
    Some(Metric {
        name: f.name().to_owned(),
        description: f.help().to_owned(),
        unit: String::new(),
        data: Some(data),
        ..Default::default()
    })
}

fn histogram_point(m: &prometheus::proto::Metric, start_ns: u64, now_ns: u64) -> HistogramDataPoint {
    let h = m.get_histogram();
    let buckets = h.get_bucket();
    let explicit_bounds: Vec<f64> = buckets.iter().map(|b| b.upper_bound()).filter(|b| b.is_finite()).collect();
    let mut bucket_counts = Vec::with_capacity(explicit_bounds.len() + 1);
    let mut below = 0;
    for b in buckets.iter().filter(|b| b.upper_bound().is_finite()) {
        bucket_counts.push(b.cumulative_count().saturating_sub(below));
        below = b.cumulative_count();
    }
    // the +Inf bucket: what no finite bound holds
    bucket_counts.push(h.get_sample_count().saturating_sub(below));
    HistogramDataPoint {
        attributes: attributes(m.get_label()),
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        count: h.get_sample_count(),
        sum: Some(h.get_sample_sum()),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    }
}

fn attributes(labels: &[LabelPair]) -> Vec<KeyValue> {
    labels.iter().map(|l| string_attr(l.name(), l.value())).collect()
}

/// The resource as OTLP's protobuf carries it.
pub(crate) fn proto_resource(resource: &opentelemetry_sdk::Resource) -> Resource {
    let attributes = resource.iter().map(|(k, v)| string_attr(k.as_str(), &v.as_str())).collect();
    Resource { attributes, ..Default::default() }
}

fn string_attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..Default::default()
    }
}

/// Push the registry every `settings.interval` until `stop` says so, and once more then.
pub(crate) async fn run(
    settings: PushSettings,
    resource: Resource,
    metrics: Arc<Metrics>,
    start_ns: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut sender = match Sender::new(&settings) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(endpoint = %settings.endpoint, error = %e, "Cannot push metrics over OTLP");
            return;
        }
    };
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        let body = request(&metrics.families(), resource.clone(), start_ns, crate::model::time::now_ns());
        let outcome = sender.push(body, &settings).await;
        metrics.metric_pushes.with_label_values(&[if outcome.is_ok() { "ok" } else { "failed" }]).inc();
        if let Err(e) = outcome {
            if let Some(left_out) = metrics.may_warn("metric_push_failed") {
                tracing::warn!(endpoint = %settings.endpoint, error = %e, left_out, "Could not push metrics over OTLP");
            }
        }
        if stopping {
            return;
        }
    }
}

/// The transport of one protocol.
enum Sender {
    Http(reqwest::Client),
    Grpc(MetricsServiceClient<tonic::transport::Channel>),
}

impl Sender {
    fn new(settings: &PushSettings) -> Result<Sender, PushError> {
        Ok(match settings.protocol {
            Protocol::HttpProtobuf => {
                Sender::Http(reqwest::Client::builder().timeout(settings.timeout).build().map_err(push_error)?)
            }
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(settings.endpoint.clone())
                    .map_err(push_error)?
                    .timeout(settings.timeout)
                    .connect_lazy();
                Sender::Grpc(MetricsServiceClient::new(channel))
            }
        })
    }

    /// One push, tried up to [`TRIES`] times; a refusal as malformed is not tried again.
    async fn push(&mut self, body: ExportMetricsServiceRequest, settings: &PushSettings) -> Result<(), PushError> {
        let mut last = PushError("not sent".into());
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            match self.try_once(&body, settings).await {
                Ok(()) => return Ok(()),
                Err((e, retry)) => {
                    last = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    async fn try_once(
        &mut self,
        body: &ExportMetricsServiceRequest,
        settings: &PushSettings,
    ) -> Result<(), (PushError, bool)> {
        match self {
            Sender::Http(client) => {
                let mut req = client
                    .post(&settings.endpoint)
                    .header("content-type", "application/x-protobuf")
                    .body(body.encode_to_vec());
                for (k, v) in &settings.headers {
                    req = req.header(k, v);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => {
                        let s = r.status();
                        let retry = s.is_server_error() || s.as_u16() == 429;
                        Err((PushError(format!("HTTP {s}")), retry))
                    }
                    Err(e) => Err((push_error(e), true)),
                }
            }
            Sender::Grpc(client) => {
                let mut req = tonic::Request::new(body.clone());
                for (k, v) in &settings.headers {
                    let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        tonic::metadata::MetadataValue::try_from(v.as_str()),
                    ) else {
                        continue;
                    };
                    req.metadata_mut().insert(k, v);
                }
                match client.export(req).await {
                    Ok(_) => Ok(()),
                    Err(status) => {
                        let retry = !matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::Unimplemented);
                        Err((PushError(format!("gRPC {status}")), retry))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &Metric, labels: &[(&str, &str)]) -> f64 {
        let want: Vec<KeyValue> = labels.iter().map(|(k, v)| string_attr(k, v)).collect();
        let points = match m.data.as_ref().unwrap() {
            metric::Data::Sum(s) => &s.data_points,
            metric::Data::Gauge(g) => &g.data_points,
            other => panic!("{other:?}"),
        };
        let p = points.iter().find(|p| p.attributes == want).unwrap_or_else(|| panic!("{labels:?} in {points:?}"));
        match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            ref other => panic!("{other:?}"),
        }
    }

    /// Counters are monotonic cumulative sums under their Prometheus names, gauges gauges, labels
    /// attributes; a histogram's cumulative buckets become per-bucket counts with the +Inf bucket
    /// last; all the values the text exposition shows.
    #[test]
    fn the_registry_becomes_cumulative_otlp_metrics_under_the_same_names() {
        let m = Metrics::new(true);
        m.tokens.with_label_values(&["claude-opus-5-5", "input", "api"]).inc_by(12);
        m.sessions_active.set(3);
        m.info.with_label_values(&["0.1.0", "box", "dev"]).set(1);
        for secs in [0.002, 0.3, 0.4, 7200.0] {
            m.tool_duration.with_label_values(&["Bash"]).observe(secs);
        }
        let req = request(&m.families(), Resource::default(), 5, 9);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let named = |n: &str| metrics.iter().find(|m| m.name == n).unwrap_or_else(|| panic!("{n}"));
        let tokens = named("hooktel_tokens_total");
        let Some(metric::Data::Sum(sum)) = &tokens.data else { panic!("{tokens:?}") };
        assert!(sum.is_monotonic && sum.aggregation_temporality == AggregationTemporality::Cumulative as i32);
        assert_eq!(value(tokens, &[("model", "claude-opus-5-5"), ("project", "api"), ("type", "input")]), 12.0);
        assert_eq!((sum.data_points[0].start_time_unix_nano, sum.data_points[0].time_unix_nano), (5, 9));
        assert_eq!(value(named("hooktel_sessions_active"), &[]), 3.0);
        assert_eq!(value(named("hooktel_info"), &[("host", "box"), ("user", "dev"), ("version", "0.1.0")]), 1.0);
        let Some(metric::Data::Histogram(h)) = &named("hooktel_tool_duration_seconds").data else { panic!() };
        let p = &h.data_points[0];
        assert_eq!((p.count, p.sum), (4, Some(7200.702)));
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 4);
        let bucket_of = |v: f64| p.explicit_bounds.iter().position(|b| v <= *b).unwrap_or(p.explicit_bounds.len());
        assert_eq!((p.bucket_counts[0], bucket_of(0.002)), (1, 0));
        assert_eq!((p.bucket_counts[bucket_of(0.3)], bucket_of(0.4)), (2, bucket_of(0.3)), "(0.25, 0.5]");
        assert_eq!(*p.bucket_counts.last().unwrap(), 1, "7200 s is past the last bound");
        // every family /metrics shows is pushed
        assert_eq!(metrics.len(), m.families().len());
    }
}
