//! Running Google's Gemini CLI offline for tests: the pinned binary (`scripts/install-test-deps.sh`),
//! a scripted mock of the Gemini API (`tests/e2e/mock_gemini.py`), a throwaway HOME whose
//! `~/.gemini/settings.json` selects API-key auth and turns usage statistics off, `gemini -p` runs
//! with a clean environment and a deadline, and the session's chat log under
//! `~/.gemini/tmp/<project>/chats/`. With that environment the CLI connects to the mock and nothing
//! else (checked with strace; tests/fixtures/gemini/README.md).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::claude::{shell_quote, Scratch};
use super::cli_run::{run_to_end, CliRun};
use super::mock_api::MockApi;

/// Every hook event of Gemini CLI 0.61.0 (`Notification` fires only in the interactive UI).
pub const EVENTS: &[&str] = &[
    "SessionStart",
    "BeforeAgent",
    "BeforeModel",
    "BeforeToolSelection",
    "AfterModel",
    "BeforeTool",
    "AfterTool",
    "AfterAgent",
    "PreCompress",
    "Notification",
    "SessionEnd",
];

/// A run taking longer than this is killed (one takes 3 to 10 seconds).
const TIMEOUT: Duration = Duration::from_secs(90);

/// The CLI, from `HOOKTEL_GEMINI_BIN` or where `scripts/install-test-deps.sh` puts it.
pub fn gemini_bin() -> PathBuf {
    super::pinned_cli("HOOKTEL_GEMINI_BIN", "gemini-cli", "gemini", "Gemini")
}

/// One response the mock served.
#[derive(Clone, Debug)]
pub struct Reply {
    /// `agent` (the agent's streamed calls) or `utility` (JSON mode: the routing classifier).
    pub kind: String,
    pub model: String,
    /// The script the prompt's marker chose (`text`, `shell`, `parallel`, `exit`, `missing`, `fail`).
    pub script: String,
    /// `usageMetadata` as served (the last chunk's, for a streamed answer).
    pub usage: Value,
    /// `text`, or `functionCall:<tool>` per call.
    pub parts: Vec<String>,
    /// How many SSE events it was streamed in.
    pub chunks: usize,
}

/// The scripted Gemini API mock (`tests/e2e/mock_gemini.py`), killed on drop.
pub struct MockGemini(MockApi);

impl std::ops::Deref for MockGemini {
    type Target = MockApi;
    fn deref(&self) -> &MockApi {
        &self.0
    }
}

impl MockGemini {
    pub fn start(scratch: &Scratch, name: &str) -> MockGemini {
        MockGemini(MockApi::start("mock_gemini.py", scratch, name))
    }

    /// Every request received, in order: `{n, method, path, client, kind, body}`.
    pub fn requests(&self) -> Vec<Value> {
        self.records("request")
    }

    /// Every response served, in order.
    pub fn replies(&self) -> Vec<Reply> {
        self.records("reply")
            .into_iter()
            .map(|r| Reply {
                kind: r["kind"].as_str().unwrap().to_owned(),
                model: r["model"].as_str().unwrap().to_owned(),
                script: r["script"].as_str().unwrap().to_owned(),
                usage: r["usage"].clone(),
                parts: r["parts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect(),
                chunks: r["chunks"].as_u64().unwrap() as usize,
            })
            .collect()
    }

    /// The usage of every agent response served, in order (the classifier's left out).
    pub fn agent_usages(&self) -> Vec<Value> {
        self.replies().into_iter().filter(|r| r.kind == "agent").map(|r| r.usage).collect()
    }
}

/// `~/.gemini/settings.json` for offline runs: API-key auth (without it: "Invalid auth method
/// selected", exit 41), no usage statistics, and `hooks` (Gemini's layout: `{"Event": [{"matcher"?,
/// "hooks": [{"type": "command", "name", "command", "timeout" (ms)}]}]}`) when given.
pub fn write_settings(home: &Path, hooks: Option<&Value>) {
    let dir = home.join(".gemini");
    fs::create_dir_all(&dir).unwrap();
    let mut settings = json!({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": false},
    });
    if let Some(hooks) = hooks {
        settings["hooks"] = hooks.clone();
    }
    fs::write(dir.join("settings.json"), serde_json::to_vec_pretty(&settings).unwrap()).unwrap();
}

/// Hooks running `command` (a shell command line) for every event in `events`.
pub fn hooks_for(events: &[&str], name: &str, command: &str) -> Value {
    let one = json!([{"hooks": [{"type": "command", "name": name, "command": command, "timeout": 30_000}]}]);
    Value::Object(events.iter().map(|e| (e.to_string(), one.clone())).collect())
}

/// Hooks for every event appending each payload, as one line, to `log` (`tests/e2e/gemini_capture.py`).
pub fn capture_hooks(log: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/gemini_capture.py");
    // the interpreter behind this test's python3 (the CLI's clean PATH may not have it, and a
    // version manager's shim may not work in the CLI's environment)
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let python = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let [python, script, log] = [python.as_path(), &script, log].map(|p| shell_quote(p.to_str().unwrap()));
    let command = format!("{python} {script} {log}");
    hooks_for(EVENTS, "capture", &command)
}

/// The payloads `capture_hooks` logged, in the order they were written.
pub fn captured(log: &Path) -> Vec<Value> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a captured payload is not JSON ({e}): {l}")))
        .collect()
}

/// A finished `gemini -p`.
pub struct Finished(CliRun);

impl std::ops::Deref for Finished {
    type Target = CliRun;
    fn deref(&self) -> &CliRun {
        &self.0
    }
}

impl Finished {
    /// stdout as JSON (`-o json`): `session_id`, `response`, `stats`.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("gemini's stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    pub fn session_id(&self) -> String {
        let out = self.json();
        out["session_id"].as_str().unwrap_or_else(|| panic!("no session_id in gemini's output: {out}")).to_owned()
    }

    /// The model's final answer.
    pub fn response(&self) -> String {
        self.json()["response"].as_str().unwrap_or_default().to_owned()
    }

    /// `stats.models.<model>.roles.<role>.tokens` (`input` = prompt − cached, `prompt`, `candidates`,
    /// `cached`, `thoughts`, `tool`, `total`), e.g. role `main` (the agent) or `utility_router`.
    pub fn tokens(&self, model: &str, role: &str) -> Value {
        self.json()["stats"]["models"][model]["roles"][role]["tokens"].clone()
    }
}

/// The environment every run gets: HOME, a PATH with node, the mock as the API, the workspace trusted,
/// no system-wide settings, no relaunch (one process, so the deadline's kill ends it), no color warning.
fn base_env(home: &Path, mock: &MockGemini) -> Vec<(String, String)> {
    let mut path = "/usr/local/bin:/usr/bin:/bin".to_owned();
    // node where the caller's PATH has it (nvm, a toolchain dir), if not already on the fixed PATH
    if let Some(dir) = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("node").is_file()))
        .filter(|d| !path.split(':').any(|p| Path::new(p) == d))
    {
        path = format!("{}:{path}", dir.display());
    }
    let home_s = home.to_str().unwrap().to_owned();
    vec![
        ("PATH".into(), path),
        ("HOME".into(), home_s.clone()),
        ("TMPDIR".into(), home_s),
        ("LANG".into(), "C.UTF-8".into()),
        ("COLORTERM".into(), "truecolor".into()),
        ("GEMINI_API_KEY".into(), "test-key".into()),
        ("GOOGLE_GEMINI_BASE_URL".into(), format!("http://127.0.0.1:{}", mock.port)),
        ("GEMINI_CLI_TRUST_WORKSPACE".into(), "true".into()),
        ("GEMINI_CLI_NO_RELAUNCH".into(), "true".into()),
        ("GEMINI_CLI_SYSTEM_SETTINGS_PATH".into(), home.join("no-system-settings.json").to_str().unwrap().into()),
        ("GEMINI_CLI_SYSTEM_DEFAULTS_PATH".into(), home.join("no-system-defaults.json").to_str().unwrap().into()),
    ]
}

/// `gemini --yolo -o json ARGS` (e.g. `-p PROMPT`, or `--resume ID -p PROMPT`) in `workdir` with HOME
/// `home`, against `mock`, a clean environment plus `env`, stdin closed, killed after a deadline.
pub fn run(home: &Path, workdir: &Path, mock: &MockGemini, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut cmd = Command::new(gemini_bin());
    cmd.env_clear()
        .current_dir(workdir)
        .envs(base_env(home, mock))
        .envs(env.iter().copied())
        .args(["--yolo", "-o", "json"])
        .args(args);
    Finished(run_to_end(cmd, home, "gemini", TIMEOUT))
}

/// `gemini -p PROMPT` (with `--resume SESSION` when given), which must succeed.
pub fn prompt(home: &Path, workdir: &Path, mock: &MockGemini, prompt: &str, resume: Option<&str>) -> Finished {
    let mut args = Vec::new();
    if let Some(session) = resume {
        args.extend(["--resume", session]);
    }
    args.extend(["-p", prompt]);
    let done = run(home, workdir, mock, &args, &[]);
    assert!(
        done.status.success(),
        "gemini {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        done.status,
        done.stdout,
        done.stderr
    );
    done
}

/// The chat log of `session` under `home/.gemini/tmp/<project>/chats/`
/// (`session-<date>T<hh-mm>-<first 8 of the id>.jsonl`, its first line naming the session) that holds
/// its messages: a resume in a later minute than the session's start opens a log of its own (a header
/// and the session's context, no message), then goes on in the first.
pub fn chat_log(home: &Path, session: &str) -> PathBuf {
    let tmp = home.join(".gemini/tmp");
    let suffix = format!("-{}.jsonl", &session[..8]);
    let found: Vec<PathBuf> = fs::read_dir(&tmp)
        .into_iter()
        .flatten()
        .flat_map(|project| fs::read_dir(project.unwrap().path().join("chats")).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(&suffix))
        .filter(|p| {
            let first = fs::read_to_string(p).unwrap_or_default();
            let header: Value = first.lines().next().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
            header["sessionId"] == session && first.lines().any(|l| l.starts_with("{\"id\""))
        })
        .collect();
    match found.as_slice() {
        [one] => one.clone(),
        _ => panic!("{} chat logs for session {session} under {}: {found:?}", found.len(), tmp.display()),
    }
}

/// The chat log's messages (`{id, timestamp, type: "user"|"gemini", content, tokens?, toolCalls?}`)
/// in order of first appearance, the last line written per id winning (a call response is written
/// again with its `toolCalls`). Header and `{"$set": ...}` lines are left out: on resume a `$set`
/// rewrites the earlier messages without their tokens.
pub fn chat_messages(log: &Path) -> Vec<Value> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id = std::collections::HashMap::new();
    for line in fs::read_to_string(log).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a chat log line is not JSON ({e}): {line}"));
        let Some(id) = v.get("type").and(v.get("id")).and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        if by_id.insert(id.clone(), v).is_none() {
            order.push(id);
        }
    }
    order.into_iter().map(|id| by_id.remove(&id).unwrap()).collect()
}
