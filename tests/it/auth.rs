//! Who may send events: beyond loopback only a client with the token, on the built binary. The
//! sidecar listens on this machine's own non-loopback address, so the requests come from a peer that
//! is not loopback, as another host's would.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::support::{self, lan_ip, Sidecar, BIN};

const PAYLOAD: &[u8] = include_bytes!("../fixtures/hooks/captured/01-SessionStart.json");

/// POST JSON `body` to `path` with `extra` header lines; the status code.
fn post(addr: SocketAddr, path: &str, extra: &[&str], body: &[u8]) -> u16 {
    let host = format!("Host: {addr}");
    let headers: Vec<&str> =
        [host.as_str(), "Content-Type: application/json"].into_iter().chain(extra.iter().copied()).collect();
    support::raw(addr, "POST", path, &headers, body).0
}

fn events(sidecar: &Sidecar) -> f64 {
    sidecar.metric("hooktel_hook_events_total{event=\"SessionStart\"}")
}

/// Beyond loopback: no token or a wrong one gets 401 (counted), nothing accepted; the token gets
/// in, also under a `Host` that is not loopback (no web page has the token); `/metrics` and
/// `/healthz` need none. The hook client presents the data dir's token by itself; one with another
/// data dir (no token) keeps its event in its own spool and still exits 0 silently.
#[test]
fn beyond_loopback_only_the_token_gets_in() {
    let sidecar = Sidecar::builder().listen(&SocketAddr::new(lan_ip(), 0).to_string()).start();
    let addr = sidecar.addr;
    assert!(!addr.ip().is_loopback(), "{addr}");
    let token = std::fs::read_to_string(sidecar.data_dir.join("token")).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "256 bits as hex");

    let wrong = format!("Authorization: Bearer {}", "0".repeat(64));
    let short = format!("Authorization: Bearer {}", &token[..63]);
    let basic = format!("Authorization: Basic {token}");
    for (what, extra) in [
        ("no token", vec![]),
        ("a wrong one", vec![wrong.as_str()]),
        ("a prefix", vec![&short]),
        ("not Bearer", vec![&basic]),
    ] {
        assert_eq!(post(addr, "/v1/hooks", &extra, PAYLOAD), 401, "{what}");
        assert_eq!(post(addr, "/v1/events", &extra, br#"{"name":"x"}"#), 401, "{what}, custom event");
    }
    assert_eq!(sidecar.metric("hooktel_ingest_rejected_total{reason=\"unauthorized\"}"), 8.0);
    assert_eq!(events(&sidecar), 0.0, "nothing refused was accepted");

    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(post(addr, "/v1/hooks", &[&bearer], PAYLOAD), 200);
    assert_eq!(post(addr, "/v1/hooks", &[&bearer, "Host: hooktel.example:4388"], PAYLOAD), 200, "any Host with it");
    assert_eq!(support::http(addr, "GET", "/metrics", b"").0, 200);
    assert_eq!(support::http(addr, "GET", "/healthz", b"").0, 200);
    // the sidecar's configuration names paths and endpoints: the token beyond loopback
    assert_eq!(support::raw(addr, "GET", "/v1/status", &[], b"").0, 401);
    let (status, body) = support::raw(addr, "GET", "/v1/status", &[&bearer], b"");
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["data_dir"].as_str(), Some(sidecar.data_dir.to_str().unwrap()));
    assert_eq!(
        (report["export"]["mode"].as_str(), report["listen"].as_str()),
        (Some("local"), Some(addr.to_string().as_str()))
    );

    let out = sidecar.hook(PAYLOAD);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    support::wait_until(Duration::from_secs(10), "three SessionStart events", || events(&sidecar) == 3.0);

    let elsewhere = support::temp_dir("elsewhere");
    let out = support::run_hook_with(&addr.to_string(), elsewhere.path(), PAYLOAD);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(elsewhere.path().join("spool.db").exists(), "an event refused for want of the token is spooled");
    // (the eight refused hooks and events, the refused status request, this hook)
    assert_eq!(sidecar.metric("hooktel_ingest_rejected_total{reason=\"unauthorized\"}"), 10.0);
    assert_eq!(events(&sidecar), 3.0);
}

/// `hooktel serve` will not listen beyond loopback without a usable token, and never on a weak
/// `HOOKTEL_TOKEN`; it says why and exits non-zero.
#[test]
fn serve_refuses_to_listen_beyond_loopback_without_a_token() {
    let beyond = SocketAddr::new(lan_ip(), 0).to_string();
    let data = support::temp_dir("data");
    // a token that cannot be read or made: a directory where the file goes
    std::fs::create_dir(data.path().join("token")).unwrap();
    let serve = |listen: &str, token: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", listen, "--otlp-listen", "off"])
            .env("HOOKTEL_DATA_DIR", data.path())
            .env_remove("HOOKTEL_TOKEN");
        for k in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] {
            cmd.env_remove(k);
        }
        if let Some(t) = token {
            cmd.env("HOOKTEL_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = serve(&beyond, None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("beyond loopback") && err.contains("HOOKTEL_TOKEN"), "{err}");
    let (code, err) = serve("0.0.0.0:0", None);
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = serve("127.0.0.1:0", Some("short"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("shorter than 16"), "{err}");
}

/// `--metrics-listen` serves `/metrics` and `/healthz` alone, so ingest can stay on loopback while
/// Prometheus and probes reach the pod's address: nothing there accepts an event, token or not.
#[test]
fn the_metrics_address_serves_only_metrics() {
    let metrics_at = SocketAddr::new(lan_ip(), free_port());
    let sidecar = Sidecar::builder().env("HOOKTEL_METRICS_LISTEN", &metrics_at.to_string()).start();
    assert!(sidecar.addr.ip().is_loopback());
    support::wait_until(Duration::from_secs(5), "the metrics listener", || {
        TcpStream::connect_timeout(&metrics_at, Duration::from_secs(1)).is_ok()
    });
    let token = std::fs::read_to_string(sidecar.data_dir.join("token")).unwrap().trim().to_owned();
    let (status, body) = support::http(metrics_at, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    assert!(body.contains("\nhooktel_ingest_queue_depth 0\n"), "{body}");
    assert_eq!(support::http(metrics_at, "GET", "/healthz", b"").0, 200);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(post(metrics_at, "/v1/hooks", &[&bearer], PAYLOAD), 404);
    assert_eq!(post(metrics_at, "/v1/events", &[&bearer], br#"{"name":"x"}"#), 404);
    assert_eq!(post(sidecar.addr, "/v1/hooks", &[], PAYLOAD), 200, "ingest on loopback needs no token");
    support::wait_until(Duration::from_secs(10), "the loopback event", || events(&sidecar) == 1.0);
}

/// A port free right now (the listener is closed before the sidecar binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind((lan_ip(), 0)).unwrap().local_addr().unwrap().port()
}
