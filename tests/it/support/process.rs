//! The built `hooktel` binary and the processes started from it, for the integration tests and the
//! benches alike (`benches/common` includes this file): a `hooktel serve` launcher ([`Sidecar`]),
//! `hooktel hook` runs, a small HTTP client, the reading of `/metrics` and of a process's memory.
//! Every wait has a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `hooktel` binary cargo built for this target: the debug one for the tests, the release one
/// (the `bench` profile) for the benches.
pub const BIN: &str = env!("CARGO_BIN_EXE_hooktel");

/// Wait for `child` to exit, `within` at most: past it, it is killed and reaped, and `None` says so.
pub fn exit_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh, empty directory under `$TMPDIR` (`hooktel-<tag>-<random>`): a [`tempfile::TempDir`], so
/// it is removed with all it holds when dropped. Keep it alive as long as its path is in use (by
/// this test or a process it started). Derefs to its path.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

/// A fresh [`TempDir`] named after `tag`.
pub fn temp_dir(tag: &str) -> TempDir {
    TempDir(tempfile::Builder::new().prefix(&format!("hooktel-{tag}-")).tempdir().expect("a temp dir"))
}

/// A running `hooktel serve`, killed on drop.
pub struct Sidecar {
    pub addr: SocketAddr,
    /// Where it receives Claude Code's own telemetry (from its log; see [`Sidecar::otlp_addr`]).
    otlp_addr: Arc<Mutex<Option<SocketAddr>>>,
    child: Child,
    log: Arc<Mutex<String>>,
    /// Its data directory (`HOOKTEL_DATA_DIR`), shared with the hooks run through it.
    pub data_dir: std::path::PathBuf,
    /// The data directory when the test did not pass its own: removed on drop, after the process is
    /// killed (fields drop after `Drop::drop`).
    _own_data_dir: Option<TempDir>,
}

/// How to start a [`Sidecar`]; by default in local mode, with a fresh data directory of its own and
/// the tests' settings (short settle times, see [`SidecarBuilder::start`]):
/// `Sidecar::builder().exporting_to(&receiver).env("HOOKTEL_MAX_BODY_BYTES", "4096").start()`.
#[derive(Default)]
pub struct SidecarBuilder {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_EXPORTER_OTLP_PROTOCOL`.
    export: Option<(String, &'static str)>,
    /// Variables set (`Some`) or removed (`None`).
    env: Vec<(String, Option<String>)>,
    data_dir: Option<std::path::PathBuf>,
    /// `--listen`; `127.0.0.1:0` when unset.
    listen: Option<String>,
    /// RLIMIT_FSIZE for the process, with SIGXFSZ ignored: a full disk, as writes see it.
    file_size_limit: Option<u64>,
    /// Without the tests' settings: see [`SidecarBuilder::shipped_defaults`].
    shipped_defaults: bool,
}

impl SidecarBuilder {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT=endpoint` and `OTEL_EXPORTER_OTLP_PROTOCOL=protocol` (without
    /// them: local mode); see `exporting_to` for a test's receiver.
    pub fn exporting(mut self, endpoint: String, protocol: &'static str) -> SidecarBuilder {
        self.export = Some((endpoint, protocol));
        self
    }

    /// One more environment variable for `hooktel serve`.
    pub fn env(mut self, key: &str, value: &str) -> SidecarBuilder {
        self.env.push((key.to_owned(), Some(value.to_owned())));
        self
    }

    /// Start without `key` in the environment.
    pub fn env_removed(mut self, key: &str) -> SidecarBuilder {
        self.env.push((key.to_owned(), None));
        self
    }

    /// `HOOKTEL_DATA_DIR=dir`, the test's (left in place, e.g. for a second sidecar), instead of a
    /// fresh one that the sidecar owns and removes on drop.
    pub fn data_dir(mut self, dir: &std::path::Path) -> SidecarBuilder {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// `--listen addr` instead of `127.0.0.1:0`.
    pub fn listen(mut self, addr: &str) -> SidecarBuilder {
        self.listen = Some(addr.to_owned());
        self
    }

    /// Let no file the sidecar writes grow past `bytes` (writes past it fail with EFBIG, as on a full
    /// disk; SIGXFSZ ignored so the process is not killed).
    pub fn file_size_limit(mut self, bytes: u64) -> SidecarBuilder {
        self.file_size_limit = Some(bytes);
        self
    }

    /// The sidecar with its own defaults, as a user runs it, for the benches to measure: none of the
    /// tests' settings (settle times, transcript directories), and no receiver for Claude Code's
    /// own telemetry (`--otlp-listen off`: its default port is fixed, one per machine).
    pub fn shipped_defaults(mut self) -> SidecarBuilder {
        self.shipped_defaults = true;
        self
    }

    /// Start `hooktel serve --listen 127.0.0.1:0` (or the address given to [`SidecarBuilder::listen`]).
    pub fn start(self) -> Sidecar {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", self.listen.as_deref().unwrap_or("127.0.0.1:0")]);
        without_inherited_settings(&mut cmd);
        cmd.env("HOOKTEL_LOG", "info").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        if self.shipped_defaults {
            cmd.args(["--otlp-listen", "off"]);
        } else {
            cmd.env("HOOKTEL_SETTLE_MS", "200")
                // Claude Code's telemetry on a port of its own, not the fixed default every test would share
                .env("HOOKTEL_OTLP_LISTEN", "127.0.0.1:0")
                // model calls wait for Claude Code's telemetry no longer than other spans (tests that send
                // it set their own)
                .env("HOOKTEL_NATIVE_SETTLE_MS", "200")
                // the tests' transcripts live in temporary directories and the fixtures, not ~/.claude
                .env(
                    "HOOKTEL_TRANSCRIPT_DIRS",
                    format!("{}:{}/tests/fixtures", std::env::temp_dir().display(), env!("CARGO_MANIFEST_DIR")),
                );
        }
        if let Some((endpoint, protocol)) = &self.export {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint).env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
        }
        let own_data_dir = self.data_dir.is_none().then(|| temp_dir("data"));
        let data_dir = self.data_dir.or_else(|| own_data_dir.as_ref().map(|d| d.to_path_buf())).unwrap();
        cmd.env("HOOKTEL_DATA_DIR", &data_dir);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(limit) = self.file_size_limit {
            limit_file_size(&mut cmd, limit);
        }
        let mut child = cmd.spawn().expect("spawn hooktel serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        let otlp_addr = Arc::new(Mutex::new(None));
        let otlp = otlp_addr.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // the line is in the log before the start is reported: a test reads it right away
                {
                    let mut log = l.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(pos) = line.find("(OTLP/HTTP) on http://") {
                    let rest = &line[pos + "(OTLP/HTTP) on http://".len()..];
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    *otlp.lock().unwrap() = addr.parse().ok();
                }
                if let Some(pos) = line.find("listening on http://") {
                    let rest = &line[pos + "listening on http://".len()..];
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("hooktel serve did not start: {}", log.lock().unwrap());
            }
        };
        Sidecar { addr, otlp_addr, child, log, data_dir, _own_data_dir: own_data_dir }
    }
}

impl Sidecar {
    pub fn builder() -> SidecarBuilder {
        SidecarBuilder::default()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The address of its OTLP/HTTP receiver for Claude Code's own telemetry.
    pub fn otlp_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(a) = *self.otlp_addr.lock().unwrap() {
                return a;
            }
            assert!(Instant::now() < deadline, "no OTLP listener in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Run `hooktel hook` with `payload` on stdin, pointed at this sidecar and its data directory.
    pub fn hook(&self, payload: &[u8]) -> Output {
        run_hook_with(&self.addr.to_string(), &self.data_dir, payload)
    }

    /// One HTTP request; returns (status, body).
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        http(self.addr, method, path, body)
    }

    pub fn metrics(&self) -> String {
        self.request("GET", "/metrics", b"").1
    }

    /// The value of one sample in /metrics (e.g. `hooktel_hook_events_total{event="Stop"}`), 0 if absent.
    pub fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics(), sample).unwrap_or(0.0)
    }

    /// Its `VmRSS` and `VmHWM` now (0 where unread).
    pub fn memory(&self) -> Memory {
        let kb = |key| proc_status_kb(self.pid(), key).unwrap_or(0) * 1024;
        Memory { rss: kb("VmRSS"), hwm: kb("VmHWM") }
    }

    /// Send SIGTERM and wait (bounded) for the process to exit; returns whether it exited in time.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample in a Prometheus text exposition (e.g. `hooktel_sessions_active`), if there.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sum of every sample of one metric family (all label sets), e.g. `hooktel_hook_events_total`.
pub fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            l.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .fold(0.0, |a, b| a + b)
}

/// Run `hooktel hook` against `addr` with `payload` on stdin, spooling into a throwaway directory.
pub fn run_hook(addr: &str, payload: &[u8]) -> Output {
    let dir = temp_dir("hook");
    run_hook_with(addr, &dir, payload)
}

/// Run `hooktel hook` against `addr` with `payload` on stdin and `HOOKTEL_DATA_DIR=data_dir`.
pub fn run_hook_with(addr: &str, data_dir: &std::path::Path, payload: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("hook")
        .env("HOOKTEL_ADDR", addr)
        .env("HOOKTEL_DATA_DIR", data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hooktel hook");
    child.stdin.take().unwrap().write_all(payload).unwrap();
    child.wait_with_output().unwrap()
}

/// Run `cmd` with RLIMIT_FSIZE = `bytes` and SIGXFSZ ignored (both survive exec): every file write
/// past `bytes` fails with EFBIG, which is how hooktel meets a full disk.
pub fn limit_file_size(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// A process's memory, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss: u64,
    /// The most it has held so far.
    pub hwm: u64,
}

/// One field of `/proc/<pid>/status` given in kB (e.g. `VmRSS`).
pub fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
}

/// The most memory (VmHWM, MiB) process `pid` has held so far.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let kb = proc_status_kb(pid, "VmHWM").expect("VmHWM in /proc/<pid>/status");
    kb as f64 / 1024.0
}

/// A minimal blocking HTTP/1.1 client for tests.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Leave out of `cmd`'s environment what the test runner's own may hold: its OpenTelemetry, TLS and
/// hooktel settings.
pub fn without_inherited_settings(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("OTEL_") || k.starts_with("SSL_CERT_") || k.starts_with("HOOKTEL_") {
            cmd.env_remove(k.as_ref());
        }
    }
}

/// Wait until `cond()` holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(poll_until(timeout, Duration::from_millis(25), cond), "timed out waiting for {what}");
}

/// Wait until `cond()` holds, polling every `every`; false after `timeout` (for a bench, which
/// reports what it got rather than failing).
pub fn poll_until(timeout: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Run `cmd` (stdout and stderr captured) for at most `limit`: its output, or `None` if it had to be
/// killed; and its peak resident memory in MiB, sampled while it runs (`VmHWM`: the kernel's
/// accounting of a reaped child would also count the test process it was spawned from).
pub fn run_sampled(cmd: &mut Command, limit: Duration) -> (Option<Output>, f64) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run the command");
    let mut peak = 0.0f64;
    let exited = poll_until(limit, Duration::from_millis(5), || {
        peak = peak.max(proc_status_kb(child.id(), "VmHWM").unwrap_or(0) as f64 / 1024.0);
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        child.kill().unwrap();
        child.wait().unwrap();
        return (None, peak);
    }
    (Some(child.wait_with_output().unwrap()), peak)
}

/// Read an HTTP request's head from `stream` (at most 64 KiB, 5 s), as text.
pub fn read_head(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
