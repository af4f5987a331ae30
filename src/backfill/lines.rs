//! Reading an agent's session log for import, by the live path's rules: a file opened only if the
//! live path would open it (without blocking, a regular file, inside its directory once symlinks are
//! resolved), read a line at a time, a line over `MAX_LINE_BYTES` skipped whole. A log is hostile
//! input (any size, any line length, any bytes): nothing here holds more than one line of it.
//! Which agent wrote a log is told by its first line, never by its name.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backfill::error::BackfillError;
use crate::model::agent::Agent;
use crate::usage::agent_dirs::{AgentDirs, OpenError};
use crate::usage::logs::MAX_LINE_BYTES;

/// A session log opened for reading, if `dirs` let it be read (see `usage::agent_dirs`).
pub(super) fn open_log(dirs: &AgentDirs, path: &Path) -> Result<File, BackfillError> {
    let refused = |e: OpenError| match e {
        OpenError::Io(e) => e,
        OpenError::Refused(why) => std::io::Error::other(why),
    };
    dirs.open(path).map_err(refused).map_err(BackfillError::read(path))
}

/// A log named on the command line or found in a directory walk, opened by the rules above with its
/// own directory as the one it may not leave; also its path with symlinks resolved.
pub(super) fn open_named(path: &Path) -> Result<(File, std::path::PathBuf), BackfillError> {
    let real = std::fs::canonicalize(path).map_err(BackfillError::read(path))?;
    let dir = AgentDirs::new(real.parent().map(Path::to_path_buf).into_iter().collect());
    Ok((open_log(&dir, &real)?, real))
}

/// Call `f` with every line of `file` from its start (without the newline; the last line whether or
/// not it ends with one). One line is held at a time; a line over `MAX_LINE_BYTES` is skipped whole,
/// as the live path skips it. Returns how many lines were skipped so.
pub(super) fn each_line(file: &mut File, mut f: impl FnMut(&[u8])) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let (mut line, mut skipping, mut skipped) = (Vec::new(), false, 0);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            if !skipping && !line.is_empty() {
                f(&line);
            }
            return Ok(skipped);
        }
        let end = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..end.unwrap_or(buf.len())];
        if !skipping && (line.len() + chunk.len()) as u64 > MAX_LINE_BYTES {
            (skipping, line) = (true, Vec::new());
            skipped += 1;
        }
        if !skipping {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len() + usize::from(end.is_some());
        reader.consume(used);
        if end.is_some() {
            if !skipping {
                f(&line);
            }
            line.clear();
            skipping = false;
        }
    }
}

/// What [`read_log`] read of a log besides its lines.
pub(super) struct ReadLog {
    /// The log's path with symlinks resolved.
    pub(super) real: PathBuf,
    /// The usage the live path's reader of its agent finds in it.
    pub(super) usage: Vec<crate::usage::logs::Delta>,
    /// Lines skipped: over the line bound, or not JSON objects.
    pub(super) skipped: u64,
}

/// Read the log at `path` (opened by the live path's rules) as `agent` writes it: every line that
/// is a JSON object to `line`, one at a time, and every line to the live path's reader of `agent`.
pub(super) fn read_log(
    path: &Path,
    agent: Agent,
    prices: &crate::usage::pricing::PriceTable,
    mut line: impl FnMut(&Value),
) -> Result<ReadLog, BackfillError> {
    let (mut file, real) = open_named(path)?;
    let (mut reader, mut usage, mut skipped) = (crate::usage::logs::LogReader::new(agent), Vec::new(), 0);
    let too_long = each_line(&mut file, |l| {
        if l.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        usage.extend(reader.read(&[l, b"\n"].concat(), prices).deltas);
        match object(l) {
            Some(v) => line(&v),
            None => skipped += 1,
        }
    })
    .map_err(BackfillError::read(&real))?;
    Ok(ReadLog { real, usage, skipped: skipped + too_long })
}

/// A line as a JSON object, if it is one.
pub(super) fn object(line: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(line).ok().filter(Value::is_object)
}

/// The agent whose session log `file` is, by its first line: Codex CLI's rollout opens with a
/// `session_meta` line, Gemini CLI's chat log with a header naming `sessionId` and `projectHash`;
/// anything else is taken for a Claude Code transcript (whose first line can be
/// any of its kinds). At most `MAX_LINE_BYTES` are read, and only the line's `type` is kept.
pub(super) fn agent_of_log(file: &mut File) -> std::io::Result<Agent> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: Option<String>,
        /// Gemini CLI's chat log opens with a header naming its session and project.
        #[serde(rename = "sessionId")]
        session_id: Option<serde::de::IgnoredAny>,
        #[serde(rename = "projectHash")]
        project_hash: Option<serde::de::IgnoredAny>,
    }
    file.seek(SeekFrom::Start(0))?;
    let mut first = Vec::new();
    BufReader::new(Read::by_ref(file).take(MAX_LINE_BYTES)).read_until(b'\n', &mut first)?;
    // an object's (serde would take `["session_meta"]` for one too)
    let line = first.trim_ascii();
    let head = line.starts_with(b"{").then(|| serde_json::from_slice::<Head>(line).ok()).flatten();
    Ok(match head {
        Some(Head { kind: Some(kind), .. }) if kind == "session_meta" => Agent::Codex,
        Some(Head { session_id: Some(_), project_hash: Some(_), .. }) => Agent::Gemini,
        _ => Agent::ClaudeCode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        File::create(&path).unwrap().write_all(bytes).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    #[test]
    fn a_rollout_is_told_by_its_first_line_not_its_name() {
        let (_d, mut f) = file_of(b"{\"timestamp\":\"t\",\"type\":\"session_meta\",\"payload\":{}}\n{}\n");
        assert_eq!(agent_of_log(&mut f).unwrap(), Agent::Codex);
        let (_d, mut f) =
            file_of(b"{\"sessionId\":\"s\",\"projectHash\":\"h\",\"startTime\":\"t\",\"kind\":\"main\"}\n");
        assert_eq!(agent_of_log(&mut f).unwrap(), Agent::Gemini);
        for other in [
            &b"{\"type\":\"user\",\"sessionId\":\"s\"}\n{\"type\":\"session_meta\"}\n"[..],
            b"",
            b"not json\n",
            b"{\"type\": 7}\n",
            b"[\"session_meta\"]\n",
        ] {
            let (_d, mut f) = file_of(other);
            assert_eq!(agent_of_log(&mut f).unwrap(), Agent::ClaudeCode, "{:?}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn each_line_counts_what_it_skips_for_length() {
        let mut bytes = b"{\"a\":1}\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES as usize + 1));
        bytes.extend_from_slice(b"\n{\"b\":2}");
        let (_d, mut f) = file_of(&bytes);
        let mut seen = Vec::new();
        assert_eq!(each_line(&mut f, |l| seen.push(l.to_vec())).unwrap(), 1);
        assert_eq!(seen, [b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
    }
}
