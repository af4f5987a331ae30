//! A scripted mock of a model API (`tests/e2e/mock_*.py`) as the agents' tests run it: python3 on a
//! port of its own, logging every request and reply as JSON lines, killed on drop.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::claude::Scratch;

/// A running mock: its port, and the log of what it received and served.
pub struct MockApi {
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl MockApi {
    /// Start `tests/e2e/<script>` (`--port 0 --log <log> --port-file <file>`), its files in `scratch`
    /// under `name`.
    pub fn start(script: &str, scratch: &Scratch, name: &str) -> MockApi {
        MockApi::start_with(script, scratch, name, &[])
    }

    /// [`MockApi::start`] with more arguments for the script.
    pub fn start_with(script: &str, scratch: &Scratch, name: &str, extra: &[&OsStr]) -> MockApi {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e").join(script);
        let port_file = scratch.path().join(format!("mock.{name}.port"));
        let err_file = scratch.path().join(format!("mock.{name}.err"));
        let log = scratch.path().join(format!("mock.{name}.requests.jsonl"));
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0", "--log"])
            .arg(&log)
            .arg("--port-file")
            .arg(&port_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err_file).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start python3 for the mock API ({e}): run scripts/install-test-deps.sh")
            });
        let port = port_of(&mut child, &port_file, &err_file);
        MockApi { port, log, child }
    }

    /// The `key` field of every line of its log that has one, in order (`reply`, `request`).
    pub fn records(&self, key: &str) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|mut v| v.get_mut(key).map(Value::take))
            .collect()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port a mock of `tests/e2e/` wrote to `port_file` once listening; panics with its stderr
/// (`err_file`) if it exits or takes over 20 s.
pub fn port_of(child: &mut Child, port_file: &Path, err_file: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(port) = fs::read_to_string(port_file).ok().and_then(|p| p.trim().parse().ok()) {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("mock API exited ({status}): {}", fs::read_to_string(err_file).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mock API did not start: {}", fs::read_to_string(err_file).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
