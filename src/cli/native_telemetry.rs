//! `hooktel install --native-telemetry`: the `env` block of a Claude Code settings file that sends
//! Claude Code's own telemetry (its OTLP logs, metrics and beta trace spans) to the sidecar's
//! receiver, so that model calls are timed by Claude Code's `api_request` events and tool calls get
//! their permission wait and execution time. Never `OTEL_LOG_USER_PROMPTS`. Telemetry
//! the user already sends elsewhere is left alone (and said); what hooktel wrote carries a marker
//! variable, and `uninstall` removes exactly that.

use serde_json::{Map, Value};

/// Marks the variables hooktel wrote; Claude Code passes it on to nothing that reads it.
pub(crate) const MARKER: &str = "HOOKTEL_NATIVE_TELEMETRY";

/// Variables that route Claude Code's telemetry: when the file sets any without hooktel's marker,
/// the user sends it somewhere already.
const ROUTING: &[&str] = &[
    "CLAUDE_CODE_ENABLE_TELEMETRY",
    "OTEL_LOGS_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// The variables, for a receiver at `base` (`http://127.0.0.1:4387`).
fn wanted(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1".into()),
        ("OTEL_LOGS_EXPORTER", "otlp".into()),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", format!("{base}/v1/logs")),
        // every second rather than every 5 s: model calls wait for their report (HOOKTEL_NATIVE_SETTLE_MS)
        ("OTEL_LOGS_EXPORT_INTERVAL", "1000".into()),
        ("OTEL_METRICS_EXPORTER", "otlp".into()),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("{base}/v1/metrics")),
        // the beta trace spans: a tool call's permission wait, measured (hooktel drops the spans)
        ("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1".into()),
        ("OTEL_TRACES_EXPORTER", "otlp".into()),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("{base}/v1/traces")),
        ("OTEL_TRACES_EXPORT_INTERVAL", "1000".into()),
        (MARKER, "1".into()),
    ]
}

/// What `enable` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Enabled {
    /// Variables set (new or changed).
    Set(Vec<String>),
    Unchanged,
    /// The file routes Claude Code's telemetry already (the variable and its value, to say so).
    LeftAlone(String),
}

/// Point Claude Code's telemetry at the receiver at `base`, in the settings' `env` object.
pub(crate) fn enable(root: &mut Map<String, Value>, base: &str) -> Enabled {
    let env = root.entry("env").or_insert_with(|| Value::Object(Map::new()));
    let Some(env) = env.as_object_mut() else { return Enabled::LeftAlone("`env` is not an object".into()) };
    if let Some(route) = routed_elsewhere(env) {
        return Enabled::LeftAlone(route);
    }
    let mut set = Vec::new();
    for (k, v) in wanted(base) {
        if env.get(k).and_then(Value::as_str) != Some(v.as_str()) {
            env.insert(k.to_owned(), Value::String(v));
            set.push(k.to_owned());
        }
    }
    if set.is_empty() {
        Enabled::Unchanged
    } else {
        Enabled::Set(set)
    }
}

/// Remove what `enable` wrote (only where its marker is), and `env` if that leaves it empty.
pub(crate) fn disable(root: &mut Map<String, Value>) -> Vec<String> {
    let Some(env) = root.get_mut("env").and_then(Value::as_object_mut) else { return Vec::new() };
    if !env.contains_key(MARKER) {
        return Vec::new();
    }
    let mut removed = Vec::new();
    for (k, _) in wanted("") {
        if env.shift_remove(k).is_some() {
            removed.push(k.to_owned());
        }
    }
    if env.is_empty() {
        root.shift_remove("env");
    }
    removed
}

/// Where a settings file sends Claude Code's telemetry when it is not to hooktel, for `doctor`.
pub(crate) fn elsewhere(root: &Map<String, Value>) -> Option<String> {
    routed_elsewhere(root.get("env")?.as_object()?)
}

/// The first variable of an `env` object that routes Claude Code's telemetry, as `VAR=value` (an
/// endpoint redacted: it may carry credentials), unless hooktel's marker says the routing is hooktel's.
fn routed_elsewhere(env: &Map<String, Value>) -> Option<String> {
    if env.contains_key(MARKER) {
        return None;
    }
    env.iter()
        .find(|(k, _)| ROUTING.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", crate::model::redact::url(v.as_str().unwrap_or("?"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "http://127.0.0.1:4387";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn enabled_once_then_unchanged_then_removed_exactly() {
        let mut root = obj(json!({"env": {"MY_VAR": "keep"}, "model": "opus"}));
        let Enabled::Set(set) = enable(&mut root, BASE) else { panic!() };
        assert_eq!(set.len(), 14);
        assert_eq!(root["env"]["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"], "http://127.0.0.1:4387/v1/logs");
        assert_eq!(root["env"]["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], "http://127.0.0.1:4387/v1/traces");
        assert!(!root["env"].as_object().unwrap().contains_key("OTEL_LOG_USER_PROMPTS"));
        assert_eq!(enable(&mut root, BASE), Enabled::Unchanged);
        assert_eq!(disable(&mut root).len(), 14);
        assert_eq!(root, obj(json!({"env": {"MY_VAR": "keep"}, "model": "opus"})));
        // an env object only hooktel's goes with them
        let mut root = obj(json!({}));
        enable(&mut root, BASE);
        disable(&mut root);
        assert_eq!(root, obj(json!({})));
    }

    #[test]
    fn telemetry_sent_elsewhere_is_left_alone_and_told() {
        let theirs = json!({"env": {"CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.corp:4318"}});
        let mut root = obj(theirs.clone());
        assert!(matches!(enable(&mut root, BASE), Enabled::LeftAlone(_)));
        assert_eq!(root, obj(theirs.clone()));
        assert!(disable(&mut root).is_empty(), "not hooktel's to remove");
        assert_eq!(elsewhere(&root).as_deref(), Some("CLAUDE_CODE_ENABLE_TELEMETRY=1"));
        let mut ours = obj(json!({}));
        enable(&mut ours, BASE);
        assert_eq!(elsewhere(&ours), None);
    }
}
