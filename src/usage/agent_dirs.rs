//! Which transcript files hooktel may read, and how: a payload's `transcript_path` is untrusted (any
//! local process, or a page that got past ingest's guard, could name `/etc/shadow`, another user's
//! transcript, a FIFO or a 2 GB file). Only regular files under Claude Code's projects directories
//! (`~/.claude/projects`, `$CLAUDE_CONFIG_DIR/projects`), Codex CLI's sessions directories
//! (`~/.codex/sessions`, `$CODEX_HOME/sessions`) and `HOOKTEL_TRANSCRIPT_DIRS`, named
//! `*.jsonl` (or a subagent's `*.meta.json`), are opened; they are opened without blocking, checked
//! to be regular files, and checked again after symlinks are resolved. Beside them, an agent team's
//! `teams/<team>/config.json` in the same config directory, by a plain team name only.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The directories transcripts may live under.
#[derive(Clone, Debug, Default)]
pub struct AgentDirs {
    /// As configured (lexical prefixes) and as resolved (symlinks followed), for each root.
    roots: Vec<(PathBuf, Option<PathBuf>)>,
}

/// Why a path is not read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an absolute path without `..`, ending in .jsonl or .meta.json")]
    Shape,
    #[error(
        "not under Claude Code's projects or Codex CLI's sessions directories (HOOKTEL_TRANSCRIPT_DIRS adds more)"
    )]
    Outside,
    #[error("not a regular file")]
    NotAFile,
}

/// Claude Code's directories: `$CLAUDE_CONFIG_DIR` (where it keeps everything when set) and
/// `~/.claude` (its default), from `vars`; each `None` when its variable is unset or empty.
pub(crate) fn claude_dirs(vars: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> (Option<PathBuf>, Option<PathBuf>) {
    let set = |k: &str| vars(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    (set("CLAUDE_CONFIG_DIR"), set("HOME").map(|h| h.join(".claude")))
}

/// Claude Code's directory as it uses it: `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
pub(crate) fn claude_config_dir() -> Option<PathBuf> {
    let (config, home) = claude_dirs(&|k| std::env::var_os(k));
    config.or(home)
}

/// Codex CLI's home as Codex resolves it: `$CODEX_HOME`, else `~/.codex`.
pub(crate) fn codex_home() -> Option<PathBuf> {
    let set = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("CODEX_HOME").or_else(|| set("HOME").map(|h| h.join(".codex")))
}

/// Gemini CLI's directory as Gemini CLI 0.61 resolves it: `.gemini` in `$GEMINI_CLI_HOME` (which
/// stands for the whole home directory, not for `.gemini`), else in `$HOME`.
pub(crate) fn gemini_dir() -> Option<PathBuf> {
    let set = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("GEMINI_CLI_HOME").or_else(|| set("HOME")).map(|h| h.join(".gemini"))
}

impl AgentDirs {
    /// `~/.claude/projects`, `$CLAUDE_CONFIG_DIR/projects` (both: a transcript under either may be
    /// named), Codex CLI's `~/.codex/sessions` and `$CODEX_HOME/sessions` (its rollouts), Gemini
    /// CLI's `~/.gemini/tmp` and `$GEMINI_CLI_HOME/.gemini/tmp` (its chat logs, under a directory per
    /// project), and every entry of `HOOKTEL_TRANSCRIPT_DIRS` (separated by `:` or `,`).
    pub fn from_env() -> AgentDirs {
        let vars = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let (config, home) = claude_dirs(&|k| std::env::var_os(k));
        let mut dirs: Vec<PathBuf> = home.into_iter().chain(config).map(|d| d.join("projects")).collect();
        let codex = vars("HOME").map(|h| h.join(".codex")).into_iter().chain(vars("CODEX_HOME"));
        dirs.extend(codex.map(|d| d.join("sessions")));
        let gemini = vars("HOME").into_iter().chain(vars("GEMINI_CLI_HOME"));
        dirs.extend(gemini.map(|d| d.join(".gemini").join("tmp")));
        if let Ok(extra) = std::env::var("HOOKTEL_TRANSCRIPT_DIRS") {
            dirs.extend(extra.split([':', ',']).map(str::trim).filter(|d| !d.is_empty()).map(PathBuf::from));
        }
        AgentDirs::new(dirs)
    }

    pub fn new(dirs: Vec<PathBuf>) -> AgentDirs {
        let roots = dirs
            .into_iter()
            .filter(|d| d.is_absolute() && lexically_clean(d))
            .map(|d| {
                let resolved = std::fs::canonicalize(&d).ok();
                (d, resolved)
            })
            .collect();
        AgentDirs { roots }
    }

    /// Whether `path` may be read, by its name alone (nothing is opened).
    pub fn admit(&self, path: &Path) -> Result<(), Refused> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !path.is_absolute() || !lexically_clean(path) || !(name.ends_with(".jsonl") || name.ends_with(".meta.json"))
        {
            return Err(Refused::Shape);
        }
        if self.roots.iter().any(|(lexical, _)| path.starts_with(lexical)) {
            Ok(())
        } else {
            Err(Refused::Outside)
        }
    }

    /// Open an admitted path for reading: without blocking (a FIFO would hang the reader), only a
    /// regular file, and only if it is still under a root once symlinks are resolved.
    pub fn open(&self, path: &Path) -> Result<File, OpenError> {
        self.open_resolved(path).map(|(file, _)| file)
    }

    /// [`AgentDirs::open`], also giving the path with symlinks resolved: the file's one name,
    /// whatever alias a payload used.
    pub fn open_resolved(&self, path: &Path) -> Result<(File, PathBuf), OpenError> {
        self.admit(path)?;
        let file = open_nonblocking(path)?;
        if !file.metadata()?.is_file() {
            return Err(Refused::NotAFile.into());
        }
        let real = std::fs::canonicalize(path)?;
        let inside = self.roots.iter().any(|(lexical, resolved)| {
            real.starts_with(lexical) || resolved.as_ref().is_some_and(|r| real.starts_with(r))
        });
        if !inside {
            return Err(Refused::Outside.into());
        }
        Ok((file, real))
    }

    /// An agent team's file, `<Claude Code's config dir>/teams/<team>/config.json` (beside a
    /// `projects` root), at most `max` bytes; `None` when the name could walk out of the directory,
    /// no root has it, or it is not a regular file there once symlinks are resolved.
    pub fn team_file(&self, team: &str, max: u64) -> Option<Vec<u8>> {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if team.is_empty() || team.len() > 128 || !team.bytes().all(plain) {
            return None;
        }
        self.roots.iter().find_map(|(lexical, resolved)| {
            let config_dir = |root: &Path| Some(root.parent()?.to_path_buf()).filter(|_| root.ends_with("projects"));
            let teams = config_dir(lexical)?.join("teams");
            let path = teams.join(team).join("config.json");
            let file = open_nonblocking(&path).ok()?;
            if !file.metadata().ok()?.is_file() {
                return None;
            }
            let real = std::fs::canonicalize(&path).ok()?;
            let real_teams = resolved.as_deref().and_then(config_dir).map(|d| d.join("teams"));
            if !(real.starts_with(&teams) || real_teams.is_some_and(|t| real.starts_with(t))) {
                return None;
            }
            let mut bytes = Vec::new();
            file.take(max).read_to_end(&mut bytes).ok()?;
            Some(bytes)
        })
    }

    /// Read a small admitted file whole (a subagent's meta file), at most `max` bytes.
    pub fn read_small(&self, path: &Path, max: u64) -> Result<Vec<u8>, OpenError> {
        let mut bytes = Vec::new();
        self.open(path)?.take(max).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Why a transcript could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// No `.` or `..` components: a path that means what it says, so a prefix check means something.
fn lexically_clean(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_) | Component::Prefix(_)))
}

/// Open for reading without blocking: a FIFO opens at once instead of waiting for a writer (check
/// that it is a regular file before reading it).
#[cfg(unix)]
pub(crate) fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
pub(crate) fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A team's file beside the projects root, by a plain name only; not through a symlink out of
    /// the teams directory, not a directory or a FIFO.
    #[test]
    fn a_team_file_is_read_by_a_plain_name_beside_the_projects() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("projects");
        std::fs::create_dir_all(&root).unwrap();
        let team = tmp.path().join("teams/session-859c7e3e");
        std::fs::create_dir_all(&team).unwrap();
        std::fs::write(team.join("config.json"), br#"{"leadSessionId": "x"}"#).unwrap();
        std::fs::write(tmp.path().join("secret"), b"top secret").unwrap();
        let roots = AgentDirs::new(vec![root.clone()]);
        assert_eq!(roots.team_file("session-859c7e3e", 1 << 16).as_deref(), Some(&br#"{"leadSessionId": "x"}"#[..]));
        assert_eq!(roots.team_file("session-859c7e3e", 4).as_deref(), Some(&b"{\"le"[..]), "at most max bytes");
        for bad in ["", "../secret", "a/b", "..", "x.y", &"a".repeat(129)] {
            assert_eq!(roots.team_file(bad, 1 << 16), None, "{bad:?}");
        }
        assert_eq!(roots.team_file("absent", 1 << 16), None);
        #[cfg(unix)]
        {
            let evil = tmp.path().join("teams/evil");
            std::fs::create_dir_all(&evil).unwrap();
            std::os::unix::fs::symlink(tmp.path().join("secret"), evil.join("config.json")).unwrap();
            assert_eq!(roots.team_file("evil", 1 << 16), None, "a symlink out of the teams directory");
            let fifo = tmp.path().join("teams/fifo");
            std::fs::create_dir_all(&fifo).unwrap();
            let c = std::ffi::CString::new(fifo.join("config.json").to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            assert_eq!(roots.team_file("fifo", 1 << 16), None, "no hang, refused");
        }
        // a root not named `projects` has no config directory beside it
        assert_eq!(AgentDirs::new(vec![tmp.path().join("teams")]).team_file("session-859c7e3e", 1 << 16), None);
    }

    #[test]
    fn only_regular_jsonl_files_under_a_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("projects");
        std::fs::create_dir_all(root.join("p")).unwrap();
        std::fs::write(root.join("p/s.jsonl"), b"{}\n").unwrap();
        std::fs::write(tmp.path().join("secret.jsonl"), b"{}\n").unwrap();
        let roots = AgentDirs::new(vec![root.clone()]);
        assert!(roots.open(&root.join("p/s.jsonl")).is_ok());
        assert_eq!(roots.admit(Path::new("/etc/shadow")), Err(Refused::Shape));
        assert_eq!(roots.admit(Path::new("/etc/x.jsonl")), Err(Refused::Outside));
        assert_eq!(roots.admit(&root.join("p/../../secret.jsonl")), Err(Refused::Shape));
        assert_eq!(roots.admit(Path::new("relative/s.jsonl")), Err(Refused::Shape));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret.jsonl"), root.join("p/link.jsonl")).unwrap();
            assert!(matches!(roots.open(&root.join("p/link.jsonl")), Err(OpenError::Refused(Refused::Outside))));
            std::fs::create_dir(root.join("p/dir.jsonl")).unwrap();
            assert!(matches!(roots.open(&root.join("p/dir.jsonl")), Err(OpenError::Refused(Refused::NotAFile))));
            let fifo = root.join("p/fifo.jsonl");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            assert!(matches!(roots.open(&fifo), Err(OpenError::Refused(Refused::NotAFile))), "no hang, refused");
        }
    }
}
