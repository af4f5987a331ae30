//! Arize Phoenix, a real LLM-tracing backend, for the tests: installed by `scripts/install-test-deps.sh`
//! into its own venv, started on free loopback ports with a throwaway working directory, read back over
//! its REST and GraphQL APIs. It ignores SIGTERM: it is stopped with SIGINT (then killed) on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;
use serde_json::Value;

/// How long Phoenix may take to answer after it starts (its first start migrates its database: about
/// 40 s on a loaded 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Phoenix {
    pub addr: SocketAddr,
    child: Child,
    _dir: TempDir,
    log: PathBuf,
}

fn phoenix_bin() -> PathBuf {
    let deps = std::env::var_os("HOOKTEL_TEST_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-deps"));
    let bin = deps.join("phoenix-venv/bin/phoenix");
    assert!(bin.is_file(), "Arize Phoenix is not installed at {}: run scripts/install-test-deps.sh", bin.display());
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Phoenix {
    /// Start `phoenix serve` on free loopback ports and wait until it answers.
    pub fn start() -> Phoenix {
        let dir = super::temp_dir("phoenix");
        let log = dir.path().join("phoenix.log");
        let (http, grpc) = (free_port(), free_port());
        let child = Command::new(phoenix_bin())
            .arg("serve")
            .env("PHOENIX_WORKING_DIR", dir.path())
            // its pid files go to `$TMPDIR/.arize-phoenix` whatever the working dir: into ours too
            .env("TMPDIR", dir.path())
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", http.to_string())
            .env("PHOENIX_GRPC_PORT", grpc.to_string())
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()))
            .spawn()
            .expect("start phoenix");
        let addr: SocketAddr = ([127, 0, 0, 1], http).into();
        let mut phoenix = Phoenix { addr, child, _dir: dir, log };
        let deadline = Instant::now() + START_TIMEOUT;
        while phoenix.get("/healthz").map(|(s, _)| s) != Some(200) {
            if let Ok(Some(status)) = phoenix.child.try_wait() {
                panic!("phoenix exited ({status}):\n{}", phoenix.log());
            }
            assert!(Instant::now() < deadline, "phoenix did not start in {START_TIMEOUT:?}:\n{}", phoenix.log());
            std::thread::sleep(Duration::from_millis(250));
        }
        phoenix
    }

    /// Its OTLP/HTTP endpoint (`/v1/traces` under it).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.0 request (so the answer comes whole, not chunked): status and body, or `None` when
    /// nothing answers yet.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).ok()?;
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let status = resp.get(9..12)?.parse().ok()?;
        Some((status, resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path, b"")
    }

    /// The spans of the default project (REST), as Phoenix stores them.
    pub fn spans(&self) -> Vec<Value> {
        let (status, body) = self.get("/v1/projects/default/spans?limit=1000").expect("phoenix answers");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// A GraphQL query's `data`.
    pub fn graphql(&self, query: &str) -> Value {
        let body = serde_json::json!({ "query": query }).to_string();
        let (status, text) = self.request("POST", "/graphql", body.as_bytes()).expect("phoenix answers");
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(v["errors"].is_null(), "GraphQL errors: {}", v["errors"]);
        v["data"].clone()
    }

    /// Phoenix's summary of one trace of the default project (`None` until it has it): its span
    /// count, spans by kind, token and cost totals, and its user (the first `user.id` of its spans).
    pub fn trace(&self, trace_id: &str) -> Option<Value> {
        let project = self.graphql("{ projects { edges { node { id name } } } }")["projects"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["node"]["name"] == "default")
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())?;
        let query = format!(
            "{{ node(id: \"{project}\") {{ ... on Project {{ trace(traceId: \"{trace_id}\") {{ traceId numSpans userId \
             spanCountsByKind {{ spanKind count }} costSummary {{ total {{ tokens cost }} }} }} }} }} }}"
        );
        let trace = self.graphql(&query)["node"]["trace"].clone();
        (!trace.is_null()).then_some(trace)
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
