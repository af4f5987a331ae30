//! `hooktel install --agent gemini` and `uninstall --agent gemini`: hooktel's hook on the Gemini CLI
//! events hooktel reads, in the user's `settings.json` in Gemini's directory (`~/.gemini`, or
//! `$GEMINI_CLI_HOME/.gemini` as Gemini CLI 0.61 resolves it), after the user's own hooks; every
//! other setting and hook of the user's is kept.
//!
//! Refused, with the file untouched: a file Gemini CLI itself cannot start with (not JSON, not an
//! object), one hooktel cannot merge into (`hooks` not an object, an event not an array), one with
//! comments (Gemini reads them and keeps them when it writes; hooktel would lose them), and an
//! install whose hooks would not run (`hooksConfig.enabled: false`, or hooktel's hook name in
//! `hooksConfig.disabled`): that would look like success and trace nothing. Reading and writing the
//! file (bounded, backed up, atomic) is `settings_file`'s.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use crate::cli::install::{shell_words, strip};
use crate::cli::settings_file;
use crate::model::agent::Agent;
use crate::usage::agent_dirs::gemini_dir;

/// The Gemini CLI 0.61 events hooktel hooks: all but those of [`LEFT_OUT`] (`tests/it/gemini_install.rs`
/// reads the list out of the pinned CLI). `Notification` fires in the interactive UI only.
pub const EVENTS: &[&str] = &[
    "SessionStart",
    "BeforeAgent",
    "AfterAgent",
    "BeforeModel",
    "AfterModel",
    "BeforeTool",
    "AfterTool",
    "PreCompress",
    "Notification",
    "SessionEnd",
];

/// Gemini CLI's events hooktel does not hook, and why.
pub const LEFT_OUT: &[(&str, &str)] = &[(
    "BeforeToolSelection",
    "it carries the whole conversation on every model call, and hooktel reads nothing from it",
)];

/// The name of hooktel's hook: what `hooksConfig.disabled` would list to turn it off.
pub(crate) const HOOK_NAME: &str = "hooktel";

/// Gemini kills a hook that runs longer than its `timeout` (milliseconds; 60 s when unset). hooktel's
/// returns within about 4 s at its default budget, even with the sidecar down or hung: 2 s for a
/// payload written late, then `HOOKTEL_HOOK_TIMEOUT_MS` (500 ms) each for the rest of it, connecting,
/// sending and reading, and the spool. Twice that is never reached by a working hook and bounds what
/// a stuck one could cost a turn.
pub(crate) const TIMEOUT_MS: u64 = 10_000;

/// Keys of `hooks` that Gemini CLI skips as settings rather than events.
const NOT_EVENTS: &[&str] = &["enabled", "disabled", "notifications"];

/// The user's Gemini CLI settings file.
pub fn settings_path() -> anyhow::Result<PathBuf> {
    gemini_dir()
        .map(|dir| dir.join("settings.json"))
        .context("neither HOME nor GEMINI_CLI_HOME is set: cannot find Gemini CLI's settings")
}

/// What an install or uninstall did.
#[derive(Debug)]
pub struct Report {
    file: PathBuf,
    /// Events that got hooktel's hook (install) or lost it (uninstall).
    changed: usize,
    /// Events whose hook of hooktel's was replaced (another path, say).
    updated: usize,
    backup: Option<PathBuf>,
    /// `uninstall` left nothing in the file, so it removed it.
    deleted: bool,
    installing: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.installing, self.changed + self.updated) {
            (true, 0) => {
                writeln!(f, "{file}: every Gemini CLI event hooktel reads already runs its hook: nothing to change")?
            }
            (true, _) => {
                let updated = match self.updated {
                    0 => String::new(),
                    n => format!(", replaced on {n}"),
                };
                writeln!(
                    f,
                    "{file}: hooktel's hook added to {} Gemini CLI events{updated} (the user's hooks kept)",
                    self.changed
                )?
            }
            (false, 0) => writeln!(f, "{file}: no hooktel hook to remove")?,
            (false, n) if self.deleted => writeln!(
                f,
                "{file}: hooktel's hook removed from {n} Gemini CLI events (the file held nothing else: removed)"
            )?,
            (false, n) => writeln!(f, "{file}: hooktel's hook removed from {n} Gemini CLI events")?,
        }
        if let Some(b) = &self.backup {
            writeln!(f, "the old file is in {}", b.display())?;
        }
        Ok(())
    }
}

/// Add `command` (hooktel's hook, `... hook --agent gemini`) to every event of [`EVENTS`].
pub fn install(command: &str) -> anyhow::Result<Report> {
    let file = settings_path()?;
    let (mut settings, old, comments) = load(&file)?;
    if let Some(why) = turned_off(&settings, &[HOOK_NAME]) {
        bail!(
            "{}: {why}, so Gemini CLI would not run hooktel's hook; not changing it. Turn hooks on there \
             (or take {HOOK_NAME:?} out of hooksConfig.disabled), then install again",
            file.display()
        );
    }
    let handler = json!({"type": "command", "name": HOOK_NAME, "command": command, "timeout": TIMEOUT_MS});
    let mut report = Report { file, changed: 0, updated: 0, backup: None, deleted: false, installing: true };
    let hooks = settings_file::hooks_object(&mut settings);
    for event in EVENTS {
        let groups = hooks.entry(*event).or_insert_with(|| json!([])).as_array_mut().expect("load checked");
        let ours: Vec<&Value> = groups.iter().flat_map(handlers).filter(|h| is_ours(h)).collect();
        if ours.len() == 1 && ours[0].get("command").and_then(Value::as_str) == Some(command) {
            continue;
        }
        let replaced = strip(groups, &is_ours, &mut Vec::new()) > 0;
        groups.push(json!({"hooks": [handler.clone()]}));
        if replaced {
            report.updated += 1;
        } else {
            report.changed += 1;
        }
    }
    if report.changed + report.updated > 0 {
        report.backup = save(&report.file, &settings, old.as_deref(), comments)?;
    }
    Ok(report)
}

/// Remove hooktel's hooks (and the groups and events they leave empty); nothing of the user's.
pub fn uninstall() -> anyhow::Result<Report> {
    let file = settings_path()?;
    let (mut settings, old, comments) = load(&file)?;
    let mut report = Report { file, changed: 0, updated: 0, backup: None, deleted: false, installing: false };
    let root = settings.as_object_mut().expect("load checked");
    if let Some(hooks) = root.get_mut("hooks").and_then(Value::as_object_mut) {
        let mut emptied = Vec::new();
        for (event, groups) in hooks.iter_mut() {
            let Some(groups) = groups.as_array_mut() else { continue };
            if strip(groups, &is_ours, &mut Vec::new()) > 0 {
                report.changed += 1;
                if groups.is_empty() {
                    emptied.push(event.clone());
                }
            }
        }
        hooks.retain(|event, _| !emptied.contains(event));
        if !emptied.is_empty() && hooks.is_empty() {
            // shift, not swap: the keys after `hooks` keep their order
            root.shift_remove("hooks");
        }
    }
    if report.changed > 0 {
        report.backup = save(&report.file, &settings, old.as_deref(), comments)?;
        if settings.as_object().is_some_and(Map::is_empty) {
            // what install created holds nothing else now: no `{}` left behind (the backup keeps it)
            std::fs::remove_file(&report.file).with_context(|| format!("removing {}", report.file.display()))?;
            report.deleted = true;
        }
    }
    Ok(report)
}

/// What `hooktel doctor` says of Gemini CLI: `None` when there is no Gemini directory (Gemini CLI
/// not used here, and so no hook of hooktel's either).
pub(crate) struct Found {
    pub(crate) file: PathBuf,
    /// Events of [`EVENTS`] without hooktel's hook.
    pub(crate) missing: Vec<&'static str>,
    /// The programs hooktel's hooks run.
    pub(crate) programs: Vec<String>,
    /// Why Gemini CLI would run none of them (`hooksConfig`), if it would not.
    pub(crate) turned_off: Option<String>,
}

pub(crate) fn inspect() -> anyhow::Result<Option<Found>> {
    let Some(file) = gemini_dir().filter(|d| d.is_dir()).map(|d| d.join("settings.json")) else { return Ok(None) };
    let (settings, _, _) = load(&file)?;
    let mut found = Found { file, missing: Vec::new(), programs: Vec::new(), turned_off: None };
    let mut names: Vec<String> = Vec::new();
    for event in EVENTS {
        let groups = settings.get("hooks").and_then(|h| h.get(*event)).and_then(Value::as_array);
        let ours: Vec<&Value> = groups.into_iter().flatten().flat_map(handlers).filter(|h| is_ours(h)).collect();
        if ours.is_empty() {
            found.missing.push(event);
        }
        for h in ours {
            // Gemini names a hook by its `name`, else by its command
            let name = h.get("name").or(h.get("command")).and_then(Value::as_str).unwrap_or_default();
            let program = h.get("command").and_then(Value::as_str).and_then(|c| shell_words(c).into_iter().next());
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
            if let Some(p) = program.filter(|p| !found.programs.contains(p)) {
                found.programs.push(p);
            }
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    found.turned_off = turned_off(&settings, &names);
    Ok(Some(found))
}

/// Whether a handler is hooktel's Gemini hook (`<path>/hooktel hook --agent gemini`, or `gemini-cli`).
pub(crate) fn is_ours(handler: &Value) -> bool {
    crate::cli::install::hooked_agent(handler) == Some(Agent::Gemini)
}

fn handlers(group: &Value) -> &[Value] {
    group.get("hooks").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// Why Gemini CLI would run no hook of these names, according to `hooksConfig`.
fn turned_off(settings: &Value, names: &[&str]) -> Option<String> {
    let config = settings.get("hooksConfig")?;
    if config.get("enabled") == Some(&Value::Bool(false)) {
        return Some("\"hooksConfig\": {\"enabled\": false} turns every hook off".into());
    }
    let disabled = config.get("disabled")?.as_array()?;
    let name = disabled.iter().filter_map(Value::as_str).find(|d| names.contains(d))?;
    Some(format!("hooksConfig.disabled lists {name:?}"))
}

/// Write the changed settings (a backup of `old` first), unless the file has comments.
fn save(file: &Path, settings: &Value, old: Option<&[u8]>, comments: bool) -> anyhow::Result<Option<PathBuf>> {
    if comments {
        bail!(
            "{} has comments, which Gemini CLI reads but hooktel would lose in rewriting it; not changing it. \
             Take them out and run this again, or add the hooks by hand (docs/gemini.md)",
            file.display()
        );
    }
    settings_file::save(file, settings, old)
}

/// The settings (an empty object for a missing or blank file), the file's bytes, and whether it has
/// comments; refuses what neither Gemini CLI nor hooktel can use.
fn load(file: &Path) -> anyhow::Result<(Value, Option<Vec<u8>>, bool)> {
    let refuse = |why: String| anyhow::anyhow!("{} {why}; not changing it", file.display());
    let Some(bytes) = settings_file::read(file, &refuse)? else { return Ok((json!({}), None, false)) };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((json!({}), Some(bytes), false));
    }
    let plain = strip_comments(&bytes);
    let settings: Value = serde_json::from_slice(&plain)
        .map_err(|e| refuse(format!("is not valid JSON ({e}): Gemini CLI does not start with it")))?;
    let Some(root) = settings.as_object() else {
        return Err(refuse("does not hold a JSON object: Gemini CLI does not start with it".into()));
    };
    if let Some(hooks) = root.get("hooks") {
        let Some(hooks) = hooks.as_object() else { return Err(refuse("has a \"hooks\" that is not an object".into())) };
        let mut events = hooks.iter().filter(|(k, _)| !NOT_EVENTS.contains(&k.as_str()));
        if let Some((event, _)) = events.find(|(_, v)| !v.is_array()) {
            return Err(refuse(format!("has hooks.{event} that is not an array")));
        }
    }
    let comments = plain != bytes;
    Ok((settings, Some(bytes), comments))
}

/// `text` with its `//` and `/* */` comments blanked out (newlines kept, so an error's position
/// holds), as Gemini CLI reads its settings (strip-json-comments); strings are left alone.
fn strip_comments(text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    let (mut i, mut in_string) = (0, false);
    while i < out.len() {
        let end = match (in_string, out[i], out.get(i + 1)) {
            (true, b'\\', _) => i + 2,
            (_, b'"', _) => {
                in_string = !in_string;
                i + 1
            }
            (false, b'/', Some(b'/')) => out[i..].iter().position(|&b| b == b'\n').map_or(out.len(), |n| i + n),
            (false, b'/', Some(b'*')) => {
                out[i + 2..].windows(2).position(|w| w == b"*/").map_or(out.len(), |n| i + 2 + n + 2)
            }
            _ => i + 1,
        };
        if !in_string && out[i] == b'/' && end > i + 1 {
            out[i..end].iter_mut().filter(|b| **b != b'\n').for_each(|b| *b = b' ');
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooktels_gemini_hook_is_told_from_others() {
        let ours = |c: &str| is_ours(&json!({"type": "command", "command": c}));
        for c in [
            "'/home/u/.cargo/bin/hooktel' hook --agent gemini",
            "hooktel hook --agent gemini-cli",
            "hooktel hook --agent=gemini",
        ] {
            assert!(ours(c), "{c:?}");
        }
        for other in [
            "hooktel hook",
            "hooktel hook --agent codex",
            "echo hooktel hook --agent gemini",
            "/x/hooktel-old hook --agent gemini",
            "hooktel",
            "",
        ] {
            assert!(!ours(other), "{other:?}");
        }
    }

    #[test]
    fn comments_are_blanked_as_gemini_reads_them() {
        let text = "{\n  // the model\n  \"a\": \"http://x/*y*/\", /* two\nlines */ \"b\": \"\\\"//\"\n}";
        let plain = strip_comments(text.as_bytes());
        assert_eq!(plain.len(), text.len());
        let v: Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v, json!({"a": "http://x/*y*/", "b": "\"//"}));
        assert_eq!(plain.iter().filter(|&&b| b == b'\n').count(), 4, "line numbers kept");
        assert_eq!(strip_comments(b"{\"a\": 1}"), b"{\"a\": 1}");
    }

    #[test]
    fn hooks_config_can_turn_hooktel_off() {
        assert!(turned_off(&json!({}), &[HOOK_NAME]).is_none());
        assert!(turned_off(&json!({"hooksConfig": {"enabled": true, "disabled": ["mine"]}}), &[HOOK_NAME]).is_none());
        let off = turned_off(&json!({"hooksConfig": {"enabled": false}}), &[HOOK_NAME]).unwrap();
        assert!(off.contains("\"enabled\": false"), "{off}");
        let off = turned_off(&json!({"hooksConfig": {"disabled": ["mine", "hooktel"]}}), &[HOOK_NAME]).unwrap();
        assert!(off.contains("\"hooktel\""), "{off}");
    }
}
