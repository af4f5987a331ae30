//! Hostile input against the real `hooktel serve` and `hooktel hook`: what a web page, a DNS-rebinding
//! page or a stuck parent process can send. Each attack has the bound it must stay under (a status
//! code, a count, a time), checked on the built binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Sidecar};

const PAYLOAD: &[u8] = include_bytes!("../fixtures/hooks/captured/01-SessionStart.json");

/// One raw HTTP/1.1 request with exactly the given header lines; returns the status code.
fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> u16 {
    support::raw(addr, method, path, headers, body).0
}

/// A web page can POST to localhost without a preflight (`text/plain`, any `Origin`) and can rebind
/// its own name to 127.0.0.1 (`Host: attacker.example`): all refused, counted by reason, nothing
/// accepted. hooktel's own clients (JSON, no Origin, a loopback Host) still get through.
#[test]
fn web_pages_and_rebinding_are_refused() {
    let sidecar = Sidecar::builder().env("HOOKTEL_ALLOWED_HOSTS", "hooktel.internal, Other.Example").start();
    let addr = sidecar.addr;
    let host = format!("Host: {addr}");
    let attacks: [(&str, &str, Vec<&str>, u16); 7] = [
        (
            "simple cross-site POST",
            "/v1/hooks",
            vec![&host, "Content-Type: text/plain", "Origin: http://evil.example"],
            403,
        ),
        ("JSON with an Origin", "/v1/hooks", vec![&host, "Content-Type: application/json", "Origin: null"], 403),
        ("text/plain from a page without Origin", "/v1/hooks", vec![&host, "Content-Type: text/plain"], 415),
        ("form post", "/v1/events", vec![&host, "Content-Type: application/x-www-form-urlencoded"], 415),
        ("no content type", "/v1/hooks", vec![&host], 415),
        ("DNS rebinding", "/v1/hooks", vec!["Host: attacker.example:4388", "Content-Type: application/json"], 403),
        ("no Host at all", "/v1/hooks", vec!["Content-Type: application/json"], 403),
    ];
    for (what, path, headers, want) in &attacks {
        assert_eq!(raw(addr, "POST", path, headers, PAYLOAD), *want, "{what}");
    }
    assert_eq!(
        raw(addr, "GET", "/metrics", &[&host, "Origin: http://evil.example"], b""),
        403,
        "a page reading /metrics"
    );
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="origin_refused"}"#), 3.0);
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="unsupported_content_type"}"#), 3.0);
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="host_refused"}"#), 2.0);
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#), 0.0, "nothing was accepted");

    // hooktel's own clients: loopback names and addresses, configured names, JSON with a charset
    let json = "Content-Type: application/json; charset=utf-8";
    for ok_host in [
        host.as_str(),
        "Host: localhost:4388",
        "Host: [::1]:4388",
        "Host: HOOKTEL.internal:4388",
        "Host: other.example",
    ] {
        assert_eq!(raw(addr, "POST", "/v1/hooks", &[ok_host, json], PAYLOAD), 200, "{ok_host}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#), 5.0);
    assert_eq!(
        raw(addr, "GET", "/metrics", &["Host: 10.1.2.3:4388"], b""),
        200,
        "Prometheus scrapes under the pod's address"
    );
    assert_eq!(raw(addr, "GET", "/healthz", &["Host: 10.1.2.3:4388"], b""), 200, "probes too");
}

/// `hooktel hook` whose stdin never closes (a terminal, a stuck parent) returns within its bound,
/// exits 0, prints nothing, and still delivers a whole payload it read.
#[test]
fn a_hook_whose_stdin_never_closes_returns_in_time() {
    let sidecar = Sidecar::start(None, &[]);
    let data = support::temp_dir("hostile-stdin");
    let mut child = Command::new(support::BIN)
        .arg("hook")
        .env("HOOKTEL_ADDR", sidecar.addr.to_string())
        .env("HOOKTEL_DATA_DIR", &data)
        .env("HOOKTEL_HOOK_TIMEOUT_MS", "300")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(PAYLOAD).unwrap();
    stdin.flush().unwrap();
    // stdin stays open for the whole test
    let started = Instant::now();
    let bound = Duration::from_secs(3);
    let Some(status) = support::exit_within(&mut child, bound * 3) else {
        panic!("hooktel hook with an open stdin still running after {:?}", started.elapsed());
    };
    let took = started.elapsed();
    drop(stdin);
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(out.is_empty(), "stdout: {:?}", String::from_utf8_lossy(&out));
    assert!(took < bound, "took {took:?} (timeout 300 ms: read deadline + delivery)");
    support::wait_until(Duration::from_secs(10), "the payload read before the deadline to arrive", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#) == 1.0
    });
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Under the usual umask 022 every file hooktel made was readable by every user of the machine (the
/// spool and journal hold prompts and tool inputs): the data directory is now 0700 and its files 0600,
/// also a directory an older hooktel made 0755, and the spool a hook creates.
#[test]
fn the_data_directory_is_private() {
    let tmp = support::temp_dir("hostile-private");
    let old = tmp.join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("spool.db"), b"").unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(old.join("spool.db"), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    for data in [tmp.join("new/data"), old] {
        let sidecar = Sidecar::builder().data_dir(&data).start();
        assert_eq!(sidecar.request("POST", "/v1/hooks", PAYLOAD).0, 200);
        let files = ["spool.db", "journal.db", "local.db", "serve.lock"];
        support::wait_until(Duration::from_secs(10), "the sidecar's files", || {
            files.iter().all(|f| data.join(f).exists())
        });
        assert_eq!(mode(&data), 0o700, "{}", data.display());
        for f in files {
            assert_eq!(mode(&data.join(f)), 0o600, "{f} in {}", data.display());
        }
    }
    // a hook that finds no sidecar creates the spool: private too
    let hook_dir = tmp.join("hook");
    assert!(support::run_hook_with("127.0.0.1:9", &hook_dir, PAYLOAD).status.success());
    assert_eq!(mode(&hook_dir), 0o700);
    assert_eq!(mode(&hook_dir.join("spool.db")), 0o600);
}

/// Two sidecars on one data directory both drained its spool (1,000 events became 1,525): the second
/// now exits at once, naming the lock, and the first keeps serving.
#[test]
fn a_second_sidecar_on_the_same_data_directory_refuses_to_start() {
    let data = support::temp_dir("hostile-lock");
    let first = Sidecar::builder().data_dir(&data).start();
    let started = Instant::now();
    let out = Command::new(support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"])
        .env("HOOKTEL_DATA_DIR", data.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "the second sidecar must not wait for the lock");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("serve.lock") && stderr.contains("another `hooktel serve`"), "{stderr}");
    assert_eq!(first.request("POST", "/v1/hooks", PAYLOAD).0, 200, "the first one still serves");
}

/// A project, a tool name or a session id can carry terminal escapes (window title, clear screen,
/// hyperlinks): `hooktel sessions` and `hooktel show` print them as visible text.
#[test]
fn terminal_views_print_escapes_as_text() {
    let data = support::temp_dir("hostile-views");
    let sidecar = Sidecar::builder().data_dir(&data).start();
    let sid = "7f0c9d1e-2b3a-4c5d-8e6f-0a1b2c3d4e5f";
    let cwd = "/home/dev/\u{1b}]0;pwned\u{7}proj\u{1b}[2J";
    let tool = "mcp__evil\u{1b}]8;;http://evil.example\u{1b}\\";
    for p in [
        serde_json::json!({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup", "cwd": cwd}),
        serde_json::json!({"session_id": sid, "hook_event_name": "PreToolUse", "tool_name": tool, "tool_use_id": "t1", "cwd": cwd}),
        serde_json::json!({"session_id": sid, "hook_event_name": "PostToolUse", "tool_name": tool, "tool_use_id": "t1", "cwd": cwd}),
        serde_json::json!({"session_id": sid, "hook_event_name": "SessionEnd", "reason": "other", "cwd": cwd}),
    ] {
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(10), "the root and the tool call stored", || {
        sidecar.metric("hooktel_spans_stored_total") >= 2.0
    });
    for args in [vec!["sessions"], vec!["show", sid]] {
        let out = Command::new(support::BIN).args(&args).arg("--data-dir").arg(data.path()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.stdout.iter().any(|&b| b == 0x1b || b == 0x07), "{args:?} printed a raw escape: {text:?}");
        assert!(text.contains(r"\u{1b}"), "{args:?} shows the escape as text: {text}");
    }
}

/// `--capture none` is names, ids, timings and status: checked on what reaches a real OTLP receiver.
/// The full working directory and transcript path, a failed turn's details, free-text hook fields and
/// an unknown event's secret all used to leave the machine at `none`.
#[test]
fn capture_none_sends_no_text_and_no_paths() {
    let (receiver, sidecar) =
        Sidecar::builder().env("HOOKTEL_CAPTURE", "none").start_exporting(support::Protocol::Http);
    let sid = "5e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
    let base = |event: &str| {
        serde_json::json!({"session_id": sid, "hook_event_name": event,
            "cwd": "/home/SECRETUSER/proj", "transcript_path": "/home/SECRETUSER/.claude/projects/x/t.jsonl"})
    };
    let mut events = vec![base("SessionStart"), base("UserPromptSubmit"), base("PreToolUse"), base("PostToolUse")];
    events[1]["prompt_id"] = "p1".into();
    events[1]["prompt"] = "SECRET-PROMPT".into();
    for e in &mut events[2..] {
        e["prompt_id"] = "p1".into();
        e["tool_name"] = "Bash".into();
        e["tool_use_id"] = "t1".into();
        e["tool_input"] = serde_json::json!({"command": "mysql -pSECRET-PW", "description": "SECRET-DESC"});
        e["tool_response"] = serde_json::json!({"stdout": "SECRET-OUT"});
    }
    let mut unknown = base("SomethingNew");
    unknown["title"] = "SECRET-TITLE".into();
    unknown["api_key"] = "SECRET-KEY".into();
    let mut failure = base("StopFailure");
    failure["prompt_id"] = "p1".into();
    failure["error"] = "rate_limit".into();
    failure["error_details"] = "SECRET-DETAILS".into();
    events.extend([unknown, failure, base("SessionEnd")]);
    for e in &events {
        assert_eq!(sidecar.request("POST", "/v1/hooks", e.to_string().as_bytes()).0, 200);
    }
    let spans = receiver.wait_for(Duration::from_secs(15), "the session's spans", |s| {
        s.iter().any(|s| s.parent.is_empty()) && s.iter().any(|s| s.name == "execute_tool Bash")
    });
    for s in &spans {
        let all = format!("{:?} {:?} {}", s.attrs, s.events, s.status_message);
        assert!(!all.contains("SECRET"), "{}: {all}", s.name);
    }
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.attrs.get("hooktel.project").map(String::as_str), Some("proj"), "the project's name stays");
}

/// 100 tool names times 100 project directories with 8,000-character names made 10,000 series and a
/// 177 MB `/metrics`. Names that long are now refused at ingest (below); label values are cut to 128
/// bytes, and a metric keeps at most 1,000 (tool, project) pairs: here 40 x 40 names as long as
/// ingest allows give a small page, and the overflow is counted.
#[test]
fn label_values_and_series_are_bounded() {
    let sidecar = Sidecar::start(None, &[]);
    // as long as ingest lets them be: ids and names 256 bytes, paths 4,096
    let long = |what: &str, i: usize, len: usize| format!("{what}{i:03}{}", "x".repeat(len));
    for p in 0..40 {
        let sid = format!("00000000-0000-4000-8000-{p:012}");
        let cwd = format!("/home/dev/{}", long("project", p, 4000));
        let start =
            serde_json::json!({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup", "cwd": cwd});
        assert_eq!(sidecar.request("POST", "/v1/hooks", start.to_string().as_bytes()).0, 200);
        for t in 0..40 {
            let call = serde_json::json!({"session_id": sid, "hook_event_name": "PostToolUse", "cwd": cwd,
                "tool_name": long("mcp__tool", t, 240), "tool_use_id": format!("t{t}"), "duration_ms": 5});
            assert_eq!(sidecar.request("POST", "/v1/hooks", call.to_string().as_bytes()).0, 200);
        }
    }
    support::wait_until(Duration::from_secs(30), "1,600 tool calls counted", || {
        let text = sidecar.metrics();
        text.lines()
            .filter(|l| l.starts_with("hooktel_tool_calls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            >= 1600.0
    });
    let text = sidecar.metrics();
    assert!(text.len() < 2 * 1024 * 1024, "/metrics is {} bytes", text.len());
    let series = text.lines().filter(|l| l.starts_with("hooktel_tool_calls_total{")).count();
    assert!(series <= 1001, "{series} tool-call series");
    for value in text.split('"').skip(1).step_by(2) {
        assert!(value.len() <= 128, "a label value of {} bytes", value.len());
    }
    assert!(sidecar.metric(r#"hooktel_label_overflow_total{metric="hooktel_tool_calls_total"}"#) >= 600.0);
    // six scrapes at once (1.59 GB before the caps)
    let scrapes: Vec<_> = (0..6)
        .map(|_| {
            let addr = sidecar.addr;
            std::thread::spawn(move || support::http(addr, "GET", "/metrics", b"").0)
        })
        .collect();
    for s in scrapes {
        assert_eq!(s.join().unwrap(), 200);
    }
    let peak = support::peak_rss_mib(sidecar.pid());
    assert!(peak < 128.0, "peak RSS {peak:.0} MiB");
}

/// A payload's `transcript_path` is untrusted: `/etc/passwd`, another directory's `.jsonl`, a `..`
/// escape, a symlink out of the projects directory, a FIFO (which blocked the accountant forever:
/// no session was counted again and SIGTERM no longer stopped the sidecar) and a FIFO as a subagent's
/// meta file (which used up the blocking pool) are all refused and counted; a real transcript under
/// the projects directory is still counted, and the sidecar still stops on SIGTERM.
#[test]
fn transcript_paths_outside_the_projects_directories_are_refused() {
    let tmp = support::temp_dir("hostile-paths");
    let projects = tmp.join("projects");
    std::fs::create_dir_all(projects.join("p/s1/subagents")).unwrap();
    let outside = tmp.join("elsewhere.jsonl");
    let line = r#"{"type":"assistant","requestId":"r1","message":{"id":"m1","model":"claude-haiku-4-5","usage":{"input_tokens":7,"output_tokens":11}}}"#;
    std::fs::write(&outside, format!("{line}\n")).unwrap();
    std::os::unix::fs::symlink(&outside, projects.join("p/link.jsonl")).unwrap();
    let fifo = |path: &std::path::Path| {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    fifo(&projects.join("p/fifo.jsonl"));
    fifo(&projects.join("p/s1/subagents/agent-a1.meta.json"));
    let good = projects.join("p/good.jsonl");
    std::fs::write(&good, format!("{line}\n")).unwrap();

    let mut sidecar = Sidecar::builder().env("HOOKTEL_TRANSCRIPT_DIRS", projects.to_str().unwrap()).start();
    let session = |n: u32, path: &str| {
        let sid = format!("00000000-0000-4000-8000-0000000000{n:02}");
        let base = serde_json::json!({"session_id": sid, "transcript_path": path, "cwd": "/w/proj", "prompt_id": "p1"});
        let mut out = Vec::new();
        for (event, extra) in [
            ("SessionStart", serde_json::json!({"source": "startup"})),
            ("UserPromptSubmit", serde_json::json!({})),
            ("SubagentStart", serde_json::json!({"agent_id": "a1", "agent_type": "x"})),
            ("Stop", serde_json::json!({})),
            ("SessionEnd", serde_json::json!({"reason": "other"})),
        ] {
            let mut p = base.clone();
            p["hook_event_name"] = event.into();
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            out.push(p);
        }
        out
    };
    let hostile = [
        "/etc/passwd".to_owned(),
        outside.to_str().unwrap().to_owned(),
        format!("{}/p/../../elsewhere.jsonl", projects.display()),
        projects.join("p/link.jsonl").to_str().unwrap().to_owned(),
        projects.join("p/fifo.jsonl").to_str().unwrap().to_owned(),
        projects.join("p/s1.jsonl").to_str().unwrap().to_owned(), // its subagent's meta file is a FIFO
    ];
    for (n, path) in hostile.iter().enumerate() {
        for p in session(n as u32, path) {
            assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200, "{path}");
        }
    }
    for p in session(99, good.to_str().unwrap()) {
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(15), "the real transcript counted after the hostile ones", || {
        sidecar.metric(r#"hooktel_tokens_total{agent="claude-code",model="claude-haiku-4-5",project="proj",repo="",type="output"}"#) == 11.0
    });
    assert!(sidecar.metric(r#"hooktel_transcript_errors_total{reason="refused"}"#) >= 5.0);
    assert_eq!(sidecar.metric(r#"hooktel_transcript_errors_total{reason="unreadable"}"#), 0.0);
    assert!(sidecar.terminate(Duration::from_secs(15)), "SIGTERM still stops the sidecar");
}

/// The sidecar's CPU time so far (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks
}

/// A 2 GB transcript without a newline was re-read (64 MiB) on every event, and aliases of one file
/// (a symlink beside it, `//`) counted it once per name: 300 requests cost 19.6 s of CPU and delayed a
/// real session's tokens by 15 s. Now each byte is read once (the over-long line is skipped, counted
/// as one bad line) and a file counts once whatever it is called.
#[test]
fn huge_and_aliased_transcripts_are_read_once() {
    let tmp = support::temp_dir("hostile-huge");
    let projects = tmp.join("projects");
    std::fs::create_dir_all(projects.join("p")).unwrap();
    let huge = projects.join("p/huge.jsonl");
    std::fs::File::create(&huge).unwrap().set_len(2 << 30).unwrap(); // sparse: 2 GB of zeros, no newline
    let real = projects.join("p/real.jsonl");
    let line = r#"{"type":"assistant","requestId":"r1","message":{"id":"m1","model":"claude-haiku-4-5","usage":{"input_tokens":7,"output_tokens":11}}}"#;
    std::fs::write(&real, format!("{line}\n")).unwrap();
    std::os::unix::fs::symlink(&real, projects.join("p/alias.jsonl")).unwrap();
    let sidecar = Sidecar::builder().env("HOOKTEL_TRANSCRIPT_DIRS", projects.to_str().unwrap()).start();
    let cpu_before = cpu_seconds(sidecar.pid());
    let post = |n: usize, path: &str, event: &str| {
        let p = serde_json::json!({"session_id": format!("00000000-0000-4000-8000-{n:012}"), "hook_event_name": event,
            "transcript_path": path, "cwd": "/w/proj", "prompt_id": "p1", "reason": "other"});
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    };
    for n in 0..300 {
        post(n, huge.to_str().unwrap(), if n % 2 == 0 { "UserPromptSubmit" } else { "Stop" });
    }
    let names =
        [real.clone(), projects.join("p/alias.jsonl"), PathBuf::from(format!("{}/p//real.jsonl", projects.display()))];
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        for event in ["SessionStart", "Stop", "SessionEnd"] {
            post(1000 + i, name.to_str().unwrap(), event);
        }
    }
    let output =
        r#"hooktel_tokens_total{agent="claude-code",model="claude-haiku-4-5",project="proj",repo="",type="output"}"#;
    support::wait_until(Duration::from_secs(10), "the real transcript counted", || sidecar.metric(output) > 0.0);
    let delay = started.elapsed();
    support::wait_until(Duration::from_secs(30), "the huge file read through", || {
        sidecar.metric(r#"hooktel_transcript_errors_total{reason="bad_line"}"#) >= 1.0
    });
    std::thread::sleep(Duration::from_secs(2)); // every alias's reads are done
    assert_eq!(sidecar.metric(output), 11.0, "one file, counted once under three names");
    assert_eq!(sidecar.metric(r#"hooktel_transcript_errors_total{reason="bad_line"}"#), 1.0, "one over-long line");
    let cpu = cpu_seconds(sidecar.pid()) - cpu_before;
    println!("huge transcript: {cpu:.1} s of CPU for 300 events, real tokens after {delay:?}");
    assert!(cpu < 10.0, "{cpu:.1} s of CPU: the 2 GB file is read more than once");
    assert!(delay < Duration::from_secs(5), "a real session's tokens waited {delay:?}");
}

/// Ids and paths longer than any real one (5,000 SessionStart with 20 KB ids and paths held 658 MB
/// and a 492 MB journal) are refused with 400 and counted, and nothing of them is kept.
#[test]
fn oversized_ids_and_paths_are_refused() {
    let sidecar = Sidecar::start(None, &[]);
    let big = "x".repeat(20 * 1024);
    let cases = [
        serde_json::json!({"session_id": big, "hook_event_name": "SessionStart"}),
        serde_json::json!({"session_id": "s", "hook_event_name": "SessionStart", "cwd": format!("/{big}")}),
        serde_json::json!({"session_id": "s", "hook_event_name": "SessionStart", "transcript_path": format!("/{big}.jsonl")}),
        serde_json::json!({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": big, "tool_use_id": "t"}),
        serde_json::json!({"session_id": "s", "hook_event_name": big}),
    ];
    for p in &cases {
        let (status, body) = sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes());
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("longer than"), "{body}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="field_too_long"}"#), cases.len() as f64);
    assert_eq!(sidecar.metric("hooktel_sessions_active"), 0.0);
}

/// 5,000 SessionStart with 20 KB ids and paths held 658 MB. With fields as long as ingest allows
/// (ids 256 bytes, paths 4,096), 5,500 sessions against the default cap of 5,000: at least 500 are
/// closed (counted: past the cap, and past the open sessions' share of the memory budget, 64 MiB,
/// which 5,000 such sessions exceed), what the sessions hold stays inside that share, and the
/// sidecar's peak memory under the shipped Kubernetes limit of 256 MiB.
#[test]
fn open_sessions_at_their_cap_fit_the_pod_limit() {
    let sidecar = Sidecar::start(None, &[]);
    for i in 0..5_500 {
        let sid = format!("00000000-0000-4000-8000-{i:012}");
        let p = serde_json::json!({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup",
            "cwd": format!("/home/dev/c{i:05}{}", "x".repeat(4080)),
            "transcript_path": format!("/tmp/t{i:05}{}.jsonl", "y".repeat(4070)),
            "model": "m".repeat(250), "agent_type": "a".repeat(250)});
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(30), "all applied", || sidecar.metric("hooktel_ingest_queue_depth") == 0.0);
    let (active, ended) = (
        sidecar.metric("hooktel_sessions_active"),
        sidecar.metric(r#"hooktel_sessions_ended_total{agent="claude-code",reason="evicted"}"#),
    );
    assert!(active <= 5000.0 && active + ended == 5500.0 && ended >= 500.0, "{active} open, {ended} closed");
    let held = sidecar.metric("hooktel_sessions_held_bytes") / 1048576.0;
    let peak = support::peak_rss_mib(sidecar.pid());
    println!("5,500 sessions with the longest fields: peak RSS {peak:.0} MiB, {active} open holding {held:.1} MiB");
    assert!(held <= 64.0, "the sessions hold {held:.1} MiB");
    assert!(peak < 256.0, "peak RSS {peak:.0} MiB");
}

/// Open sessions are capped (`HOOKTEL_MAX_SESSIONS`): new sessions past it close the ones idle
/// longest, counted as ended with reason `evicted`.
#[test]
fn open_sessions_are_capped() {
    let sidecar = Sidecar::builder().env("HOOKTEL_MAX_SESSIONS", "50").start();
    for i in 0..60 {
        let sid = format!("00000000-0000-4000-8000-{i:012}");
        let p = serde_json::json!({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup"});
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(10), "10 sessions evicted", || {
        sidecar.metric(r#"hooktel_sessions_ended_total{agent="claude-code",reason="evicted"}"#) == 10.0
    });
    assert_eq!(sidecar.metric("hooktel_sessions_active"), 50.0);
}

/// A full disk, as RLIMIT_FSIZE makes it (writes past 256 KiB fail with EFBIG): what
/// docs/storage-and-guarantees.md promises holds. The sidecar keeps running and answering, and counts what it could not keep (spans
/// the export spool could not take, journal rows); a hook that can neither deliver nor spool exits 0
/// with nothing on stdout, and its drop is counted by the next sidecar.
#[test]
fn a_full_disk_is_counted_and_survived() {
    let limit = 256 * 1024;
    let sidecar = Sidecar::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9") // the collector is down: spans go to the spool
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .file_size_limit(limit)
        .start();
    let filler = "z".repeat(2000);
    for n in 0..300 {
        let sid = format!("00000000-0000-4000-8000-{n:012}");
        let base = serde_json::json!({"session_id": sid, "cwd": "/w/proj", "prompt_id": "p1", "title": filler});
        for (event, tool) in
            [("SessionStart", None), ("PreToolUse", Some("t1")), ("PostToolUse", Some("t1")), ("SessionEnd", None)]
        {
            let mut p = base.clone();
            p["hook_event_name"] = event.into();
            p["reason"] = "other".into();
            if let Some(t) = tool {
                p["tool_name"] = "Bash".into();
                p["tool_use_id"] = t.into();
                p["tool_input"] = serde_json::json!({"command": filler});
            }
            assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200, "{event} {n}");
        }
    }
    support::wait_until(Duration::from_secs(60), "drops counted", || {
        let m = sidecar.metrics();
        support::metric_value(&m, r#"hooktel_spans_dropped_total{reason="spool_failed"}"#).is_some_and(|v| v > 0.0)
            && support::metric_value(&m, "hooktel_journal_write_failures_total").is_some_and(|v| v > 0.0)
    });
    assert_eq!(sidecar.request("GET", "/healthz", b"").0, 200, "still running");
    for f in std::fs::read_dir(&sidecar.data_dir).unwrap() {
        let f = f.unwrap();
        assert!(f.metadata().unwrap().len() <= limit, "{:?} grew past the limit", f.file_name());
    }

    // a hook with the sidecar away and its spool at the limit
    let data = support::temp_dir("hostile-full-hook");
    let run_hook = |payload: &[u8]| {
        let mut cmd = Command::new(support::BIN);
        cmd.arg("hook")
            .env("HOOKTEL_ADDR", "127.0.0.1:9")
            .env("HOOKTEL_DATA_DIR", data.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        support::limit_file_size(&mut cmd, 64 * 1024);
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(payload).unwrap();
        child.wait_with_output().unwrap()
    };
    let big =
        serde_json::json!({"session_id": "00000000-0000-4000-8000-0000000000ff", "hook_event_name": "Notification",
        "title": "w".repeat(30 * 1024)})
        .to_string();
    let mut lost = 0;
    for _ in 0..6 {
        let out = run_hook(big.as_bytes());
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty(), "{:?}", String::from_utf8_lossy(&out.stdout));
        lost += usize::from(String::from_utf8_lossy(&out.stderr).contains("not spooled"));
    }
    assert!(lost > 0, "the spool never filled");
    let next = Sidecar::builder().data_dir(&data).start();
    support::wait_until(Duration::from_secs(10), "the hooks' drops counted", || {
        next.metric(r#"hooktel_spool_dropped_total{reason="write_failed",spool="hook"}"#) == lost as f64
            && next.metric(r#"hooktel_hook_events_total{event="Notification"}"#) == (6 - lost) as f64
    });
}

/// Paths with newlines and escape codes were logged raw (forged log lines), and a flood of bad
/// requests became a flood of WARN lines (5,000 in 2 s). What a payload names is logged escaped, and
/// per-request warnings at most once per kind every 10 s, saying how many were left out.
#[test]
fn logs_cannot_be_forged_or_flooded() {
    let sidecar = Sidecar::start(None, &[]);
    let forged = "/x/evil\n2026-01-01T00:00:00Z ERROR forged line \u{1b}]0;pwned\u{7}.jsonl";
    let p = serde_json::json!({"session_id": "s", "hook_event_name": "SessionStart", "transcript_path": forged});
    assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    let flood = Instant::now();
    for _ in 0..2000 {
        assert_eq!(sidecar.request("POST", "/v1/hooks", b"{not json").0, 400);
    }
    let most = flood.elapsed().as_secs() as usize / 10 + 1;
    support::wait_until(Duration::from_secs(10), "the refused path logged", || sidecar.log().contains("forged line"));
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="malformed_json"}"#), 2000.0, "all counted");
    let log = sidecar.log();
    for line in log.lines().filter(|l| l.contains("forged line")) {
        assert!(line.contains("Transcript path refused"), "a forged line of its own: {line:?}");
    }
    assert!(!log.contains("\u{1b}]0;pwned"), "a raw escape sequence reached the log");
    let refusals = log.lines().filter(|l| l.contains("Refused a request")).count();
    assert!((1..=most).contains(&refusals), "{refusals} lines for 2,000 bad requests:\n{log}");
}

/// A database file cut to 0 bytes was taken as a valid empty database, silently. The sidecar now
/// says so (an ERROR naming the file) and moves it aside before starting a fresh one.
#[test]
fn emptied_database_files_are_reported() {
    let data = support::temp_dir("hostile-empty");
    for f in ["journal.db", "local.db"] {
        let file = std::fs::File::create(data.join(f)).unwrap();
        file.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
    }
    let sidecar = Sidecar::builder().data_dir(&data).start();
    support::wait_until(Duration::from_secs(10), "both files reported", || {
        sidecar.log().matches("Database file is empty (0 bytes)").count() == 2
    });
    let aside = std::fs::read_dir(data.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(aside, 2, "both moved aside");
    assert_eq!(sidecar.request("POST", "/v1/hooks", PAYLOAD).0, 200, "and the sidecar runs on fresh ones");
}

/// The journal held every event of the open sessions whole (prompts, tool output, Write contents,
/// even at capture `none`) and without a bound: 5,000 large sessions made it 492 MB. It now keeps
/// only what the capture level lets out, and stops journaling (counted) at its size cap.
#[test]
fn the_journal_keeps_only_what_capture_allows_and_has_a_cap() {
    let sidecar = Sidecar::builder().env("HOOKTEL_JOURNAL_MAX_BYTES", "1048576").start();
    let sid = "00000000-0000-4000-8000-00000000a11c";
    let prompt = serde_json::json!({"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt_id": "p1",
        "prompt": "SECRET-PROMPT-TEXT"});
    let tool = serde_json::json!({"session_id": sid, "hook_event_name": "PostToolUse", "prompt_id": "p1",
        "tool_name": "Write", "tool_use_id": "toolu_1",
        "tool_input": {"file_path": "/tmp/notes.txt", "content": "SECRET-FILE-CONTENT"},
        "tool_response": {"content": "SECRET-TOOL-OUTPUT"}});
    for p in [&prompt, &tool] {
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    // then 4 MB of events (each under the cut, 60 KB of a field the journal must keep at metadata)
    let filler = "y".repeat(60 * 1024);
    for i in 0..70 {
        let p = serde_json::json!({"session_id": sid, "hook_event_name": "Notification", "title": filler,
            "notification_type": format!("n{i}")});
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(10), "events over the cap counted", || {
        sidecar.metric("hooktel_journal_full_total") > 0.0
    });
    std::thread::sleep(Duration::from_millis(200)); // the last commit
    let mut journal = Vec::new();
    for f in ["journal.db", "journal.db-wal"] {
        journal.extend(std::fs::read(sidecar.data_dir.join(f)).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&journal);
    assert!(text.contains("/tmp/notes.txt"), "the summarised input is kept, so a restart gives the same span");
    for secret in ["SECRET-PROMPT-TEXT", "SECRET-FILE-CONTENT", "SECRET-TOOL-OUTPUT"] {
        assert!(!text.contains(secret), "{secret} is at rest in the journal");
    }
    let size = std::fs::metadata(sidecar.data_dir.join("journal.db")).unwrap().len();
    assert!(size < 2 * 1024 * 1024, "journal.db is {size} bytes for a 1 MiB cap");

    // at the cap, a steady trickle of small events (a commit each) logged the warning ~45 times a
    // second; it is one line per interval, with the count left out
    let said = |log: &str| log.matches("Journal at its size cap").count();
    let before = said(&sidecar.log());
    let full = sidecar.metric("hooktel_journal_full_total");
    let small = "t".repeat(4096); // what room the cap left is soon taken
    for i in 0..60 {
        let p = serde_json::json!({"session_id": sid, "hook_event_name": "Notification", "title": small,
            "notification_type": format!("trickle{i}")});
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
        std::thread::sleep(Duration::from_millis(30));
    }
    support::wait_until(Duration::from_secs(10), "the trickle counted as over the cap", || {
        sidecar.metric("hooktel_journal_full_total") >= full + 40.0
    });
    let after = said(&sidecar.log());
    assert!(
        before >= 1 && after - before <= 1,
        "{} warnings for 60 events over 2 s:\n{}",
        after - before,
        sidecar.log()
    );
}

/// A data directory whose spool cannot be opened (read-only, or a broken `spool.db`) stopped the
/// hook-spool drain for good, silently. The drain now retries every second and says so in
/// `hooktel_spool_usable`; once the directory is fixed, spooled events arrive without a restart.
#[test]
fn an_unusable_spool_is_retried_and_reported() {
    let data = support::temp_dir("hostile-spool");
    std::fs::create_dir(data.join("spool.db")).unwrap(); // not a file SQLite can open
    let sidecar = Sidecar::builder().data_dir(&data).start();
    support::wait_until(Duration::from_secs(10), "the spool reported unusable", || {
        sidecar.metrics().contains(r#"hooktel_spool_usable{spool="hook"} 0"#)
    });
    let doctor = Command::new(support::BIN)
        .arg("doctor")
        .env("HOOKTEL_ADDR", sidecar.addr.to_string())
        .env("HOOKTEL_DATA_DIR", data.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("hook spool is unusable"), "doctor says: {said}");
    std::fs::remove_dir(data.join("spool.db")).unwrap();
    // a hook that cannot reach a sidecar spools its event in the (now fixed) directory
    assert!(support::run_hook_with("127.0.0.1:9", data.path(), PAYLOAD).status.success());
    support::wait_until(Duration::from_secs(10), "the spooled event drained without a restart", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#) == 1.0
    });
    assert!(sidecar.metrics().contains(r#"hooktel_spool_usable{spool="hook"} 1"#));
}

/// With the sidecar down, 50 MB of garbage on a hook's stdin went into `spool.db`, which never
/// shrinks. A body no hook sends (over 1 MiB after cutting) is not spooled; a real one still is.
#[test]
fn garbage_is_not_spooled_when_the_sidecar_is_down() {
    let data = support::temp_dir("hostile-garbage");
    let run = |stdin: Vec<u8>| {
        let mut child = Command::new(support::BIN)
            .arg("hook")
            .env("HOOKTEL_ADDR", "127.0.0.1:9")
            .env("HOOKTEL_DATA_DIR", data.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = run(vec![b'x'; 8 * 1024 * 1024]);
    assert!(said.contains("not spooled"), "{said}");
    let size = std::fs::metadata(data.join("spool.db")).map_or(0, |m| m.len());
    assert!(size < 64 * 1024, "spool.db is {size} bytes");
    run(PAYLOAD.to_vec());
    let sidecar = Sidecar::builder().data_dir(&data).start();
    support::wait_until(Duration::from_secs(10), "the real payload drained", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="SessionStart"}"#) == 1.0
    });
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="malformed_json"}"#), 0.0);
}

/// Garbage in a transcript's saved progress (`<data dir>/transcripts/*.json`) made the sidecar read the
/// transcript again from the start and count every response twice. It now counts, logs, and goes on
/// from the transcript's current end: nothing is counted twice, and new lines are still counted.
#[test]
fn damaged_progress_files_never_count_twice() {
    let tmp = support::temp_dir("hostile-ledger");
    let data = tmp.join("data");
    let transcript = tmp.join("projects/p/s.jsonl");
    std::fs::create_dir_all(transcript.parent().unwrap()).unwrap();
    let line = |id: &str, out: u64| {
        format!(
            r#"{{"type":"assistant","requestId":"r-{id}","message":{{"id":"{id}","model":"claude-haiku-4-5","usage":{{"input_tokens":7,"output_tokens":{out}}}}}}}"#
        ) + "\n"
    };
    std::fs::write(&transcript, line("m1", 11)).unwrap();
    let events = |sid: &str| {
        ["SessionStart", "Stop", "SessionEnd"].map(|e| {
            serde_json::json!({"session_id": sid, "hook_event_name": e, "transcript_path": transcript.to_str().unwrap(),
                "cwd": "/w/proj", "prompt_id": "p1", "reason": "other"})
            .to_string()
        })
    };
    let output =
        r#"hooktel_tokens_total{agent="claude-code",model="claude-haiku-4-5",project="proj",repo="",type="output"}"#;
    {
        let mut first = Sidecar::builder().data_dir(&data).start();
        for e in events("00000000-0000-4000-8000-000000000001") {
            assert_eq!(first.request("POST", "/v1/hooks", e.as_bytes()).0, 200);
        }
        support::wait_until(Duration::from_secs(10), "the first response counted", || first.metric(output) == 11.0);
        assert!(first.terminate(Duration::from_secs(15)));
    }
    let saved: Vec<_> = std::fs::read_dir(data.join("transcripts")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!saved.is_empty());
    for f in &saved {
        std::fs::write(f, b"\x00garbage{{{").unwrap();
    }
    let second = Sidecar::builder().data_dir(&data).start();
    for e in events("00000000-0000-4000-8000-000000000002") {
        assert_eq!(second.request("POST", "/v1/hooks", e.as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(10), "the damaged progress counted", || {
        second.metric(r#"hooktel_transcript_errors_total{reason="bad_ledger"}"#) == 1.0
    });
    // a new response after the restart is counted, the old one not again
    std::fs::OpenOptions::new().append(true).open(&transcript).unwrap().write_all(line("m2", 5).as_bytes()).unwrap();
    for e in events("00000000-0000-4000-8000-000000000003") {
        assert_eq!(second.request("POST", "/v1/hooks", e.as_bytes()).0, 200);
    }
    support::wait_until(Duration::from_secs(10), "the new response counted", || second.metric(output) >= 5.0);
    assert_eq!(second.metric(output), 5.0, "the first response was counted again");
}

/// Start a POST that declares `len` body bytes, send `send` of them, and leave it stalled.
fn stalled_post(addr: SocketAddr, len: usize, send: usize) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
    let head = format!(
        "POST /v1/hooks HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    let _ = s.write_all(head.as_bytes());
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < send {
        let n = chunk.len().min(send - sent);
        if s.write_all(&chunk[..n]).is_err() {
            break; // refused: the sidecar answered and stopped reading
        }
        sent += n;
    }
    s
}

/// The status line of whatever the sidecar answered on `s` (empty if nothing within `wait`).
fn answer(s: &mut TcpStream, wait: Duration) -> String {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Bodies held at once are bounded over all connections: a stalled upload past the budget gets 503
/// with Retry-After at once, a normal hook still gets through.
#[test]
fn body_bytes_held_across_connections_are_bounded() {
    let sidecar =
        Sidecar::builder().env("HOOKTEL_MAX_BODY_BYTES", "524288").env("HOOKTEL_MAX_BUFFERED_BYTES", "1048576").start();
    let mut refused = None;
    // each try opens its own two stalls (a stall is dropped after 10 s, which a loaded machine can
    // reach before the third connection is served)
    support::wait_until(Duration::from_secs(60), "a third stalled upload refused", || {
        let _first = stalled_post(sidecar.addr, 500_000, 1);
        let _second = stalled_post(sidecar.addr, 500_000, 1);
        std::thread::sleep(Duration::from_millis(200));
        let mut third = stalled_post(sidecar.addr, 500_000, 1);
        let said = answer(&mut third, Duration::from_secs(2));
        let busy = said.starts_with("HTTP/1.1 503");
        if busy {
            refused = Some(said);
        }
        busy
    });
    assert!(refused.unwrap().to_ascii_lowercase().contains("retry-after: 1"));
    assert_eq!(sidecar.request("POST", "/v1/hooks", PAYLOAD).0, 200, "a normal hook still passes");
    assert!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="body_budget_full"}"#) >= 1.0);
}

/// Connections are bounded: past `HOOKTEL_MAX_CONNECTIONS` a new one gets 503 and is closed.
#[test]
fn connections_are_bounded() {
    let sidecar = Sidecar::builder().env("HOOKTEL_MAX_CONNECTIONS", "4").start();
    let idle: Vec<TcpStream> =
        (0..4).map(|_| TcpStream::connect_timeout(&sidecar.addr, Duration::from_secs(5)).unwrap()).collect();
    let mut one_more = TcpStream::connect_timeout(&sidecar.addr, Duration::from_secs(5)).unwrap();
    assert!(answer(&mut one_more, Duration::from_secs(5)).starts_with("HTTP/1.1 503"));
    drop(idle);
    support::wait_until(Duration::from_secs(10), "room again once they closed", || {
        sidecar.request("GET", "/healthz", b"").0 == 200
    });
    assert!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="too_many_connections"}"#) >= 1.0);
}

/// 200 connections each stalling one byte short of 8 MiB held 1.7 GB. Here 40 uploads of 4 MiB each
/// (160 MB sent) leave the sidecar's resident memory under 120 MB.
#[test]
fn stalled_uploads_do_not_grow_memory() {
    let sidecar = Sidecar::start(None, &[]);
    let uploads: Vec<TcpStream> =
        (0..40).map(|_| stalled_post(sidecar.addr, 8 * 1024 * 1024 - 1, 4 * 1024 * 1024)).collect();
    let status = std::fs::read_to_string(format!("/proc/{}/status", sidecar.pid())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kb < 120 * 1024, "VmRSS {} MB with 40 stalled uploads", rss_kb / 1024);
    drop(uploads);
}

/// One live session sent 4,104 API requests and 4,104 API errors with a 60 KB `status_code` (never
/// checked): the sidecar held 552 MiB until the session's idle timeout. A status code longer than one
/// is dropped, and reports waiting for their match are bounded per session.
#[test]
fn api_reports_with_huge_fields_are_held_in_bounded_memory() {
    let sidecar = Sidecar::start(None, &[]);
    let sid = "00000000-0000-4000-8000-0000000a91e7";
    let hook = |v: serde_json::Value| assert_eq!(sidecar.request("POST", "/v1/hooks", v.to_string().as_bytes()).0, 200);
    hook(serde_json::json!({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup"}));
    hook(serde_json::json!({"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt_id": "p0"}));
    // fewer than the attack that found it, each as large as a payload keeps whole (64 KiB): what the
    // sidecar held of them grew with their number, here by 66 MB
    let base = sidecar.memory().hwm as f64 / (1024.0 * 1024.0);
    let huge = "5".repeat(60 * 1024);
    for i in 0..1100 {
        hook(serde_json::json!({"session_id": sid, "hook_event_name": "claude_code.api_request",
            "request_id": format!("req_{i}"), "model": "claude-opus-4-6", "duration_ms": 1000}));
        hook(serde_json::json!({"session_id": sid, "hook_event_name": "claude_code.api_error",
            "prompt_id": format!("p{i}"), "request_id": format!("req_e{i}"), "model": "claude-opus-4-6",
            "error": "529 Overloaded", "status_code": huge, "duration_ms": 10}));
    }
    let grew = sidecar.memory().hwm as f64 / (1024.0 * 1024.0) - base;
    assert!(grew < 24.0, "the sidecar grew by {grew:.0} MiB holding one session's API reports");
    // the session is still there and still takes events
    hook(serde_json::json!({"session_id": sid, "hook_event_name": "Stop", "prompt_id": "p0"}));
    assert_eq!(sidecar.metric("hooktel_sessions_active"), 1.0);
}

/// The largest body the sidecar takes by default (`HOOKTEL_MAX_BODY_BYTES`).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// An OTLP/HTTP protobuf export of logs or traces (the two share their layout on the wire:
/// resource, scope, records, each field 1 then 2 then 2) of `records` empty records.
fn empty_records_protobuf(records: usize) -> Vec<u8> {
    fn wrap(field: u8, inner: Vec<u8>) -> Vec<u8> {
        let mut out = vec![field << 3 | 2];
        prost::encoding::encode_varint(inner.len() as u64, &mut out);
        out.extend(inner);
        out
    }
    wrap(1, wrap(2, [0x12u8, 0x00].repeat(records)))
}

/// The bodies of `requests` POSTed at once, from a thread each: their statuses and answers.
fn at_once(addr: SocketAddr, requests: Vec<(&'static str, &'static str, Vec<u8>)>) -> Vec<(u16, String)> {
    let threads: Vec<_> = requests
        .into_iter()
        .map(|(path, content_type, body)| {
            std::thread::spawn(move || {
                let host = format!("Host: {addr}");
                let ct = format!("Content-Type: {content_type}");
                let (status, answer) = support::raw(addr, "POST", path, &[&host, &ct], &body);
                (status, String::from_utf8_lossy(&answer).into_owned())
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Issue 19, row 1. One 8 MiB OTLP body of 4.2 million empty log records or spans (2 bytes each on
/// the wire), or of 2.8 million `{}` as JSON, decoded to 757 MiB, 1,087 MiB and 525 MiB, and four
/// at once to 1,530 MiB, all answered 200. Now each is counted before it is decoded and refused
/// (400, `too_many_elements`), and the sidecar's peak stays under 128 MiB: what it may hold is the
/// bodies themselves (4 x 8 MiB here) and its own ~20 MiB, nothing decoded from them.
#[test]
fn otlp_bodies_that_would_expand_are_refused_before_decoding() {
    let sidecar = Sidecar::start(None, &[]);
    let otlp = sidecar.otlp_addr();
    let records = (MAX_BODY - 16) / 2;
    let proto = empty_records_protobuf(records);
    assert!(proto.len() <= MAX_BODY, "{}", proto.len());
    let json = {
        let (head, tail) = (r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":["#, "{}]}]}]}");
        let n = (MAX_BODY - head.len() - tail.len()) / 3;
        format!("{head}{}{tail}", "{},".repeat(n)).into_bytes()
    };
    assert!(json.len() <= MAX_BODY, "{}", json.len());
    const PB: &str = "application/x-protobuf";
    const JSON: &str = "application/json";
    let mut answers = Vec::new();
    for (path, ct, body) in [("/v1/logs", PB, &proto), ("/v1/traces", PB, &proto), ("/v1/logs", JSON, &json)] {
        answers.extend(at_once(otlp, vec![(path, ct, body.clone())]));
    }
    answers.extend(at_once(
        otlp,
        vec![
            ("/v1/logs", PB, proto.clone()),
            ("/v1/traces", PB, proto.clone()),
            ("/v1/logs", JSON, json.clone()),
            ("/v1/logs", JSON, json.clone()),
        ],
    ));
    let peak = support::peak_rss_mib(sidecar.pid());
    println!("8 MiB OTLP bodies of empty records, one at a time then four at once: peak RSS {peak:.0} MiB");
    assert!(peak < 128.0, "peak RSS {peak:.0} MiB");
    for (status, answer) in &answers {
        assert_eq!(*status, 400, "{answer}");
        assert!(answer.contains("elements"), "{answer}");
    }
    let refused = sidecar.metric(r#"hooktel_ingest_rejected_total{reason="too_many_elements"}"#);
    assert_eq!(refused, answers.len() as f64);
    // the receiver still takes a real export
    let real: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../fixtures/otel/captured-2.1.329/otlp-logs.http-json.json")).unwrap();
    let real = serde_json::to_vec(&real[0]).unwrap();
    assert_eq!(at_once(otlp, vec![("/v1/logs", JSON, real)])[0].0, 200);
}

/// Issue 19, row 6. One 8 MiB `/v1/hooks` body that is a JSON array of 4.2 million zeros became a
/// `serde_json::Value` of 323 MiB, four at once 577 MiB. Now its structure is counted before a
/// value is built: refused (400, `too_many_elements`; nesting past 64 levels `too_deep`), and the
/// peak stays under 128 MiB (the bodies held, nothing built from them). Real hooks still pass.
#[test]
fn hook_bodies_that_would_expand_are_refused_before_parsing() {
    let sidecar = Sidecar::start(None, &[]);
    let addr = sidecar.addr;
    let zeros = format!("[{}0]", "0,".repeat((MAX_BODY - 3) / 2)).into_bytes();
    assert!(zeros.len() <= MAX_BODY, "{}", zeros.len());
    let mut answers = at_once(addr, vec![("/v1/hooks", "application/json", zeros.clone())]);
    answers.extend(at_once(addr, vec![("/v1/hooks", "application/json", zeros.clone()); 4]));
    let peak = support::peak_rss_mib(sidecar.pid());
    println!("8 MiB hook bodies of zeros, one then four at once: peak RSS {peak:.0} MiB");
    assert!(peak < 128.0, "peak RSS {peak:.0} MiB");
    for (status, answer) in &answers {
        assert_eq!(*status, 400, "{answer}");
        assert!(answer.contains("elements"), "{answer}");
    }
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="too_many_elements"}"#), 5.0);
    let deep = format!(r#"{{"session_id":"s","hook_event_name":"Stop","x":{}{}}}"#, "[".repeat(100), "]".repeat(100));
    let (status, answer) = &at_once(addr, vec![("/v1/hooks", "application/json", deep.into_bytes())])[0];
    assert_eq!((*status, answer.contains("deeper")), (400, true), "{answer}");
    assert_eq!(sidecar.metric(r#"hooktel_ingest_rejected_total{reason="too_deep"}"#), 1.0);
    assert_eq!(sidecar.request("POST", "/v1/hooks", PAYLOAD).0, 200, "a real hook still passes");
}

/// Bodies just under the bound are taken, and decoded a budget's worth at a time (bounded by bytes,
/// not by threads): four OTLP bodies of 190,000 empty spans each (50 MiB decoded apiece) at once
/// are all answered 200, and the peak stays under the Kubernetes limit of 256 MiB.
#[test]
fn otlp_bodies_under_the_bound_are_decoded_within_the_budget() {
    let sidecar = Sidecar::start(None, &[]);
    let otlp = sidecar.otlp_addr();
    let body = empty_records_protobuf(190_000);
    let answers = at_once(otlp, vec![("/v1/traces", "application/x-protobuf", body); 4]);
    let peak = support::peak_rss_mib(sidecar.pid());
    println!("four OTLP bodies of 190,000 empty spans at once: peak RSS {peak:.0} MiB");
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert!(peak < 256.0, "peak RSS {peak:.0} MiB");
    assert_eq!(sidecar.metric(r#"hooktel_native_requests_total{signal="traces"}"#), 4.0);
}

/// A session log is the agent's file, and anything can write to it: each line may be up to 64 MiB
/// (`logs::MAX_LINE_BYTES`), and each names ids and a model that the reader remembers (the recent
/// responses, a turn's model), puts on spans and saves with its progress. Here every id and model
/// name is 2 MiB long, in a Codex rollout (40 turns and responses), a Claude Code transcript (40
/// responses) and a Gemini CLI chat log (40 responses): the sidecar holds none of them whole, keeps its memory under the pod limit, and
/// counts what the real lines after them served (577 MiB before, and the logs were never read to
/// their end: a read took 64 MiB, and only an event started the next).
#[test]
fn session_logs_with_huge_ids_and_model_names_are_held_in_bounded_memory() {
    use std::io::BufWriter;
    let tmp = support::temp_dir("hostile-logs");
    let dir = tmp.join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    let huge = |tag: &str, i: usize| format!("{tag}{i:04}{}", "x".repeat(2 << 20));
    let at = "2026-12-07T10:00:00Z";
    let rollout = dir.join("rollout-2026-12-07T10-00-00-01a25161-28d6-7671-b0d0-000000000001.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&rollout).unwrap());
    for i in 0..40 {
        let (turn, model, response) = (huge("t", i), huge("m", i), huge("r", i));
        let lines = [
            serde_json::json!({"timestamp": at, "type": "turn_context", "payload": {"turn_id": turn, "model": model}}),
            serde_json::json!({"timestamp": at, "type": "token_usage_record", "payload": {"response_id": response,
                "turn_id": turn, "usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 1}}}),
        ];
        for l in lines {
            writeln!(w, "{l}").unwrap();
        }
    }
    // a real response after them
    writeln!(w, "{}", serde_json::json!({"timestamp": at, "type": "turn_context", "payload": {"turn_id": "t-real", "model": "gpt-5.4-mini"}})).unwrap();
    writeln!(
        w,
        "{}",
        serde_json::json!({"timestamp": at, "type": "token_usage_record", "payload": {"response_id": "resp_real",
        "turn_id": "t-real", "usage": {"input_tokens": 700, "cached_input_tokens": 0, "output_tokens": 7}}})
    )
    .unwrap();
    drop(w);
    let transcript = dir.join("claude.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&transcript).unwrap());
    for i in 0..40 {
        let l = serde_json::json!({"type": "assistant", "timestamp": at, "promptId": huge("p", i), "requestId": huge("q", i),
            "agentId": huge("a", i), "sessionId": huge("s", i),
            "message": {"id": huge("i", i), "model": huge("m", i), "usage": {"input_tokens": 10, "output_tokens": 1}}});
        writeln!(w, "{l}").unwrap();
    }
    // and content of millions of tool blocks, results and calls of an MCP server: a few hundred kept
    for kind in [r#"{"type":"tool_result","tool_use_id":"t"}"#, r#"{"type":"tool_use","id":"t","name":"mcp__s__x"}"#] {
        let blocks = vec![kind; (16 << 20) / kind.len()].join(",");
        let role = if kind.contains("tool_use\"") { "assistant" } else { "user" };
        writeln!(w, r#"{{"type":"{role}","timestamp":"{at}","message":{{"content":[{blocks}]}}}}"#).unwrap();
    }
    let real = serde_json::json!({"type": "assistant", "timestamp": at, "requestId": "req_real",
        "message": {"id": "msg_real", "model": "claude-haiku-4-5", "usage": {"input_tokens": 500, "output_tokens": 5}}});
    writeln!(w, "{real}").unwrap();
    drop(w);
    let chat = dir.join("session-2026-12-07T10-00-0000a6e6.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&chat).unwrap());
    for i in 0..40 {
        let l = serde_json::json!({"id": huge("g", i), "timestamp": at, "type": "gemini", "model": huge("m", i),
            "tokens": {"input": 10, "output": 1, "cached": 0, "thoughts": 0, "tool": 0, "total": 11}});
        writeln!(w, "{l}").unwrap();
    }
    let real = serde_json::json!({"id": "gemini-real", "timestamp": at, "type": "gemini", "model": "gemini-3.5-flash",
        "tokens": {"input": 900, "output": 9, "cached": 0, "thoughts": 0, "tool": 0, "total": 909}});
    writeln!(w, "{real}").unwrap();
    drop(w);

    let sidecar = Sidecar::builder().env("HOOKTEL_TRANSCRIPT_DIRS", dir.to_str().unwrap()).start();
    let claude_events = ["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"];
    let sessions = [
        ("01a25161-28d6-7671-b0d0-000000000001", &rollout, "codex", "turn_id", claude_events),
        ("00000000-0000-4000-8000-00000000c1a0", &transcript, "claude-code", "prompt_id", claude_events),
        (
            "0000a6e6-0000-4000-8000-000000000001",
            &chat,
            "gemini-cli",
            "prompt_id",
            ["SessionStart", "BeforeAgent", "AfterAgent", "SessionEnd"],
        ),
    ];
    for (sid, path, agent, turn_key, events) in sessions {
        for event in events {
            let mut p = serde_json::json!({"session_id": sid, "hook_event_name": event, "transcript_path": path,
                "cwd": "/w/proj", "prompt": "go", "reason": "other", "source": "startup"});
            p[turn_key] = "t1".into();
            if agent != "claude-code" {
                p["hooktel_agent"] = agent.into();
            }
            assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
        }
    }
    let output = |model: &str| {
        support::metric_sum(
            &sidecar
                .metrics()
                .lines()
                .filter(|l| l.contains(&format!(r#"model="{model}""#)) && l.contains(r#"type="output""#))
                .collect::<Vec<_>>()
                .join("\n"),
            "hooktel_tokens_total",
        )
    };
    // a read takes at most 64 MiB: these logs take several, with no event to touch them again
    support::wait_until(Duration::from_secs(120), "the real responses after the huge lines counted", || {
        output("gpt-5.4-mini") == 7.0 && output("claude-haiku-4-5") == 5.0 && output("gemini-3.5-flash") == 9.0
    });
    std::thread::sleep(Duration::from_secs(2)); // the sessions' spans and saved progress settle
    let peak = support::peak_rss_mib(sidecar.pid());
    println!("session logs of 2 MiB ids and model names: peak RSS {peak:.0} MiB");
    assert!(peak < 256.0, "peak RSS {peak:.0} MiB");
}

/// Gemini CLI's `BeforeModel` and `AfterModel` carry the conversation on every model call and
/// streamed chunk (a long session's is megabytes). hooktel reads only their model, finish reason and
/// usage: at the `full` capture level too, neither the hook client's request nor the sidecar's journal
/// holds any of the conversation, through the real hook client (4 MB payloads) and posted straight to
/// the sidecar (4 MB bodies); every event still counts, and the sidecar's peak stays small.
#[test]
fn gemini_conversations_are_neither_kept_nor_held() {
    let sidecar = Sidecar::builder().env("HOOKTEL_CAPTURE", "full").start();
    let sid = "00000000-0000-4000-8000-0000000a6e61";
    let filler = "z".repeat(1000);
    let payload = |event: &str, i: usize| {
        let messages: Vec<serde_json::Value> = (0..4000)
            .map(|m| serde_json::json!({"role": "user", "content": format!("SECRET-CONVERSATION-{i}-{m} {filler}")}))
            .collect();
        let mut p = serde_json::json!({"session_id": sid, "hook_event_name": event, "cwd": "/w/p",
            "timestamp": "2026-12-07T05:28:56.044Z",
            "llm_request": {"model": "gemini-3.8-flash", "messages": messages, "config": {"temperature": 1}},
            "llm_response": {"text": "SECRET-ANSWER", "candidates": [{"content": {"role": "model",
                "parts": [{"text": "SECRET-ANSWER"}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}}});
        if event == "BeforeModel" {
            p.as_object_mut().unwrap().remove("llm_response");
        }
        p.to_string().into_bytes()
    };
    assert!(payload("AfterModel", 0).len() > 4_000_000);
    for i in 0..10 {
        support::codex::hook_as("gemini", &sidecar, &payload("BeforeModel", i));
        support::codex::hook_as("gemini", &sidecar, &payload("AfterModel", i));
    }
    for i in 10..30 {
        let mut p: serde_json::Value = serde_json::from_slice(&payload("AfterModel", i)).unwrap();
        p["hooktel_agent"] = "gemini-cli".into();
        assert_eq!(sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes()).0, 200);
    }
    let counted = |event: &str| sidecar.metric(&format!(r#"hooktel_hook_events_total{{event="{event}"}}"#));
    support::wait_until(Duration::from_secs(20), "every event counted", || {
        counted("BeforeModel") == 10.0 && counted("AfterModel") == 30.0
    });
    std::thread::sleep(Duration::from_millis(300)); // the last commit
    let mut journal = Vec::new();
    for f in ["journal.db", "journal.db-wal"] {
        journal.extend(std::fs::read(sidecar.data_dir.join(f)).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&journal);
    assert!(text.contains("gemini-3.8-flash"), "the model is kept");
    assert!(!text.contains("SECRET-CONVERSATION") && !text.contains("SECRET-ANSWER"), "the conversation is at rest");
    assert!(journal.len() < 1024 * 1024, "the journal holds {} bytes for 40 events", journal.len());
    let peak = support::peak_rss_mib(sidecar.pid());
    println!("40 Gemini model events with 4 MB conversations: peak RSS {peak:.0} MiB");
    assert!(peak < 96.0, "peak RSS {peak:.0} MiB");
}
