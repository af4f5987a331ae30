//! `hooktel doctor`: checks that events can get from Claude Code to the collector, and says what to
//! do about each thing that is wrong. It reads and probes; it changes nothing.
//!
//! The checks: the sidecar answers `/healthz`, and its own configuration (`/v1/status`: data
//! directory, export) agrees with what the hooks here use; hooktel's hooks are in the user's (and
//! this project's) settings, valid, and point at a program that exists or at the sidecar's URL (and,
//! where Codex CLI's hooks.json has hooktel's hooks, that they cover its events and Codex trusts them;
//! where Gemini CLI's directory is, that its settings.json hooks its events and does not turn hooks off);
//! every OTLP destination takes an empty export through the very client that sends the data (TLS,
//! credentials, path: the sidecar runs it with its own settings when it answers, else this shell's
//! settings are probed from here), or local mode; the hook spool drains; the data directory is
//! writable.
//! Blocking std I/O with short timeouts; a small runtime only for the OTLP probe from here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::http1::{self, HttpError, Request};
use crate::cli::install::{self, Found, Installed, EVENTS};

/// Budget for each network probe: a local sidecar answers in a millisecond.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Spooled events older than this while the sidecar is up are not being drained (it drains every second).
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Ordered by severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug)]
pub struct Check {
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) detail: String,
    /// What to do about it (for warnings and failures).
    pub(crate) fix: Option<String>,
}

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Check {
        Check { name: name.into(), status, detail: detail.into(), fix }
    }
}

/// What the checks look at.
#[derive(Clone, Debug)]
pub struct Options {
    /// `host:port` of the sidecar, as the hooks find it (`HOOKTEL_ADDR`).
    pub(crate) addr: String,
    /// hooktel's data directory (`HOOKTEL_DATA_DIR`).
    pub(crate) data_dir: PathBuf,
    /// Settings files to check, by scope: the user's always, the project's when they exist.
    pub(crate) settings: Vec<(String, PathBuf)>,
    /// What this shell's OpenTelemetry variables send where (or why they cannot be honoured).
    pub(crate) outbound: Result<crate::export::outbound::Outbound, String>,
}

impl Options {
    /// From the environment, with the current directory as the project.
    pub fn from_env() -> Options {
        let hook = crate::cli::config::HookSettings::from_env();
        let mut settings = Vec::new();
        if let Ok(user) = install::settings_path(None) {
            settings.push(("user".to_owned(), user));
        }
        if let Ok(cwd) = std::env::current_dir() {
            for (scope, name) in [("project", "settings.json"), ("project local", "settings.local.json")] {
                let path = cwd.join(".claude").join(name);
                if path.exists() && !settings.iter().any(|(_, p)| *p == path) {
                    settings.push((scope.to_owned(), path));
                }
            }
        }
        let env = crate::cli::config::env_var;
        Options {
            addr: hook.addr,
            data_dir: hook.data_dir,
            settings,
            outbound: crate::export::outbound::Outbound::from_vars(&env).map_err(|e| e.to_string()),
        }
    }
}

/// Run every check.
pub fn doctor(opts: &Options) -> Vec<Check> {
    let mut checks = Vec::new();
    let health = get(&opts.addr, "/healthz");
    let up = matches!(health, Ok((200, _)));
    checks.push(match &health {
        Ok((200, _)) => Check::new("sidecar", Status::Ok, format!("answers on {}", opts.addr), None),
        Ok((status, _)) => Check::new(
            "sidecar",
            Status::Fail,
            format!("{} answered /healthz with HTTP {status}: not hooktel's sidecar?", opts.addr),
            Some("set HOOKTEL_ADDR to where `hooktel serve` listens".into()),
        ),
        Err(e) => Check::new(
            "sidecar",
            Status::Fail,
            format!("nothing answers on {} ({e})", opts.addr),
            Some(format!(
                "start it: `hooktel serve` (it listens on HOOKTEL_LISTEN, default {}); hooks find it through \
                 HOOKTEL_ADDR. Command hooks spool events meanwhile, http hooks lose them",
                crate::cli::config::DEFAULT_LISTEN
            )),
        ),
    });
    let status = if up { sidecar_status(opts) } else { None };
    if let Some(s) = &status {
        checks.push(config_check(opts, s));
    }
    checks.extend(hook_checks(opts));
    checks.extend(codex_check());
    checks.extend(gemini_check());
    checks.extend(exporter_checks(opts, status.as_ref()));
    let metrics = if up { get(&opts.addr, "/metrics").ok().map(|(_, body)| body) } else { None };
    checks.push(spool_check(opts, up, metrics.as_deref()));
    checks.push(data_dir_check(&opts.data_dir));
    checks
}

/// Whether any check failed (`hooktel doctor` then exits 1).
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// One line per check, with what to do under the ones that are not ok, and a summary.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "[{tag}] {}: {}", c.name, c.detail);
        if let (Some(fix), true) = (&c.fix, c.status != Status::Ok) {
            let _ = writeln!(out, "       fix: {fix}");
        }
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    let _ = match (fails, warns) {
        (0, 0) => writeln!(out, "all {} checks ok", checks.len()),
        _ => writeln!(out, "{fails} failed, {warns} warning(s), {} ok", count(Status::Ok)),
    };
    out
}

/// One check per settings file; "no hooks here" is fine when another scope has them.
fn hook_checks(opts: &Options) -> Vec<Check> {
    let read: Vec<(&str, &Path, anyhow::Result<Option<Installed>>)> =
        opts.settings.iter().map(|(scope, path)| (scope.as_str(), path.as_path(), install::inspect(path))).collect();
    let with_hooks: Vec<&str> = read
        .iter()
        .filter(|(_, _, r)| matches!(r, Ok(Some(i)) if !i.hooks.is_empty()))
        .map(|(scope, _, _)| *scope)
        .collect();
    // allowedHttpHookUrls arrays merge across settings files
    let allowlist: Option<Vec<String>> =
        read.iter().filter_map(|(_, _, r)| r.as_ref().ok()?.as_ref()?.allowlist.clone()).reduce(|mut a, b| {
            a.extend(b);
            a
        });
    let install_fix = |scope: &str| {
        Some(if scope == "user" { "hooktel install".to_owned() } else { "hooktel install --project .".to_owned() })
    };
    let mut checks = Vec::new();
    for (scope, path, result) in &read {
        let name = format!("hooks ({scope})");
        let installed = match result {
            Ok(found) => found.as_ref().filter(|_| with_hooks.contains(scope)),
            Err(e) => {
                checks.push(Check::new(
                    &name,
                    Status::Fail,
                    format!("{e:#}"),
                    Some("fix the file (or restore a settings.json.hooktel-backup-*), then `hooktel install`".into()),
                ));
                continue;
            }
        };
        let Some(installed) = installed else {
            let (status, detail) = match (with_hooks.first(), result) {
                (Some(other), _) => {
                    (Status::Ok, format!("none in {} (they are in the {other} settings)", path.display()))
                }
                (None, Ok(None)) => (Status::Fail, format!("{} does not exist: no hooktel hooks", path.display())),
                (None, _) => (Status::Fail, format!("no hooktel hooks in {}", path.display())),
            };
            checks.push(Check::new(&name, status, detail, install_fix(scope)));
            continue;
        };
        let mut problems: Vec<(Status, String)> = Vec::new();
        if installed.all_hooks_disabled {
            problems.push((Status::Fail, "\"disableAllHooks\": true turns every hook off".into()));
        }
        let missing: Vec<&str> =
            EVENTS.iter().copied().filter(|e| !installed.hooks.iter().any(|(ev, _)| ev == e)).collect();
        if !missing.is_empty() {
            problems.push((Status::Warn, format!("no hooktel hook on {}", missing.join(", "))));
        }
        let mut seen: Vec<&Found> = Vec::new();
        for (_, found) in &installed.hooks {
            if seen.contains(&found) {
                continue;
            }
            seen.push(found);
            match found {
                Found::Command(program) => {
                    if let Err(why) = runnable(program) {
                        problems.push((Status::Fail, format!("the hook runs {program}, which {why}")));
                    }
                }
                Found::Http(url) => {
                    let shown = crate::model::redact::url(url);
                    if authority(url) != Some(opts.addr.as_str()) {
                        problems.push((
                            Status::Warn,
                            format!("http hooks post to {shown}, but the sidecar checked is {}", opts.addr),
                        ));
                    }
                    if let Some(list) = &allowlist {
                        if !list.iter().any(|p| install::url_allowed(p, url)) {
                            problems.push((Status::Fail, format!("{shown} is not in allowedHttpHookUrls: blocked")));
                        }
                    }
                }
            }
        }
        let events = installed.hooks.iter().map(|(e, _)| e).collect::<std::collections::BTreeSet<_>>().len();
        let status = problems.iter().map(|p| p.0).max().unwrap_or(Status::Ok);
        let mut detail = format!("{}: {events} of {} events hooked", path.display(), EVENTS.len());
        for (_, p) in &problems {
            let _ = write!(detail, "; {p}");
        }
        if let Some(route) = &installed.telemetry_elsewhere {
            // not a fault: the user's choice, said so that the transcript-timed model calls are explained
            let _ = write!(
                detail,
                "; Claude Code's own telemetry goes elsewhere ({route}): model calls keep the transcripts' times"
            );
        }
        checks.push(Check::new(&name, status, detail, install_fix(scope)));
    }
    checks
}

/// Codex CLI's hooks, when hooktel's are among them: every event hooked, the program there, and
/// trusted by Codex (which skips an untrusted hook without a word).
fn codex_check() -> Option<Check> {
    const NAME: &str = "hooks (codex)";
    let fix = Some("hooktel install --agent codex".to_owned());
    let found = match crate::cli::install_codex::inspect() {
        Ok(found) => found?,
        Err(e) => return Some(Check::new(NAME, Status::Fail, format!("{e:#}"), fix)),
    };
    let all = crate::cli::install_codex::EVENTS.len();
    let mut problems: Vec<(Status, String)> = Vec::new();
    if found.events < all {
        problems.push((Status::Warn, format!("{} events not hooked", all - found.events)));
    }
    for program in &found.programs {
        if let Err(why) = runnable(program) {
            problems.push((Status::Fail, format!("the hook runs {program}, which {why}")));
        }
    }
    let trust = match found.trust {
        None => {
            problems.push((Status::Warn, "`codex` is not on PATH: whether Codex trusts the hooks is unknown".into()));
            String::new()
        }
        Some(Err(e)) => {
            problems.push((Status::Warn, format!("could not ask Codex about trust: {e:#}")));
            String::new()
        }
        Some(Ok((trusted, listed))) if trusted < listed => {
            problems.push((
                Status::Fail,
                format!("{} of hooktel's {listed} hooks are not trusted: Codex skips them", listed - trusted),
            ));
            String::new()
        }
        Some(Ok(_)) => ", trusted by Codex".to_owned(),
    };
    let status = problems.iter().map(|p| p.0).max().unwrap_or(Status::Ok);
    let mut detail = format!("{}: {} of {all} events hooked{trust}", found.file.display(), found.events);
    for (_, p) in &problems {
        let _ = write!(detail, "; {p}");
    }
    Some(Check::new(NAME, status, detail, fix))
}

/// Gemini CLI's hooks, when Gemini's directory is here: every event hooktel reads hooked, the program
/// there, and hooks not turned off by `hooksConfig`.
fn gemini_check() -> Option<Check> {
    const NAME: &str = "hooks (gemini)";
    let fix = Some("hooktel install --agent gemini".to_owned());
    let found = match crate::cli::install_gemini::inspect() {
        Ok(found) => found?,
        Err(e) => return Some(Check::new(NAME, Status::Fail, format!("{e:#}"), fix)),
    };
    let all = crate::cli::install_gemini::EVENTS.len();
    let hooked = all - found.missing.len();
    let mut problems: Vec<(Status, String)> = Vec::new();
    match hooked {
        0 => problems.push((Status::Warn, "no hooktel hook: Gemini CLI's sessions are not traced".into())),
        n if n < all => problems.push((Status::Warn, format!("no hooktel hook on {}", found.missing.join(", ")))),
        _ => {}
    }
    for program in &found.programs {
        if let Err(why) = runnable(program) {
            problems.push((Status::Fail, format!("the hook runs {program}, which {why}")));
        }
    }
    if let Some(why) = &found.turned_off {
        problems.push((Status::Warn, format!("{why}: Gemini CLI runs none of hooktel's hooks")));
    }
    let status = problems.iter().map(|p| p.0).max().unwrap_or(Status::Ok);
    let mut detail = format!("{}: {hooked} of {all} events hooked", found.file.display());
    for (_, p) in &problems {
        let _ = write!(detail, "; {p}");
    }
    Some(Check::new(NAME, status, detail, fix))
}

/// Whether a command hook's program can run: an absolute path must be an executable file, a bare
/// name must be on PATH (this shell's; Claude Code's may differ).
fn runnable(program: &str) -> Result<(), String> {
    if program.is_empty() {
        return Err("is empty".into());
    }
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join(program)).collect()
    };
    let found = candidates.iter().find(|p| p.is_file());
    match found {
        None if program.contains('/') => Err("does not exist".into()),
        None => Err("is not on PATH".into()),
        Some(p) if !is_executable(p) => Err(format!("is not executable ({})", p.display())),
        Some(_) => Ok(()),
    }
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// `host:port` of an http(s) URL, with the scheme's default port.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The sidecar's own report of its configuration, when it gives one: on loopback, or beyond it
/// with the token the hooks would present (`HOOKTEL_TOKEN`, else the data directory's).
fn sidecar_status(opts: &Options) -> Option<serde_json::Value> {
    let request = Request {
        method: "GET",
        path: "/v1/status",
        headers: "",
        body: b"",
        timeout: PROBE_TIMEOUT,
        max_body: 1 << 20,
    };
    match http1::send_to_sidecar(&opts.addr, &request, || crate::cli::config::client_token(&opts.data_dir)) {
        Ok(r) if r.status == 200 => serde_json::from_slice(&r.body).ok(),
        _ => None,
    }
}

/// What the sidecar runs with, and whether the hooks here spool where it drains.
fn config_check(opts: &Options, status: &serde_json::Value) -> Check {
    let text = |k: &str| status[k].as_str().unwrap_or("?").to_owned();
    let export = match status["export"]["mode"].as_str() {
        Some("otlp") => format!(
            "exports over OTLP ({}) to {}",
            status["export"]["protocol"].as_str().unwrap_or("?"),
            status["export"]["endpoint"].as_str().unwrap_or("?")
        ),
        _ => "local mode".to_owned(),
    };
    let theirs = PathBuf::from(text("data_dir"));
    let same = |a: &Path, b: &Path| {
        a == b || std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(a, b)| a == b)
    };
    let detail = format!(
        "hooktel {} (pid {}): data directory {}, {export}, capture {}",
        text("version"),
        status["pid"],
        theirs.display(),
        text("capture")
    );
    if same(&theirs, &opts.data_dir) {
        return Check::new("configuration", Status::Ok, detail, None);
    }
    Check::new(
        "configuration",
        Status::Warn,
        format!(
            "{detail}; but here HOOKTEL_DATA_DIR is {}: hooks spool there, and the sidecar never drains it",
            opts.data_dir.display()
        ),
        Some(format!("set HOOKTEL_DATA_DIR={} where Claude Code runs (and for doctor)", theirs.display())),
    )
}

/// Longest a probe of the sidecar's destinations may take: each empty export is bounded by its
/// destination's timeout; a few destinations at most.
const OTLP_PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// One check per OTLP destination. With the sidecar answering, it probes them itself
/// (`POST /v1/probe`: its clients, its settings); else this shell's settings are probed from here.
/// Local mode is a check of its own.
fn exporter_checks(opts: &Options, status: Option<&serde_json::Value>) -> Vec<Check> {
    let sidecar = status.and_then(|s| Some((s, sidecar_probe(opts)?)));
    let (reports, local, whose) = match sidecar {
        Some((status, reports)) => {
            let export = &status["export"];
            let local = (export["mode"] != "otlp").then(|| {
                let store = export["store"].as_str().unwrap_or("local.db").to_owned();
                let because = export["because"].as_str().map(|b| format!(", {b}")).unwrap_or_default();
                format!("local mode (the sidecar's{because}): spans stay in {store}, see `hooktel sessions`")
            });
            (reports, local, "the sidecar's")
        }
        None => {
            let outbound = match &opts.outbound {
                Ok(o) => o,
                Err(e) => {
                    let fix = "correct the variable: `hooktel serve` refuses to start with it too".to_owned();
                    return vec![Check::new(
                        "exporter",
                        Status::Fail,
                        format!("this shell's settings: {e}"),
                        Some(fix),
                    )];
                }
            };
            let local = outbound.traces.is_none().then(|| {
                format!(
                    "local mode (this shell's settings: {}): spans stay in {}, see `hooktel sessions`",
                    outbound.local_because,
                    opts.data_dir.join(crate::store::local::FILE).display()
                )
            });
            let reports = match probe_here(outbound) {
                Ok(r) => r,
                Err(e) => {
                    let fix = "correct the certificate variables: `hooktel serve` refuses to start with them too";
                    return vec![Check::new("exporter", Status::Fail, e, Some(fix.to_owned()))];
                }
            };
            (reports, local, "this shell's settings (the sidecar is not running)")
        }
    };
    let mut checks: Vec<Check> = local.map(|l| Check::new("exporter", Status::Ok, l, None)).into_iter().collect();
    for r in reports.as_array().into_iter().flatten() {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let purpose = text("purpose");
        let name = if purpose == "spans" { "exporter".to_owned() } else { format!("exporter ({purpose})") };
        let target = format!("{} ({}, {whose})", text("endpoint"), text("protocol"));
        checks.push(match r["outcome"].as_str() {
            Some("ok") => Check::new(&name, Status::Ok, format!("{target} accepts an empty OTLP export"), None),
            _ => Check::new(
                &name,
                Status::Fail,
                format!("{target}: {} [{}]", text("error"), text("outcome")),
                Some(format!("{}; meanwhile spans wait in the export spool", text("fix"))),
            ),
        });
    }
    checks
}

/// The sidecar's own probe of its destinations, when it gives one.
fn sidecar_probe(opts: &Options) -> Option<serde_json::Value> {
    let request = Request {
        method: "POST",
        path: "/v1/probe",
        headers: "",
        body: b"{}",
        timeout: OTLP_PROBE_TIMEOUT,
        max_body: 1 << 20,
    };
    match http1::send_to_sidecar(&opts.addr, &request, || crate::cli::config::client_token(&opts.data_dir)) {
        Ok(r) if r.status == 200 => serde_json::from_slice(&r.body).ok().filter(serde_json::Value::is_array),
        _ => None,
    }
}

/// This shell's destinations probed from here, as the sidecar would send to them.
fn probe_here(outbound: &crate::export::outbound::Outbound) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        // a gRPC channel is made inside the runtime that drives it
        let clients = crate::export::clients::Clients::new(outbound, true).map_err(|e| e.to_string())?;
        Ok(crate::export::probe::probe(&clients.targets()).await)
    })
}

fn spool_check(opts: &Options, up: bool, metrics: Option<&str>) -> Check {
    if metrics.is_some_and(|m| m.contains("hooktel_spool_usable{spool=\"hook\"} 0")) {
        let fix = format!(
            "the sidecar cannot open or read its hook spool: check that its data directory ({}) is writable \
             and its spool.db is a database; it retries every second",
            opts.data_dir.display()
        );
        return Check::new(
            "spool",
            Status::Warn,
            format!(
                "the sidecar's hook spool is unusable ({})",
                crate::store::hook_spool::path(&opts.data_dir).display()
            ),
            Some(fix),
        );
    }
    let (events, oldest) = match crate::store::hook_spool::peek(&opts.data_dir, PROBE_TIMEOUT) {
        Ok(d) => (d.items, d.oldest_at),
        Err(e) => {
            return Check::new(
                "spool",
                Status::Warn,
                format!("cannot read {} ({e})", crate::store::hook_spool::path(&opts.data_dir).display()),
                Some("the sidecar moves a damaged spool aside when it starts".into()),
            )
        }
    };
    let now = crate::model::time::now_ns();
    let age = Duration::from_nanos(oldest.map_or(0, |o| now.saturating_sub(o)));
    let mut detail =
        format!("{events} hook event(s) waiting in {}", crate::store::hook_spool::path(&opts.data_dir).display());
    if events > 0 {
        let _ = write!(detail, ", the oldest {}s old", age.as_secs());
    }
    let (spooled, failures) = match metrics {
        Some(m) => (metric_sum(m, "hooktel_spool_events"), metric_sum(m, "hooktel_export_failures_total")),
        None => (0.0, 0.0),
    };
    if metrics.is_some() {
        let _ = write!(detail, "; the sidecar reports hooktel_spool_events {spooled}, export failures {failures}");
    }
    if events > 0 && up && age > STUCK_AFTER {
        let fix = format!(
            "the sidecar drains every second: give the hooks and `hooktel serve` the same HOOKTEL_DATA_DIR \
             (here {}), and look at the sidecar's log",
            opts.data_dir.display()
        );
        return Check::new("spool", Status::Warn, format!("not draining: {detail}"), Some(fix));
    }
    if events > 0 && !up {
        return Check::new("spool", Status::Warn, detail, Some("start `hooktel serve`: it drains the spool".into()));
    }
    if spooled > 0.0 && failures > 0.0 {
        let fix = "the collector refuses or misses exports: check it and OTEL_EXPORTER_OTLP_ENDPOINT".to_owned();
        return Check::new("spool", Status::Warn, detail, Some(fix));
    }
    Check::new("spool", Status::Ok, detail, None)
}

fn data_dir_check(dir: &Path) -> Check {
    let fix = Some("make it writable, or point HOOKTEL_DATA_DIR (for the sidecar and the hooks) elsewhere".into());
    if dir.is_dir() {
        let probe = dir.join(format!(".hooktel-doctor-{}", std::process::id()));
        return match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                Check::new("data dir", Status::Ok, format!("{} is writable", dir.display()), None)
            }
            Err(e) => Check::new("data dir", Status::Fail, format!("cannot write in {} ({e})", dir.display()), fix),
        };
    }
    let Some(ancestor) = dir.ancestors().skip(1).find(|a| a.is_dir()) else {
        return Check::new("data dir", Status::Fail, format!("{} has no existing parent", dir.display()), fix);
    };
    if writable(ancestor) {
        let detail = format!("{} does not exist yet; the sidecar creates it", dir.display());
        Check::new("data dir", Status::Ok, detail, None)
    } else {
        let detail = format!("{} does not exist and {} is not writable", dir.display(), ancestor.display());
        Check::new("data dir", Status::Fail, detail, fix)
    }
}

#[cfg(unix)]
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
}

/// A GET over plain HTTP/1.1: (status, body).
fn get(addr: &str, path: &str) -> Result<(u16, String), HttpError> {
    let request =
        Request { method: "GET", path, headers: "", body: b"", timeout: PROBE_TIMEOUT, max_body: 16 * 1024 * 1024 };
    let r = http1::send(addr, &request)?;
    Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// The sum of a metric's samples over all its labels in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_address() {
        assert_eq!(authority("http://127.0.0.1:4388/v1/hooks"), Some("127.0.0.1:4388"));
    }

    #[test]
    fn metrics_are_summed_over_labels() {
        let text = "# HELP hooktel_export_failures_total x\nhooktel_export_failures_total{reason=\"timeout\"} 2\n\
                    hooktel_export_failures_total{reason=\"unavailable\"} 3\nhooktel_spool_events 4\n\
                    hooktel_spool_events_other 9\n";
        assert_eq!(metric_sum(text, "hooktel_export_failures_total"), 5.0);
        assert_eq!(metric_sum(text, "hooktel_spool_events"), 4.0);
        assert_eq!(metric_sum(text, "hooktel_missing"), 0.0);
    }

    #[test]
    fn render_says_what_to_do_about_failures_only() {
        let checks = [
            Check::new("sidecar", Status::Ok, "answers", Some("never shown".into())),
            Check::new("spool", Status::Warn, "3 waiting", Some("start it".into())),
            Check::new("hooks (user)", Status::Fail, "none", Some("hooktel install".into())),
        ];
        let text = render(&checks);
        assert_eq!(
            text,
            "[ok  ] sidecar: answers\n[WARN] spool: 3 waiting\n       fix: start it\n\
             [FAIL] hooks (user): none\n       fix: hooktel install\n1 failed, 1 warning(s), 1 ok\n"
        );
        assert!(failed(&checks));
        assert!(!failed(&checks[..2]));
    }

    #[test]
    fn programs_must_exist_and_be_executable() {
        assert!(runnable("/bin/sh").is_ok());
        assert!(runnable("/nonexistent/hooktel").unwrap_err().contains("does not exist"));
        assert!(runnable("hooktel-surely-not-on-path").unwrap_err().contains("PATH"));
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("noexec");
        std::fs::write(&file, "").unwrap();
        assert!(runnable(file.to_str().unwrap()).unwrap_err().contains("not executable"));
    }

    #[test]
    fn hook_checks_find_what_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (user, project) = (dir.join("user.json"), dir.join("project.json"));
        let opts = Options {
            addr: "127.0.0.1:4388".into(),
            data_dir: dir.clone(),
            settings: vec![("user".into(), user.clone()), ("project".into(), project.clone())],
            outbound: Err("not needed here".into()),
        };
        let run = || hook_checks(&opts);
        let url = "http://127.0.0.1:4388/v1/hooks";

        // nothing anywhere: the user's scope fails, saying what to run
        std::fs::write(&project, "{}").unwrap();
        let checks = run();
        assert_eq!(checks[0].status, Status::Fail, "{checks:?}");
        assert_eq!(checks[0].fix.as_deref(), Some("hooktel install"));

        // installed in the project only: that is enough
        install::install(&project, install::HookKind::Http, "/nonexistent/hooktel hook", url, None, None).unwrap();
        let checks = run();
        assert_eq!(checks[0].status, Status::Ok, "{checks:?}");
        // ... but its command hooks (SessionStart, Setup) run a program that is not there
        assert_eq!(checks[1].status, Status::Fail, "{checks:?}");
        assert!(checks[1].detail.contains("/nonexistent/hooktel, which does not exist"), "{checks:?}");

        // an allowlist in another scope that leaves hooktel's URL out blocks it; a wrong address warns
        let exe = std::env::current_exe().unwrap();
        let command = format!("{} hook", install::shell_quote(exe.to_str().unwrap()));
        std::fs::remove_file(&project).unwrap();
        std::fs::write(&project, r#"{"allowedHttpHookUrls": ["https://example.com/*"]}"#).unwrap();
        install::install(&user, install::HookKind::Http, &command, "http://127.0.0.1:9/v1/hooks", None, None).unwrap();
        let checks = run();
        assert_eq!(checks[0].status, Status::Fail, "{checks:?}");
        assert!(checks[0].detail.contains("not in allowedHttpHookUrls"), "{checks:?}");
        assert!(checks[0].detail.contains("but the sidecar checked is 127.0.0.1:4388"), "{checks:?}");

        // all well; then a missing event warns and disableAllHooks fails
        std::fs::write(&project, "{}").unwrap();
        install::install(&user, install::HookKind::Command, &command, url, None, None).unwrap();
        assert!(run().iter().all(|c| c.status == Status::Ok), "{:?}", run());
        let text = std::fs::read_to_string(&user).unwrap().replace("\"Stop\"", "\"NotAnEvent\"");
        std::fs::write(&user, text).unwrap();
        let checks = run();
        assert_eq!(checks[0].status, Status::Warn, "{checks:?}");
        assert!(checks[0].detail.contains("no hooktel hook on Stop"), "{checks:?}");
        std::fs::write(&user, r#"{"disableAllHooks": true, "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "hooktel hook"}]}]}}"#).unwrap();
        assert_eq!(run()[0].status, Status::Fail);
    }

    #[test]
    fn a_data_dir_not_yet_made_is_fine_when_it_can_be() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(data_dir_check(&tmp.path().join("a/b")).status, Status::Ok);
        assert_eq!(data_dir_check(tmp.path()).status, Status::Ok);
    }
}
