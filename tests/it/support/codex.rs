//! Running OpenAI's Codex CLI offline for tests: the pinned binary (`scripts/install-test-deps.sh`),
//! a scripted mock of the Responses API (`tests/e2e/mock_responses.py`), a throwaway HOME whose
//! `~/.codex/config.toml` stops every outside lookup (the update check, analytics, plugins), and
//! `codex exec` runs with a clean environment and a deadline.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::claude::Scratch;
use super::cli_run::{run_to_end, CliRun};
use super::mock_api::MockApi;

/// Codex CLI's hook events, as `hooktel install --agent codex` hooks them.
pub const EVENTS: &[&str] = hooktel::cli::install_codex::EVENTS;

/// A run taking longer than this is killed (one takes a second or two).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The CLI, from `HOOKTEL_CODEX_BIN` or where `scripts/install-test-deps.sh` puts it.
pub fn codex_bin() -> PathBuf {
    super::pinned_cli("HOOKTEL_CODEX_BIN", "codex", "codex", "Codex")
}

/// The scripted Responses API mock (`tests/e2e/mock_responses.py`), killed on drop.
pub struct MockResponses(MockApi);

impl std::ops::Deref for MockResponses {
    type Target = MockApi;
    fn deref(&self) -> &MockApi {
        &self.0
    }
}

impl MockResponses {
    pub fn start(scratch: &Scratch, name: &str) -> MockResponses {
        MockResponses(MockApi::start("mock_responses.py", scratch, name))
    }

    /// The usage of every response served, in order.
    pub fn usages(&self) -> Vec<Value> {
        self.records("reply").into_iter().map(|r| r["usage"].clone()).collect()
    }

    /// Every response served, in order: its id, the script it followed (`1`, `2`, `sub`, `child`)
    /// and its usage.
    pub fn replies(&self) -> Vec<(String, String, Value)> {
        let reply =
            |r: Value| Some((r["id"].as_str()?.to_owned(), r["script"].as_str()?.to_owned(), r["usage"].clone()));
        self.records("reply").into_iter().filter_map(reply).collect()
    }
}

/// `hooktel hook --agent AGENT` with `payload` on stdin, delivering to `sidecar`, as Codex runs it:
/// it must exit 0 and print nothing.
pub fn hook_as(agent: &str, sidecar: &super::Sidecar, payload: &[u8]) {
    use std::io::Write;
    let mut child = Command::new(super::BIN)
        .args(["hook", "--agent", agent])
        .env("HOOKTEL_ADDR", sidecar.addr.to_string())
        .env("HOOKTEL_DATA_DIR", &sidecar.data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
}

/// `~/.codex/config.toml` for offline runs against `mock`.
pub fn write_config(home: &Path, mock: &MockResponses) {
    let dir = home.join(".codex");
    fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "model = \"gpt-mock\"\nmodel_provider = \"mock\"\ncheck_for_update_on_startup = false\n\
         approval_policy = \"never\"\nsandbox_mode = \"danger-full-access\"\n\n\
         [model_providers.mock]\nname = \"mock\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
         env_key = \"MOCK_API_KEY\"\nwire_api = \"responses\"\n\n\
         [analytics]\nenabled = false\n\n[features]\nplugins = false\napps = false\nremote_plugin = false\n",
        mock.port
    );
    fs::write(dir.join("config.toml"), config).unwrap();
}

/// A finished `codex exec`.
pub struct Finished(CliRun);

impl std::ops::Deref for Finished {
    type Target = CliRun;
    fn deref(&self) -> &CliRun {
        &self.0
    }
}

impl Finished {
    /// The session id Codex prints on stderr (`session id: <uuid>`).
    pub fn session_id(&self) -> String {
        self.stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("session id: ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no session id in codex's stderr:\n{}", self.stderr))
    }
}

/// `codex exec --skip-git-repo-check ARGS` in `workdir` with HOME `home`, a clean environment plus
/// `env`, stdin closed.
pub fn exec(home: &Path, workdir: &Path, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut cmd = Command::new(codex_bin());
    cmd.env_clear()
        .current_dir(workdir)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("TMPDIR", home)
        .env("MOCK_API_KEY", "test-key")
        .envs(env.iter().copied())
        .args(["exec", "--skip-git-repo-check"])
        .args(args);
    Finished(run_to_end(cmd, home, "codex", TIMEOUT))
}
