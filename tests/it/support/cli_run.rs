//! An agent's CLI run to its end for tests (Codex's `codex exec`, Gemini's `gemini -p`): stdin closed,
//! stdout and stderr kept in files beside the run, killed past a deadline.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a run left: its exit, its output, how long it took.
pub struct CliRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Run `cmd` (`name` names it in messages and its output files `dir/<name>.stdout|.stderr`) to its
/// end; past `timeout` it is killed and the test fails.
pub fn run_to_end(mut cmd: Command, dir: &Path, name: &str, timeout: Duration) -> CliRun {
    let started = Instant::now();
    let (out, err) = (dir.join(format!("{name}.stdout")), dir.join(format!("{name}.stderr")));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name} ({e}): run scripts/install-test-deps.sh"));
    let Some(status) = super::exit_within(&mut child, timeout) else {
        panic!("{name} {:?} still running after {timeout:?}, killed", cmd.get_args().collect::<Vec<_>>());
    };
    CliRun {
        status,
        stdout: fs::read_to_string(out).unwrap_or_default(),
        stderr: fs::read_to_string(err).unwrap_or_default(),
        took: started.elapsed(),
    }
}
