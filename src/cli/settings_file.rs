//! Claude Code's settings.json as a file: where it is (a project's, `$CLAUDE_CONFIG_DIR`'s or the
//! user's), reading it (refusing what cannot be merged into safely), and writing it back (a backup
//! first, the last few kept, atomically, where a symlink points). What the file says about hooks is
//! `install`'s business. The bounded read and the backed-up write serve Codex CLI's hooks.json and
//! Gemini CLI's settings.json too.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// The settings key that, when present, lists the only URLs http hooks may POST to.
pub(crate) const ALLOWLIST: &str = "allowedHttpHookUrls";

/// The settings file: `DIR/.claude/settings.json` for a project, else `$CLAUDE_CONFIG_DIR/settings.json`,
/// else `~/.claude/settings.json`.
pub fn settings_path(project: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = project.filter(|d| !d.is_dir()) {
        bail!("{} is not a directory", dir.display());
    }
    settings_path_from(project, &|k| std::env::var_os(k))
}

pub(crate) fn settings_path_from(
    project: Option<&Path>,
    vars: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<PathBuf> {
    if let Some(dir) = project {
        return Ok(dir.join(".claude").join("settings.json"));
    }
    let (config, home) = crate::usage::agent_dirs::claude_dirs(vars);
    match config.or(home) {
        Some(dir) => Ok(dir.join("settings.json")),
        None => bail!("neither HOME nor CLAUDE_CONFIG_DIR is set: cannot find Claude Code's settings"),
    }
}

/// Largest settings file read: Claude Code's are kilobytes.
pub(crate) const MAX_SETTINGS_BYTES: u64 = 16 * 1024 * 1024;

/// The settings (an empty object for a missing file) and the file's bytes. Refuses what hooktel
/// cannot merge into safely: not JSON, not an object, `hooks` not an object, an event not an array.
pub(crate) fn load(path: &Path) -> anyhow::Result<(Value, Option<Vec<u8>>)> {
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{} {why}; not changing it (Claude Code ignores a settings file it cannot read)",
            path.display()
        )
    };
    let Some(bytes) = read(path, &refuse)? else { return Ok((Value::Object(Map::new()), None)) };
    let settings: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| refuse(format!("is not valid JSON ({e})")))?
    };
    let Some(root) = settings.as_object() else { return Err(refuse("does not hold a JSON object".into())) };
    if let Some(hooks) = root.get("hooks") {
        let Some(hooks) = hooks.as_object() else { return Err(refuse("has a \"hooks\" that is not an object".into())) };
        if let Some((event, _)) = hooks.iter().find(|(_, v)| v.as_array().is_none()) {
            return Err(refuse(format!("has hooks.{event} that is not an array")));
        }
    }
    if let Some(v) = root.get(ALLOWLIST) {
        if v.as_array().is_none() {
            return Err(refuse(format!("has an {ALLOWLIST} that is not an array")));
        }
    }
    Ok((settings, Some(bytes)))
}

/// The bytes of a settings file, `None` when there is none. A FIFO would hang the read and
/// /dev/zero or a huge file would fill memory: only a regular file (where a symlink points) of a
/// settings file's size is read; anything else is refused in the words of `refuse`.
pub(crate) fn read(path: &Path, refuse: &dyn Fn(String) -> anyhow::Error) -> anyhow::Result<Option<Vec<u8>>> {
    let mut file = match crate::usage::agent_dirs::open_nonblocking(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let meta = file.metadata().with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    if meta.len() > MAX_SETTINGS_BYTES {
        return Err(refuse(format!("is larger than {} MiB", MAX_SETTINGS_BYTES >> 20)));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, MAX_SETTINGS_BYTES + 1), &mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_SETTINGS_BYTES {
        return Err(refuse(format!("is larger than {} MiB", MAX_SETTINGS_BYTES >> 20)));
    }
    Ok(Some(bytes))
}

/// Back the old file up (`<name>.hooktel-backup-<unix time>`), then replace it atomically (a
/// symlinked settings file is written where it points). Pretty JSON, two spaces, like Claude Code.
pub(crate) fn save(target: &Path, settings: &Value, old: Option<&[u8]>) -> anyhow::Result<Option<PathBuf>> {
    let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_owned());
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = target.file_name().context("the settings path has no file name")?.to_string_lossy().into_owned();
    let mut text = serde_json::to_string_pretty(settings).context("serialising the settings")?;
    // keep the old file's ending: a file written without a final newline stays so
    if old.is_none_or(|o| o.ends_with(b"\n")) {
        text.push('\n');
    }
    let backup = match old {
        Some(old) => {
            let now = crate::model::time::now_ns() / crate::model::time::NS_PER_SEC;
            // past every backup there is, even one written later in the same second
            let (secs, n) = match backups_of(dir, &name).last() {
                Some(((secs, n), _)) if *secs >= now => (*secs, n + 1),
                _ => (now, 0),
            };
            let path = match n {
                0 => dir.join(format!("{name}.hooktel-backup-{secs}")),
                n => dir.join(format!("{name}.hooktel-backup-{secs}-{n}")),
            };
            write_private_as(&path, old, &target).with_context(|| format!("writing the backup {}", path.display()))?;
            prune_backups(dir, &name);
            Some(path)
        }
        None => None,
    };
    let tmp = dir.join(format!(".{name}.hooktel-{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(&target) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, &target).with_context(|| format!("replacing {}", target.display()))?;
    Ok(backup)
}

/// Write a new file `path` no more open than `like` (a backup of a 0600 file holding a key stays
/// 0600), whatever the umask.
fn write_private_as(path: &Path, bytes: &[u8], like: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = std::fs::metadata(like).map_or(0o600, |m| m.permissions().mode() & 0o777);
        options.mode(mode);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // the umask may have taken bits off the mode; it never adds any, so this only gives back what
        // the original has
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(like) {
            file.set_permissions(std::fs::Permissions::from_mode(m.permissions().mode() & 0o777))?;
        }
    }
    std::io::Write::write_all(&mut file, bytes)
}

/// Backups kept of one settings file; older ones are removed as a new one is written.
pub(crate) const KEEP_BACKUPS: usize = 3;

/// The backups of `name` in `dir`, oldest first: `<secs>` or `<secs>-<n>`, by the order written.
pub(crate) fn backups_of(dir: &Path, name: &str) -> Vec<((u64, u64), PathBuf)> {
    let prefix = format!("{name}.hooktel-backup-");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let order = |rest: &str| {
        let mut parts = rest.splitn(2, '-').map(|p| p.parse::<u64>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    let mut backups: Vec<((u64, u64), PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            Some((order(file.strip_prefix(&prefix)?), e.path()))
        })
        .collect();
    backups.sort();
    backups
}

/// Remove all but the newest [`KEEP_BACKUPS`] backups of `name` in `dir` (best effort).
fn prune_backups(dir: &Path, name: &str) {
    let backups = backups_of(dir, name);
    let excess = backups.len().saturating_sub(KEEP_BACKUPS);
    for (_, path) in backups.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}

/// The `hooks` object of an agent's settings `root` (made when missing): `root` is an object whose
/// `hooks`, if any, is an object, as the install's load checked before it changes anything.
pub(crate) fn hooks_object(root: &mut Value) -> &mut Map<String, Value> {
    let root = root.as_object_mut().expect("load checked");
    root.entry("hooks").or_insert_with(|| Value::Object(Map::new())).as_object_mut().expect("load checked")
}
