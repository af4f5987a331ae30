//! The command hook's promises, checked on the built binary: `hooktel hook` always exits 0, never
//! writes on stdout (Claude Code reads a hook's stdout as instructions), and returns within a bounded
//! time whether the sidecar is up, down, hung or refusing, and whatever arrives on stdin.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::Sidecar;

/// Generous on purpose: the point is that the hook does not hang, not how fast a loaded CI box is.
const BOUND: Duration = Duration::from_secs(5);

/// After this long a hook is considered hung: it is killed and the test fails.
const HUNG: Duration = Duration::from_secs(30);

const PAYLOAD: &[u8] = br#"{"session_id":"9c1f4e2a-7b3d-4a5e-8f60-1d2c3b4a5e6f","transcript_path":"/tmp/hooktel-tests/x.jsonl","cwd":"/home/dev/proj","prompt_id":"p-1","hook_event_name":"Notification","message":"Claude is waiting for your input","notification_type":"idle_prompt"}"#;

/// A fresh directory for the hook's spool, so tests never write into the user's data directory;
/// removed when dropped.
fn data_dir(name: &str) -> support::TempDir {
    support::temp_dir(&format!("hook-client-{name}"))
}

/// Run `hooktel hook` with `stdin` and `HOOKTEL_ADDR=addr` (plus `env`); returns its output and how
/// long it took. A hook still running after [`HUNG`] is killed and fails the test.
fn hook(addr: &str, stdin: &[u8], env: &[(&str, &str)], name: &str) -> (Output, Duration) {
    let data = data_dir(name);
    let mut cmd = Command::new(support::BIN);
    cmd.arg("hook")
        .env_remove("HOOKTEL_HOOK_TIMEOUT_MS")
        .env("HOOKTEL_ADDR", addr)
        .env("HOOKTEL_DATA_DIR", &data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn hooktel hook");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // a separate writer: the hook may stop reading early, and a hung hook must not hang the test
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let Some(status) = support::exit_within(&mut child, HUNG) else {
        panic!("hooktel hook still running after {HUNG:?} (addr {addr})");
    };
    let took = started.elapsed();
    let _ = writer.join();
    let output = Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    (output, took)
}

/// The promises that hold in every situation.
fn assert_silent_success(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(0), "{what}: exit status {:?}", out.status);
    assert!(
        out.stdout.is_empty(),
        "{what}: wrote {} bytes on stdout: {:?}",
        out.stdout.len(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// An address where nothing listens: bind a port, then let it go.
fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

/// A fake sidecar on its own thread: each connection is handed to `serve`; stops when dropped.
struct FakeSidecar {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeSidecar {
    fn start(serve: fn(TcpStream, &AtomicBool)) -> FakeSidecar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + HUNG * 4;
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        stream.set_nonblocking(false).unwrap();
                        let s = s.clone();
                        held.push(std::thread::spawn(move || serve(stream, &s)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for h in held {
                let _ = h.join();
            }
        });
        FakeSidecar { addr, accepted, stop, thread: Some(thread) }
    }
}

impl Drop for FakeSidecar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hold the connection open and never read or answer, until the fake is stopped (bounded).
fn never_answer(stream: TcpStream, stop: &AtomicBool) {
    let deadline = Instant::now() + HUNG * 2;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stream);
}

/// Read the request head, answer 503 and close.
fn answer_503(mut stream: TcpStream, _: &AtomicBool) {
    crate::support::read_head(&mut stream);
    let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Read the request head, answer something that is not HTTP and close.
fn answer_garbage(mut stream: TcpStream, _: &AtomicBool) {
    crate::support::read_head(&mut stream);
    let _ = stream.write_all(b"\x00\xffnot http at all\r\n");
}

#[test]
fn sidecar_up_the_hook_delivers_silently() {
    let sidecar = Sidecar::start(None, &[]);
    let addr = sidecar.addr.to_string();
    let (out, took) = hook(&addr, PAYLOAD, &[], "up");
    assert_silent_success(&out, "sidecar up");
    assert!(out.stderr.is_empty(), "delivered without complaint: {}", String::from_utf8_lossy(&out.stderr));
    assert!(took < BOUND, "took {took:?}");
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="Notification"}"#), 1.0, "the event arrived");

    // the whole captured session, too
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hooks/captured");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in &files {
        let (out, took) = hook(&addr, &std::fs::read(f).unwrap(), &[], "up");
        assert_silent_success(&out, &f.display().to_string());
        assert!(took < BOUND, "{}: took {took:?}", f.display());
    }
    assert_eq!(sidecar.metric(r#"hooktel_hook_events_total{event="Stop"}"#), 1.0);
}

#[test]
fn sidecar_down_the_hook_returns_at_once() {
    let addr = closed_port();
    for env in [&[][..], &[("HOOKTEL_HOOK_TIMEOUT_MS", "300")][..]] {
        let (out, took) = hook(&addr, PAYLOAD, env, "down");
        assert_silent_success(&out, &format!("sidecar down {env:?}"));
        assert!(took < BOUND, "sidecar down {env:?}: took {took:?}");
    }
    // an address that is not even one
    for bad in ["not an address", "127.0.0.1", "127.0.0.1:notaport", ""] {
        let (out, took) = hook(bad, PAYLOAD, &[("HOOKTEL_HOOK_TIMEOUT_MS", "300")], "bad-addr");
        assert_silent_success(&out, &format!("HOOKTEL_ADDR={bad:?}"));
        assert!(took < BOUND, "HOOKTEL_ADDR={bad:?}: took {took:?}");
    }
}

#[test]
fn sidecar_hung_the_hook_gives_up_in_time() {
    let fake = FakeSidecar::start(never_answer);
    let addr = fake.addr.to_string();
    let (out, took) = hook(&addr, PAYLOAD, &[("HOOKTEL_HOOK_TIMEOUT_MS", "300")], "hung");
    assert_silent_success(&out, "sidecar hung");
    assert!(took < BOUND, "sidecar hung: took {took:?}");
    support::wait_until(Duration::from_secs(10), "the hook to have connected", || {
        fake.accepted.load(Ordering::SeqCst) >= 1
    });

    // a payload far larger than the socket buffers: the write itself blocks on a peer that never reads
    let mut big = serde_json::from_slice::<serde_json::Value>(PAYLOAD).unwrap();
    big["padding"] = serde_json::Value::String("p".repeat(8 * 1024 * 1024));
    let big = big.to_string();
    let (out, took) = hook(&addr, big.as_bytes(), &[("HOOKTEL_HOOK_TIMEOUT_MS", "300")], "hung-big");
    assert_silent_success(&out, "sidecar hung, large payload");
    assert!(took < BOUND, "sidecar hung, large payload: took {took:?}");
    support::wait_until(Duration::from_secs(10), "the second connection", || fake.accepted.load(Ordering::SeqCst) >= 2);
}

#[test]
fn sidecar_refusing_or_babbling_the_hook_still_exits_0() {
    for (what, serve) in [("503", answer_503 as fn(TcpStream, &AtomicBool)), ("garbage", answer_garbage)] {
        let fake = FakeSidecar::start(serve);
        let (out, took) = hook(&fake.addr.to_string(), PAYLOAD, &[("HOOKTEL_HOOK_TIMEOUT_MS", "300")], what);
        assert_silent_success(&out, what);
        assert!(took < BOUND, "{what}: took {took:?}");
        assert!(fake.accepted.load(Ordering::SeqCst) >= 1, "{what}: the hook reached the fake");
    }
}

#[test]
fn bad_stdin_is_harmless() {
    let sidecar = Sidecar::start(None, &[]);
    let up = sidecar.addr.to_string();
    let down = closed_port();
    let inputs: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("whitespace", b" \n\t\n"),
        ("garbage", b"this is not json {{{ ]]"),
        ("truncated JSON", &PAYLOAD[..PAYLOAD.len() / 2]),
        ("non-UTF8", b"\xff\xfe\x00\x80{\"session_id\":\"\xc3\x28\"}\xf0\x28\x8c\x28"),
        ("JSON array", b"[1, 2, 3]"),
    ];
    for (what, stdin) in inputs {
        for (where_, addr) in [("up", &up), ("down", &down)] {
            let (out, took) = hook(addr, stdin, &[("HOOKTEL_HOOK_TIMEOUT_MS", "300")], "bad-stdin");
            assert_silent_success(&out, &format!("{what} stdin, sidecar {where_}"));
            assert!(took < BOUND, "{what} stdin, sidecar {where_}: took {took:?}");
        }
    }
    // stdin closed before anything was written
    let data = data_dir("bad-stdin-null");
    let mut child = Command::new(support::BIN)
        .arg("hook")
        .env("HOOKTEL_ADDR", &up)
        .env("HOOKTEL_DATA_DIR", &data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_until(HUNG, "the hook with /dev/null stdin to exit", || child.try_wait().unwrap().is_some());
    let out = child.wait_with_output().unwrap();
    assert_silent_success(&out, "stdin /dev/null");

    // nothing of that became an event
    let metrics = sidecar.metrics();
    assert!(
        !metrics.lines().any(|l| l.starts_with("hooktel_hook_events_total{")),
        "bad stdin counted as an event:\n{metrics}"
    );
}

/// Claude Code SIGTERMs hooks still running when it shuts down; the event must still arrive.
#[test]
fn sigterm_during_delivery_does_not_lose_the_event() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    // a sidecar stand-in that reads the request slowly, so the hook is mid-delivery when signalled
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        body
    });
    let data = data_dir("sigterm");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hooktel"))
        .arg("hook")
        .env("HOOKTEL_ADDR", &addr)
        .env("HOOKTEL_DATA_DIR", &data)
        .env("HOOKTEL_HOOK_TIMEOUT_MS", "2000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let payload = br#"{"session_id":"s","hook_event_name":"StopFailure","prompt_id":"p","error":"invalid_request"}"#;
    child.stdin.take().unwrap().write_all(payload).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "hook died on SIGTERM: {:?}", out.status);
    assert!(out.stdout.is_empty());
    assert_eq!(server.join().unwrap(), payload.to_vec(), "the event reached the sidecar whole");
}

/// An agent under load can write its payload late: on a loaded 2-core machine Claude Code wrote a
/// hook's payload after the 500 ms stdin budget, and the hook, finding stdin empty, exited with the
/// event lost. The first byte is now waited for up to 2 s (the budget if longer); a stdin that stays
/// empty and open still lets the hook go after that.
#[test]
fn a_payload_written_late_is_still_delivered() {
    let sidecar = Sidecar::start(None, &[]);
    let data = data_dir("late");
    let spawn = || {
        Command::new(support::BIN)
            .arg("hook")
            .env("HOOKTEL_ADDR", sidecar.addr.to_string())
            .env("HOOKTEL_DATA_DIR", data.path())
            .env_remove("HOOKTEL_HOOK_TIMEOUT_MS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut late = spawn();
    let mut stdin = late.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    stdin.write_all(PAYLOAD).unwrap();
    drop(stdin);
    let out = late.wait_with_output().unwrap();
    assert_silent_success(&out, "payload written after 1.2 s");
    support::wait_until(Duration::from_secs(10), "the late payload delivered", || {
        sidecar.metric(r#"hooktel_hook_events_total{event="Notification"}"#) == 1.0
    });
    // nothing ever written, stdin left open: the hook goes after the first byte's wait, silently
    let mut silent = spawn();
    let started = Instant::now();
    let status = support::exit_within(&mut silent, HUNG).expect("a hook on an empty open stdin still running");
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took >= Duration::from_secs(2) && took < BOUND, "took {took:?}");
    let mut out = Vec::new();
    silent.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(out.is_empty(), "stdout: {:?}", String::from_utf8_lossy(&out));
}
