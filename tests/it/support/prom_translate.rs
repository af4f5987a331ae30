//! The standard OTLP-to-Prometheus translation of pushed metrics, as a Collector's Prometheus
//! exporter or Prometheus's own OTLP receiver does it (Debian's Prometheus 2.42 has no OTLP
//! receiver): a monotonic cumulative sum becomes a counter named with one `_total` suffix, a gauge
//! a gauge, a cumulative histogram `_bucket{le}` (cumulative), `_sum` and `_count`; attributes
//! become labels (names sanitised); the unit added as a suffix unless the name holds it already
//! (Prometheus's otlptranslator `normalizeName`: `s` is `seconds`, `By` `bytes`, a `{annotation}`
//! nothing, `1` on a gauge `ratio`). The receiver serves the last push this way on `GET /metrics`,
//! for a real Prometheus to scrape beside the sidecar itself.

use std::fmt::Write;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as Number};

/// The Prometheus text exposition of one pushed request.
pub fn exposition(req: &ExportMetricsServiceRequest) -> String {
    let mut out = String::new();
    for m in req.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
        let counter = matches!(&m.data, Some(Data::Sum(sum)) if sum.is_monotonic);
        let gauge = matches!(&m.data, Some(Data::Gauge(_)));
        let name = normalize(&m.name, &m.unit, counter, gauge);
        match &m.data {
            Some(Data::Sum(sum)) if sum.is_monotonic && sum.aggregation_temporality == 2 => {
                let _ = writeln!(out, "# TYPE {name} counter");
                for p in &sum.data_points {
                    let _ = writeln!(out, "{name}{} {}", labels(&p.attributes, None), number(&p.value));
                }
            }
            Some(Data::Gauge(g)) => {
                let _ = writeln!(out, "# TYPE {name} gauge");
                for p in &g.data_points {
                    let _ = writeln!(out, "{name}{} {}", labels(&p.attributes, None), number(&p.value));
                }
            }
            Some(Data::Histogram(h)) if h.aggregation_temporality == 2 => {
                let _ = writeln!(out, "# TYPE {name} histogram");
                for p in &h.data_points {
                    let mut cumulative = 0;
                    for (i, count) in p.bucket_counts.iter().enumerate() {
                        cumulative += count;
                        let le = p.explicit_bounds.get(i).map_or("+Inf".to_owned(), |b| format!("{b}"));
                        let _ = writeln!(out, "{name}_bucket{} {cumulative}", labels(&p.attributes, Some(&le)));
                    }
                    let _ = writeln!(out, "{name}_sum{} {}", labels(&p.attributes, None), p.sum.unwrap_or(0.0));
                    let _ = writeln!(out, "{name}_count{} {}", labels(&p.attributes, None), p.count);
                }
            }
            other => panic!("{} is not translated: {other:?}", m.name),
        }
    }
    out
}

/// A pushed metric's Prometheus name, as the standard translation (with suffixes) builds it.
fn normalize(name: &str, unit: &str, counter: bool, gauge: bool) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit.split_once('/').unwrap_or((unit, ""));
    let suffix = |u: &str| -> String {
        let u = u.trim();
        if u.is_empty() || u.contains(['{', '}']) {
            return String::new();
        }
        match u {
            "s" => "seconds",
            "ms" => "milliseconds",
            "By" => "bytes",
            "1" => "",
            "%" => "percent",
            other => other,
        }
        .to_owned()
    };
    let main = suffix(main);
    if !main.is_empty() && !tokens.contains(&main) {
        tokens.push(main);
    }
    let per = suffix(per);
    if !per.is_empty() && !tokens.contains(&format!("per_{per}")) {
        tokens.push(format!("per_{per}"));
    }
    if counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    tokens.join("_")
}

/// `name{labels}` → value of a text exposition, without comments, and without the push counter
/// (a push cannot carry its own count). A label with an empty value is left out: to Prometheus it
/// is no label.
pub fn series(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| !l.starts_with("hooktel_metric_pushes_total"))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((without_empty_labels(key), value.parse().ok()?))
        })
        .collect()
}

/// `name{a="",b="x"}` as `name{b="x"}` (label values here never hold `",`).
fn without_empty_labels(key: &str) -> String {
    let Some((name, labels)) = key.strip_suffix('}').and_then(|k| k.split_once('{')) else { return key.to_owned() };
    // each pair ends in `",` once a comma is added: `a="` is an empty one
    let kept: Vec<String> = format!("{labels},")
        .split("\",")
        .filter(|pair| !pair.is_empty() && !pair.ends_with("=\""))
        .map(|pair| format!("{pair}\""))
        .collect();
    if kept.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", kept.join(","))
    }
}

/// Wait until the last push and a scrape of `/metrics` agree on every series (values rest once the
/// sessions are done); the differences, if they never do.
pub fn push_equals_scrape(
    scrape: impl Fn() -> String,
    last_push: impl Fn() -> Option<ExportMetricsServiceRequest>,
    timeout: std::time::Duration,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let scraped = series(&scrape());
        let pushed = last_push().map(|m| series(&exposition(&m))).unwrap_or_default();
        if scraped == pushed {
            return Vec::new();
        }
        if std::time::Instant::now() > deadline {
            return scraped
                .iter()
                .filter(|(k, v)| pushed.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: scraped {v}, pushed {:?}", pushed.get(k)))
                .chain(pushed.keys().filter(|k| !scraped.contains_key(*k)).map(|k| format!("{k}: only pushed")))
                .collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn number(v: &Option<Number>) -> String {
    match v {
        Some(Number::AsDouble(d)) => format!("{d}"),
        Some(Number::AsInt(i)) => i.to_string(),
        None => "NaN".into(),
    }
}

fn labels(attrs: &[KeyValue], le: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = attrs
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (sanitize(&kv.key), v)
        })
        .collect();
    pairs.extend(le.map(|le| ("le".to_owned(), le.to_owned())));
    if pairs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// The translation as its own documentation states it, and what a unit such as `USD` would do.
#[test]
fn names_translate_as_the_upstream_examples_say() {
    assert_eq!(normalize("http.server.duration", "s", false, false), "http_server_duration_seconds");
    assert_eq!(normalize("requests.count", "1", true, false), "requests_count_total");
    assert_eq!(normalize("memory.usage", "By", false, true), "memory_usage_bytes");
    assert_eq!(normalize("hooktel_cost_usd_total", "{USD}", true, false), "hooktel_cost_usd_total");
    assert_eq!(normalize("hooktel_cost_usd_total", "USD", true, false), "hooktel_cost_usd_USD_total");
    // the GenAI client metrics: the names /metrics serves them under
    assert_eq!(normalize("gen_ai.client.token.usage", "{token}", false, false), "gen_ai_client_token_usage");
    assert_eq!(
        normalize("gen_ai.client.operation.duration", "s", false, false),
        "gen_ai_client_operation_duration_seconds"
    );
    assert_eq!(without_empty_labels(r#"m_bucket{a="",b="x",le="+Inf"}"#), r#"m_bucket{b="x",le="+Inf"}"#);
    assert_eq!(without_empty_labels(r#"m{a=""}"#), "m");
}
