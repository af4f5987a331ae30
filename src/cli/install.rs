//! `hooktel install` / `hooktel uninstall`: wire hooktel's hooks into one Claude Code settings.json,
//! keeping every other setting and the user's own hooks as they are.
//!
//! hooktel's entries are recognised by what they run, not by their position: a command hook whose
//! program's file name starts with `hooktel` and whose first argument is `hook` (any path, quoted or
//! not, so the hand-written `hooktel hook` of docs/claude-code.md counts too), or an http hook carrying the header
//! `X-Hooktel` that `install` writes (a URL alone cannot tell hooktel from another sidecar's
//! `/v1/hooks`), or an entry equal to the one being installed. Everything else is the user's and is never touched. Installing
//! again changes nothing; switching between command and http hooks replaces hooktel's entries.
//!
//! Claude Code's `-p` silently ignores a settings file that fails validation, so this module only
//! writes shapes Claude Code 2.1.329 and 2.1.332 accept; reading and writing the file (refusing one
//! that is not a JSON object, keeping key order, a backup before writing) is `settings_file`'s. A key
//! written twice in one object keeps its last value, as `JSON.parse` (and so Claude Code) reads it.
//! Claude Code skips http hooks on SessionStart and Setup: those two always get the command hook.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Map, Value};

use crate::cli::native_telemetry;
pub use crate::cli::settings_file::settings_path;
use crate::cli::settings_file::{load, save, ALLOWLIST};
use crate::store::token::TOKEN_VAR;

/// Every hook event of Claude Code 2.1.332 but those of [`LEFT_OUT`]. Releases that do not know an
/// event ignore its name (2.1.329 logs and skips `PreSkillShellCommand`), so this is the newest
/// release's list. `tests/it/hook_events.rs` reads the list out of the pinned CLI and fails on a new
/// event; the example in docs/claude-code.md and the Kubernetes managed settings are checked against this list.
pub const EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "SessionStart",
    "SessionEnd",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "PreModelSwitch",
    "PostModelSwitch",
    "PermissionRequest",
    "PermissionDenied",
    "Setup",
    "TeammateIdle",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "InstructionsLoaded",
    "CwdChanged",
    "FileChanged",
    "DirectoryAdded",
    "MessageDisplay",
    "PreSkillShellCommand",
];

/// Hook events hooktel does not hook, and why.
pub const LEFT_OUT: &[(&str, &str)] = &[
    ("WorktreeCreate", "a hook on it replaces Claude Code's own git worktree creation"),
    ("WorktreeRemove", "a hook on it replaces Claude Code's own git worktree removal"),
];

/// Events on which Claude Code skips http hooks ("HTTP hooks are not supported for SessionStart"):
/// with `--http` they keep the command hook.
pub(crate) const COMMAND_ONLY: &[&str] = &["SessionStart", "Setup"];

/// The header that marks an http hook as hooktel's. The sidecar ignores it.
pub(crate) const MARKER_HEADER: &str = "X-Hooktel";

/// The settings key that, when present, lists the only variables http hooks may interpolate.
const ENV_ALLOWLIST: &str = "httpHookAllowedEnvVars";

/// Claude Code's setting for the status line command.
const STATUS_LINE: &str = "statusLine";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// `"type": "command"`: Claude Code runs `hooktel hook`, which spools when the sidecar is down.
    Command,
    /// `"type": "http"`: Claude Code POSTs to the sidecar's `/v1/hooks`.
    Http,
}

/// What `install` or `uninstall` did, for printing.
#[derive(Debug, Default)]
pub struct Report {
    pub(crate) path: PathBuf,
    /// The file did not exist and was created.
    pub(crate) created: bool,
    /// Where the old file was copied before it was changed.
    pub(crate) backup: Option<PathBuf>,
    pub(crate) added: Vec<String>,
    pub(crate) updated: Vec<String>,
    pub(crate) unchanged: Vec<String>,
    pub(crate) removed: Vec<String>,
    /// Changes to `allowedHttpHookUrls`.
    pub(crate) allowlist: Vec<String>,
    /// What happened to Claude Code's own telemetry settings (`--native-telemetry`, `uninstall`).
    pub(crate) telemetry: Vec<String>,
    /// Whether `telemetry` changed the file (a "left alone" does not).
    pub(crate) telemetry_changed: bool,
    /// What happened to Claude Code's `statusLine` (`--statusline`, `uninstall`).
    pub(crate) status_line: Vec<String>,
    /// Whether `status_line` changed the file.
    pub(crate) status_line_changed: bool,
    /// `uninstall` left nothing in the file, so it removed it.
    pub(crate) deleted: bool,
}

impl Report {
    pub(crate) fn changed(&self) -> bool {
        !(self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty() && self.allowlist.is_empty())
            || self.telemetry_changed
            || self.status_line_changed
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, what: &str, events: &[String]| {
            if events.is_empty() {
                Ok(())
            } else {
                writeln!(f, "  {what} ({}): {}", events.len(), events.join(", "))
            }
        };
        if !self.changed() {
            writeln!(f, "{}: nothing to change", self.path.display())?;
            for line in self.telemetry.iter().chain(&self.status_line) {
                writeln!(f, "  {line}")?;
            }
            return Ok(());
        }
        let how = if self.created {
            " (created)"
        } else if self.deleted {
            " (removed: nothing else was in it)"
        } else {
            ""
        };
        writeln!(f, "{}{how}", self.path.display())?;
        list(f, "added", &self.added)?;
        list(f, "updated", &self.updated)?;
        list(f, "removed", &self.removed)?;
        list(f, "unchanged", &self.unchanged)?;
        for line in self.allowlist.iter().chain(&self.telemetry).chain(&self.status_line) {
            writeln!(f, "  {line}")?;
        }
        if let Some(b) = &self.backup {
            writeln!(f, "  backup of the previous file: {}", b.display())?;
        }
        Ok(())
    }
}

/// `<this binary> hook`, the path quoted for the shell Claude Code runs command hooks through.
pub fn hook_command() -> anyhow::Result<String> {
    Ok(format!("{} hook", this_binary()?))
}

/// `<this binary> statusline`, quoted like [`hook_command`].
pub fn statusline_command() -> anyhow::Result<String> {
    Ok(format!("{} statusline", this_binary()?))
}

/// The path of this binary, quoted for the shell.
fn this_binary() -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the path of the hooktel binary")?;
    let exe = exe.to_str().context("the path of the hooktel binary is not UTF-8")?;
    Ok(shell_quote(exe))
}

/// The sidecar's `/v1/hooks` URL for a listen address (a wildcard address is reached on loopback).
pub fn hook_url(listen: std::net::SocketAddr) -> String {
    format!("{}/v1/hooks", base_url(listen))
}

/// `http://host:port` of a listen address (an unspecified one is reached on loopback).
pub fn base_url(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
}

/// Quote for a POSIX shell, leaving plain paths readable.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Merge hooktel's hook for every event of [`EVENTS`] into the settings file at `target`; with
/// `native_telemetry` (the receiver's base URL), also point Claude Code's own telemetry at it; with
/// `status_line` (the command), set Claude Code's `statusLine` to it unless the user has their own.
pub fn install(
    target: &Path,
    kind: HookKind,
    command: &str,
    url: &str,
    native_telemetry: Option<&str>,
    status_line: Option<&str>,
) -> anyhow::Result<Report> {
    let (mut settings, existing) = load(target)?;
    let mut report = Report { path: target.to_owned(), created: existing.is_none(), ..Report::default() };
    let root = settings.as_object_mut().context("unreachable: checked by load")?;
    let hooks = root.entry("hooks").or_insert_with(|| Value::Object(Map::new()));
    let hooks = hooks.as_object_mut().context("unreachable: checked by load")?;
    let mut old_urls = Vec::new();
    for event in EVENTS {
        let wanted = if kind == HookKind::Http && !COMMAND_ONLY.contains(event) {
            http_hook(url)
        } else {
            command_hook(command)
        };
        let group = json!({"hooks": [wanted.clone()]});
        let groups = hooks.entry(*event).or_insert_with(|| Value::Array(Vec::new()));
        let groups = groups.as_array_mut().context("unreachable: checked by load")?;
        let mine = |h: &Value| is_hooktel(h) || *h == wanted;
        let ours: usize = groups.iter().map(|g| group_hooks(g).iter().filter(|h| mine(h)).count()).sum();
        if ours == 1 && groups.contains(&group) {
            report.unchanged.push(event.to_string());
            continue;
        }
        let removed = strip(groups, &mine, &mut old_urls);
        groups.push(group);
        if removed > 0 { &mut report.updated } else { &mut report.added }.push(event.to_string());
    }
    // hooktel's hooks on events it does not need (say a hand-written WorktreeCreate one) go
    for (event, groups) in hooks.iter_mut().filter(|(e, _)| !EVENTS.contains(&e.as_str())) {
        if let Some(groups) = groups.as_array_mut() {
            if strip(groups, &is_hooktel, &mut old_urls) > 0 {
                report.removed.push(event.clone());
            }
        }
    }
    hooks.retain(|e, v| EVENTS.contains(&e.as_str()) || !report.removed.contains(e) || !is_empty_array(v));
    let new_url = (kind == HookKind::Http).then_some(url);
    update_allowlists(root, &old_urls, new_url, &mut report.allowlist);
    if let Some(base) = native_telemetry {
        match native_telemetry::enable(root, base) {
            native_telemetry::Enabled::Set(vars) => {
                report.telemetry.push(format!("Claude Code's telemetry to {base}: set {}", vars.join(", ")));
                report.telemetry_changed = true;
            }
            native_telemetry::Enabled::Unchanged => {}
            native_telemetry::Enabled::LeftAlone(why) => report.telemetry.push(format!(
                "Claude Code's telemetry is already sent elsewhere ({why}): left alone; model calls keep the transcripts' times"
            )),
        }
    }
    if let Some(command) = status_line {
        set_status_line(root, command, &mut report);
    }
    if report.changed() {
        report.backup = save(target, &settings, existing.as_deref())?;
    }
    Ok(report)
}

/// Set `statusLine` to run `command`, unless it runs something else (the user's own, kept). Keys a
/// user added to hooktel's (`padding`) stay.
fn set_status_line(root: &mut Map<String, Value>, command: &str, report: &mut Report) {
    let (kind, run) = (json!("command"), json!(command));
    match root.get(STATUS_LINE) {
        Some(v) if v.get("type") == Some(&kind) && v.get("command") == Some(&run) => {}
        Some(v) if !runs_hooktel(v, "statusline") => {
            let theirs = v.get("command").and_then(Value::as_str).unwrap_or("not a command");
            report.status_line.push(format!(
                "statusLine already runs {theirs:?}: left alone; to show both, see \"Status line\" in docs/claude-code.md"
            ));
        }
        _ => {
            let mut line = match root.remove(STATUS_LINE) {
                Some(Value::Object(line)) => line,
                _ => Map::new(),
            };
            line.insert("type".into(), kind);
            line.insert("command".into(), run);
            root.insert(STATUS_LINE.into(), Value::Object(line));
            report.status_line.push(format!("statusLine: set to {command}"));
            report.status_line_changed = true;
        }
    }
}

/// Remove hooktel's hooks (and the groups, arrays and `hooks` object they leave empty) from the
/// settings file at `target`; hooktel's URL leaves `allowedHttpHookUrls`.
pub fn uninstall(target: &Path) -> anyhow::Result<Report> {
    let (mut settings, existing) = load(target)?;
    let mut report = Report { path: target.to_owned(), ..Report::default() };
    let Some(existing) = existing else { return Ok(report) };
    let root = settings.as_object_mut().context("unreachable: checked by load")?;
    let mut old_urls = Vec::new();
    if let Some(hooks) = root.get_mut("hooks") {
        let hooks = hooks.as_object_mut().context("unreachable: checked by load")?;
        for (event, groups) in hooks.iter_mut() {
            if let Some(groups) = groups.as_array_mut() {
                if strip(groups, &is_hooktel, &mut old_urls) > 0 {
                    report.removed.push(event.clone());
                }
            }
        }
        hooks.retain(|e, v| !report.removed.contains(e) || !is_empty_array(v));
        if !report.removed.is_empty() && hooks.is_empty() {
            // shift, not swap: the keys after `hooks` keep their order
            root.shift_remove("hooks");
        }
    }
    update_allowlists(root, &old_urls, None, &mut report.allowlist);
    if root.get(STATUS_LINE).is_some_and(|v| runs_hooktel(v, "statusline")) {
        root.shift_remove(STATUS_LINE);
        report.status_line.push("removed hooktel's statusLine".into());
        report.status_line_changed = true;
    }
    let removed = native_telemetry::disable(root);
    if !removed.is_empty() {
        report.telemetry.push(format!("removed Claude Code's telemetry settings: {}", removed.join(", ")));
        report.telemetry_changed = true;
    }
    if report.changed() {
        report.backup = save(target, &settings, Some(&existing))?;
        if settings.as_object().is_some_and(Map::is_empty) {
            // what install created holds nothing else now: no `{}` left behind (the backup keeps it)
            std::fs::remove_file(target).with_context(|| format!("removing {}", target.display()))?;
            report.deleted = true;
        }
    }
    Ok(report)
}

/// What a settings file holds that matters to hooktel, for `hooktel doctor`.
#[derive(Debug, Default)]
pub(crate) struct Installed {
    /// hooktel's hooks by event, in file order.
    pub(crate) hooks: Vec<(String, Found)>,
    /// `disableAllHooks: true` turns every hook off.
    pub(crate) all_hooks_disabled: bool,
    /// `allowedHttpHookUrls`, when the file sets it.
    pub(crate) allowlist: Option<Vec<String>>,
    /// Where the file sends Claude Code's own telemetry when not to hooktel (`VAR=value`).
    pub(crate) telemetry_elsewhere: Option<String>,
}

/// One of hooktel's hooks as found in a settings file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Found {
    /// The program a command hook runs (first word of `command`, unquoted).
    Command(String),
    Http(String),
}

/// Read hooktel's hooks from a settings file; `None` when there is no file.
pub(crate) fn inspect(path: &Path) -> anyhow::Result<Option<Installed>> {
    let (settings, existing) = load(path)?;
    if existing.is_none() {
        return Ok(None);
    }
    let mut found = Installed {
        all_hooks_disabled: settings.get("disableAllHooks") == Some(&Value::Bool(true)),
        ..Installed::default()
    };
    if let Some(Value::Array(urls)) = settings.get(ALLOWLIST) {
        found.allowlist = Some(urls.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect());
    }
    found.telemetry_elsewhere = settings.as_object().and_then(native_telemetry::elsewhere);
    for (event, groups) in settings.get("hooks").and_then(Value::as_object).into_iter().flatten() {
        for hook in groups.as_array().into_iter().flatten().flat_map(group_hooks) {
            if is_hooktel(hook) {
                let f = match hook.get("url").and_then(Value::as_str) {
                    Some(url) => Found::Http(url.to_owned()),
                    None => Found::Command(program(hook).unwrap_or_default()),
                };
                found.hooks.push((event.clone(), f));
            }
        }
    }
    Ok(Some(found))
}

/// Whether `url` matches an `allowedHttpHookUrls` pattern (`*` matches any run of characters).
pub(crate) fn url_allowed(pattern: &str, url: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == url;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !url.starts_with(first) || !url[first.len()..].ends_with(last) || url.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &url[first.len()..url.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn command_hook(command: &str) -> Value {
    json!({"type": "command", "command": command})
}

/// An http hook to `url`. It presents the token through Claude Code's interpolation of
/// `$HOOKTEL_TOKEN` from its own environment: the secret itself never goes into settings.json
/// (unset, the header is empty, which a sidecar on loopback does not need).
fn http_hook(url: &str) -> Value {
    json!({
        "type": "http",
        "url": url,
        "headers": {MARKER_HEADER: "1", "Authorization": format!("Bearer ${TOKEN_VAR}")},
        "allowedEnvVars": [TOKEN_VAR],
    })
}

/// Whether a hook entry is one of hooktel's (see the module comment).
fn is_hooktel(hook: &Value) -> bool {
    match hook.get("type").and_then(Value::as_str) {
        Some("command") => runs_hooktel(hook, "hook"),
        Some("http") => hook
            .get("headers")
            .and_then(Value::as_object)
            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(MARKER_HEADER))),
        _ => false,
    }
}

/// Whether a command entry (a hook, the status line) runs `hooktel <subcommand>`.
fn runs_hooktel(entry: &Value, subcommand: &str) -> bool {
    let Some(command) = entry.get("command").and_then(Value::as_str) else { return false };
    let exe_form = entry.get("args").and_then(Value::as_array);
    let mut words = shell_words(command);
    let program = words.first().cloned().unwrap_or_default();
    let first_arg = match exe_form {
        Some(args) => args.first().and_then(Value::as_str).map(str::to_owned),
        None if words.len() > 1 => Some(words.swap_remove(1)),
        None => None,
    };
    let program = if exe_form.is_some() { command.to_owned() } else { program };
    let name = Path::new(&program).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.starts_with("hooktel") && first_arg.as_deref() == Some(subcommand)
}

/// The program of a command hook, unquoted.
fn program(hook: &Value) -> Option<String> {
    let command = hook.get("command").and_then(Value::as_str)?;
    if hook.get("args").is_some() {
        return Some(command.to_owned());
    }
    shell_words(command).into_iter().next()
}

/// The agent whose events a hook handler hands to hooktel: a command running a program named
/// `hooktel` with `hook --agent <name>` (or `--agent=<name>`) for an agent hooktel reads. What tells
/// hooktel's own hooks from the user's in an agent's settings.
pub(crate) fn hooked_agent(handler: &Value) -> Option<crate::model::agent::Agent> {
    let words = shell_words(handler.get("command")?.as_str()?);
    let program = std::path::Path::new(words.first()?).file_name()?.to_str()?;
    let name = match &words[1..] {
        [hook, flag, name] if hook == "hook" && flag == "--agent" => name.as_str(),
        [hook, flag] if hook == "hook" => flag.strip_prefix("--agent=")?,
        _ => return None,
    };
    (program == "hooktel").then(|| crate::model::agent::Agent::named(name)).flatten()
}

/// Words of a shell command, with quotes removed (enough to find a program and its first argument),
/// after any leading `NAME=value` assignments.
pub(crate) fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => word.get_or_insert_with(String::new).extend(chars.by_ref().take_while(|&c| c != '\'')),
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    let assignments =
        words.iter().take_while(|w| w.split_once('=').is_some_and(|(k, _)| !k.is_empty() && !k.contains('/'))).count();
    words.split_off(assignments)
}

fn group_hooks(group: &Value) -> &[Value] {
    group.get("hooks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// Remove hooktel's hooks from an event's matcher groups, and the groups left empty by it; returns
/// how many were removed and collects the URLs of http ones.
pub(crate) fn strip(groups: &mut Vec<Value>, mine: &dyn Fn(&Value) -> bool, urls: &mut Vec<String>) -> usize {
    let mut removed = 0;
    groups.retain_mut(|group| {
        let Some(hooks) = group.get_mut("hooks").and_then(Value::as_array_mut) else { return true };
        let before = hooks.len();
        hooks.retain(|h| {
            let ours = mine(h);
            if ours {
                urls.extend(h.get("url").and_then(Value::as_str).map(str::to_owned));
            }
            !ours
        });
        removed += before - hooks.len();
        !(hooks.is_empty() && before > 0)
    });
    removed
}

/// Both allowlists an http hook of hooktel's needs: its URL in `allowedHttpHookUrls`, the token's
/// variable in `httpHookAllowedEnvVars` (the variable goes when hooktel's http hooks go).
fn update_allowlists(root: &mut Map<String, Value>, old_urls: &[String], new_url: Option<&str>, log: &mut Vec<String>) {
    update_allowlist(root, ALLOWLIST, old_urls, new_url, log);
    let old_vars = if old_urls.is_empty() { Vec::new() } else { vec![TOKEN_VAR.to_owned()] };
    update_allowlist(root, ENV_ALLOWLIST, &old_vars, new_url.map(|_| TOKEN_VAR), log);
}

/// hooktel's old entries leave an allowlist (`allowedHttpHookUrls`, `httpHookAllowedEnvVars`), its new
/// one joins it: only when the file already has the key (absent means everything is allowed; adding
/// it would block the user's other hooks).
fn update_allowlist(
    root: &mut Map<String, Value>,
    key: &str,
    old: &[String],
    new: Option<&str>,
    log: &mut Vec<String>,
) {
    let Some(Value::Array(list)) = root.get_mut(key) else { return };
    list.retain(|u| match u.as_str() {
        Some(u) if old.iter().any(|o| o == u) && Some(u) != new => {
            log.push(format!("removed {u} from {key}"));
            false
        }
        _ => true,
    });
    if let Some(new) = new {
        if !list.iter().any(|u| u.as_str() == Some(new)) {
            list.push(Value::String(new.into()));
            log.push(format!("added {new} to {key}"));
        }
    }
}

fn is_empty_array(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::settings_file::{settings_path_from, KEEP_BACKUPS};
    use serde_json::Value;

    const COMMAND_FIXTURE: &str = include_str!("../../tests/fixtures/settings/settings.command-hooks.json");
    const HTTP_FIXTURE: &str = include_str!("../../tests/fixtures/settings/settings.http-hooks.json");
    const MATCHERS_FIXTURE: &str = include_str!("../../tests/fixtures/settings/settings.matchers-example.json");
    const FIXTURES: [&str; 3] = [COMMAND_FIXTURE, HTTP_FIXTURE, MATCHERS_FIXTURE];
    const COMMAND: &str = "'/opt/hook tel/bin/hooktel' hook";
    const URL: &str = "http://127.0.0.1:4388/v1/hooks";

    /// A temporary directory, deleted when dropped, that is used as the path it is.
    struct Dir(tempfile::TempDir);

    impl std::ops::Deref for Dir {
        type Target = Path;
        fn deref(&self) -> &Path {
            self.0.path()
        }
    }

    /// A settings file in a fresh directory.
    fn settings_file(text: Option<&str>) -> (Dir, PathBuf) {
        let dir = Dir(tempfile::tempdir().unwrap());
        let path = dir.join(".claude").join("settings.json");
        if let Some(text) = text {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        (dir, path)
    }

    fn value(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn backups(dir: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join(".claude"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("hooktel-backup-"))
            .collect();
        out.sort();
        out
    }

    /// The hooks of one event, as (type, command or url).
    fn hooks_of(v: &Value, event: &str) -> Vec<(String, String)> {
        v["hooks"][event]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["hooks"].as_array().unwrap())
            .map(|h| {
                let t = h["type"].as_str().unwrap().to_owned();
                let target = h.get("command").or(h.get("url")).and_then(Value::as_str).unwrap_or_default().to_owned();
                (t, target)
            })
            .collect()
    }

    #[test]
    fn install_keeps_the_users_settings_and_hooks() {
        for fixture in FIXTURES {
            let (_dir, path) = settings_file(Some(fixture));
            let before: Value = serde_json::from_str(fixture).unwrap();
            let report = install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
            assert_eq!(report.added.len() + report.updated.len(), EVENTS.len(), "{report}");
            let after = value(&path);
            for (key, v) in before.as_object().unwrap() {
                if key != "hooks" {
                    assert_eq!(&after[key], v, "{key} kept");
                }
            }
            for (event, groups) in before["hooks"].as_object().unwrap() {
                let kept = after["hooks"][event].as_array().unwrap();
                assert_eq!(&kept[..groups.as_array().unwrap().len()], groups.as_array().unwrap().as_slice(), "{event}");
            }
            for event in EVENTS {
                let hooks = hooks_of(&after, event);
                assert_eq!(hooks.last().unwrap(), &("command".to_owned(), COMMAND.to_owned()), "{event}");
                assert_eq!(hooks.iter().filter(|h| h.1 == COMMAND).count(), 1, "{event}");
            }
            // key order kept: `$schema` stays first
            let text = std::fs::read_to_string(&path).unwrap();
            if fixture.contains("$schema") {
                assert!(text.starts_with("{\n  \"$schema\""), "{text}");
            }
        }
    }

    #[test]
    fn installing_twice_is_installing_once() {
        for kind in [HookKind::Command, HookKind::Http] {
            let (dir, path) = settings_file(Some(COMMAND_FIXTURE));
            install(&path, kind, COMMAND, URL, None, None).unwrap();
            let once = std::fs::read(&path).unwrap();
            let report = install(&path, kind, COMMAND, URL, None, None).unwrap();
            assert!(!report.changed(), "{report}");
            assert_eq!(report.unchanged.len(), EVENTS.len());
            assert!(report.backup.is_none());
            assert_eq!(std::fs::read(&path).unwrap(), once);
            assert_eq!(backups(&dir).len(), 1, "one backup, of the first change");
        }
    }

    #[test]
    fn a_binary_under_another_name_is_still_installed_once() {
        let (_dir, path) = settings_file(Some(MATCHERS_FIXTURE));
        install(&path, HookKind::Command, "/opt/bin/tel hook", URL, None, None).unwrap();
        let once = std::fs::read(&path).unwrap();
        assert!(!install(&path, HookKind::Command, "/opt/bin/tel hook", URL, None, None).unwrap().changed());
        assert_eq!(std::fs::read(&path).unwrap(), once);
    }

    #[test]
    fn switching_kinds_replaces_hooktels_entries() {
        let (_dir, path) = settings_file(Some(HTTP_FIXTURE));
        install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
        let report = install(&path, HookKind::Http, COMMAND, URL, None, None).unwrap();
        let http_events = EVENTS.len() - COMMAND_ONLY.len();
        assert_eq!(report.updated.len(), http_events, "{report}");
        let v = value(&path);
        for event in EVENTS {
            let ours: Vec<_> = hooks_of(&v, event).into_iter().filter(|h| h.1 == COMMAND || h.1 == URL).collect();
            let want = if COMMAND_ONLY.contains(event) { ("command", COMMAND) } else { ("http", URL) };
            assert_eq!(ours, vec![(want.0.to_owned(), want.1.to_owned())], "{event}");
        }
        let http_hook = &v["hooks"]["Stop"].as_array().unwrap().last().unwrap()["hooks"][0];
        assert_eq!(http_hook["headers"][MARKER_HEADER], "1");
        // the token by reference, interpolated by Claude Code from its environment
        assert_eq!(http_hook["headers"]["Authorization"], "Bearer $HOOKTEL_TOKEN");
        assert_eq!(http_hook["allowedEnvVars"], serde_json::json!(["HOOKTEL_TOKEN"]));
        // the fixture restricts http hooks to its own sidecar and variables: hooktel's are allowed too
        assert_eq!(v[ALLOWLIST], serde_json::json!(["http://127.0.0.1:4319/*", URL]));
        assert_eq!(v[ENV_ALLOWLIST], serde_json::json!(["CC_SIDECAR_TOKEN", "HOOKTEL_TOKEN"]));

        let report = install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
        assert_eq!(report.updated.len(), http_events, "{report}");
        assert_eq!(
            report.allowlist,
            vec![format!("removed {URL} from {ALLOWLIST}"), format!("removed HOOKTEL_TOKEN from {ENV_ALLOWLIST}")]
        );
        let v = value(&path);
        for event in EVENTS {
            assert!(!hooks_of(&v, event).iter().any(|h| h.1 == URL), "{event}");
        }
        assert_eq!(v[ALLOWLIST], serde_json::json!(["http://127.0.0.1:4319/*"]));
        assert_eq!(v[ENV_ALLOWLIST], serde_json::json!(["CC_SIDECAR_TOKEN"]));
    }

    #[test]
    fn a_backup_of_the_old_file_is_written_before_a_change() {
        let (dir, path) = settings_file(Some(MATCHERS_FIXTURE));
        let report = install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
        let backup = report.backup.clone().expect("a backup");
        assert_eq!(backups(&dir), vec![backup.clone()]);
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), MATCHERS_FIXTURE);
        assert!(backup.file_name().unwrap().to_string_lossy().starts_with("settings.json.hooktel-backup-"));
        assert!(report.to_string().contains(&backup.display().to_string()), "{report}");
        // a second change in the same second gets its own name
        let report = uninstall(&path).unwrap();
        assert_ne!(report.backup.unwrap(), backup);
        assert_eq!(backups(&dir).len(), 2);
    }

    #[test]
    fn what_cannot_be_merged_into_is_refused_untouched() {
        let bad = [
            "{\"hooks\": {\"Stop\": []},}",
            "{\n  // a comment: Claude Code rejects it too\n  \"model\": \"opus\"\n}",
            "[1, 2]",
            "{\"hooks\": []}",
            "{\"hooks\": {\"Stop\": {}}}",
            "{\"allowedHttpHookUrls\": \"*\"}",
        ];
        for text in bad {
            let (dir, path) = settings_file(Some(text));
            let err = install(&path, HookKind::Http, COMMAND, URL, None, None).unwrap_err().to_string();
            assert!(err.contains("not changing it"), "{err}");
            assert!(uninstall(&path).is_err());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
            assert!(backups(&dir).is_empty());
        }
    }

    #[test]
    fn uninstall_gives_back_the_users_file() {
        for fixture in FIXTURES {
            for kind in [HookKind::Command, HookKind::Http] {
                let (_dir, path) = settings_file(Some(fixture));
                install(&path, kind, COMMAND, URL, None, None).unwrap();
                let report = uninstall(&path).unwrap();
                assert_eq!(report.removed.len(), EVENTS.len(), "{report}");
                assert_eq!(value(&path), serde_json::from_str::<Value>(fixture).unwrap());
                // the fixtures are written as Claude Code writes settings: even the bytes come back
                assert_eq!(std::fs::read_to_string(&path).unwrap(), fixture);
                assert!(!uninstall(&path).unwrap().changed());
            }
        }
    }

    #[test]
    fn a_missing_file_and_directory_are_created_and_removed_hooks_leave_no_husk() {
        let (_dir, path) = settings_file(None);
        let report = install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
        assert!(report.created && report.backup.is_none(), "{report}");
        assert_eq!(hooks_of(&value(&path), "PreToolUse"), vec![("command".to_owned(), COMMAND.to_owned())]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\n  \"hooks\": {\n    \"PreToolUse\": [\n      {\n"), "{text}");
        let report = uninstall(&path).unwrap();
        assert!(report.deleted && !path.exists(), "no `{{}}` left behind: {report}");
        assert!(report.to_string().contains("removed: nothing else was in it"), "{report}");
        // uninstalling where nothing was installed creates nothing
        let (_dir2, missing) = settings_file(None);
        assert!(!uninstall(&missing).unwrap().changed());
        assert!(!missing.exists());
    }

    /// Installs and uninstalls back and forth keep the last few backups, not one per change.
    #[test]
    fn only_the_last_few_backups_are_kept() {
        let (dir, path) = settings_file(Some(COMMAND_FIXTURE));
        let mut last = None;
        for _ in 0..6 {
            install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
            last = uninstall(&path).unwrap().backup;
        }
        let kept = backups(&dir);
        assert_eq!(kept.len(), KEEP_BACKUPS, "{kept:?}");
        // the one just written survives the pruning it triggers, even when all were written in one
        // second, and it is the newest by its name: the file as it was before the last uninstall
        let last = last.expect("uninstall backed the file up");
        let name = path.file_name().unwrap().to_string_lossy();
        let newest = crate::cli::settings_file::backups_of(&dir.join(".claude"), &name).pop().unwrap().1;
        assert_eq!(newest, last, "{kept:?}");
        let newest = std::fs::read_to_string(newest).unwrap();
        assert!(newest.contains(COMMAND.split('\'').nth(1).unwrap()), "{newest}");
    }

    #[test]
    fn hooktels_entries_are_told_from_the_users() {
        let ours = [
            serde_json::json!({"type": "command", "command": "hooktel hook"}),
            serde_json::json!({"type": "command", "command": "/usr/local/bin/hooktel hook"}),
            serde_json::json!({"type": "command", "command": "'/home/a b/.cargo/bin/hooktel' hook"}),
            serde_json::json!({"type": "command", "command": "HOOKTEL_ADDR=127.0.0.1:9 \"/x/hooktel\" hook"}),
            serde_json::json!({"type": "command", "command": "/x/hooktel", "args": ["hook"]}),
            serde_json::json!({"type": "command", "command": "/usr/lib/hooktel-0.1 hook"}),
            serde_json::json!({"type": "http", "url": "http://[::1]:5000/v1/hooks", "headers": {"x-hooktel": "1"}}),
        ];
        let theirs = [
            serde_json::json!({"type": "command", "command": "cc-sidecar-forward", "args": ["--endpoint", "http://127.0.0.1:4319/v1/hooks"]}),
            serde_json::json!({"type": "command", "command": "hooktel emit hook"}),
            serde_json::json!({"type": "command", "command": "/x/hooktel-hook"}),
            serde_json::json!({"type": "command", "command": "/x/not-hooktel hook"}),
            serde_json::json!({"type": "command", "command": "python3 log.py hooktel hook"}),
            serde_json::json!({"type": "http", "url": "http://127.0.0.1:4319/v1/hooks"}),
            serde_json::json!({"type": "prompt", "prompt": "hooktel hook"}),
        ];
        for h in &ours {
            assert!(is_hooktel(h), "{h}");
        }
        for h in &theirs {
            assert!(!is_hooktel(h), "{h}");
        }
    }

    #[test]
    fn a_hand_written_hooktel_hook_beside_the_users_is_replaced_alone() {
        let text = r#"{
  "hooks": {
    "Stop": [
      {
        "hooks": [
          {"type": "command", "command": "notify-send done"},
          {"type": "command", "command": "hooktel hook"}
        ]
      }
    ],
    "WorktreeCreate": [{"hooks": [{"type": "command", "command": "hooktel hook"}]}]
  }
}"#;
        let (_dir, path) = settings_file(Some(text));
        let report = install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
        assert!(report.updated.contains(&"Stop".to_owned()), "{report}");
        assert_eq!(report.removed, vec!["WorktreeCreate".to_owned()]);
        let v = value(&path);
        assert_eq!(
            hooks_of(&v, "Stop"),
            vec![("command".to_owned(), "notify-send done".to_owned()), ("command".to_owned(), COMMAND.to_owned())]
        );
        assert!(v["hooks"].get("WorktreeCreate").is_none());
    }

    #[test]
    fn the_keys_after_a_removed_hooks_object_keep_their_order() {
        let (_dir, path) = settings_file(Some("{\"a\": 1, \"hooks\": {}, \"b\": 2, \"c\": 3}\n"));
        install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
        uninstall(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3\n}\n");
    }

    #[test]
    fn hooktels_own_entry_with_its_keys_in_another_order_is_left_alone() {
        let text = r#"{
  "hooks": {
    "Stop": [
      {
        "hooks": [
          {
            "command": "/opt/bin/tel hook",
            "type": "command"
          }
        ]
      }
    ]
  }
}
"#;
        let (_dir, path) = settings_file(Some(text));
        let report = install(&path, HookKind::Command, "/opt/bin/tel hook", URL, None, None).unwrap();
        assert_eq!(report.unchanged, vec!["Stop".to_owned()], "{report}");
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("\"command\": \"/opt/bin/tel hook\",\n            \"type\""), "{written}");
    }

    #[test]
    fn a_key_written_twice_keeps_its_last_value_as_claude_code_reads_it() {
        let text = r#"{"model": "sonnet", "hooks": [], "env": {}, "model": "opus", "hooks": {"Stop": []}}"#;
        let (_dir, path) = settings_file(Some(text));
        install(&path, HookKind::Command, COMMAND, URL, None, None).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.matches("\"model\"").count(), 1, "{written}");
        assert_eq!(written.matches("\"hooks\": {").count(), 1, "{written}");
        // each key stays where it was first written
        assert!(written.starts_with("{\n  \"model\": \"opus\",\n  \"hooks\": {\n"), "{written}");
        assert_eq!(hooks_of(&value(&path), "Stop"), vec![("command".to_owned(), COMMAND.to_owned())]);
    }

    #[test]
    fn inspect_finds_hooktels_hooks() {
        let (dir, path) = settings_file(Some(HTTP_FIXTURE));
        assert!(inspect(&path).unwrap().unwrap().hooks.is_empty());
        install(&path, HookKind::Http, COMMAND, URL, None, None).unwrap();
        let found = inspect(&path).unwrap().unwrap();
        assert_eq!(found.hooks.len(), EVENTS.len());
        assert!(found.hooks.contains(&("Stop".into(), Found::Http(URL.into()))));
        assert!(found.hooks.contains(&("SessionStart".into(), Found::Command("/opt/hook tel/bin/hooktel".into()))));
        assert_eq!(found.allowlist.unwrap().len(), 2);
        assert!(inspect(&dir.join("nothing.json")).unwrap().is_none());
    }

    #[test]
    fn settings_paths_and_urls() {
        let p = |project: Option<&str>, config: Option<&str>, home: Option<&str>| {
            let vars = |k: &str| match k {
                "CLAUDE_CONFIG_DIR" => config.map(Into::into),
                "HOME" => home.map(Into::into),
                _ => None,
            };
            settings_path_from(project.map(Path::new), &vars)
        };
        assert_eq!(p(Some("/w"), Some("/c"), Some("/h")).unwrap(), Path::new("/w/.claude/settings.json"));
        assert_eq!(p(None, Some("/c"), Some("/h")).unwrap(), Path::new("/c/settings.json"));
        assert_eq!(p(None, Some(""), Some("/h")).unwrap(), Path::new("/h/.claude/settings.json"));
        assert!(p(None, None, None).is_err());
        assert_eq!(hook_url("0.0.0.0:4388".parse().unwrap()), URL);
        assert_eq!(hook_url("[::1]:9".parse().unwrap()), "http://[::1]:9/v1/hooks");
        assert_eq!(shell_quote("/usr/bin/hooktel"), "/usr/bin/hooktel");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert!(url_allowed("http://127.0.0.1:*/v1/hooks", URL));
        assert!(url_allowed("http://127.0.0.1:4388/*", URL));
        assert!(url_allowed(URL, URL));
        assert!(!url_allowed("http://127.0.0.1:4319/*", URL));
        assert!(!url_allowed("http://127.0.0.1:4388/v1/hooks*x", URL));
    }
}
