//! Where one OTLP signal goes and how, as the OpenTelemetry exporter specification defines its
//! variables: the signal's own `OTEL_EXPORTER_OTLP_<SIGNAL>_*` variable, else the general one, else
//! the default; for the endpoint, the signal's URL as is, else the base URL with `v1/<signal>`
//! appended (OTLP/HTTP). Protocol, headers, timeout, compression and certificates the same way.
//!
//! Pure: variables come in through a lookup function, so tests need no environment. A value
//! hooktel cannot honour is a [`SettingError`] naming the variable; header values never appear in
//! one (they hold credentials).

use std::path::PathBuf;
use std::time::Duration;

use crate::model::otlp::Signal;
use crate::model::redact;

/// A lookup of environment variables: the value, trimmed, or `None` when unset or blank.
pub(crate) type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The OTLP wire protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    HttpProtobuf,
    Grpc,
}

impl Protocol {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::Grpc => "grpc",
        }
    }
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
}

/// The certificate files of `OTEL_EXPORTER_OTLP_CERTIFICATE`, `_CLIENT_CERTIFICATE` and `_CLIENT_KEY`
/// (PEM), each with the variable it came from, for error messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The CA certificates to trust instead of the platform's.
    pub(crate) ca: Option<(String, PathBuf)>,
    /// A client certificate chain and its key, for mutual TLS.
    pub(crate) client: Option<((String, PathBuf), (String, PathBuf))>,
}

/// Everything needed to send one signal. Its `Debug` shows the URL redacted and header names only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) signal: Signal,
    pub(crate) protocol: Protocol,
    /// OTLP/HTTP: the full URL (`.../v1/traces`); gRPC: `scheme://host:port`.
    pub(crate) url: String,
    /// Sent with every request; values are credentials, never shown.
    pub(crate) headers: Vec<(String, String)>,
    /// The variable the headers came from (for a fix that names it).
    pub(crate) headers_var: String,
    pub(crate) timeout: Duration,
    pub(crate) compression: Compression,
    pub(crate) tls: TlsFiles,
}

/// A setting hooktel cannot honour.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub(crate) struct SettingError {
    pub(crate) var: String,
    pub(crate) problem: String,
}

pub(crate) fn setting_error(var: &str, problem: impl Into<String>) -> SettingError {
    SettingError { var: var.to_owned(), problem: problem.into() }
}

/// The default timeout of one export, as the specification sets it.
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// The signal's own variable (`OTEL_EXPORTER_OTLP_TRACES_<key>`) or the general one, with its name.
fn either(vars: Vars, signal: Signal, key: &str) -> Option<(String, String)> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_{key}", signal.label().to_ascii_uppercase());
    let general = format!("OTEL_EXPORTER_OTLP_{key}");
    vars(&specific).map(|v| (specific, v)).or_else(|| vars(&general).map(|v| (general, v)))
}

/// Whether an endpoint is configured for `signal`: its own, or the base one.
pub(crate) fn has_endpoint(vars: Vars, signal: Signal) -> bool {
    either(vars, signal, "ENDPOINT").is_some()
}

impl Destination {
    /// The signal's destination from `vars`. Without any endpoint variable, the specification's
    /// default (`http://localhost:4318` or `:4317`): callers that treat "unset" as "off" ask
    /// [`has_endpoint`] first.
    pub(crate) fn resolve(vars: Vars, signal: Signal) -> Result<Destination, SettingError> {
        let protocol = match either(vars, signal, "PROTOCOL") {
            None => Protocol::HttpProtobuf,
            Some((var, v)) => match v.as_str() {
                "http/protobuf" => Protocol::HttpProtobuf,
                "grpc" => Protocol::Grpc,
                "http/json" => {
                    return Err(setting_error(&var, "http/json is not supported: use http/protobuf or grpc"))
                }
                other => {
                    return Err(setting_error(
                        &var,
                        format!("{other:?} is not an OTLP protocol: use http/protobuf or grpc"),
                    ))
                }
            },
        };
        let url = endpoint_url(vars, signal, protocol)?;
        let (headers_var, headers) = match either(vars, signal, "HEADERS") {
            Some((var, list)) => {
                let headers = parse_headers(&list).map_err(|problem| setting_error(&var, problem))?;
                (var, headers)
            }
            None => (format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal.label().to_ascii_uppercase()), Vec::new()),
        };
        let timeout = match either(vars, signal, "TIMEOUT") {
            None => Duration::from_millis(DEFAULT_TIMEOUT_MS),
            Some((var, v)) => millis(&var, &v)?,
        };
        let compression = match either(vars, signal, "COMPRESSION") {
            None => Compression::None,
            Some((var, v)) => match v.to_ascii_lowercase().as_str() {
                "gzip" => Compression::Gzip,
                "none" => Compression::None,
                _ => return Err(setting_error(&var, format!("{v:?}: use gzip or none"))),
            },
        };
        let file = |key: &str| either(vars, signal, key).map(|(var, v)| (var, PathBuf::from(v)));
        let ca = file("CERTIFICATE");
        let client = match (file("CLIENT_CERTIFICATE"), file("CLIENT_KEY")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some((var, _)), None) => {
                return Err(setting_error(
                    &var,
                    "a client certificate needs its key: set OTEL_EXPORTER_OTLP_CLIENT_KEY too",
                ))
            }
            (None, Some((var, _))) => {
                return Err(setting_error(
                    &var,
                    "a client key needs its certificate: set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE too",
                ))
            }
        };
        let tls = TlsFiles { ca, client };
        if url.starts_with("http://") {
            if let Some((var, _)) = tls.ca.as_ref().or(tls.client.as_ref().map(|(c, _)| c)) {
                return Err(setting_error(
                    var,
                    format!("names a certificate, but {} is plain http: use https://", shown(&url)),
                ));
            }
        }
        Ok(Destination { signal, protocol, url, headers, headers_var, timeout, compression, tls })
    }

    /// The URL as logs, `/v1/status` and `doctor` show it: no credentials, no query.
    pub(crate) fn shown(&self) -> String {
        shown(&self.url)
    }

    /// What must never appear in a text about this destination: its header values, and the
    /// userinfo and query keys of its URL.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.headers.iter().map(|(_, v)| v.clone()).collect();
        out.extend(redact::secrets_of_url(&self.url));
        out
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("signal", &self.signal)
            .field("protocol", &self.protocol)
            .field("url", &self.shown())
            .field("headers", &self.headers.iter().map(|(n, _)| format!("{n}: {}", redact::MASK)).collect::<Vec<_>>())
            .field("headers_var", &self.headers_var)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("tls", &self.tls)
            .finish()
    }
}

/// A duration variable in milliseconds, more than 0; below 100 ms it counts as 100 (no TLS handshake
/// to a remote backend completes sooner).
pub(crate) fn millis(var: &str, value: &str) -> Result<Duration, SettingError> {
    match value.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms.max(100))),
        _ => Err(setting_error(var, format!("{value:?}: a number of milliseconds, more than 0"))),
    }
}

/// The signal's URL: `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` as is, else the base endpoint (for
/// OTLP/HTTP with `v1/<signal>` appended), else the default for the protocol. A gRPC endpoint
/// without a scheme is https unless `OTEL_EXPORTER_OTLP_INSECURE` (or the signal's) is true.
fn endpoint_url(vars: Vars, signal: Signal, protocol: Protocol) -> Result<String, SettingError> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.label().to_ascii_uppercase());
    let (var, raw, as_is) = match (vars(&specific), vars("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        (Some(url), _) => (specific, url, true),
        (None, Some(base)) => ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), base, false),
        (None, None) => {
            let default = match protocol {
                Protocol::HttpProtobuf => "http://localhost:4318",
                Protocol::Grpc => "http://localhost:4317",
            };
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), default.to_owned(), false)
        }
    };
    let with_scheme = if raw.starts_with("http://") || raw.starts_with("https://") {
        raw
    } else if raw.contains("://") {
        return Err(setting_error(&var, format!("{}: the scheme must be http or https", shown(&raw))));
    } else if protocol == Protocol::Grpc {
        let insecure = either(vars, signal, "INSECURE").map(|(v, value)| (v, value.to_ascii_lowercase()));
        match insecure.as_ref().map(|(v, value)| (v, value.as_str())) {
            Some((_, "true")) => format!("http://{raw}"),
            None | Some((_, "false")) => format!("https://{raw}"),
            Some((v, other)) => return Err(setting_error(v, format!("{other:?}: use true or false"))),
        }
    } else {
        return Err(setting_error(&var, format!("{}: give the URL with http:// or https://", shown(&raw))));
    };
    let after_scheme = &with_scheme[with_scheme.find("://").map_or(0, |i| i + 3)..];
    let (authority, path) = after_scheme.split_at(after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len()));
    if authority.is_empty() || authority.ends_with('@') {
        return Err(setting_error(&var, format!("{}: no host", shown(&with_scheme))));
    }
    // a raw `/`, `?` or `#` in a password ends the authority early: what is left is no host:port
    // (and a client would send to it); said without repeating any of it
    if !redact::host_port(&authority[authority.rfind('@').map_or(0, |at| at + 1)..]) {
        return Err(setting_error(
            &var,
            format!(
                "{}: no host:port after the scheme (in a user name or password, write / ? # as %2F %3F %23)",
                shown(&with_scheme)
            ),
        ));
    }
    match protocol {
        Protocol::Grpc => {
            if !path.is_empty() && path != "/" {
                return Err(setting_error(
                    &var,
                    format!("{}: a gRPC endpoint has no path (give scheme://host:port)", shown(&with_scheme)),
                ));
            }
            Ok(with_scheme.trim_end_matches('/').to_owned())
        }
        Protocol::HttpProtobuf if as_is => Ok(with_scheme),
        Protocol::HttpProtobuf => {
            if path.contains(['?', '#']) {
                return Err(setting_error(
                    &var,
                    format!("{}: a base URL takes no query (set the signal's own endpoint)", shown(&with_scheme)),
                ));
            }
            Ok(format!("{}/{}", with_scheme.trim_end_matches('/'), signal.http_path()))
        }
    }
}

/// `key=value,key2=value2`, values percent-decoded, as the specification's W3C-baggage-like format;
/// names and values must be valid in an HTTP header. The error never holds a value.
pub(crate) fn parse_headers(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, pair) in list.split(',').enumerate().filter(|(_, p)| !p.trim().is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("entry {} has no '=' (the format is name=value,name2=value2)", i + 1));
        };
        let name = name.trim();
        let value = percent_decode(value.trim()).map_err(|e| format!("the value of {name:?} {e}"))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(format!("entry {} has no valid header name", i + 1));
        }
        if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(format!("the value of {name:?} holds a control character"));
        }
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// `%XX` decoded; the result must be UTF-8.
pub(crate) fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return Err("has a '%' not followed by two hex digits (write %25 for a '%')"),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8 once percent-decoded")
}

/// A URL as it may be shown: [`redact::url`], the one redaction of every endpoint shown.
pub(crate) fn shown(url: &str) -> String {
    redact::url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn resolve(pairs: &[(&str, &str)], signal: Signal) -> Result<Destination, SettingError> {
        Destination::resolve(&vars(pairs), signal)
    }

    #[test]
    fn the_base_endpoint_gets_the_signal_path_and_the_signal_endpoint_is_used_as_is() {
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp")];
        assert_eq!(
            resolve(&base, Signal::Traces).unwrap().url,
            "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp/v1/traces"
        );
        assert_eq!(
            resolve(&base, Signal::Logs).unwrap().url,
            "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp/v1/logs"
        );
        let slash = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")];
        assert_eq!(resolve(&slash, Signal::Metrics).unwrap().url, "http://c:4318/v1/metrics");
        let own = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://x/api/public/otel/v1/traces"),
        ];
        assert_eq!(resolve(&own, Signal::Traces).unwrap().url, "https://x/api/public/otel/v1/traces");
        assert_eq!(resolve(&own, Signal::Logs).unwrap().url, "http://c:4318/v1/logs");
        assert_eq!(resolve(&[], Signal::Metrics).unwrap().url, "http://localhost:4318/v1/metrics");
        assert!(!has_endpoint(&vars(&own[1..]), Signal::Logs) && has_endpoint(&vars(&own[1..]), Signal::Traces));
    }

    #[test]
    fn grpc_endpoints_are_origins_and_insecure_picks_the_scheme_when_none_is_given() {
        let grpc = |endpoint: &str, insecure: Option<&str>| {
            let mut pairs = vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)];
            if let Some(i) = insecure {
                pairs.push(("OTEL_EXPORTER_OTLP_INSECURE", i));
            }
            resolve(&pairs, Signal::Traces).map(|d| d.url)
        };
        assert_eq!(grpc("https://api.honeycomb.io:443/", None), Ok("https://api.honeycomb.io:443".into()));
        assert_eq!(grpc("api.honeycomb.io:443", None), Ok("https://api.honeycomb.io:443".into()));
        assert_eq!(grpc("otel:4317", Some("true")), Ok("http://otel:4317".into()));
        assert!(grpc("otel:4317", Some("yes")).unwrap_err().to_string().contains("OTEL_EXPORTER_OTLP_INSECURE"));
        assert!(grpc("https://otel:4317/v1/traces", None).unwrap_err().problem.contains("no path"));
    }

    #[test]
    fn every_setting_is_per_signal_first_then_general() {
        let d = resolve(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=k1"),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-honeycomb-team=k1,x-honeycomb-dataset=hooktel%20metrics"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
            ],
            Signal::Metrics,
        )
        .unwrap();
        assert_eq!(d.protocol, Protocol::Grpc);
        assert_eq!(d.url, "https://c");
        assert_eq!(
            d.headers,
            [("x-honeycomb-team".into(), "k1".into()), ("x-honeycomb-dataset".into(), "hooktel metrics".into())]
        );
        assert_eq!(d.headers_var, "OTEL_EXPORTER_OTLP_METRICS_HEADERS");
        assert_eq!((d.timeout, d.compression), (Duration::from_millis(2500), Compression::Gzip));
        assert_eq!(d.tls.ca, Some(("OTEL_EXPORTER_OTLP_CERTIFICATE".into(), "/ca.pem".into())));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_naming_the_variable_and_never_a_header_value() {
        let refused = |pairs: &[(&str, &str)]| resolve(pairs, Signal::Traces).unwrap_err().to_string();
        assert!(refused(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")])
            .starts_with("OTEL_EXPORTER_OTLP_COMPRESSION: \"zstd\""));
        assert!(refused(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")]).contains("not supported"));
        assert!(refused(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")]).contains("milliseconds"));
        assert!(refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "otel.corp:4318")]).contains("http:// or https://"));
        assert!(refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://otel.corp")]).contains("http or https"));
        assert!(refused(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")]).contains("needs its certificate"));
        for raw in
            ["http://alice:PA/SS@otel.corp:4318", "http://alice:PA?SS@otel.corp:4318", "http://alice:PA#SS@otel.corp"]
        {
            let e = refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", raw)]);
            assert!(
                e.contains("no host:port") && e.contains("http://***@otel.corp") && !e.contains("PA"),
                "{raw}: {e}"
            );
        }
        assert!(
            resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://alice:PA@SS@otel.corp:4318")], Signal::Traces).is_ok()
        );
        let plain =
            refused(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")]);
        assert!(plain.contains("plain http"), "{plain}");
        for bad in ["Authorization=Basic%ZZsecret", "Authorization", "=secret", "x=se\u{1}cret", "x=secret%0A"] {
            let e = refused(&[("OTEL_EXPORTER_OTLP_HEADERS", bad)]);
            assert!(e.starts_with("OTEL_EXPORTER_OTLP_HEADERS: ") && !e.contains("secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn shown_urls_carry_no_credentials_or_query() {
        assert_eq!(shown("https://user:secret@otel.corp:4318/v1/traces"), "https://***@otel.corp:4318/v1/traces");
        assert_eq!(shown("https://otel.corp/v1/traces?api_key=secret#x"), "https://otel.corp/v1/traces");
        assert_eq!(shown("http://otel:4318/a@b"), "http://otel:4318/a@b", "an @ in the path is no userinfo");
    }
}
