//! The OpenMetrics text exposition (1.0.0) of the gathered registry, with exemplars: what `/metrics`
//! answers a scraper that asks for it (`Accept: application/openmetrics-text`); everyone else gets
//! the classic text. Names, labels and values are the classic text's, so a series is the same
//! whichever format scraped it: a counter family is typed under its name without `_total` and its
//! sample keeps the name, and a bucket's `le` is spelled as the classic text spells it (`1`, not
//! `1.0`), as a label value is matched as text.
//!
//! Prometheus refuses a whole scrape for one malformed line, so this must be exact: escapes, `+Inf`,
//! an exemplar's label set within 128 characters, `# EOF` last.

use std::fmt::Write;

use prometheus::proto::{LabelPair, MetricFamily, MetricType};

use crate::metrics::exemplars::{Exemplar, ExemplarSet};

/// The content type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Media ranges of an `Accept` header looked at; a scraper lists a handful.
const MAX_RANGES: usize = 32;

/// Whether an `Accept` header prefers OpenMetrics: it names `application/openmetrics-text` with a
/// quality above 0 and no lower than the classic text's (`text/plain`, `text/*`, `*/*`).
/// Prometheus asks `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...`.
pub(crate) fn prefers_openmetrics(accept: &str) -> bool {
    let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
    for range in accept.split(',').take(MAX_RANGES) {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(1.0);
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            openmetrics = openmetrics.max(q);
        } else if ["text/plain", "text/*", "*/*"].iter().any(|m| media.eq_ignore_ascii_case(m)) {
            text = text.max(q);
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

/// The exposition of `families`, each series with its exemplar from `exemplars` where it has one.
pub(crate) fn render(families: &[MetricFamily], exemplars: &ExemplarSet) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for f in families {
        family(&mut out, f, exemplars);
    }
    out.push_str("# EOF\n");
    out
}

fn family(out: &mut String, f: &MetricFamily, exemplars: &ExemplarSet) {
    let name = f.name();
    let (family_name, kind) = match f.get_field_type() {
        MetricType::COUNTER => match name.strip_suffix("_total") {
            Some(stem) => (stem, "counter"),
            // an OpenMetrics counter's sample must end in `_total`; keep the name, drop the type
            None => (name, "unknown"),
        },
        MetricType::GAUGE => (name, "gauge"),
        MetricType::HISTOGRAM => (name, "histogram"),
        // hooktel registers no summaries or untyped metrics
        _ => return,
    };
    out.push_str("# HELP ");
    out.push_str(family_name);
    out.push(' ');
    escaped(out, f.help());
    out.push_str("\n# TYPE ");
    out.push_str(family_name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
    for m in f.get_metric() {
        let labels = m.get_label();
        let exemplar = exemplars.of(name, labels);
        match f.get_field_type() {
            MetricType::COUNTER => {
                sample(out, name, labels, None, m.get_counter().get_value(), exemplar.filter(|_| kind == "counter"))
            }
            MetricType::HISTOGRAM => {
                let h = m.get_histogram();
                // the exemplar goes on the bucket its observation fell in
                let mut placed = exemplar;
                for b in h.get_bucket().iter().filter(|b| b.upper_bound().is_finite()) {
                    let here = placed.filter(|e| e.value <= b.upper_bound());
                    placed = placed.filter(|_| here.is_none());
                    let le = b.upper_bound().to_string();
                    sample(out, &bucket(name), labels, Some(&le), b.cumulative_count() as f64, here);
                }
                sample(out, &bucket(name), labels, Some("+Inf"), h.get_sample_count() as f64, placed);
                sample(out, &format!("{name}_sum"), labels, None, h.get_sample_sum(), None);
                sample(out, &format!("{name}_count"), labels, None, h.get_sample_count() as f64, None);
            }
            _ => sample(out, name, labels, None, m.get_gauge().get_value(), None),
        }
    }
}

fn bucket(name: &str) -> String {
    format!("{name}_bucket")
}

/// One sample line: `name{labels} value`, then ` # {trace_id="...",span_id="..."} value timestamp`.
fn sample(out: &mut String, name: &str, labels: &[LabelPair], le: Option<&str>, value: f64, ex: Option<&Exemplar>) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        let mut sep = '{';
        for l in labels {
            out.push(sep);
            out.push_str(l.name());
            out.push_str("=\"");
            escaped(out, l.value());
            out.push('"');
            sep = ',';
        }
        if let Some(le) = le {
            out.push(sep);
            out.push_str("le=\"");
            out.push_str(le);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    number(out, value);
    if let Some(ex) = ex {
        // 63 characters of labels: within the 128 OpenMetrics allows
        let _ = write!(out, " # {{trace_id=\"{}\",span_id=\"{}\"}} ", ex.trace_id, ex.span_id);
        number(out, ex.value);
        let _ = write!(out, " {}.{:09}", ex.at_ns / 1_000_000_000, ex.at_ns % 1_000_000_000);
    }
    out.push('\n');
}

/// A number as OpenMetrics spells it: `NaN`, `+Inf`, `-Inf`, else the classic text's digits.
fn number(out: &mut String, v: f64) {
    match v {
        v if v.is_nan() => out.push_str("NaN"),
        v if v == f64::INFINITY => out.push_str("+Inf"),
        v if v == f64::NEG_INFINITY => out.push_str("-Inf"),
        v => {
            let _ = write!(out, "{v}");
        }
    }
}

/// A label value or help text with `\`, `"` and line feeds escaped.
fn escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exemplars::Exemplars;
    use crate::metrics::Metrics;
    use opentelemetry::trace::{SpanId, TraceId};

    const TRACE: &str = "2cfb142e3e2c45c5819258e43d4a510f";
    const SPAN: &str = "00f067aa0ba902b7";

    fn ex(value: f64) -> Exemplar {
        Exemplar {
            trace_id: TraceId::from_hex(TRACE).unwrap(),
            span_id: SpanId::from_hex(SPAN).unwrap(),
            value,
            at_ns: 1_765_000_000_250_000_000,
        }
    }

    #[test]
    fn prometheus_and_openmetrics_clients_get_openmetrics_others_the_classic_text() {
        // Prometheus 2.x's scrape Accept header
        assert!(prefers_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(prefers_openmetrics("application/openmetrics-text"));
        assert!(prefers_openmetrics("Application/OpenMetrics-Text; version=1.0.0"));
        for classic in [
            "",
            "*/*",
            "text/plain",
            "text/plain;version=0.0.4",
            "application/openmetrics-text;q=0",
            "application/openmetrics-text;q=0.2, text/plain",
            "application/json",
        ] {
            assert!(!prefers_openmetrics(classic), "{classic}");
        }
        // a hostile header is read only so far, and never panics
        assert!(!prefers_openmetrics(&format!("{}application/openmetrics-text", "x,".repeat(10_000))));
        assert!(prefers_openmetrics("application/openmetrics-text;q=nonsense"));
    }

    /// The exposition of counters, a gauge and a histogram with exemplars, exactly.
    #[test]
    fn renders_openmetrics_with_exemplars() {
        let m = Metrics::new(false, false);
        m.tool_calls.with_label_values(&["claude-code", "Bash", "ok", ""]).inc_by(2);
        m.tool_calls.with_label_values(&["claude-code", "Read", "ok", ""]).inc();
        m.tool_duration.with_label_values(&["Bash", ""]).observe(0.3);
        m.tool_duration.with_label_values(&["Bash", ""]).observe(7200.0);
        m.sessions_active.set(1);
        m.ingest_rejected.with_label_values(&["a \"quoted\\ \n value"]).inc();
        let e = Exemplars::default();
        e.offer("hooktel_tool_calls_total", &[("tool", "Bash"), ("status", "ok"), ("agent", "claude-code")], ex(1.0));
        e.offer("hooktel_tool_duration_seconds", &[("tool", "Bash")], ex(0.3));
        let families: Vec<_> = m
            .families()
            .into_iter()
            .filter(|f| {
                ["hooktel_tool_calls_total", "hooktel_tool_duration_seconds", "hooktel_sessions_active"]
                    .contains(&f.name())
                    || f.name() == "hooktel_ingest_rejected_total"
            })
            .collect();
        let text = render(&families, &e.snapshot());
        let ex_of = |v: &str| format!(" # {{trace_id=\"{TRACE}\",span_id=\"{SPAN}\"}} {v} 1765000000.250000000");
        let want = [
            "# HELP hooktel_ingest_rejected Requests refused, by reason.".to_owned(),
            "# TYPE hooktel_ingest_rejected counter".into(),
            r#"hooktel_ingest_rejected_total{reason="a \"quoted\\ \n value"} 1"#.into(),
            "# HELP hooktel_sessions_active Sessions with an open root span.".into(),
            "# TYPE hooktel_sessions_active gauge".into(),
            "hooktel_sessions_active 1".into(),
            "# TYPE hooktel_tool_calls counter".into(),
            format!(
                r#"hooktel_tool_calls_total{{agent="claude-code",mcp_server="",status="ok",tool="Bash"}} 2{}"#,
                ex_of("1")
            ),
            r#"hooktel_tool_calls_total{agent="claude-code",mcp_server="",status="ok",tool="Read"} 1"#.into(),
            "# TYPE hooktel_tool_duration_seconds histogram".into(),
            r#"hooktel_tool_duration_seconds_bucket{mcp_server="",tool="Bash",le="0.25"} 0"#.into(),
            format!(r#"hooktel_tool_duration_seconds_bucket{{mcp_server="",tool="Bash",le="0.5"}} 1{}"#, ex_of("0.3")),
            r#"hooktel_tool_duration_seconds_bucket{mcp_server="",tool="Bash",le="1"} 1"#.into(),
            r#"hooktel_tool_duration_seconds_bucket{mcp_server="",tool="Bash",le="3600"} 1"#.into(),
            r#"hooktel_tool_duration_seconds_bucket{mcp_server="",tool="Bash",le="+Inf"} 2"#.into(),
            r#"hooktel_tool_duration_seconds_sum{mcp_server="",tool="Bash"} 7200.3"#.into(),
            r#"hooktel_tool_duration_seconds_count{mcp_server="",tool="Bash"} 2"#.into(),
        ];
        let lines: Vec<&str> = text.lines().collect();
        for w in &want {
            assert!(lines.contains(&w.as_str()), "missing line {w}\nin:\n{text}");
        }
        // every line's place: HELP, TYPE, then the family's samples; EOF once, last
        let order: Vec<usize> = want.iter().map(|w| lines.iter().position(|l| l == w).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("\n# EOF\n"), "{text}");
        // one exemplar per series; the histogram's on one bucket only
        assert_eq!(text.matches(" # {").count(), 2, "{text}");
    }

    /// The exemplar of an observation past every bound goes on `+Inf`; a label set stays within 128
    /// characters; numbers are OpenMetrics numbers.
    #[test]
    fn exemplar_edges_and_numbers() {
        let m = Metrics::new(false, false);
        m.tool_duration.with_label_values(&["Bash", ""]).observe(7200.0);
        m.last_event_timestamp.set(f64::INFINITY);
        let e = Exemplars::default();
        e.offer("hooktel_tool_duration_seconds", &[("tool", "Bash")], ex(7200.0));
        let text = render(&m.families(), &e.snapshot());
        let inf = text.lines().find(|l| l.contains("le=\"+Inf\"")).unwrap();
        assert!(inf.contains(&format!("trace_id=\"{TRACE}\"")), "{text}");
        assert!(text.contains("hooktel_last_event_timestamp_seconds +Inf\n"), "{text}");
        let set = inf.split(" # ").nth(1).unwrap().split('}').next().unwrap();
        assert!(set.chars().count() < 128, "{set}");
        let mut out = String::new();
        number(&mut out, f64::NAN);
        out.push(' ');
        number(&mut out, f64::NEG_INFINITY);
        out.push(' ');
        number(&mut out, 0.5);
        assert_eq!(out, "NaN -Inf 0.5");
    }

    /// The series and values are the classic text's: only comments, exemplars and `# EOF` differ.
    #[test]
    fn the_samples_are_the_classic_texts() {
        let m = Metrics::new(true, false);
        m.hook_event("Stop", 5.0);
        m.tool_duration.with_label_values(&["Bash", ""]).observe(0.3);
        m.cost.with_label_values(&["claude-code", "claude-opus-5-5", "api"]).inc_by(0.125);
        let samples = |t: &str| -> Vec<String> {
            t.lines().filter(|l| !l.starts_with('#')).map(|l| l.split(" # ").next().unwrap().to_owned()).collect()
        };
        let classic = String::from_utf8(m.render()).unwrap();
        let open = render(&m.families(), &ExemplarSet::default());
        assert_eq!(samples(&open), samples(&classic));
    }
}
