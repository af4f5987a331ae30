//! `hooktel install --agent codex` and `uninstall --agent codex`: hooktel's hook on every event of
//! Codex CLI's `hooks.json` (in Codex's home, as `codex app-server` names it), the user's own hooks
//! kept, and trust recorded for exactly hooktel's hooks the way Codex's `/hooks` records it: Codex runs
//! a hook only once it is trusted, and its trust key holds the hook's position
//! (`<file>:<event>:<group>:<handler>`) and its hash, which only Codex computes (`hooks/list`, then
//! `config/batchWrite` of `hooks.state`). hooktel's groups go after the user's, so no key of theirs
//! moves; uninstall leaves a group it emptied in place (`{"hooks": []}`) when a group of the user's
//! follows it, for the same reason, and forgets the trust of hooktel's hooks only.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Map, Value};

use crate::cli::codex_app_server::AppServer;
use crate::cli::install::shell_words;
use crate::cli::settings_file;
use crate::model::agent::Agent;
use crate::usage::agent_dirs::codex_home;

/// Codex CLI 0.171's hook events, as `hooks.json` names them.
pub const EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreModelRequest",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PreCompact",
    "PostCompact",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "SessionEnd",
    "Interrupt",
];

/// What an install or uninstall did.
#[derive(Debug)]
pub struct Report {
    pub file: PathBuf,
    /// Events hooked (install) or unhooked (uninstall) in the file.
    pub events: usize,
    /// Hooks trusted (install) or whose trust was forgotten (uninstall).
    pub trust: usize,
    pub backup: Option<PathBuf>,
    installing: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.installing, self.events) {
            (true, 0) => writeln!(f, "{file}: every Codex event already runs hooktel's hook")?,
            (true, n) => writeln!(f, "{file}: hooktel's hook added to {n} Codex events (the user's hooks kept)")?,
            (false, 0) => writeln!(f, "{file}: no hooktel hook to remove")?,
            (false, n) => writeln!(f, "{file}: hooktel's hook removed from {n} Codex events")?,
        }
        if let Some(b) = &self.backup {
            writeln!(f, "the old file is in {}", b.display())?;
        }
        match self.installing {
            true => writeln!(f, "trusted {} of hooktel's hooks through `codex app-server`", self.trust),
            false => writeln!(f, "forgot the trust of {} of hooktel's hooks through `codex app-server`", self.trust),
        }
    }
}

/// Whether a handler is hooktel's Codex hook (`<path>/hooktel hook --agent codex`).
pub(crate) fn is_ours(handler: &Value) -> bool {
    crate::cli::install::hooked_agent(handler) == Some(Agent::Codex)
}

fn group_has_ours(group: &Value) -> bool {
    group.get("hooks").and_then(Value::as_array).is_some_and(|hs| hs.iter().any(is_ours))
}

/// Add `command` (hooktel's hook, `... hook --agent codex`) to every Codex event, then trust it.
pub fn install(command: &str) -> anyhow::Result<Report> {
    let mut server = AppServer::start()?;
    let file = server.codex_home.join("hooks.json");
    let (mut root, old) = settings_file::load(&file)?;
    let hooks = settings_file::hooks_object(&mut root);
    let mut events = 0;
    for event in EVENTS {
        let groups = hooks.entry(*event).or_insert_with(|| json!([])).as_array_mut().expect("load checked");
        if !groups.iter().any(group_has_ours) {
            groups.push(json!({"hooks": [{"type": "command", "command": command}]}));
            events += 1;
        }
    }
    let backup = if events > 0 { settings_file::save(&file, &root, old.as_deref())? } else { None };
    let mut trust = Map::new();
    for hook in ours(&mut server, &file)? {
        if hook.get("trustStatus").and_then(Value::as_str) != Some("trusted") {
            let (Some(key), Some(hash)) = (text(&hook, "key"), text(&hook, "currentHash")) else { continue };
            trust.insert(key.to_owned(), json!({"trusted_hash": hash}));
        }
    }
    let trusted = trust.len();
    if trusted > 0 {
        server.write_config(vec![json!({"keyPath": "hooks.state", "mergeStrategy": "upsert", "value": trust})])?;
    }
    Ok(Report { file, events, trust: trusted, backup, installing: true })
}

/// Remove hooktel's hooks from Codex's `hooks.json`, and their trust; nothing of the user's.
pub fn uninstall() -> anyhow::Result<Report> {
    let mut server = AppServer::start()?;
    let file = server.codex_home.join("hooks.json");
    let keys: Vec<String> =
        ours(&mut server, &file)?.iter().filter_map(|h| text(h, "key").map(str::to_owned)).collect();
    let (mut root, old) = settings_file::load(&file)?;
    let mut events = 0;
    for groups in settings_file::hooks_object(&mut root).values_mut() {
        let groups = groups.as_array_mut().expect("load checked");
        let before = groups.clone();
        for group in groups.iter_mut() {
            if let Some(handlers) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                handlers.retain(|h| !is_ours(h));
            }
        }
        // a group emptied at the end goes; one a group of the user's follows stays, empty, so that
        // the user's group keeps its index (and its trust)
        while groups.last().is_some_and(|g| g.get("hooks").and_then(Value::as_array).is_some_and(Vec::is_empty))
            && before.get(groups.len() - 1).is_some_and(group_has_ours)
        {
            groups.pop();
        }
        if *groups != before {
            events += 1;
        }
    }
    let hooks = settings_file::hooks_object(&mut root);
    hooks.retain(|_, groups| groups.as_array().is_none_or(|g| !g.is_empty()));
    let backup = if events > 0 { settings_file::save(&file, &root, old.as_deref())? } else { None };
    let edits: Vec<Value> = keys
        .iter()
        .filter(|k| !k.contains('"'))
        .map(|k| json!({"keyPath": format!("hooks.state.\"{k}\""), "mergeStrategy": "replace", "value": null}))
        .collect();
    let forgotten = edits.len();
    if forgotten > 0 {
        server.write_config(edits)?;
    }
    Ok(Report { file, events, trust: forgotten, backup, installing: false })
}

/// What `hooktel doctor` says of Codex: `None` when Codex's `hooks.json` has no hook of hooktel's
/// (Codex not in use with hooktel: nothing to check). Otherwise the file, the events hooked, the
/// programs the hooks run, and whether Codex trusts them (asked of `codex app-server` when `codex` is
/// on PATH; `None` when it is not).
pub(crate) struct Found {
    pub(crate) file: PathBuf,
    pub(crate) events: usize,
    pub(crate) programs: Vec<String>,
    /// (trusted, listed) of hooktel's hooks, as Codex sees them.
    pub(crate) trust: Option<anyhow::Result<(usize, usize)>>,
}

pub(crate) fn inspect() -> anyhow::Result<Option<Found>> {
    let Some(file) = codex_home().map(|h| h.join("hooks.json")) else { return Ok(None) };
    let (root, _) = settings_file::load(&file)?;
    let mut events = 0;
    let mut programs: Vec<String> = Vec::new();
    for groups in root.get("hooks").and_then(Value::as_object).into_iter().flat_map(|h| h.values()) {
        let handlers = groups.as_array().into_iter().flatten().filter_map(|g| g.get("hooks")?.as_array()).flatten();
        let ours: Vec<&Value> = handlers.filter(|h| is_ours(h)).collect();
        events += usize::from(!ours.is_empty());
        for h in ours {
            let program = h.get("command").and_then(Value::as_str).map(shell_words).and_then(|w| w.into_iter().next());
            if let Some(p) = program.filter(|p| !programs.contains(p)) {
                programs.push(p);
            }
        }
    }
    if events == 0 {
        return Ok(None);
    }
    let trust = match AppServer::start() {
        Err(e) if e.to_string().contains("not on PATH") => None,
        started => Some(started.and_then(|mut server| {
            let listed = ours(&mut server, &file)?;
            let trusted = listed.iter().filter(|h| text(h, "trustStatus") == Some("trusted")).count();
            Ok((trusted, listed.len()))
        })),
    };
    Ok(Some(Found { file, events, programs, trust }))
}

/// hooktel's hooks in `file`, as Codex lists them.
fn ours(server: &mut AppServer, file: &Path) -> anyhow::Result<Vec<Value>> {
    let cwd = std::env::current_dir().context("the current directory")?;
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let file = real(file);
    let listed = server.hooks(&cwd)?;
    Ok(listed
        .into_iter()
        .filter(|h| text(h, "sourcePath").is_some_and(|p| real(Path::new(p)) == file))
        .filter(|h| h.get("handlerType").and_then(Value::as_str) == Some("command") && is_ours(h))
        .collect())
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooktels_codex_hook_is_told_from_others() {
        let ours = |c: &str| is_ours(&json!({"type": "command", "command": c}));
        assert!(ours("'/home/u/.cargo/bin/hooktel' hook --agent codex"));
        assert!(ours("hooktel hook --agent codex"));
        for other in ["hooktel hook", "echo hooktel hook --agent codex", "/x/hooktel-old hook --agent codex", ""] {
            assert!(!ours(other), "{other:?}");
        }
    }
}
