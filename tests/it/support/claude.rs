//! Running the real Claude Code CLI offline for tests: the pinned binary, a scripted mock of the
//! Messages API (`tests/e2e/mock_api.py`), a throwaway HOME whose settings hook every event to
//! `hooktel hook`, runs with a clean environment and a deadline, and a reader of the transcripts the
//! CLI wrote.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::mock_api::MockApi;

/// A CLI run taking longer than this is killed (one run takes a few seconds).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The events hooked: those `hooktel install` hooks (WorktreeCreate/Remove replace git logic).
pub const HOOK_EVENTS: &[&str] = hooktel::cli::install::EVENTS;

/// Tests that run the real Claude Code CLI take this lock first. They time real processes (the test
/// sidecar settles spans in 200 ms), and in one test binary two CLI runs at once on a 2-core machine
/// starve the accountant's re-reads: a subagent's last usage then lands after its span is out.
pub fn one_cli_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The CLI, from `HOOKTEL_CLAUDE_BIN` or where `scripts/install-test-deps.sh` puts it.
pub fn claude_bin() -> PathBuf {
    super::pinned_cli("HOOKTEL_CLAUDE_BIN", "claude-code", "claude", "Claude Code")
}

/// A scratch directory under `$TMPDIR` (a [`tempfile::TempDir`]): removed when the test passes, kept
/// when it fails or when `HOOKTEL_E2E_KEEP` is set (to look at what the CLI wrote).
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(tempfile::Builder::new().prefix("hooktel-e2e-").tempdir().expect("a temp dir"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.path().join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("HOOKTEL_E2E_KEEP").is_some() {
            self.0.disable_cleanup(true);
            eprintln!(
                "e2e: CLI output, debug logs, transcripts and mock request logs kept in {}",
                self.path().display()
            );
        }
    }
}

/// `tests/e2e/mock_api.py` on a free port, killed on drop.
pub struct Mock(MockApi);

impl std::ops::Deref for Mock {
    type Target = MockApi;
    fn deref(&self) -> &MockApi {
        &self.0
    }
}

impl Mock {
    pub fn start(scratch: &Scratch, name: &str, workdir: &Path) -> Mock {
        Mock::start_script(scratch, name, workdir, "mock_api.py")
    }

    /// Another mock of `tests/e2e/` (`mock_teams.py`: a lead and its teammate).
    pub fn start_script(scratch: &Scratch, name: &str, workdir: &Path, script: &str) -> Mock {
        Mock::start_with(scratch, name, workdir, script, &[])
    }

    /// `mock_api.py` answering each message after `latency`, as a real model takes time to.
    pub fn start_slow(scratch: &Scratch, name: &str, workdir: &Path, latency: Duration) -> Mock {
        let ms = latency.as_millis().to_string();
        Mock::start_with(scratch, name, workdir, "mock_api.py", &["--latency-ms", &ms])
    }

    fn start_with(scratch: &Scratch, name: &str, workdir: &Path, script: &str, args: &[&str]) -> Mock {
        let mut extra = vec![OsStr::new("--workdir"), workdir.as_os_str()];
        extra.extend(args.iter().map(OsStr::new));
        Mock(MockApi::start_with(script, scratch, name, &extra))
    }
}

/// Quote for a POSIX shell (Claude Code runs command hooks through one).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `<home>/.claude/settings.json` with `hooktel hook` as a command hook for every event.
pub fn write_settings(home: &Path) {
    let command = format!("{} hook", shell_quote(super::BIN));
    let hooks: serde_json::Map<String, Value> = HOOK_EVENTS
        .iter()
        .map(|e| (e.to_string(), json!([{"hooks": [{"type": "command", "command": command}]}])))
        .collect();
    let dir = home.join(".claude");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("settings.json"), serde_json::to_vec_pretty(&json!({ "hooks": hooks })).unwrap()).unwrap();
}

/// What every CLI run shares: the binary, the throwaway HOME and the sidecar to report to.
pub struct Cli<'a> {
    pub bin: PathBuf,
    pub scratch: &'a Scratch,
    pub home: PathBuf,
    /// `HOOKTEL_ADDR` for the hooks: the sidecar's address (which may be down on purpose).
    pub addr: String,
    /// `HOOKTEL_DATA_DIR` for the hooks: the sidecar's, so that what they spool is drained.
    pub data_dir: PathBuf,
}

/// A CLI process under way.
pub struct Running {
    pub name: String,
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub deadline: Instant,
}

/// A finished CLI run.
pub struct Finished {
    pub name: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl<'a> Cli<'a> {
    /// The CLI `bin` with `home` as its HOME, its hooks reporting to `sidecar` and spooling in
    /// the sidecar's data directory.
    pub fn for_sidecar(bin: PathBuf, scratch: &'a Scratch, home: &Path, sidecar: &super::Sidecar) -> Cli<'a> {
        Cli {
            bin,
            scratch,
            home: home.to_path_buf(),
            addr: sidecar.addr.to_string(),
            data_dir: sidecar.data_dir.clone(),
        }
    }
}

impl Cli<'_> {
    /// Start `claude --output-format stream-json --verbose --dangerously-skip-permissions ARGS` in `workdir`,
    /// with a clean environment, like the harness's `run-scenario.sh`.
    pub fn spawn(&self, name: &str, workdir: &Path, mock: &Mock, args: &[&str]) -> Running {
        self.spawn_with(name, workdir, mock, args, &[])
    }

    /// [`Cli::spawn`] with more environment variables.
    pub fn spawn_with(&self, name: &str, workdir: &Path, mock: &Mock, args: &[&str], env: &[(&str, &str)]) -> Running {
        let s = self.scratch.path();
        let (stdout, stderr) = (s.join(format!("cli.{name}.stdout.jsonl")), s.join(format!("cli.{name}.stderr")));
        let child = Command::new(&self.bin)
            .env_clear()
            .current_dir(workdir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("TERM", "dumb")
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", self.scratch.dir("tmp"))
            .env("IS_SANDBOX", "1")
            .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{}", mock.port))
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("HOOKTEL_ADDR", &self.addr)
            .env("HOOKTEL_DATA_DIR", &self.data_dir)
            .envs(env.iter().copied())
            .args(["--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions", "--debug-file"])
            .arg(s.join(format!("debug.{name}.log")))
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}): run scripts/install-test-deps.sh", self.bin.display()));
        Running { name: name.into(), child, stdout, stderr, deadline: Instant::now() + CLI_TIMEOUT }
    }
}

impl Running {
    /// Wait for the process to exit; kill it at its deadline.
    pub fn wait(mut self) -> Finished {
        let Some(status) = super::exit_within(&mut self.child, self.deadline.saturating_duration_since(Instant::now()))
        else {
            panic!(
                "claude run `{}` still running after {CLI_TIMEOUT:?}, killed; stderr:\n{}",
                self.name,
                fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        };
        Finished {
            name: self.name,
            status,
            stdout: fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Finished {
    pub fn expect_exit(&self, code: i32) -> &Finished {
        assert_eq!(
            self.status.code(),
            Some(code),
            "claude run `{}` exited with {}; stderr:\n{}\nstdout tail:\n{}",
            self.name,
            self.status,
            self.stderr,
            tail(&self.stdout, 3000)
        );
        self
    }

    /// The `session_id` of the stream-json output.
    pub fn session_id(&self) -> String {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["session_id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no session_id in the output of `{}`:\n{}", self.name, tail(&self.stdout, 3000)))
    }
}

pub fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A tool call found in a transcript.
#[derive(Debug)]
pub struct Call {
    pub name: String,
    /// The subagent that made it; `None` for the main agent.
    pub agent: Option<String>,
}

/// The `tool_result` of a call.
#[derive(Debug)]
pub struct Outcome {
    pub is_error: bool,
    /// Refused before it ran (an unknown tool): no hook fires for it.
    pub never_ran: bool,
}

/// `subagents/agent-<id>.meta.json`.
#[derive(Debug)]
pub struct AgentMeta {
    pub id: String,
    pub agent_type: String,
    /// The `tool_use_id` of the `Agent` call that spawned it.
    pub tool_use_id: String,
}

/// A transcript line as written, with where it is and what it belongs to.
#[derive(Debug)]
pub struct Line {
    /// `<file>:<line number>`, for messages.
    pub at: String,
    /// The subagent whose transcript holds it; `None` for the main transcript.
    pub agent: Option<String>,
    /// The prompt it answers: the `promptId` of the last user line before it in its file.
    pub prompt: Option<String>,
    pub value: Value,
}

/// What the CLI wrote about one session: its tool calls and their results, its prompts, its subagents,
/// and its assistant and `cost-state` lines as written (for the tests that check usage).
#[derive(Debug, Default)]
pub struct Transcript {
    /// By `tool_use` id.
    pub calls: BTreeMap<String, Call>,
    /// By `tool_use_id`.
    pub results: HashMap<String, Outcome>,
    /// The `promptId`s of the main transcript's user lines: one turn each (a prompt, or the task
    /// notification of a background subagent, which `-p` answers in a turn of its own).
    pub prompt_ids: BTreeSet<String>,
    /// The `promptId`s of the user lines of the subagents' transcripts.
    pub agent_prompt_ids: BTreeSet<String>,
    pub agents: Vec<AgentMeta>,
    /// Every assistant line: the main transcript's, then each subagent's (by file name).
    pub assistant_lines: Vec<Line>,
    /// The `cost-state` lines of the main transcript (Claude Code's own accounting), one per run.
    pub cost_states: Vec<Value>,
}

impl Transcript {
    /// `<projects>/<project>/<session>.jsonl` and `<session>/subagents/agent-<id>.{jsonl,meta.json}`.
    /// Every tool call must have its `tool_result`.
    pub fn read(projects: &Path, session: &str) -> Transcript {
        let mains: Vec<PathBuf> = fs::read_dir(projects)
            .unwrap_or_else(|e| panic!("no transcripts in {}: {e}", projects.display()))
            .map(|e| e.unwrap().path().join(format!("{session}.jsonl")))
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(mains.len(), 1, "transcript of session {session} under {}: {mains:?}", projects.display());
        let mut t = Transcript::default();
        t.add_lines(&mains[0], None);
        let subagents = mains[0].with_extension("").join("subagents");
        if subagents.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(&subagents).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                let name = file.file_name().unwrap().to_str().unwrap().to_owned();
                if let Some(id) = name.strip_prefix("agent-").and_then(|n| n.strip_suffix(".meta.json")) {
                    let meta: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
                    let field = |k: &str| {
                        meta[k].as_str().unwrap_or_else(|| panic!("{k} missing in {}", file.display())).to_owned()
                    };
                    t.agents.push(AgentMeta {
                        id: id.into(),
                        agent_type: field("agentType"),
                        tool_use_id: field("toolUseId"),
                    });
                } else if let Some(id) = name.strip_prefix("agent-").and_then(|n| n.strip_suffix(".jsonl")) {
                    t.add_lines(&file, Some(id));
                }
            }
        }
        for (id, call) in &t.calls {
            assert!(t.results.contains_key(id), "tool call {id} ({}) has no tool_result in the transcripts", call.name);
        }
        t
    }

    /// Tool calls from assistant lines, results from user lines (other line types repeat them).
    fn add_lines(&mut self, file: &Path, agent: Option<&str>) {
        let text = fs::read_to_string(file).unwrap();
        // the prompt the following assistant lines answer: the last user line's promptId
        let mut prompt: Option<String> = None;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON ({e}): {line}", file.display(), n + 1));
            let kind = v["type"].as_str().unwrap_or_default();
            if kind == "user" {
                if let Some(pid) = v["promptId"].as_str() {
                    match agent {
                        None => self.prompt_ids.insert(pid.to_owned()),
                        Some(_) => self.agent_prompt_ids.insert(pid.to_owned()),
                    };
                    prompt = Some(pid.to_owned());
                }
            }
            for b in v["message"]["content"].as_array().into_iter().flatten() {
                match (kind, b["type"].as_str()) {
                    ("assistant", Some("tool_use")) => {
                        // one API response is written as one line per content block: the id dedupes
                        let id = b["id"].as_str().expect("tool_use id").to_owned();
                        let name = b["name"].as_str().expect("tool_use name").to_owned();
                        self.calls.entry(id).or_insert(Call { name, agent: agent.map(str::to_owned) });
                    }
                    ("user", Some("tool_result")) => {
                        let id = b["tool_use_id"].as_str().expect("tool_use_id").to_owned();
                        let content = match &b["content"] {
                            Value::String(s) => s.clone(),
                            Value::Array(parts) => {
                                parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")
                            }
                            _ => String::new(),
                        };
                        let never_ran = content.starts_with("<tool_use_error>Error: No such tool available");
                        self.results.insert(id, Outcome { is_error: b["is_error"] == Value::Bool(true), never_ran });
                    }
                    _ => {}
                }
            }
            match kind {
                "assistant" => self.assistant_lines.push(Line {
                    at: format!("{}:{}", file.display(), n + 1),
                    agent: agent.map(str::to_owned),
                    prompt: prompt.clone(),
                    value: v,
                }),
                "cost-state" if agent.is_none() => self.cost_states.push(v),
                _ => {}
            }
        }
    }

    /// The tool calls that ran (and so fired PreToolUse), by id.
    pub fn ran(&self) -> BTreeMap<&str, &Call> {
        self.calls.iter().filter(|(id, _)| !self.results[*id].never_ran).map(|(id, c)| (id.as_str(), c)).collect()
    }

    /// The assistant lines that are API responses, with their (`message.id`, `requestId`): all but
    /// `<synthetic>` and API-error lines, and lines without usage.
    fn response_lines(&self) -> impl Iterator<Item = ((String, String), &Value)> {
        self.assistant_lines
            .iter()
            .map(|l| &l.value)
            .filter(|v| v["isApiErrorMessage"] != Value::Bool(true))
            .filter(|v| v["message"]["model"] != "<synthetic>" && v["message"]["usage"].is_object())
            // a fork's copies of its origin's responses are the origin's
            .filter(|v| v["requestSessionId"].is_null() || v["requestSessionId"] == v["sessionId"])
            .map(|v| {
                let field = |f: &Value| f.as_str().unwrap_or_default().to_owned();
                ((field(&v["message"]["id"]), field(&v["requestId"])), v)
            })
    }

    /// Every token of the API responses (all input, cache reads and writes included, and output),
    /// each response counted once at the largest usage of its lines.
    pub fn total_tokens(&self) -> u64 {
        let mut by_response: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (key, v) in self.response_lines() {
            let n = |k: &str| v["message"]["usage"][k].as_u64().unwrap_or(0);
            let all = n("input_tokens")
                + n("cache_read_input_tokens")
                + n("cache_creation_input_tokens")
                + n("output_tokens");
            let e = by_response.entry(key).or_default();
            *e = (*e).max(all);
        }
        by_response.values().sum()
    }

    /// The API responses (one chat span each).
    pub fn responses(&self) -> BTreeSet<(String, String)> {
        self.response_lines().map(|(key, _)| key).collect()
    }
}

/// An interactive CLI run in a pseudo-terminal (`tests/e2e/ptyrun.py`), for what `-p` never does
/// (agent teams): `prompt` typed as the first message; once the CLI's debug log matches `done`
/// (and a grace period), `/exit` is typed; the run is killed after `timeout`. Returns the pty log.
pub fn run_interactive(
    cli: &Cli,
    name: &str,
    workdir: &Path,
    mock: &Mock,
    env: &[(&str, &str)],
    prompt: &str,
    done: &str,
) -> String {
    let s = cli.scratch.path();
    let debug = s.join(format!("debug.{name}.log"));
    let log = s.join(format!("pty.{name}.log"));
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/ptyrun.py"))
        .arg("--log")
        .arg(&log)
        .args(["--timeout", "90", "--grace", "4", "--exit-keys", "/exit\\r", "--until-regex", done, "--until-file"])
        .arg(&debug)
        .args(["--", "env", "-i"])
        .arg("PATH=/usr/local/bin:/usr/bin:/bin")
        .arg(format!("HOME={}", cli.home.display()))
        .args(["TERM=xterm-256color", "LANG=C.UTF-8", "IS_SANDBOX=1", "ANTHROPIC_API_KEY=test-key"])
        .arg(format!("ANTHROPIC_BASE_URL=http://127.0.0.1:{}", mock.port))
        .arg(format!("TMPDIR={}", cli.scratch.dir("tmp").display()))
        .args(["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_TELEMETRY=1", "DISABLE_AUTOUPDATER=1"])
        .arg("DISABLE_ERROR_REPORTING=1")
        .arg(format!("HOOKTEL_ADDR={}", cli.addr))
        .arg(format!("HOOKTEL_DATA_DIR={}", cli.data_dir.display()))
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(&cli.bin)
        .args(["--dangerously-skip-permissions", "--debug-file"])
        .arg(&debug)
        .arg(prompt)
        .current_dir(workdir)
        .stdin(Stdio::null());
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run python3 ptyrun.py ({e})"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ptyrun failed: {said}{}", String::from_utf8_lossy(&out.stderr));
    said
}

/// What an interactive run needs in `home` besides the hooks: onboarding done, the work directory
/// trusted, permission prompts skipped, and the given extra settings (e.g. `teammateMode`).
pub fn seed_interactive(home: &Path, workdir: &Path, extra: Value) {
    let version = "2.1.332";
    let state = json!({
        "hasCompletedOnboarding": true, "lastOnboardingVersion": version, "theme": "dark",
        "bypassPermissionsModeAccepted": true,
        "customApiKeyResponses": {"approved": ["test-key"], "rejected": []},
        "projects": {workdir.to_string_lossy(): {"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true}},
    });
    fs::write(home.join(".claude.json"), serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    let path = home.join(".claude/settings.json");
    let mut settings: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    settings["skipDangerousModePermissionPrompt"] = json!(true);
    for (k, v) in extra.as_object().into_iter().flatten() {
        settings[k] = v.clone();
    }
    fs::write(&path, serde_json::to_vec_pretty(&settings).unwrap()).unwrap();
}
