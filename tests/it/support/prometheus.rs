//! A real Prometheus for the tests: Debian's `prometheus` (installed by `scripts/install-test-deps.sh`)
//! on a free loopback port with its own temp dir, scraping the given targets every second; queried
//! over its HTTP API. Killed (and its dir removed) on drop; its log is printed when a test fails.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: support::TempDir,
}

impl Prometheus {
    /// Scrape each (job, target) every second, with `rules` loaded and `flags` added to the command
    /// line (e.g. `--enable-feature=exemplar-storage`); ready when this returns.
    pub fn start(jobs: &[(&str, SocketAddr)], rules: Option<&Path>, flags: &[&str]) -> Prometheus {
        let dir = support::temp_dir("prometheus");
        let config = dir.join("prometheus.yml");
        let mut yaml = "# written by tests/it/support/prometheus.rs\nglobal:\n  scrape_interval: 1s\n  \
                        evaluation_interval: 1s\n"
            .to_owned();
        if let Some(rules) = rules {
            yaml += &format!("rule_files:\n  - {}\n", rules.display());
        }
        yaml += "scrape_configs:\n";
        for (job, target) in jobs {
            yaml += &format!("  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n");
        }
        fs::write(&config, yaml).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus ({e}): run scripts/install-test-deps.sh (Debian's prometheus)")
            });
        let mut p = Prometheus { addr, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(p.addr, "/-/ready").map(|(s, _)| s) != Some(200) {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}): {}", p.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready after 30 s: {}", p.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the result vector, or the error Prometheus gave.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let (status, body) = get(self.addr, &format!("/api/v1/query?query={}", urlencode(expr)))
            .ok_or_else(|| "no answer from prometheus".to_owned())?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        match v["data"]["resultType"].as_str() {
            Some("vector") => Ok(v["data"]["result"].as_array().cloned().unwrap_or_default()),
            Some("scalar") => Ok(vec![serde_json::json!({"metric": {}, "value": v["data"]["result"]})]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// The value of a query returning one series, if it does.
    pub fn value(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr).ok()?;
        r.first().and_then(sample_value)
    }

    /// `/api/v1/query_exemplars` of `expr` over the last hour (and the next, for clock skew): the
    /// answer's `data`, one entry per series with its `exemplars`.
    pub fn exemplars(&self, expr: &str) -> Value {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let path = format!("/api/v1/query_exemplars?query={}&start={}&end={}", urlencode(expr), now - 3600, now + 3600);
        let answer = self.api(&path);
        assert_eq!(answer["status"], "success", "{path}: {answer}");
        answer["data"].clone()
    }

    pub fn api(&self, path: &str) -> Value {
        let (_, body) = get(self.addr, path).expect("prometheus answers");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("prometheus log:\n{}", self.log());
        }
    }
}

/// GET over HTTP/1.0 (so the answer is never chunked); (status, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.get(9..12)?.parse().ok()?;
    Some((status, resp.split_once("\r\n\r\n")?.1.to_owned()))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn sample_value(sample: &Value) -> Option<f64> {
    sample["value"][1].as_str()?.parse().ok()
}
