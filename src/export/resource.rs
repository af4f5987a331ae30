//! The resource every exported span and pushed metric carries. Detected: `service.version`,
//! `service.instance.id` (stable for one sidecar: its host, user and data directory),
//! `host.name`, and `user.name` from the password database (`$USER` is unset under systemd and in
//! many containers). Then what the user sets, which detection never overrides:
//! `OTEL_RESOURCE_ATTRIBUTES` (decoded by `outbound`), and `service.name` from `OTEL_SERVICE_NAME`,
//! else that list, else `--service-name` (default `hooktel`).

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::model::semconv;

/// The resource, from what is detected here and what the user set (`user`, `service_name`).
pub(crate) fn resource(
    default_service_name: &str,
    data_dir: &std::path::Path,
    user: &[(String, String)],
    service_name: Option<&str>,
) -> Resource {
    let (host, user_name) = (crate::sys::host_name(), crate::sys::user_name());
    let instance =
        format!("{}:{}:{}", host.as_deref().unwrap_or(""), user_name.as_deref().unwrap_or(""), data_dir.display());
    let instance = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, instance.as_bytes());
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), default_service_name.to_owned()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").to_owned()),
        ("service.instance.id".into(), instance.to_string()),
    ];
    attrs.extend(host.map(|h| ("host.name".to_owned(), h)));
    attrs.extend(user_name.map(|u| ("user.name".to_owned(), u)));
    // what the user set wins, in the order the specification gives
    let mut set = |key: &str, value: &str| match attrs.iter_mut().find(|(k, _)| k == key) {
        Some(kv) => kv.1 = value.to_owned(),
        None => attrs.push((key.to_owned(), value.to_owned())),
    };
    for (k, v) in user {
        set(k, v);
    }
    if let Some(name) = service_name {
        set("service.name", name);
    }
    // the conventions the names follow: a backend can translate them when they change
    Resource::builder_empty()
        .with_schema_url(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)), semconv::SCHEMA_URL)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(r: &Resource, key: &'static str) -> Option<String> {
        r.get(&opentelemetry::Key::from_static_str(key)).map(|v| v.as_str().into_owned())
    }

    #[test]
    fn what_the_user_sets_is_never_overridden_by_what_is_detected() {
        let dir = std::path::Path::new("/data");
        let plain = resource("hooktel", dir, &[], None);
        assert_eq!(get(&plain, "service.name").as_deref(), Some("hooktel"));
        assert!(get(&plain, "host.name").is_some() && get(&plain, "service.instance.id").is_some());
        let user = [
            ("service.name".to_owned(), "agents".to_owned()),
            ("host.name".to_owned(), "ci-runner-7".to_owned()),
            ("service.version".to_owned(), "pinned".to_owned()),
            ("team".to_owned(), "ml platform".to_owned()),
        ];
        let r = resource("hooktel", dir, &user, None);
        assert_eq!(get(&r, "service.name").as_deref(), Some("agents"));
        assert_eq!(get(&r, "host.name").as_deref(), Some("ci-runner-7"));
        assert_eq!(get(&r, "service.version").as_deref(), Some("pinned"));
        assert_eq!(get(&r, "team").as_deref(), Some("ml platform"));
        let r = resource("hooktel", dir, &user, Some("from-otel-service-name"));
        assert_eq!(get(&r, "service.name").as_deref(), Some("from-otel-service-name"));
    }
}
