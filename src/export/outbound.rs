//! What leaves the machine, and where, from the OpenTelemetry SDK's variables as its configuration
//! specification defines them: `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`,
//! `OTEL_LOGS_EXPORTER`, the push's interval, timeout and temporality preference,
//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`; each signal's [`Destination`]; and where
//! Claude Code's own telemetry is forwarded (`HOOKTEL_FORWARD_ENDPOINT`, else each signal's own
//! endpoint). hooktel's defaults differ from an SDK's in two places, both because its own store and
//! `/metrics` come first: with no endpoint, spans stay in the local store; without
//! `OTEL_METRICS_EXPORTER=otlp`, metrics are scraped, not pushed.
//!
//! Pure: variables come in through a lookup ([`Vars`]). A value hooktel cannot honour is a
//! [`SettingError`].

use std::time::Duration;

use crate::export::destination::{self, setting_error, Destination, Protocol, SettingError, Vars};
use crate::model::otlp::Signal;

/// How pushed sums and histograms aggregate over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Temporality {
    Cumulative,
    /// Each push carries what changed since the last accepted one (`delta`; also `lowmemory`,
    /// which means delta for counters and histograms, all hooktel pushes besides gauges).
    Delta,
}

/// The metrics push (`OTEL_METRICS_EXPORTER=otlp`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Push {
    pub(crate) dest: Destination,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub(crate) interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT`: one push, all its tries.
    pub(crate) timeout: Duration,
    pub(crate) temporality: Temporality,
}

/// Everything that leaves the machine over OTLP.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outbound {
    /// Where spans go; `None` keeps them in the local store, for the reason in `local_because`.
    pub(crate) traces: Option<Destination>,
    pub(crate) local_because: &'static str,
    pub(crate) push: Option<Push>,
    /// Where Claude Code's telemetry goes on to, per signal.
    pub(crate) forward: Vec<Destination>,
    /// Signals of Claude Code's telemetry that are not forwarded, and why (said once at start).
    pub(crate) not_forwarded: Vec<(Signal, String)>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in order.
    pub(crate) resource: Vec<(String, String)>,
    /// `OTEL_SERVICE_NAME`.
    pub(crate) service_name: Option<String>,
}

/// The variables hooktel reads; any other `OTEL_*` one set is named in a warning at start.
pub(crate) fn honoured(var: &str) -> bool {
    const EXACT: &[&str] = &[
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_METRIC_EXPORT_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    ];
    const PER_SIGNAL: &[&str] = &[
        "ENDPOINT",
        "PROTOCOL",
        "HEADERS",
        "TIMEOUT",
        "COMPRESSION",
        "CERTIFICATE",
        "CLIENT_CERTIFICATE",
        "CLIENT_KEY",
        "INSECURE",
    ];
    if EXACT.contains(&var) {
        return true;
    }
    let Some(rest) = var.strip_prefix("OTEL_EXPORTER_OTLP_") else { return false };
    let rest = ["TRACES_", "METRICS_", "LOGS_"].iter().find_map(|s| rest.strip_prefix(s)).unwrap_or(rest);
    PER_SIGNAL.contains(&rest)
}

/// A list variable of exporter names (`otlp`, `none`, ...), each checked against `allowed`.
fn exporters(vars: Vars, var: &str, allowed: &[&str]) -> Result<Option<Vec<String>>, SettingError> {
    let Some(list) = vars(var) else { return Ok(None) };
    let names: Vec<String> = list.split(',').map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect();
    for n in &names {
        if !allowed.contains(&n.as_str()) {
            return Err(setting_error(
                var,
                format!("{n:?} is not an exporter hooktel has: use {}", allowed.join(" or ")),
            ));
        }
    }
    if names.len() > 1 && names.iter().any(|n| n == "none") {
        return Err(setting_error(var, "none cannot be combined with another exporter"));
    }
    Ok(Some(names))
}

fn flag(vars: Vars, var: &str) -> Result<bool, SettingError> {
    match vars(var).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(setting_error(var, format!("{other:?}: use true or false"))),
    }
}

fn millis(vars: Vars, var: &str, default: u64) -> Result<Duration, SettingError> {
    vars(var).map_or(Ok(Duration::from_millis(default)), |v| destination::millis(var, &v))
}

impl Outbound {
    pub(crate) fn from_vars(vars: Vars) -> Result<Outbound, SettingError> {
        let disabled = flag(vars, "OTEL_SDK_DISABLED")?;
        let traces_exporters = exporters(vars, "OTEL_TRACES_EXPORTER", &["otlp", "none"])?;
        let metrics_exporters = exporters(vars, "OTEL_METRICS_EXPORTER", &["otlp", "prometheus", "none"])?;
        let logs_exporters = exporters(vars, "OTEL_LOGS_EXPORTER", &["otlp", "none"])?;
        let is_none = |e: &Option<Vec<String>>| e.as_deref().is_some_and(|n| n == ["none"]);

        let (traces, local_because) = if disabled {
            (None, "OTEL_SDK_DISABLED=true")
        } else if is_none(&traces_exporters) {
            (None, "OTEL_TRACES_EXPORTER=none")
        } else if !destination::has_endpoint(vars, Signal::Traces) {
            (None, "no OTEL_EXPORTER_OTLP_ENDPOINT")
        } else {
            (Some(Destination::resolve(vars, Signal::Traces)?), "")
        };

        let pushes = metrics_exporters.as_deref().is_some_and(|n| n.iter().any(|e| e == "otlp"));
        let temporality =
            match vars("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE").map(|v| v.to_ascii_lowercase()) {
                None => Temporality::Cumulative,
                Some(v) if v == "cumulative" => Temporality::Cumulative,
                Some(v) if v == "delta" || v == "lowmemory" => Temporality::Delta,
                Some(v) => {
                    return Err(setting_error(
                        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                        format!("{v:?}: use cumulative, delta or lowmemory"),
                    ))
                }
            };
        let push = if pushes && !disabled {
            Some(Push {
                dest: Destination::resolve(vars, Signal::Metrics)?,
                interval: millis(vars, "OTEL_METRIC_EXPORT_INTERVAL", 60_000)?,
                timeout: millis(vars, "OTEL_METRIC_EXPORT_TIMEOUT", 30_000)?,
                temporality,
            })
        } else {
            None
        };

        let mut forward = Vec::new();
        let mut not_forwarded = Vec::new();
        let forward_to = vars("HOOKTEL_FORWARD_ENDPOINT");
        for signal in [Signal::Logs, Signal::Metrics, Signal::Traces] {
            let (switch, exporters) = match signal {
                Signal::Logs => ("OTEL_LOGS_EXPORTER", &logs_exporters),
                Signal::Metrics => ("OTEL_METRICS_EXPORTER", &metrics_exporters),
                Signal::Traces => ("OTEL_TRACES_EXPORTER", &traces_exporters),
            };
            let why_not = if disabled {
                Some("OTEL_SDK_DISABLED=true".to_owned())
            } else if forward_to.as_deref() == Some("off") {
                Some("HOOKTEL_FORWARD_ENDPOINT=off".to_owned())
            } else if is_none(exporters) {
                Some(format!("{switch}=none"))
            } else if forward_to.is_none() && !destination::has_endpoint(vars, signal) {
                Some(format!(
                    "no OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_{}_ENDPOINT",
                    signal.label().to_ascii_uppercase()
                ))
            } else {
                None
            };
            match (why_not, &forward_to) {
                (Some(why), _) => not_forwarded.push((signal, why)),
                (None, Some(base)) => forward.push(forward_override(vars, signal, base)?),
                (None, None) => forward.push(Destination::resolve(vars, signal)?),
            }
        }

        let resource = match vars("OTEL_RESOURCE_ATTRIBUTES") {
            Some(list) => resource_attributes(&list).map_err(|p| setting_error("OTEL_RESOURCE_ATTRIBUTES", p))?,
            None => Vec::new(),
        };
        Ok(Outbound {
            traces,
            local_because,
            push,
            forward,
            not_forwarded,
            resource,
            service_name: vars("OTEL_SERVICE_NAME"),
        })
    }
}

/// `HOOKTEL_FORWARD_ENDPOINT`: an OTLP/HTTP base URL that replaces the signal's endpoint and
/// protocol; its headers, certificates, compression and timeout still apply.
fn forward_override(vars: Vars, signal: Signal, base: &str) -> Result<Destination, SettingError> {
    let endpoint_var = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.label().to_ascii_uppercase());
    let protocol_var = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.label().to_ascii_uppercase());
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(setting_error("HOOKTEL_FORWARD_ENDPOINT", "an OTLP/HTTP base URL (http:// or https://), or off"));
    }
    let url = format!("{}/{}", base.trim_end_matches('/'), signal.http_path());
    let overlay = |k: &str| {
        if k == endpoint_var {
            Some(url.clone())
        } else if k == protocol_var {
            Some(Protocol::HttpProtobuf.name().to_owned())
        } else {
            vars(k)
        }
    };
    Destination::resolve(&overlay, signal).map_err(|e| SettingError {
        var: if e.var == endpoint_var { "HOOKTEL_FORWARD_ENDPOINT".into() } else { e.var },
        problem: e.problem,
    })
}

/// `key=value,key2=value2`, values percent-decoded: the resource attributes the user sets.
fn resource_attributes(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, pair) in list.split(',').enumerate().filter(|(_, p)| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "entry {} ({:?}) has no '=' (the format is key=value,key2=value2)",
                i + 1,
                pair.trim()
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("entry {} has no key", i + 1));
        }
        let value = destination::percent_decode(value.trim()).map_err(|e| format!("the value of {key:?} {e}"))?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(pairs: &[(&str, &str)]) -> Result<Outbound, SettingError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Outbound::from_vars(&move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn no_endpoint_keeps_spans_local_and_forwards_nothing() {
        let o = outbound(&[]).unwrap();
        assert_eq!((o.traces, o.local_because), (None, "no OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert!(o.push.is_none() && o.forward.is_empty());
        assert_eq!(o.not_forwarded.len(), 3);
    }

    #[test]
    fn the_standard_switches_turn_signals_off() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c");
        let off = outbound(&[base, ("OTEL_SDK_DISABLED", "TRUE"), ("OTEL_METRICS_EXPORTER", "otlp")]).unwrap();
        assert_eq!((off.traces.is_none(), off.push.is_none(), off.forward.len()), (true, true, 0));
        assert_eq!(off.local_because, "OTEL_SDK_DISABLED=true");
        let none = outbound(&[base, ("OTEL_TRACES_EXPORTER", "none")]).unwrap();
        assert_eq!(none.local_because, "OTEL_TRACES_EXPORTER=none");
        let signals: Vec<Signal> = none.forward.iter().map(|d| d.signal).collect();
        assert_eq!(signals, [Signal::Logs, Signal::Metrics], "the traces switch also stops forwarded traces");
        let push = outbound(&[base, ("OTEL_METRICS_EXPORTER", "prometheus,otlp")]).unwrap().push.unwrap();
        assert_eq!((push.dest.url.as_str(), push.temporality), ("https://c/v1/metrics", Temporality::Cumulative));
        assert!(outbound(&[base, ("OTEL_METRICS_EXPORTER", "prometheus")]).unwrap().push.is_none());
        for (var, value) in [
            ("OTEL_SDK_DISABLED", "1"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_METRICS_EXPORTER", "console"),
            ("OTEL_TRACES_EXPORTER", "otlp,none"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes"),
        ] {
            let e = outbound(&[base, (var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
    }

    #[test]
    fn delta_and_lowmemory_push_deltas() {
        for (pref, want) in
            [("delta", Temporality::Delta), ("LowMemory", Temporality::Delta), ("cumulative", Temporality::Cumulative)]
        {
            let o = outbound(&[
                ("OTEL_METRICS_EXPORTER", "otlp"),
                ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", pref),
            ]);
            assert_eq!(o.unwrap().push.unwrap().temporality, want, "{pref}");
        }
    }

    #[test]
    fn forwarding_follows_each_signals_own_endpoint_and_says_why_not() {
        let only_traces =
            outbound(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://l/api/public/otel/v1/traces")]).unwrap();
        assert_eq!(only_traces.forward.len(), 1);
        assert_eq!(only_traces.forward[0].url, "https://l/api/public/otel/v1/traces");
        let why: Vec<&str> = only_traces.not_forwarded.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(
            why,
            [
                "no OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "no OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
            ]
        );
        let grpc = outbound(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=v"),
        ])
        .unwrap();
        assert!(grpc
            .forward
            .iter()
            .all(|d| d.protocol == Protocol::Grpc && d.headers.len() == 1 && d.url == "https://c:4317"));
        let over = outbound(&[
            ("HOOKTEL_FORWARD_ENDPOINT", "https://f/otlp/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ])
        .unwrap();
        let urls: Vec<&str> = over.forward.iter().map(|d| d.url.as_str()).collect();
        assert_eq!(urls, ["https://f/otlp/v1/logs", "https://f/otlp/v1/metrics", "https://f/otlp/v1/traces"]);
        assert!(over
            .forward
            .iter()
            .all(|d| d.protocol == Protocol::HttpProtobuf && d.compression == destination::Compression::Gzip));
        let off =
            outbound(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c"), ("HOOKTEL_FORWARD_ENDPOINT", "off")]).unwrap();
        assert!(off.forward.is_empty() && off.not_forwarded.iter().all(|(_, w)| w == "HOOKTEL_FORWARD_ENDPOINT=off"));
    }

    #[test]
    fn resource_attributes_are_percent_decoded_or_refused_whole() {
        let o = outbound(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=ml%20platform, service.name=agents,deployment.environment=prod",
        )]);
        let r = o.unwrap().resource;
        assert_eq!(r[0], ("team".into(), "ml platform".into()));
        assert_eq!(r[1], ("service.name".into(), "agents".into()));
        assert_eq!(r.len(), 3);
        for bad in ["team", "=x", "team=%E2%28"] {
            assert_eq!(
                outbound(&[("OTEL_RESOURCE_ATTRIBUTES", bad)]).unwrap_err().var,
                "OTEL_RESOURCE_ATTRIBUTES",
                "{bad}"
            );
        }
    }

    #[test]
    fn every_variable_read_is_known_and_others_are_not() {
        for v in [
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_SDK_DISABLED",
            "OTEL_EXPORTER_OTLP_LOGS_INSECURE",
        ] {
            assert!(honoured(v), "{v}");
        }
        for v in
            ["OTEL_TRACES_SAMPLER", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_EXPORTER_OTLP_SPANS_ENDPOINT", "OTEL_PROPAGATORS"]
        {
            assert!(!honoured(v), "{v}");
        }
    }
}
