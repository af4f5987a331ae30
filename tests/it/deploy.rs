//! The deployment files (deploy/, dashboards/, the root Dockerfile) checked with the tools that exist
//! here; there is no Docker engine, Grafana, Jaeger, Collector or Kubernetes API server on this machine.
//!
//! - every YAML (all documents) and JSON file parses;
//! - docker-compose.yml: what it mounts and builds exists in the repository, `depends_on` names services,
//!   the in-stack URLs (OTLP endpoint, scrape targets, data sources) name services, and the file passes the
//!   compose-spec JSON schema (check-jsonschema's bundled copy);
//! - otel-collector.yaml: pipelines use only components it defines, and it defines none it does not use;
//! - Prometheus: `promtool check rules`, `promtool test rules` (every alert must have a firing and a
//!   not-firing case), `promtool check config` (rule_files must match files);
//! - systemd: `systemd-analyze --user verify` where it runs, else the unit's keys by parsing (said in the
//!   output); launchd: the plist through Python's plistlib;
//! - Kubernetes: objects well formed, names unique, mounts and references resolved, the sidecar's probes,
//!   limits and security context; then kubernetes-validate --strict (the API schemas, offline);
//! - the Dockerfile's shape, and its HEALTHCHECK command run against a real sidecar.
//!
//! Tools come from `scripts/install-test-deps.sh`; a missing one fails the test, naming that script.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use serde::Deserialize;
use serde_json::Value as Json;

const DEPS_HINT: &str = "run scripts/install-test-deps.sh";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dir` (recursively) whose name ends with one of `exts`, sorted.
fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if exts.iter().any(|x| path.to_string_lossy().ends_with(x)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every document of a YAML file, as JSON values (all our files have string keys).
fn yaml_docs(p: &Path) -> Vec<Json> {
    let text = read(p);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Json::deserialize(doc).unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", rel(p))))
        .collect()
}

fn yaml(p: &Path) -> Json {
    let mut docs = yaml_docs(p);
    assert_eq!(docs.len(), 1, "{}: one YAML document expected", rel(p));
    docs.remove(0)
}

/// Run a command with a deadline; `Err` when it cannot start (not installed).
fn run(program: &Path, args: &[&str], env: &[(&str, &Path)], cwd: &Path) -> std::io::Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pipe(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = pipe(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} still running after 120 s, killed", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() })
}

/// Run a tool the test needs: not installed fails, naming the install script.
fn tool(program: impl AsRef<Path>, args: &[&str], cwd: &Path) -> (bool, String) {
    let program = program.as_ref();
    let out = run(program, args, &[], cwd).unwrap_or_else(|e| {
        panic!("cannot run {} ({e}): {DEPS_HINT}", program.display());
    });
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("$ {} {}\n{}", program.display(), args.join(" "), said.trim_end());
    (out.status.success(), said)
}

fn venv_tool(name: &str) -> PathBuf {
    let dir =
        std::env::var_os("HOOKTEL_TEST_DEPS").map(PathBuf::from).unwrap_or_else(|| root().join("target/test-deps"));
    let path = dir.join("py-venv/bin").join(name);
    assert!(path.is_file(), "{} is not installed at {}: {DEPS_HINT}", name, path.display());
    path
}

fn str_list(v: &Json) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// The host of a URL or `host:port`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', ':']).next().unwrap_or_default()
}

#[test]
fn every_yaml_and_json_file_parses() {
    let mut n = 0;
    for dir in ["deploy", "dashboards"] {
        for p in files_under(&root().join(dir), &[".yml", ".yaml"]) {
            let text = read(&p);
            let docs: Vec<serde_norway::Value> = serde_norway::Deserializer::from_str(&text)
                .map(|d| serde_norway::Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", rel(&p))))
                .collect();
            assert!(!docs.is_empty() && docs.iter().all(|d| !d.is_null()), "{}: empty YAML", rel(&p));
            println!("yaml ok: {} ({} document(s))", rel(&p), docs.len());
            n += 1;
        }
    }
    let jsons = files_under(&root().join("dashboards"), &[".json"]);
    assert!(!jsons.is_empty(), "no dashboard JSON under dashboards/");
    for p in &jsons {
        let v: Json = serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: not JSON: {e}", rel(p)));
        assert!(v["panels"].is_array() && v["uid"].is_string(), "{}: not a Grafana dashboard", rel(p));
        println!("json ok: {}", rel(p));
    }
    assert!(n >= 10, "expected the deploy and dashboard YAML files, found {n}");
}

#[test]
fn dashboards_use_the_datasource_variable_and_are_provisioned() {
    let dir = root().join("dashboards");
    for p in files_under(&dir, &[".json"]) {
        let d: Json = serde_json::from_str(&read(&p)).unwrap();
        let vars = d["templating"]["list"].as_array().expect("templating");
        assert!(
            vars.iter().any(|v| v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus"),
            "{}: needs a Prometheus `datasource` variable",
            rel(&p)
        );
        let schema = d["schemaVersion"].as_u64().unwrap_or(0);
        assert!((36..=41).contains(&schema), "{}: schemaVersion {schema}", rel(&p));
        let mut ids = BTreeSet::new();
        let mut panels: Vec<&Json> = d["panels"].as_array().unwrap().iter().collect();
        while let Some(panel) = panels.pop() {
            assert!(ids.insert(panel["id"].as_u64().expect("panel id")), "{}: duplicate panel id", rel(&p));
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            for t in panel["targets"].as_array().into_iter().flatten() {
                assert_eq!(
                    t["datasource"]["uid"],
                    "${datasource}",
                    "{}: panel `{}` must query the $datasource variable",
                    rel(&p),
                    panel["title"]
                );
            }
        }
        // time series of the series that carry exemplars show them: a point opens its session's trace
        let mut with_exemplars = 0;
        let mut panels: Vec<&Json> = d["panels"].as_array().unwrap().iter().collect();
        while let Some(panel) = panels.pop() {
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            for t in panel["targets"].as_array().into_iter().flatten().filter(|_| panel["type"] == "timeseries") {
                let expr = t["expr"].as_str().unwrap_or_default();
                if EXEMPLAR_FAMILIES.iter().any(|f| expr.contains(f)) {
                    assert_eq!(t["exemplar"], true, "{}: panel `{}` must show exemplars", rel(&p), panel["title"]);
                    with_exemplars += 1;
                }
            }
        }
        assert!(with_exemplars >= 5, "{}: {with_exemplars} queries show exemplars", rel(&p));
        // the session → trace links: Jaeger search by session.id and the direct trace link
        let links = serde_json::to_string(&d["links"]).unwrap();
        assert!(links.contains("/search?service=${service}&tags=%7B%22session.id%22%3A%22${session}%22%7D"), "{links}");
        assert!(links.contains("/trace/${trace_id}"), "{links}");
    }
    let providers = yaml(&dir.join("provisioning/dashboards.yml"));
    assert_eq!(providers["apiVersion"], 1);
    assert!(providers["providers"][0]["options"]["path"].is_string());
    let sources = yaml(&dir.join("provisioning/datasources.yml"));
    let types: BTreeSet<&str> =
        sources["datasources"].as_array().unwrap().iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(types, BTreeSet::from(["jaeger", "prometheus"]), "provisioned data sources");
    // an exemplar's trace_id opens the trace in the provisioned tracing data source
    let of_type = |t: &str| sources["datasources"].as_array().unwrap().iter().find(|s| s["type"] == t).unwrap();
    let destinations = of_type("prometheus")["jsonData"]["exemplarTraceIdDestinations"].as_array().expect("exemplars");
    assert!(
        destinations.iter().any(|d| d["name"] == "trace_id" && d["datasourceUid"] == of_type("jaeger")["uid"]),
        "exemplarTraceIdDestinations: {destinations:?}"
    );
}

/// The metric families whose series carry the `agent` label (docs/metrics.md).
pub(crate) const AGENT_FAMILIES: &[&str] = &[
    "hooktel_tokens_total",
    "hooktel_cost_usd_total",
    "hooktel_unpriced_tokens_total",
    "hooktel_tool_calls_total",
    "hooktel_pull_requests_total",
    "hooktel_branch_cost_usd_total",
    "hooktel_mcp_cost_usd_total",
    "hooktel_turns_total",
    "hooktel_sessions_started_total",
    "hooktel_sessions_ended_total",
];

/// The selectors (`{...}`) of `family` in a PromQL expression: each place its name stands whole.
pub(crate) fn selectors<'a>(expr: &'a str, family: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (at, _) in expr.match_indices(family) {
        let whole = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        let rest = &expr[at + family.len()..];
        if !whole(expr[..at].chars().next_back()) || !whole(rest.chars().next()) {
            continue;
        }
        out.push(rest.strip_prefix('{').and_then(|r| r.split_once('}')).map_or("", |(inside, _)| inside));
    }
    out
}

/// The `agent` variable: the agents' names, several at once or All (which also matches series scraped
/// before the label existed); every panel query of a family that carries `agent` filters by it.
#[test]
fn dashboards_filter_by_agent_wherever_the_metric_has_it() {
    for p in files_under(&root().join("dashboards"), &[".json"]) {
        let d: Json = serde_json::from_str(&read(&p)).unwrap();
        let vars = d["templating"]["list"].as_array().unwrap();
        let agent =
            vars.iter().find(|v| v["name"] == "agent").unwrap_or_else(|| panic!("{}: no agent variable", rel(&p)));
        assert_eq!(
            (agent["type"].as_str(), agent["multi"].as_bool(), agent["includeAll"].as_bool()),
            (Some("query"), Some(true), Some(true))
        );
        assert_eq!(agent["allValue"], ".*", "{}: All must match series without the label", rel(&p));
        let query = agent["query"]["query"].as_str().unwrap();
        assert_eq!(agent["definition"].as_str(), Some(query));
        assert!(
            query.starts_with("label_values(")
                && query.ends_with(", agent)")
                && AGENT_FAMILIES.iter().any(|f| query.contains(f)),
            "{}: the agent variable takes the label's values of a family that carries it: {query}",
            rel(&p)
        );
        let mut filtered = 0;
        let mut panels: Vec<&Json> = d["panels"].as_array().unwrap().iter().collect();
        while let Some(panel) = panels.pop() {
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            for t in panel["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default();
                for family in AGENT_FAMILIES {
                    for inside in selectors(expr, family) {
                        assert!(
                            inside.contains(r#"agent=~"$agent""#),
                            "{}: panel `{}` selects {family} without agent=~\"$agent\": {expr}",
                            rel(&p),
                            panel["title"]
                        );
                        filtered += 1;
                    }
                }
                // and no family without the label is filtered by it (it would match nothing)
                let unlabelled = expr.matches(r#"agent=~"$agent""#).count();
                let labelled: usize = AGENT_FAMILIES.iter().map(|f| selectors(expr, f).len()).sum();
                assert_eq!(
                    unlabelled,
                    labelled,
                    "{}: panel `{}` filters a family without agent: {expr}",
                    rel(&p),
                    panel["title"]
                );
            }
        }
        assert!(filtered >= 30, "{}: {filtered} selectors filtered by agent", rel(&p));
    }
    assert_eq!(
        selectors(r#"sum(hooktel_team_tokens_total{a="b"}) / hooktel_tokens_total{c="d"}"#, "hooktel_tokens_total"),
        [r#"c="d""#]
    );
}

/// The metric families whose series carry exemplars (`trace_id`, `span_id`) in OpenMetrics.
const EXEMPLAR_FAMILIES: &[&str] =
    &["hooktel_tokens_total", "hooktel_cost_usd_total", "hooktel_tool_calls_total", "hooktel_tool_duration_seconds"];

#[test]
fn compose_references_resolve() {
    let deploy = root().join("deploy");
    let compose_path = deploy.join("docker-compose.yml");
    let compose = yaml(&compose_path);
    let services = compose["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    let volumes: BTreeSet<&str> =
        compose["volumes"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    // bind mounts of the user's own files, outside the repository: what hooktel must read and share
    let host_paths = BTreeSet::from(["${HOME}/.local/share/hooktel", "${HOME}/.claude/projects"]);
    let mut mounts: BTreeMap<String, PathBuf> = BTreeMap::new(); // container path -> repository path
    for (name, svc) in services {
        if let Some(build) = svc.get("build") {
            let context = deploy.join(build["context"].as_str().expect("build.context"));
            assert!(context.is_dir(), "{name}: build context {} is not a directory", context.display());
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(dockerfile.is_file(), "{name}: no Dockerfile at {}", dockerfile.display());
        } else {
            let image = svc["image"].as_str().unwrap_or_else(|| panic!("{name}: neither build nor image"));
            assert!(image.contains(':') && !image.ends_with(":latest"), "{name}: pin the image tag: {image}");
        }
        let deps = match &svc["depends_on"] {
            Json::Array(_) => str_list(&svc["depends_on"]),
            Json::Object(m) => m.keys().cloned().collect(),
            _ => vec![],
        };
        for d in deps {
            assert!(names.contains(d.as_str()), "{name}: depends_on {d}, which is not a service");
        }
        for v in svc["volumes"].as_array().into_iter().flatten() {
            let (source, target) = match v {
                Json::String(s) => {
                    let mut parts = s.splitn(3, ':');
                    (parts.next().unwrap().to_owned(), parts.next().unwrap_or_default().to_owned())
                }
                Json::Object(m) => (
                    m["source"].as_str().unwrap_or_default().to_owned(),
                    m["target"].as_str().unwrap_or_default().to_owned(),
                ),
                other => panic!("{name}: volume {other}"),
            };
            assert!(target.starts_with('/') || target.starts_with("${HOME}"), "{name}: mount target {target}");
            if source.starts_with("./") || source.starts_with("../") {
                let path = deploy.join(&source);
                assert!(path.exists(), "{name}: mounts {source}, which does not exist ({})", path.display());
                let canon = path.canonicalize().unwrap();
                assert!(canon.starts_with(root().canonicalize().unwrap()), "{name}: {source} is outside the repo");
                mounts.insert(target, canon);
            } else if source.starts_with("${") {
                assert!(host_paths.contains(source.as_str()), "{name}: unexpected host path {source}");
                println!("compose: {name} bind-mounts the host's {source} (the user's files, not the repo's)");
            } else {
                assert!(volumes.contains(source.as_str()), "{name}: volume {source} is not declared");
            }
        }
    }
    // in-stack addresses name services
    let env = |svc: &str, key: &str| services[svc]["environment"][key].as_str().unwrap_or_default().to_owned();
    let otlp = env("hooktel", "OTEL_EXPORTER_OTLP_ENDPOINT");
    assert!(names.contains(host_of(&otlp)), "hooktel exports to {otlp}, not a service");
    // the host's hooks come in through the published port, so beyond the container's loopback (and
    // with the data dir's token); Prometheus scrapes the metrics address
    assert_eq!(env("hooktel", "HOOKTEL_LISTEN"), "0.0.0.0:4388", "hooktel must listen beyond the container");
    assert_eq!(env("hooktel", "HOOKTEL_METRICS_LISTEN"), "0.0.0.0:4389");
    assert!(
        services["hooktel"]["volumes"].as_array().unwrap().iter().any(|v| v["target"] == env("hooktel", "HOOKTEL_DATA_DIR")
            && v["source"] == "${HOME}/.local/share/hooktel"),
        "the data dir (and its token) is shared with the host's hooks"
    );
    let collector = yaml(&deploy.join("otel-collector.yaml"));
    // (the prometheus exporter's endpoint is where it listens, for the hooktel-pushed scrape job)
    for (name, exporter) in collector["exporters"].as_object().unwrap().iter().filter(|(n, _)| *n != "prometheus") {
        if let Some(ep) = exporter["endpoint"].as_str() {
            assert!(names.contains(host_of(ep)), "collector exporter {name} sends to {ep}, not a service");
        }
    }
    let prom = yaml(&deploy.join("prometheus/prometheus.yml"));
    for job in prom["scrape_configs"].as_array().unwrap() {
        for sc in job["static_configs"].as_array().unwrap() {
            for t in str_list(&sc["targets"]) {
                let host = host_of(&t);
                assert!(names.contains(host) || host == "localhost", "scrape target {t} is not a service");
            }
        }
    }
    let sources = yaml(&root().join("dashboards/provisioning/datasources.yml"));
    for s in sources["datasources"].as_array().unwrap() {
        let url = s["url"].as_str().unwrap();
        assert!(names.contains(host_of(url)), "data source {} at {url}, not a service", s["name"]);
    }
    // Grafana reads the dashboards where the provider says, and the home dashboard exists
    let providers = yaml(&root().join("dashboards/provisioning/dashboards.yml"));
    let path = providers["providers"][0]["options"]["path"].as_str().unwrap();
    assert_eq!(mounts.get(path), Some(&root().join("dashboards").canonicalize().unwrap()), "dashboards mount");
    let home = env("grafana", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH");
    let home_file = home.strip_prefix(&format!("{path}/")).expect("home dashboard under the provider path");
    assert!(root().join("dashboards").join(home_file).is_file(), "home dashboard {home}");
    // Prometheus: the config and the rules it globs, where the config expects them
    let config = mounts.get("/etc/prometheus/prometheus.yml").expect("prometheus.yml mounted");
    assert_eq!(config, &deploy.join("prometheus/prometheus.yml").canonicalize().unwrap());
    assert!(mounts.get("/etc/prometheus/rules").is_some_and(|p| p.ends_with("deploy/prometheus/rules")));
    assert_eq!(str_list(&prom["rule_files"]), ["rules/*.rules.yml"]);
    // it keeps hooktel's exemplars
    let flags = str_list(&services["prometheus"]["command"]);
    assert!(
        flags.iter().any(|f| f
            .strip_prefix("--enable-feature=")
            .is_some_and(|v| v.split(',').any(|v| v == "exemplar-storage"))),
        "the stack's Prometheus must run with --enable-feature=exemplar-storage: {flags:?}"
    );

    let (ok, said) = tool(
        venv_tool("check-jsonschema"),
        &["--builtin-schema", "vendor.compose-spec", compose_path.to_str().unwrap()],
        &root(),
    );
    assert!(ok, "docker-compose.yml does not match the compose specification:\n{said}");
}

#[test]
fn collector_pipelines_use_only_what_the_config_defines() {
    let c = yaml(&root().join("deploy/otel-collector.yaml"));
    let defined = |kind: &str| -> BTreeSet<String> {
        c[kind].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    let pipelines = c["service"]["pipelines"].as_object().expect("service.pipelines");
    assert!(pipelines.contains_key("traces"), "a traces pipeline");
    let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, p) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            let list = str_list(&p[kind]);
            assert!(kind == "processors" || !list.is_empty(), "pipeline {name} has no {kind}");
            for component in list {
                assert!(defined(kind).contains(&component), "pipeline {name} uses {kind} `{component}`, not defined");
                used.entry(kind).or_default().insert(component);
            }
        }
    }
    for ext in str_list(&c["service"]["extensions"]) {
        assert!(defined("extensions").contains(&ext), "service uses extension `{ext}`, not defined");
        used.entry("extensions").or_default().insert(ext);
    }
    for kind in ["receivers", "processors", "exporters", "extensions"] {
        let unused: Vec<_> = defined(kind).difference(&used.get(kind).cloned().unwrap_or_default()).cloned().collect();
        assert!(unused.is_empty(), "{kind} defined but unused: {unused:?}");
    }
    assert!(defined("exporters").iter().any(|e| e.starts_with("otlp")), "traces go out over OTLP");
}

#[test]
fn prometheus_rules_pass_promtool_and_every_alert_is_unit_tested() {
    let dir = root().join("deploy/prometheus/rules");
    let rule_files = files_under(&dir, &[".rules.yml"]);
    assert!(!rule_files.is_empty());
    for f in &rule_files {
        let (ok, said) = tool("promtool", &["check", "rules", f.to_str().unwrap()], &dir);
        assert!(ok, "promtool check rules {}:\n{said}", rel(f));
    }
    let test_file = dir.join("hooktel.rules.test.yml");
    let (ok, said) = tool("promtool", &["test", "rules", test_file.to_str().unwrap()], &dir);
    assert!(ok && said.contains("SUCCESS"), "promtool test rules:\n{said}");

    // every alert: severity, summary, runbook; a firing and a not-firing unit test
    let mut alerts = BTreeSet::new();
    for f in &rule_files {
        for g in yaml(f)["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                if let Some(name) = r["alert"].as_str() {
                    for key in ["summary", "description", "runbook"] {
                        assert!(r["annotations"][key].is_string(), "{name} lacks the {key} annotation");
                    }
                    assert!(r["labels"]["severity"].is_string(), "{name} lacks a severity");
                    alerts.insert(name.to_owned());
                }
            }
        }
    }
    let tests = yaml(&test_file);
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().unwrap() {
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                firing.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    let missing_firing: Vec<_> = alerts.difference(&firing).collect();
    let missing_quiet: Vec<_> = alerts.difference(&quiet).collect();
    assert!(missing_firing.is_empty(), "alerts without a firing unit test: {missing_firing:?}");
    assert!(missing_quiet.is_empty(), "alerts without a not-firing unit test: {missing_quiet:?}");
    println!("{} alerts, each tested firing and not firing: {alerts:?}", alerts.len());
}

#[test]
fn prometheus_config_passes_promtool_and_its_rule_files_exist() {
    let dir = root().join("deploy/prometheus");
    let config = dir.join("prometheus.yml");
    let prom = yaml(&config);
    for pattern in str_list(&prom["rule_files"]) {
        assert!(!pattern.starts_with('/'), "rule_files must be relative to prometheus.yml: {pattern}");
        let (sub, glob) = pattern.rsplit_once('/').unwrap_or((".", &pattern));
        let (prefix, suffix) = glob.split_once('*').unwrap_or((glob, ""));
        let matched: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix) && n.ends_with(suffix) && n.len() >= prefix.len() + suffix.len())
            .collect();
        assert!(!matched.is_empty(), "rule_files {pattern} matches no file");
        assert!(!matched.iter().any(|m| m.contains(".test.")), "rule_files {pattern} would load the unit tests");
    }
    let jobs: Vec<_> =
        prom["scrape_configs"].as_array().unwrap().iter().filter_map(|j| j["job_name"].as_str()).collect();
    assert!(jobs.contains(&"hooktel"), "HooktelDown matches the scrape job `hooktel`: {jobs:?}");
    // check config only parses target addresses; the compose-internal host names need no resolving
    let (ok, said) = tool("promtool", &["check", "config", config.to_str().unwrap()], &dir);
    assert!(ok, "promtool check config:\n{said}");
    assert!(said.contains("rule files found") && !said.contains(" 0 rule files"), "{said}");
}

/// `KEY=VALUE` lines of a systemd unit, by section.
fn unit_keys(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(['#', ';'])) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
        } else {
            let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("hooktel.service: not KEY=VALUE: {line}"));
            assert!(!section.is_empty(), "hooktel.service: {line} outside a section");
            out.entry(section.clone()).or_default().push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

#[test]
fn systemd_user_unit_verifies() {
    let unit = root().join("deploy/systemd/hooktel.service");
    let keys = unit_keys(&read(&unit));
    let get = |s: &str, k: &str| -> Vec<String> {
        keys.get(s).into_iter().flatten().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect()
    };
    assert_eq!(get("Service", "ExecStart"), ["%h/.cargo/bin/hooktel serve"]);
    assert_eq!(get("Service", "Restart"), ["on-failure"]);
    assert_eq!(get("Install", "WantedBy"), ["default.target"], "a user unit starts with default.target");
    for (section, allowed) in [
        ("Unit", &["Description", "Documentation", "After", "Wants"][..]),
        (
            "Service",
            &[
                "Type",
                "ExecStart",
                "EnvironmentFile",
                "Environment",
                "Restart",
                "RestartSec",
                "KillSignal",
                "TimeoutStopSec",
                // resource limits work unprivileged: the user manager raises the soft descriptor
                // limit up to its own hard limit, and memory is a controller delegated to users
                "LimitNOFILE",
                "MemoryMax",
                "UMask",
                "NoNewPrivileges",
                "LockPersonality",
                "RestrictRealtime",
                "RestrictSUIDSGID",
                "MemoryDenyWriteExecute",
                "SystemCallArchitectures",
                "SystemCallFilter",
                "SystemCallErrorNumber",
                "RestrictAddressFamilies",
            ][..],
        ),
        ("Install", &["WantedBy"][..]),
    ] {
        for (k, _) in keys.get(section).into_iter().flatten() {
            // User=, and sandboxing that needs mount namespaces (ProtectSystem=, PrivateTmp=, ...), fail or
            // are ignored in user units where unprivileged user namespaces are off
            assert!(allowed.contains(&k.as_str()), "hooktel.service: [{section}] {k}= is not expected in a user unit");
        }
    }
    assert_eq!(keys.keys().cloned().collect::<Vec<_>>(), ["Install", "Service", "Unit"]);

    // systemd-analyze resolves %h from $HOME and checks that ExecStart's binary is executable
    let home = support::temp_dir("systemd-home");
    let runtime = support::temp_dir("systemd-runtime");
    std::fs::create_dir_all(home.join(".cargo/bin")).unwrap();
    std::os::unix::fs::symlink(support::BIN, home.join(".cargo/bin/hooktel")).unwrap();
    let args = ["--user", "verify", unit.to_str().unwrap()];
    let outcome = run(
        Path::new("systemd-analyze"),
        &args,
        &[("HOME", home.path()), ("XDG_RUNTIME_DIR", runtime.path())],
        &root(),
    );
    match outcome {
        Err(e) => {
            println!("systemd-analyze is not available here ({e}): hooktel.service checked by parsing its keys only")
        }
        Ok(out) => {
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if said.contains("Failed to initialize manager") || said.contains("Failed to connect to bus") {
                println!(
                    "systemd-analyze cannot run here ({}): hooktel.service checked by parsing its keys only",
                    said.trim()
                );
            } else {
                println!("$ systemd-analyze --user verify deploy/systemd/hooktel.service\n{}", said.trim_end());
                // verify exits 0 on unknown keys and bad values, and only warns: any output is a failure
                assert!(
                    out.status.success() && said.trim().is_empty(),
                    "systemd-analyze --user verify ({}):\n{said}",
                    out.status
                );
                println!("systemd-analyze --user verify: clean");
            }
        }
    }
}

#[test]
fn launchd_plist_is_a_valid_property_list() {
    let plist = root().join("deploy/launchd/dev.hooktel.plist");
    let script = "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))";
    let out = run(Path::new("python3"), &["-c", script, plist.to_str().unwrap()], &[], &root())
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {DEPS_HINT}"));
    assert!(out.status.success(), "plistlib rejects {}: {}", rel(&plist), String::from_utf8_lossy(&out.stderr));
    let p: Json = serde_json::from_slice(&out.stdout).unwrap();
    println!("dev.hooktel.plist: {p}");
    assert_eq!(p["Label"], "dev.hooktel");
    let args = str_list(&p["ProgramArguments"]);
    assert_eq!(args[..2], ["/bin/sh", "-c"]);
    assert!(args[2].starts_with("exec \"$HOME/.cargo/bin/hooktel\" serve"), "{args:?}");
    assert_eq!(p["RunAtLoad"], true);
    assert_eq!(p["KeepAlive"]["SuccessfulExit"], false, "restart when it fails, not after a clean stop");
    assert_eq!(p["EnvironmentVariables"]["HOOKTEL_LISTEN"], "127.0.0.1:4388");
}

/// The pod spec of a workload object, if it has one.
fn pod_spec(obj: &Json) -> Option<&Json> {
    match obj["kind"].as_str()? {
        "Pod" => Some(&obj["spec"]),
        "Job" | "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => Some(&obj["spec"]["template"]["spec"]),
        "CronJob" => Some(&obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn env_of<'a>(container: &'a Json, name: &str) -> Option<&'a str> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

fn mount_of<'a>(container: &'a Json, volume: &str) -> Option<&'a str> {
    container["volumeMounts"].as_array()?.iter().find(|m| m["name"] == volume)?["mountPath"].as_str()
}

#[test]
fn kubernetes_manifests_are_valid_objects_wired_together() {
    let dir = root().join("deploy/kubernetes");
    let files = files_under(&dir, &[".yaml", ".yml"]);
    let mut objects = Vec::new();
    for f in &files {
        for doc in yaml_docs(f) {
            assert!(doc["apiVersion"].is_string() && doc["kind"].is_string(), "{}: apiVersion and kind", rel(f));
            assert!(doc["metadata"]["name"].is_string(), "{}: metadata.name", rel(f));
            objects.push((f.clone(), doc));
        }
    }
    let configmaps: BTreeSet<&str> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "ConfigMap")
        .filter_map(|(_, o)| o["metadata"]["name"].as_str())
        .collect();
    let kustomization =
        objects.iter().find(|(_, o)| o["kind"] == "Kustomization").map(|(_, o)| o).expect("kustomization");
    let listed = str_list(&kustomization["resources"]);
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name == "kustomization.yaml" || listed.iter().any(|r| r == name), "{name} not in kustomization");
    }
    for r in &listed {
        assert!(dir.join(r).is_file(), "kustomization lists {r}, which does not exist");
    }

    let mut workloads = 0;
    for (f, obj) in &objects {
        let Some(spec) = pod_spec(obj) else { continue };
        workloads += 1;
        let inits: Vec<&Json> = spec["initContainers"].as_array().into_iter().flatten().collect();
        let mains: Vec<&Json> = spec["containers"].as_array().into_iter().flatten().collect();
        let all: Vec<&Json> = inits.iter().chain(&mains).copied().collect();
        let mut names = BTreeSet::new();
        for c in &all {
            let name = c["name"].as_str().expect("container name");
            assert!(names.insert(name), "{}: container name {name} used twice", rel(f));
        }
        let volumes: BTreeMap<&str, &Json> =
            spec["volumes"].as_array().into_iter().flatten().map(|v| (v["name"].as_str().unwrap(), v)).collect();
        for c in &all {
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                let v = m["name"].as_str().unwrap();
                assert!(volumes.contains_key(v), "{}: {} mounts undeclared volume {v}", rel(f), c["name"]);
            }
        }
        for v in volumes.values() {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                assert!(configmaps.contains(cm), "{}: ConfigMap {cm} is not among the manifests", rel(f));
            }
        }
        // the sidecar: native (restartPolicy Always) or a plain container named hooktel
        let sidecar = all.iter().find(|c| c["name"] == "hooktel").expect("a container named hooktel");
        let workload = mains.iter().find(|c| c["name"] != "hooktel").expect("a workload container");
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(sidecar[probe]["httpGet"]["path"], "/healthz", "hooktel {probe}");
        }
        // events only on the pod's loopback; probes and Prometheus on the metrics address
        assert_eq!(env_of(sidecar, "HOOKTEL_LISTEN"), Some("127.0.0.1:4388"), "ingest stays in the pod");
        assert_eq!(env_of(sidecar, "HOOKTEL_METRICS_LISTEN"), Some("0.0.0.0:4389"), "probes reach the pod IP");
        assert_eq!(sidecar["ports"], serde_json::json!([{"name": "metrics", "containerPort": 4389}]));
        assert_eq!(sidecar["startupProbe"]["httpGet"]["port"], "metrics");
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(sidecar[probe]["httpGet"]["port"], "metrics", "hooktel {probe}");
        }
        assert_eq!(obj["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"], "4389");
        let policy =
            objects.iter().find(|(_, o)| o["kind"] == "NetworkPolicy").map(|(_, o)| o).expect("a NetworkPolicy");
        let ports: Vec<&Json> =
            policy["spec"]["ingress"].as_array().unwrap().iter().flat_map(|r| r["ports"].as_array().unwrap()).collect();
        assert_eq!(
            ports,
            [&serde_json::json!({"protocol": "TCP", "port": 4389})],
            "only the metrics port is reachable"
        );
        let otlp = env_of(sidecar, "OTEL_EXPORTER_OTLP_ENDPOINT").expect("OTEL_EXPORTER_OTLP_ENDPOINT");
        assert!(otlp.contains(".svc"), "the collector is a cluster Service: {otlp}");
        for c in &all {
            let name = &c["name"];
            assert!(c["resources"]["limits"]["memory"].is_string(), "{name}: a memory limit");
            assert!(c["resources"]["limits"]["cpu"].is_string(), "{name}: a cpu limit");
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{name}: read-only root");
            assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false, "{name}: no escalation");
            let non_root =
                c["securityContext"]["runAsNonRoot"] == true || spec["securityContext"]["runAsNonRoot"] == true;
            assert!(non_root, "{name}: runAsNonRoot");
        }
        // hook and sidecar share the data dir (the spool), and the workload finds the sidecar
        assert_eq!(env_of(workload, "HOOKTEL_ADDR"), Some("127.0.0.1:4388"));
        let data_dir = env_of(sidecar, "HOOKTEL_DATA_DIR").expect("sidecar HOOKTEL_DATA_DIR");
        assert_eq!(env_of(workload, "HOOKTEL_DATA_DIR"), Some(data_dir));
        let (vol, _) = volumes
            .iter()
            .find(|(v, _)| mount_of(sidecar, v) == Some(data_dir))
            .expect("the sidecar's data dir is a volume");
        assert!(volumes[vol]["emptyDir"].is_object(), "the data dir is an emptyDir");
        assert_eq!(mount_of(workload, vol), Some(data_dir), "the workload mounts the same data dir");
        // the transcripts: the workload's HOME, read-only in the sidecar at the same path
        let home = env_of(workload, "HOME").expect("workload HOME");
        let (home_vol, _) = volumes.iter().find(|(v, _)| mount_of(workload, v) == Some(home)).expect("HOME volume");
        assert_eq!(mount_of(sidecar, home_vol), Some(home), "hooktel reads the transcripts at the same path");
        // the hooks run the binary the init container copies, from the managed settings
        let settings_cm = objects.iter().find(|(_, o)| o["kind"] == "ConfigMap").map(|(_, o)| o).unwrap();
        let settings: Json = serde_json::from_str(settings_cm["data"]["managed-settings.json"].as_str().unwrap())
            .expect("managed-settings.json is JSON");
        let hooks = settings["hooks"].as_object().expect("hooks");
        assert!(hooks.len() >= 20 && hooks.contains_key("PreToolUse") && hooks.contains_key("SessionEnd"));
        let commands: BTreeSet<&str> = hooks
            .values()
            .flat_map(|m| m.as_array().unwrap())
            .flat_map(|m| m["hooks"].as_array().unwrap())
            .map(|h| h["command"].as_str().unwrap())
            .collect();
        assert_eq!(commands.len(), 1, "one hook command: {commands:?}");
        let bin = commands.iter().next().unwrap().strip_suffix(" hook").expect("`... hook`");
        let install = inits.iter().find(|c| str_list(&c["command"]).last().map(String::as_str) == Some(bin));
        let install = install.expect("an init container copying hooktel to the hook command's path");
        let bin_dir = Path::new(bin).parent().unwrap().to_str().unwrap();
        let (bin_vol, _) = volumes.iter().find(|(v, _)| mount_of(install, v) == Some(bin_dir)).expect("binary volume");
        assert_eq!(mount_of(workload, bin_vol), Some(bin_dir), "the workload sees the copied binary");
        let settings_mount = volumes
            .iter()
            .find(|(_, v)| v["configMap"].is_object())
            .and_then(|(v, _)| mount_of(workload, v))
            .expect("managed settings mounted");
        assert_eq!(settings_mount, "/etc/claude-code", "Claude Code's managed settings directory on Linux");
    }
    assert!(workloads >= 1, "no workload with a pod spec under deploy/kubernetes");

    let validator = venv_tool("kubernetes-validate");
    let manifests: Vec<&str> =
        files.iter().filter(|f| !f.ends_with("kustomization.yaml")).map(|f| f.to_str().unwrap()).collect();
    // 1.29: the first release with native sidecars on by default; and the validator's newest
    for version in [Some("1.29.0"), None] {
        let mut args = vec!["--strict"];
        if let Some(v) = version {
            args.extend(["-k", v]);
        }
        args.extend(&manifests);
        let (ok, said) = tool(&validator, &args, &dir);
        assert!(ok && !said.contains("ERROR"), "kubernetes-validate {args:?}:\n{said}");
    }
}

/// The exec-form HEALTHCHECK of the Dockerfile, as its argument list.
fn healthcheck(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined.lines().find(|l| l.starts_with("HEALTHCHECK")).expect("a HEALTHCHECK");
    let cmd = &line[line.find("CMD").expect("HEALTHCHECK ... CMD") + 3..];
    serde_json::from_str(cmd.trim()).expect("the exec (JSON) form")
}

#[test]
fn dockerfile_builds_on_bookworm_runs_as_non_root_and_its_healthcheck_works() {
    let text = read(&root().join("Dockerfile"));
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].starts_with("FROM rust:1.95-bookworm AS "), "builder on the runtime's Debian: {froms:?}");
    assert_eq!(froms[1], "FROM debian:bookworm-slim");
    let runtime = text.split("FROM debian:bookworm-slim").nth(1).unwrap();
    assert!(runtime.contains("install -y --no-install-recommends ca-certificates"), "the CA bundle https needs");
    let user = text.lines().rev().find_map(|l| l.strip_prefix("USER ")).expect("USER");
    assert!(!user.starts_with("0") && !user.starts_with("root"), "runs as non-root: {user}");
    assert!(text.lines().any(|l| l == "EXPOSE 4389"));
    assert!(text.contains("HOOKTEL_LISTEN=127.0.0.1:4388"), "ingest on loopback unless asked");
    assert!(text.contains("HOOKTEL_METRICS_LISTEN=0.0.0.0:4389"));
    let ignore = read(&root().join(".dockerignore"));
    assert!(ignore.lines().any(|l| l.trim_end_matches('/') == "target"), ".dockerignore keeps target/ out");

    // the HEALTHCHECK command itself, with bash, against a real sidecar and against a closed port
    let args = healthcheck(&text);
    assert_eq!(args[0], "bash");
    let sidecar = support::Sidecar::start(None, &[]);
    let check = |listen: &str| {
        Command::new(&args[0])
            .args(&args[1..])
            .env("HOOKTEL_LISTEN", listen)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("bash")
    };
    let up = check(&format!("0.0.0.0:{}", sidecar.addr.port()));
    assert!(up.success(), "HEALTHCHECK against a running sidecar: {up}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = check(&format!("0.0.0.0:{closed}"));
    assert!(!down.success(), "HEALTHCHECK against a closed port must fail");
    println!("HEALTHCHECK: healthy against the sidecar ({up}), unhealthy against a closed port ({down})");
}
