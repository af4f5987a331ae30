//! Reading a checkout from the files of a `.git` directory, never by running `git`: find the `.git`
//! above a `cwd` (a directory, or a file `gitdir: ...` for a linked worktree or a submodule), read
//! `HEAD` (and the branch's loose ref, else `packed-refs`, for the commit), `commondir` (a linked
//! worktree's shared directory) and the shared `config` for the remote (`origin`, else the first).
//!
//! Blocking I/O, run on the `vcs` thread only. Every outside input is hostile: at most
//! [`MAX_PARENTS`] directories are walked up, only regular files are read (opened without blocking,
//! so a FIFO cannot hang the thread), each up to its own bound in bytes, and a branch name becomes a
//! path only when it is a plain ref name.

use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use crate::model::checkout::{Checkout, MAX_FIELD_BYTES};
use crate::model::payload::truncate_utf8;
use crate::usage::agent_dirs::open_nonblocking;
use crate::vcs::remote;
use crate::vcs::ticket::TicketPattern;

/// Directories walked up from a `cwd` looking for `.git`: real trees are a few levels deep below
/// their repository's top; a path of thousands of components must not cost thousands of lookups.
pub const MAX_PARENTS: usize = 64;

/// Longest `cwd` looked up (Linux's `PATH_MAX`).
pub const MAX_CWD_BYTES: usize = 4096;

/// Most bytes read of a `.git` file, `HEAD`, `commondir` or a loose ref: each is one short line.
const MAX_SMALL_FILE: u64 = 4096;

/// Most bytes read of a repository's `config`: a real one is a few KiB; past this its remotes are
/// looked for in the first 64 KiB only.
const MAX_CONFIG: u64 = 64 << 10;

/// Most bytes of `packed-refs` searched for the branch's commit: a repository with many tags has
/// a large one; past this the commit is left out rather than read at length every turn.
const MAX_PACKED_REFS: u64 = 256 << 10;

/// Where a checkout's files are.
#[derive(Debug, PartialEq, Eq)]
struct GitDirs {
    /// The worktree's top directory (where `.git` is).
    top: PathBuf,
    /// Its own git directory (`HEAD` is there).
    git_dir: PathBuf,
    /// The shared one (`config`, `refs/`, `packed-refs`): the git directory itself, except for a
    /// linked worktree, whose `commondir` names it.
    common_dir: PathBuf,
    linked: bool,
}

/// The checkout `cwd` is in, or `None` when it is in no repository hooktel can read.
pub(crate) fn read_checkout(cwd: &str, tickets: &TicketPattern) -> Option<Checkout> {
    let dirs = find_git_dirs(cwd)?;
    let head = read_small(&dirs.git_dir.join("HEAD"))?;
    let (branch, mut revision) = parse_head(&head)?;
    if revision.is_none() {
        revision = branch.as_deref().and_then(|b| branch_commit(&dirs.common_dir, b));
    }
    let config = read_prefix(&dirs.common_dir.join("config"), MAX_CONFIG).unwrap_or_default();
    let repo = remote_url(&String::from_utf8_lossy(&config)).and_then(|u| remote::normalise(&u)).unwrap_or_default();
    let worktree = dirs.top.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let cut = |s: &str| truncate_utf8(s, MAX_FIELD_BYTES).to_owned();
    Some(Checkout {
        repo,
        ticket: branch.as_deref().and_then(|b| tickets.find(b)),
        branch: branch.as_deref().map(cut),
        revision,
        worktree: cut(&worktree),
        linked: dirs.linked,
    })
}

/// The `.git` at or above `cwd`, and the directories it leads to.
fn find_git_dirs(cwd: &str) -> Option<GitDirs> {
    let cwd = Path::new(cwd);
    if cwd.as_os_str().len() > MAX_CWD_BYTES || !cwd.is_absolute() {
        return None;
    }
    for dir in cwd.ancestors().take(MAX_PARENTS) {
        let dot_git = dir.join(".git");
        let meta = match std::fs::metadata(&dot_git) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // a symlink loop, a denied directory: what git would stop at too
            Err(_) => return None,
        };
        let git_dir = if meta.is_dir() {
            dot_git
        } else if meta.is_file() {
            let text = read_small(&dot_git)?;
            let target = text.lines().next()?.strip_prefix("gitdir:")?.trim();
            if target.is_empty() {
                return None;
            }
            dir.join(target)
        } else {
            return None;
        };
        let (common_dir, linked) = match read_small(&git_dir.join("commondir")) {
            Some(text) => (git_dir.join(text.lines().next()?.trim()), true),
            None => (git_dir.clone(), false),
        };
        return Some(GitDirs { top: dir.to_path_buf(), git_dir, common_dir, linked });
    }
    None
}

/// `HEAD`'s branch (`ref: refs/heads/<branch>`) or, detached, its commit; `None` when it is
/// neither (not a git directory).
fn parse_head(text: &str) -> Option<(Option<String>, Option<String>)> {
    let line = text.lines().next()?.trim();
    if let Some(target) = line.strip_prefix("ref:") {
        let branch = target.trim().strip_prefix("refs/heads/").filter(|b| !b.is_empty());
        return Some((branch.map(str::to_owned), None));
    }
    is_commit(line).then(|| (None, Some(line.to_owned())))
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits.
fn is_commit(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A branch name that can be read as a path under `refs/heads/` without leaving it.
fn plain_ref_name(branch: &str) -> bool {
    branch.len() <= MAX_FIELD_BYTES
        && !branch.bytes().any(|b| b.is_ascii_control() || b == b'\\')
        && Path::new(branch).components().all(|c| matches!(c, Component::Normal(_)))
}

/// The commit `branch` is at: its loose ref, else its line in `packed-refs`.
fn branch_commit(common_dir: &Path, branch: &str) -> Option<String> {
    if !plain_ref_name(branch) {
        return None;
    }
    if let Some(text) = read_small(&common_dir.join("refs/heads").join(branch)) {
        let id = text.trim();
        return is_commit(id).then(|| id.to_owned());
    }
    let packed = read_prefix(&common_dir.join("packed-refs"), MAX_PACKED_REFS)?;
    let want = format!("refs/heads/{branch}");
    String::from_utf8_lossy(&packed).lines().find_map(|l| {
        let (id, name) = l.split_once(' ')?;
        (name.trim() == want && is_commit(id)).then(|| id.to_owned())
    })
}

/// The URL of the remote `origin`, else of the first remote with one, from a git config's text.
/// Sections `[remote "name"]` (and the old `[remote.name]`), keys case-insensitive, a value's
/// comment (`#`, `;`) cut off unless it is quoted. Includes are not followed.
fn remote_url(config: &str) -> Option<String> {
    let mut remote: Option<String> = None;
    let mut first: Option<String> = None;
    for line in config.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.split(']').next().unwrap_or_default().trim();
            remote = match header.split_once([' ', '.']) {
                Some((section, name)) if section.eq_ignore_ascii_case("remote") => {
                    Some(name.trim().trim_matches('"').to_owned())
                }
                _ => None,
            };
            continue;
        }
        let Some(name) = &remote else { continue };
        let Some((key, value)) = line.split_once('=') else { continue };
        if !key.trim().eq_ignore_ascii_case("url") {
            continue;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => value.split(['#', ';']).next().unwrap_or_default().trim(),
        };
        if name == "origin" {
            return Some(value.to_owned());
        }
        first.get_or_insert_with(|| value.to_owned());
    }
    first
}

/// A small file's whole text: `None` when it is missing, not a regular file, longer than
/// `MAX_SMALL_FILE` or not UTF-8.
fn read_small(path: &Path) -> Option<String> {
    let bytes = read_prefix(path, MAX_SMALL_FILE + 1)?;
    if bytes.len() as u64 > MAX_SMALL_FILE {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// Up to `max` bytes of a regular file (a directory, a FIFO or a device is not read).
fn read_prefix(path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = open_nonblocking(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A repository as `git init` leaves it, with a remote and a branch.
    fn repo(top: &Path, branch: &str, url: &str) {
        write(&top.join(".git/HEAD"), &format!("ref: refs/heads/{branch}\n"));
        write(
            &top.join(".git/config"),
            &format!("[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = https://example.com/up/stream.git\n[remote \"origin\"]\n\turl = {url}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"),
        );
    }

    fn tickets() -> TicketPattern {
        TicketPattern::default()
    }

    #[test]
    fn a_checkout_is_read_from_below_its_top() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("widgets");
        repo(&top, "feature/ABC-123-fix", "https://user:secret@github.com/acme/widgets.git");
        write(&top.join(".git/refs/heads/feature/ABC-123-fix"), &format!("{}\n", "ab".repeat(20)));
        std::fs::create_dir_all(top.join("src/deep")).unwrap();
        let c = read_checkout(top.join("src/deep").to_str().unwrap(), &tickets()).unwrap();
        assert_eq!(
            c,
            Checkout {
                repo: "github.com/acme/widgets".into(),
                branch: Some("feature/ABC-123-fix".into()),
                revision: Some("ab".repeat(20)),
                worktree: "widgets".into(),
                linked: false,
                ticket: Some("ABC-123".into()),
            }
        );
        assert!(read_checkout(dir.path().to_str().unwrap(), &tickets()).is_none());
        assert!(read_checkout("relative/path", &tickets()).is_none());
    }

    #[test]
    fn a_linked_worktree_reads_its_head_and_the_shared_config() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("widgets");
        repo(&main, "main", "git@github.com:acme/widgets.git");
        write(&main.join(".git/packed-refs"), &format!("# pack-refs\n{} refs/heads/fix-9\n", "cd".repeat(20)));
        let gd = main.join(".git/worktrees/wt-fix");
        write(&gd.join("HEAD"), "ref: refs/heads/fix-9\n");
        write(&gd.join("commondir"), "../..\n");
        let wt = dir.path().join("wt-fix");
        write(&wt.join(".git"), &format!("gitdir: {}\n", gd.display()));
        let c = read_checkout(wt.to_str().unwrap(), &tickets()).unwrap();
        assert_eq!((c.repo.as_str(), c.branch.as_deref()), ("github.com/acme/widgets", Some("fix-9")));
        assert_eq!((c.worktree.as_str(), c.linked), ("wt-fix", true));
        assert_eq!(c.revision, Some("cd".repeat(20)), "from packed-refs");
        assert_eq!(c.ticket, None);
    }

    #[test]
    fn a_detached_head_has_a_commit_and_no_branch() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join(".git/HEAD"), &"e".repeat(40));
        let c = read_checkout(dir.path().to_str().unwrap(), &tickets()).unwrap();
        assert_eq!((c.branch, c.revision, c.repo), (None, Some("e".repeat(40)), String::new()));
    }

    #[test]
    fn the_first_remote_serves_when_there_is_no_origin() {
        let config = "[remote \"fork\"] ; comment\n  URL = \"https://github.com/me/widgets\"\n[remote.other]\nurl=https://x.org/a/b # note\n";
        assert_eq!(remote_url(config).as_deref(), Some("https://github.com/me/widgets"));
        assert_eq!(remote_url("[remote.origin]\nurl=https://x.org/a/b # note\n").as_deref(), Some("https://x.org/a/b"));
        assert_eq!(remote_url("[core]\nurl = https://x.org/a/b\n"), None);
    }

    /// Huge files, a FIFO, a device, a symlink loop, a `.git` file pointing anywhere, a HEAD whose
    /// branch climbs out of `refs/heads`: nothing hangs, nothing large is read, nothing odd is kept.
    #[cfg(unix)]
    #[test]
    fn hostile_trees_cost_little_and_give_nothing_odd() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        // a 64 MiB config (sparse): only its first 64 KiB are read; the remote beyond is not found
        let big = base.join("big");
        write(&big.join(".git/HEAD"), "ref: refs/heads/main\n");
        let f = std::fs::File::create(big.join(".git/config")).unwrap();
        f.set_len(64 << 20).unwrap();
        let started = std::time::Instant::now();
        let c = read_checkout(big.to_str().unwrap(), &tickets()).unwrap();
        assert_eq!(c.repo, "");
        // a HEAD of /dev/zero, a config that is a FIFO
        let dev = base.join("dev");
        std::fs::create_dir_all(dev.join(".git")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dev.join(".git/HEAD")).unwrap();
        assert!(read_checkout(dev.to_str().unwrap(), &tickets()).is_none());
        let fifo = base.join("fifo");
        write(&fifo.join(".git/HEAD"), "ref: refs/heads/main\n");
        let path = std::ffi::CString::new(fifo.join(".git/config").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        assert_eq!(read_checkout(fifo.to_str().unwrap(), &tickets()).unwrap().repo, "");
        // a symlink loop for .git
        let lp = base.join("loop");
        std::fs::create_dir_all(&lp).unwrap();
        std::os::unix::fs::symlink(lp.join(".git"), lp.join(".git")).unwrap();
        assert!(read_checkout(lp.to_str().unwrap(), &tickets()).is_none());
        // a .git file pointing at /etc, at /dev/zero, at nothing, a huge .git file
        for target in ["/etc", "/dev/zero", "/nonexistent", ""] {
            let anywhere = base.join(format!("anywhere{}", target.replace('/', "_")));
            write(&anywhere.join(".git"), &format!("gitdir: {target}\n"));
            assert!(read_checkout(anywhere.to_str().unwrap(), &tickets()).is_none(), "{target}");
        }
        let huge = base.join("huge");
        std::fs::create_dir_all(&huge).unwrap();
        std::fs::File::create(huge.join(".git")).unwrap().set_len(1 << 30).unwrap();
        assert!(read_checkout(huge.to_str().unwrap(), &tickets()).is_none());
        // a branch that climbs out of refs/heads is kept as a name, never read as a path
        let climb = base.join("climb");
        write(&climb.join(".git/HEAD"), "ref: refs/heads/../../../../../../etc/hostname\n");
        let c = read_checkout(climb.to_str().unwrap(), &tickets()).unwrap();
        assert_eq!(c.revision, None);
        // a very deep cwd below no repository: at most MAX_PARENTS directories are looked at
        let deep = format!("/{}", "d/".repeat(3000));
        assert!(read_checkout(&deep, &tickets()).is_none());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
