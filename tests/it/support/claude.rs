//! Running the real Claude Code CLI offline for tests: the pinned binary, a scripted mock of the
//! Messages API (`tests/e2e/mock_api.py`), a throwaway HOME whose settings hook every event to
//! `hooktel hook`, and runs with a clean environment and a deadline.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A CLI run taking longer than this is killed (one run takes a few seconds).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// The events hooked, as in the harness's `run-scenario.sh` (WorktreeCreate/Remove replace git logic).
pub const HOOK_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "SessionStart",
    "SessionEnd",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "PermissionRequest",
    "PermissionDenied",
    "Setup",
    "TeammateIdle",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "InstructionsLoaded",
    "CwdChanged",
    "FileChanged",
    "MessageDisplay",
];

/// The CLI, from `HOOKTEL_CLAUDE_BIN` or where `scripts/install-test-deps.sh` puts it.
pub fn claude_bin() -> PathBuf {
    let path =
        std::env::var_os("HOOKTEL_CLAUDE_BIN").filter(|p| !p.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/claude-code/node_modules/.bin/claude")
        });
    assert!(
        path.is_file(),
        "the Claude Code CLI is not installed at {}: run scripts/install-test-deps.sh \
         (or set HOOKTEL_CLAUDE_BIN to the claude binary)",
        path.display()
    );
    path
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
pub struct Mock {
    pub port: u16,
    pub child: Child,
}

impl Mock {
    pub fn start(scratch: &Scratch, name: &str, workdir: &Path) -> Mock {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/mock_api.py");
        let port_file = scratch.path().join(format!("mock.{name}.port"));
        let err_file = scratch.path().join(format!("mock.{name}.err"));
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0", "--workdir"])
            .arg(workdir)
            .arg("--log")
            .arg(scratch.path().join(format!("mock.{name}.requests.jsonl")))
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err_file).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start python3 for the mock API ({e}): run scripts/install-test-deps.sh")
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()) {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mock API exited ({status}): {}", fs::read_to_string(&err_file).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mock API did not start: {}", fs::read_to_string(&err_file).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        Mock { port, child }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

impl Cli<'_> {
    /// Start `claude --output-format stream-json --verbose --dangerously-skip-permissions ARGS` in `workdir`,
    /// with a clean environment, like the harness's `run-scenario.sh`.
    pub fn spawn(&self, name: &str, workdir: &Path, mock: &Mock, args: &[&str]) -> Running {
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
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "claude run `{}` still running after {CLI_TIMEOUT:?}, killed; stderr:\n{}",
                    self.name,
                    fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
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
