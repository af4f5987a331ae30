//! The shared token: what a client beyond loopback must present on `/v1/hooks` and `/v1/events`.
//!
//! `HOOKTEL_TOKEN` when set, else the file `token` in the data directory, made (0600, 256 random
//! bits as hex) on the sidecar's first start. The hook client reads the same file, so a hook that
//! shares the data directory (the compose stack, a pod) presents it without any setting.

use std::io::Write;
use std::path::Path;

/// The token file in the data directory.
pub const TOKEN_FILE: &str = "token";

/// The variable that overrides the file, for the sidecar and its clients alike.
pub const TOKEN_VAR: &str = "HOOKTEL_TOKEN";

/// Shorter tokens are refused: a guessable token is no token.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why there is no usable token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{TOKEN_VAR} is shorter than {MIN_TOKEN_LEN} characters")]
    WeakVar,
    #[error("{} holds fewer than {MIN_TOKEN_LEN} characters", .0.display())]
    WeakFile(std::path::PathBuf),
    #[error("cannot read or create {}: {source}", .path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// The token from `var` (the value of `HOOKTEL_TOKEN`, if set and not empty), else from the data
/// directory's token file, which is created when missing.
pub fn load_or_create(dir: &Path, var: Option<String>) -> Result<String, TokenError> {
    if let Some(t) = var.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        return if t.len() < MIN_TOKEN_LEN { Err(TokenError::WeakVar) } else { Ok(t) };
    }
    let path = dir.join(TOKEN_FILE);
    let io = |source| TokenError::Io { path: path.clone(), source };
    if let Some(t) = read_file(dir).map_err(io)? {
        return if t.len() < MIN_TOKEN_LEN { Err(TokenError::WeakFile(path)) } else { Ok(t) };
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut f) => {
            f.write_all(format!("{token}\n").as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
            Ok(token)
        }
        // another process made it first: take theirs
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(dir, None),
        Err(e) => Err(io(e)),
    }
}

/// What a client presents: `HOOKTEL_TOKEN`, else the data directory's token file, else nothing
/// (a sidecar on loopback needs none).
pub fn for_client(dir: &Path, var: Option<String>) -> Option<String> {
    var.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).or_else(|| read_file(dir).ok().flatten())
}

/// The token file's first line, trimmed; `None` when there is no file (at most 4 KiB is read).
fn read_file(dir: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let file = match std::fs::File::open(dir.join(TOKEN_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text)?;
    Ok(Some(text.lines().next().unwrap_or("").trim().to_owned()))
}

/// Whether `presented` equals `token`, in time that does not depend on where they differ.
pub fn matches(token: &str, presented: &[u8]) -> bool {
    let token = token.as_bytes();
    if token.len() != presented.len() {
        return false;
    }
    token.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_reread() {
        let tmp = tempfile::tempdir().unwrap();
        let first = load_or_create(tmp.path(), None).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(tmp.path(), None).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tmp.path().join(TOKEN_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_file(tmp.path()).unwrap().as_deref(), Some(first.as_str()));
    }

    #[test]
    fn the_variable_wins_and_weak_tokens_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load_or_create(tmp.path(), Some(" 0123456789abcdef ".into())).unwrap(), "0123456789abcdef");
        assert!(!tmp.path().join(TOKEN_FILE).exists(), "a set variable makes no file");
        assert!(matches!(load_or_create(tmp.path(), Some("short".into())), Err(TokenError::WeakVar)));
        std::fs::write(tmp.path().join(TOKEN_FILE), "abc\n").unwrap();
        assert!(matches!(load_or_create(tmp.path(), None), Err(TokenError::WeakFile(_))));
    }

    #[test]
    fn comparison() {
        assert!(matches("0123456789abcdef", b"0123456789abcdef"));
        assert!(!matches("0123456789abcdef", b"0123456789abcdeF"));
        assert!(!matches("0123456789abcdef", b"0123456789abcde"));
        assert!(!matches("0123456789abcdef", b""));
    }
}
