//! Pushing hooktel's metrics over OTLP (`OTEL_METRICS_EXPORTER=otlp`), for machines no Prometheus
//! can scrape: every interval, the very registry `/metrics` renders, converted to OTLP with the same
//! names, a unit each, and the labels as attributes, so that the standard OTLP-to-Prometheus
//! translation gives back the scraped series (`hooktel_tokens_total`, ...). One registry, so push and
//! scrape can never disagree. Sums and histograms are cumulative, or delta when
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` asks for it (Datadog's intake does): each
//! push then carries what changed since the last push the backend *accepted*, so a failed push loses
//! nothing either way. Sent through the shared [`OtlpClient`]; every push is counted. A series' exemplar
//! (its latest span, see `metrics::exemplars`) goes with its data point, as `/metrics` shows it.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, Exemplar, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{LabelPair, MetricFamily, MetricType};
use prost::Message;

use crate::export::client::{Body, OtlpClient};
use crate::export::outbound::{Push, Temporality};
use crate::metrics::exemplars::ExemplarSet;
use crate::metrics::{self, genai, Metrics};
use crate::model::semconv::{SCHEMA_URL, SERVER_PORT};

/// A series: its family and its labels, as the registry orders them.
type SeriesKey = (String, Vec<(String, String)>);

/// What a series had reached at the last accepted push: a counter's value, or a histogram's count,
/// sum and cumulative bucket counts.
#[derive(Clone, Debug, PartialEq)]
enum Reached {
    Counter(f64),
    Histogram { count: u64, sum: f64, buckets: Vec<u64> },
}

/// The baseline of delta temporality: every sum and histogram series as of the last accepted push,
/// and when that was. Empty for cumulative pushes (the baseline is the sidecar's start).
#[derive(Clone, Debug, Default)]
pub(crate) struct Baseline {
    since_ns: u64,
    reached: HashMap<SeriesKey, Reached>,
}

impl Baseline {
    fn of(m: &prometheus::proto::Metric, family: &MetricFamily) -> SeriesKey {
        (family.name().to_owned(), m.get_label().iter().map(|l| (l.name().to_owned(), l.value().to_owned())).collect())
    }

    /// The registry's sums and histograms now, to become the baseline once this push is accepted.
    fn snapshot(families: &[MetricFamily], now_ns: u64) -> Baseline {
        let mut reached = HashMap::new();
        for f in families {
            for m in f.get_metric() {
                let r = match f.get_field_type() {
                    MetricType::COUNTER => Reached::Counter(m.get_counter().get_value()),
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        Reached::Histogram {
                            count: h.get_sample_count(),
                            sum: h.get_sample_sum(),
                            buckets: h.get_bucket().iter().map(|b| b.cumulative_count()).collect(),
                        }
                    }
                    _ => continue,
                };
                reached.insert(Baseline::of(m, f), r);
            }
        }
        Baseline { since_ns: now_ns, reached }
    }
}

/// The OTLP request for the registry's `families` now: one resource (`resource`), one scope. With
/// `delta`, sums and histograms carry the change since that baseline (which starts at `start_ns`
/// until a push is accepted), else their totals since `start_ns`.
pub(crate) fn request(
    families: &[MetricFamily],
    resource: Resource,
    start_ns: u64,
    now_ns: u64,
    delta: Option<&Baseline>,
) -> ExportMetricsServiceRequest {
    let metrics = families.iter().filter_map(|f| metric(f, start_ns, now_ns, delta)).collect();
    let scope = InstrumentationScope {
        name: "hooktel".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics { scope: Some(scope), metrics, schema_url: SCHEMA_URL.into() }],
            schema_url: SCHEMA_URL.into(),
        }],
    }
}

/// One metric family as an OTLP metric: a counter a monotonic sum, a gauge a gauge, a histogram a
/// histogram (Prometheus's cumulative bucket counts made per-bucket).
fn metric(f: &MetricFamily, start_ns: u64, now_ns: u64, delta: Option<&Baseline>) -> Option<Metric> {
    let temporality = match delta {
        Some(_) => AggregationTemporality::Delta,
        None => AggregationTemporality::Cumulative,
    } as i32;
    // a delta point starts where the baseline was taken
    let start_ns = delta.map_or(start_ns, |b| b.since_ns.max(start_ns));
    let before = |m: &prometheus::proto::Metric| delta.and_then(|b| b.reached.get(&Baseline::of(m, f)));
    let number = |m: &prometheus::proto::Metric, v: f64, start: u64| NumberDataPoint {
        attributes: attributes(f.name(), m.get_label()),
        start_time_unix_nano: start,
        time_unix_nano: now_ns,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let data = match f.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: f
                .get_metric()
                .iter()
                .map(|m| {
                    let now = m.get_counter().get_value();
                    let was = match before(m) {
                        Some(Reached::Counter(v)) => *v,
                        _ => 0.0,
                    };
                    number(m, (now - was).max(0.0), start_ns)
                })
                .collect(),
            aggregation_temporality: temporality,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: f.get_metric().iter().map(|m| number(m, m.get_gauge().get_value(), 0)).collect(),
        }),
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: f
                .get_metric()
                .iter()
                .map(|m| HistogramDataPoint {
                    attributes: attributes(f.name(), m.get_label()),
                    ..histogram_point(m, before(m), start_ns, now_ns)
                })
                .collect(),
            aggregation_temporality: temporality,
        }),
        // hooktel registers no summaries or untyped metrics
        _ => return None,
    };
    Some(Metric {
        name: genai::otel_name(f.name()).to_owned(),
        description: f.help().to_owned(),
        unit: metrics::unit(f.name()).to_owned(),
        data: Some(data),
        ..Default::default()
    })
}

fn histogram_point(
    m: &prometheus::proto::Metric,
    before: Option<&Reached>,
    start_ns: u64,
    now_ns: u64,
) -> HistogramDataPoint {
    let h = m.get_histogram();
    let (was_count, was_sum, was_buckets) = match before {
        Some(Reached::Histogram { count, sum, buckets }) => (*count, *sum, buckets.as_slice()),
        _ => (0, 0.0, &[][..]),
    };
    let buckets = h.get_bucket();
    let explicit_bounds: Vec<f64> = buckets.iter().map(|b| b.upper_bound()).filter(|b| b.is_finite()).collect();
    let mut bucket_counts = Vec::with_capacity(explicit_bounds.len() + 1);
    let mut below = 0;
    for (i, b) in buckets.iter().enumerate().filter(|(_, b)| b.upper_bound().is_finite()) {
        let cumulative = b.cumulative_count().saturating_sub(was_buckets.get(i).copied().unwrap_or(0));
        bucket_counts.push(cumulative.saturating_sub(below));
        below = cumulative;
    }
    let count = h.get_sample_count().saturating_sub(was_count);
    // the +Inf bucket: what no finite bound holds
    bucket_counts.push(count.saturating_sub(below));
    HistogramDataPoint {
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        count,
        sum: Some(h.get_sample_sum() - was_sum),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    }
}

/// Each sum's and histogram's data point with its series' exemplar, if it has one; on a delta point
/// only if the exemplar falls in the point's interval.
pub(crate) fn add_exemplars(req: &mut ExportMetricsServiceRequest, exemplars: &ExemplarSet) {
    let metrics = req.resource_metrics.iter_mut().flat_map(|r| &mut r.scope_metrics).flat_map(|s| &mut s.metrics);
    for m in metrics {
        let of = |attributes: &[KeyValue], start_ns: u64| -> Vec<Exemplar> {
            let values = attributes.iter().map(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.as_str(),
                _ => "",
            });
            let Some(e) = exemplars.of_values(&m.name, values).filter(|e| e.at_ns >= start_ns) else {
                return Vec::new();
            };
            vec![Exemplar {
                time_unix_nano: e.at_ns,
                value: Some(exemplar::Value::AsDouble(e.value)),
                span_id: e.span_id.to_bytes().to_vec(),
                trace_id: e.trace_id.to_bytes().to_vec(),
                ..Default::default()
            }]
        };
        let delta = AggregationTemporality::Delta as i32;
        match m.data.as_mut() {
            Some(metric::Data::Sum(s)) => {
                let delta = s.aggregation_temporality == delta;
                for p in &mut s.data_points {
                    p.exemplars = of(&p.attributes, if delta { p.start_time_unix_nano } else { 0 });
                }
            }
            Some(metric::Data::Histogram(h)) => {
                let delta = h.aggregation_temporality == delta;
                for p in &mut h.data_points {
                    p.exemplars = of(&p.attributes, if delta { p.start_time_unix_nano } else { 0 });
                }
            }
            _ => {}
        }
    }
}

/// A series' labels as attributes of `family` (under their OpenTelemetry keys for the GenAI
/// metrics; `server.port` an integer, as the conventions type it); an empty label is no attribute,
/// as it is no label to Prometheus.
fn attributes(family: &str, labels: &[LabelPair]) -> Vec<KeyValue> {
    labels
        .iter()
        .filter(|l| !l.value().is_empty())
        .map(|l| match genai::otel_attribute(family, l.name()) {
            key @ SERVER_PORT => match l.value().parse::<i64>() {
                Ok(port) => KeyValue {
                    key: key.to_owned(),
                    value: Some(AnyValue { value: Some(any_value::Value::IntValue(port)) }),
                    ..Default::default()
                },
                Err(_) => string_attr(key, l.value()),
            },
            key => string_attr(key, l.value()),
        })
        .collect()
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

/// Push the registry every `push.interval` until `stop` says so, and once more then.
pub(crate) async fn run(
    push: Push,
    client: OtlpClient,
    resource: Resource,
    metrics: Arc<Metrics>,
    start_ns: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(push.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let delta = push.temporality == Temporality::Delta;
    let mut baseline = Baseline { since_ns: start_ns, reached: HashMap::new() };
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        let now = crate::model::time::now_ns();
        let families = metrics.families();
        let mut body = request(&families, resource.clone(), start_ns, now, delta.then_some(&baseline));
        add_exemplars(&mut body, &metrics.exemplars());
        let sent = tokio::time::timeout(push.timeout, client.send(Body::Protobuf(body.encode_to_vec().into()))).await;
        let result = match &sent {
            Ok(Ok(accepted)) if accepted.rejected > 0 => "partial",
            Ok(Ok(_)) => "ok",
            _ => "failed",
        };
        metrics.metric_pushes.with_label_values(&[result]).inc();
        match sent {
            Ok(Ok(accepted)) => {
                if delta {
                    baseline = Baseline::snapshot(&families, now);
                }
                if accepted.rejected > 0 {
                    if let Some(left_out) = metrics.may_warn("metric_push_partial") {
                        tracing::warn!(endpoint = %push.dest.shown(), rejected = accepted.rejected, reason = %accepted.message, left_out, "The backend took the metrics but refused some data points");
                    }
                }
            }
            Ok(Err(e)) => {
                if let Some(left_out) = metrics.may_warn("metric_push_failed") {
                    tracing::warn!(endpoint = %push.dest.shown(), error = %e, fix = %e.fix(&push.dest), left_out, "Could not push metrics over OTLP; the next push carries them");
                }
            }
            Err(_) => {
                if let Some(left_out) = metrics.may_warn("metric_push_failed") {
                    tracing::warn!(endpoint = %push.dest.shown(), timeout = ?push.timeout, left_out, "Pushing metrics over OTLP took longer than OTEL_METRIC_EXPORT_TIMEOUT; the next push carries them");
                }
            }
        }
        if stopping {
            return;
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
        let m = Metrics::new(true, false);
        m.tokens.with_label_values(&["codex", "claude-opus-5-5", "input", "api"]).inc_by(12);
        m.sessions_active.set(3);
        m.info.with_label_values(&["0.1.0", "box", "dev"]).set(1);
        for secs in [0.002, 0.3, 0.4, 7200.0] {
            m.tool_duration.with_label_values(&["Bash", ""]).observe(secs);
        }
        let req = request(&m.families(), Resource::default(), 5, 9, None);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let named = |n: &str| metrics.iter().find(|m| m.name == n).unwrap_or_else(|| panic!("{n}"));
        let tokens = named("hooktel_tokens_total");
        let Some(metric::Data::Sum(sum)) = &tokens.data else { panic!("{tokens:?}") };
        assert!(sum.is_monotonic && sum.aggregation_temporality == AggregationTemporality::Cumulative as i32);
        let labels = [("agent", "codex"), ("model", "claude-opus-5-5"), ("project", "api"), ("type", "input")];
        assert_eq!(value(tokens, &labels), 12.0);
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

    /// With delta temporality a push carries what changed since the accepted baseline: a counter's
    /// increase, a histogram's new observations bucket by bucket, starting at the baseline's time.
    #[test]
    fn delta_pushes_carry_the_change_since_the_accepted_baseline() {
        let m = Metrics::new(false, false);
        m.hook_events.with_label_values(&["Stop"]).inc_by(5);
        m.tool_duration.with_label_values(&["Bash", ""]).observe(0.3);
        let baseline = Baseline::snapshot(&m.families(), 100);
        m.hook_events.with_label_values(&["Stop"]).inc_by(2);
        m.hook_events.with_label_values(&["SessionEnd"]).inc();
        for secs in [0.3, 7200.0] {
            m.tool_duration.with_label_values(&["Bash", ""]).observe(secs);
        }
        let req = request(&m.families(), Resource::default(), 5, 200, Some(&baseline));
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let named = |n: &str| metrics.iter().find(|m| m.name == n).unwrap_or_else(|| panic!("{n}"));
        let events = named("hooktel_hook_events_total");
        let Some(metric::Data::Sum(sum)) = &events.data else { panic!() };
        assert_eq!(sum.aggregation_temporality, AggregationTemporality::Delta as i32);
        assert_eq!(value(events, &[("event", "Stop")]), 2.0);
        assert_eq!(value(events, &[("event", "SessionEnd")]), 1.0, "a series new since the baseline");
        assert_eq!(sum.data_points[0].start_time_unix_nano, 100);
        let Some(metric::Data::Histogram(h)) = &named("hooktel_tool_duration_seconds").data else { panic!() };
        let p = &h.data_points[0];
        assert_eq!((p.count, p.sum), (2, Some(7200.3)));
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 2);
        assert_eq!(*p.bucket_counts.last().unwrap(), 1);
        assert_eq!(named("hooktel_tool_duration_seconds").unit, "s");
    }

    /// A pushed sum or histogram point carries its series' exemplar (the session's trace, the span,
    /// the value, the time) as `/metrics` shows it; a delta point only one from its own interval.
    #[test]
    fn pushed_points_carry_their_series_exemplar() {
        use crate::model::span::{SpanRecord, Subject, ToolRun, ToolStatus};
        let m = Metrics::new(false, false);
        let sid = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";
        let span = opentelemetry::trace::SpanId::from_bytes([9; 8]);
        let rec = crate::model::span::SpanRecord::new(
            crate::model::ids::trace_id(sid),
            span,
            crate::model::ids::SpanKey::Tool,
            "execute_tool Bash".into(),
            (100, 150),
            sid.into(),
        );
        let tool = ToolRun { status: ToolStatus::Ok, duration_ms: Some(300), pull_request: None };
        let agent = crate::model::agent::Agent::Codex;
        m.span_finished(&SpanRecord { subject: Some(Subject::Tool("Bash".into())), tool: Some(tool), agent, ..rec });
        m.hook_event("Stop", 1.0);
        let mut req = request(&m.families(), Resource::default(), 5, 200, None);
        add_exemplars(&mut req, &m.exemplars());
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let named = |n: &str| metrics.iter().find(|m| m.name == n).unwrap_or_else(|| panic!("{n}"));
        let Some(metric::Data::Sum(calls)) = &named("hooktel_tool_calls_total").data else { panic!() };
        let labels = [("agent", "codex"), ("status", "ok"), ("tool", "Bash")];
        assert_eq!(
            calls.data_points[0].attributes,
            labels.map(|(k, v)| string_attr(k, v)),
            "the agent is an attribute"
        );
        let ex = &calls.data_points[0].exemplars;
        assert_eq!(ex.len(), 1, "{calls:?}");
        assert_eq!(ex[0].trace_id, hex_bytes("2cfb142e3e2c45c5819258e43d4a510f"));
        assert_eq!((ex[0].span_id.as_slice(), ex[0].time_unix_nano), (&[9u8; 8][..], 150));
        assert_eq!(ex[0].value, Some(exemplar::Value::AsDouble(1.0)));
        let Some(metric::Data::Histogram(h)) = &named("hooktel_tool_duration_seconds").data else { panic!() };
        assert_eq!(h.data_points[0].exemplars[0].value, Some(exemplar::Value::AsDouble(0.3)));
        let Some(metric::Data::Sum(events)) = &named("hooktel_hook_events_total").data else { panic!() };
        assert!(events.data_points[0].exemplars.is_empty(), "a series no span moved has none");
        // a delta push after the span ended: its interval holds no exemplar
        let baseline = Baseline::snapshot(&m.families(), 160);
        let mut req = request(&m.families(), Resource::default(), 5, 200, Some(&baseline));
        add_exemplars(&mut req, &m.exemplars());
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let calls = metrics.iter().find(|m| m.name == "hooktel_tool_calls_total").unwrap();
        let Some(metric::Data::Sum(calls)) = &calls.data else { panic!() };
        assert!(calls.data_points[0].exemplars.is_empty(), "{calls:?}");
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }
}
