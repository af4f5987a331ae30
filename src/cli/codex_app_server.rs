//! A client of `codex app-server`, Codex CLI's own JSON-RPC server on stdio (newline-delimited JSON),
//! for what only Codex may do: list its hooks with their trust keys and current hashes (`hooks/list`)
//! and write its config (`config/batchWrite`), so that hooktel's hooks are trusted exactly the way
//! Codex's `/hooks` trusts them, never by computing a hash of its own. Blocking; every answer has a
//! deadline, and the server is killed when the client is dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// How long one answer may take (the server starts in well under a second).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest line read from the server (a `hooks/list` of many hooks is kilobytes).
const MAX_LINE_BYTES: usize = 4 << 20;

pub(crate) struct AppServer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    next_id: u64,
    /// Where Codex keeps its config and hooks (`initialize`'s `codexHome`).
    pub(crate) codex_home: std::path::PathBuf,
}

impl AppServer {
    /// Start `codex app-server` (the `codex` of PATH) and initialize it.
    pub(crate) fn start() -> anyhow::Result<AppServer> {
        let mut child = Command::new("codex")
            .arg("app-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => anyhow::anyhow!(
                    "`codex` is not on PATH: Codex CLI trusts hooks only through itself \
                     (`codex app-server`), so install it first (npm i -g @openai/codex)"
                ),
                _ => anyhow::Error::new(e).context("starting `codex app-server`"),
            })?;
        let stdin = child.stdin.take().context("codex app-server's stdin")?;
        let stdout = child.stdout.take().context("codex app-server's stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match std::io::Read::take(&mut reader, MAX_LINE_BYTES as u64).read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if tx.send(line).is_err() => return,
                    Ok(_) => {}
                }
            }
        });
        let mut server = AppServer { child, stdin, lines, next_id: 0, codex_home: Default::default() };
        let info = json!({"clientInfo": {"name": "hooktel", "version": env!("CARGO_PKG_VERSION")}});
        let answer = server.call("initialize", info)?;
        server.notify("initialized")?;
        let home = answer.get("codexHome").and_then(Value::as_str).context("codex app-server named no codexHome")?;
        server.codex_home = home.into();
        Ok(server)
    }

    /// Every hook Codex sees for `cwd`, as `hooks/list` describes them.
    pub(crate) fn hooks(&mut self, cwd: &std::path::Path) -> anyhow::Result<Vec<Value>> {
        let answer = self.call("hooks/list", json!({"cwds": [cwd]}))?;
        let lists = answer.get("data").and_then(Value::as_array).context("hooks/list answered no data")?;
        Ok(lists.iter().filter_map(|l| l.get("hooks")?.as_array()).flatten().cloned().collect())
    }

    /// Apply config edits (`config/batchWrite` to the user's config.toml).
    pub(crate) fn write_config(&mut self, edits: Vec<Value>) -> anyhow::Result<()> {
        self.call("config/batchWrite", json!({"edits": edits}))?;
        Ok(())
    }

    fn notify(&mut self, method: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{}", json!({"jsonrpc": "2.0", "method": method})).context("writing to codex app-server")
    }

    fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.stdin, "{request}").with_context(|| format!("sending {method} to codex app-server"))?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let line = match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("codex app-server did not answer {method} in {ANSWER_TIMEOUT:?}")
                }
                Err(RecvTimeoutError::Disconnected) => bail!("codex app-server exited before answering {method}"),
            };
            // notifications and requests of its own come between: only this id's answer counts
            let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
            if message.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = message.get("error") {
                let text = error.get("message").and_then(Value::as_str).unwrap_or("an error");
                bail!("codex app-server refused {method}: {text}");
            }
            return Ok(message.get("result").cloned().unwrap_or(Value::Null));
        }
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
