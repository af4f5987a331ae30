//! The one small blocking HTTP/1.1 client, for the hook command, `emit` and `doctor`: std only, so
//! the hook starts in about a millisecond, and every step bounded by a timeout (name lookup, connect,
//! send, read), so a down or hung sidecar costs at most a few multiples of it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("sending failed: {0}")]
    Io(std::io::Error),
    #[error("not an HTTP answer")]
    NotHttp,
}

/// One request: `Connection: close`, a body with its length, extra header lines (each ending in
/// `\r\n`). Reads the status and at most `max_body` bytes of the answer (0: the status alone).
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) headers: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) timeout: Duration,
    pub(crate) max_body: u64,
}

/// The status code and what was read of the body.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Send `req` to `addr` (`host:port`) and read the answer.
pub(crate) fn send(addr: &str, req: &Request) -> Result<Response, HttpError> {
    let mut stream = connect(addr, req.timeout).map_err(HttpError::Connect)?;
    stream.set_write_timeout(Some(req.timeout)).map_err(HttpError::Io)?;
    stream.set_read_timeout(Some(req.timeout)).map_err(HttpError::Io)?;
    let _ = stream.set_nodelay(true);
    let head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        req.method,
        req.path,
        req.body.len(),
        req.headers
    );
    let mut bytes = Vec::with_capacity(head.len() + req.body.len());
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(req.body);
    stream.write_all(&bytes).map_err(HttpError::Io)?;
    // "HTTP/1.1 200" is 12 bytes; read until we have them
    let mut status_line = [0u8; 12];
    let mut got = 0;
    while got < status_line.len() {
        match stream.read(&mut status_line[got..]).map_err(HttpError::Io)? {
            0 => break,
            n => got += n,
        }
    }
    let status = std::str::from_utf8(&status_line[9..got.max(9)])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(HttpError::NotHttp)?;
    let mut body = Vec::new();
    if req.max_body > 0 {
        let mut rest = Vec::new();
        stream.take(req.max_body.saturating_add(64 * 1024)).read_to_end(&mut rest).map_err(HttpError::Io)?;
        if let Some(at) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            body = rest[at + 4..].to_vec();
            body.truncate(usize::try_from(req.max_body).unwrap_or(usize::MAX));
        }
    }
    Ok(Response { status, body })
}

/// Send `req` to the sidecar at `addr` with its token only where the sidecar wants it: up front when
/// `addr` is not this machine's loopback (the sidecar refuses a client beyond it without the token),
/// else only after a `401` (a published container port: the sidecar sees a peer that is not
/// loopback). `token` is asked for only then, so a loopback sidecar never sees it, and a process
/// listening on its address instead gets nothing it did not ask for.
pub(crate) fn send_to_sidecar(
    addr: &str,
    req: &Request,
    token: impl FnOnce() -> Option<String>,
) -> Result<Response, HttpError> {
    let with = |token: &str| {
        let headers = format!("{}Authorization: Bearer {token}\r\n", req.headers);
        send(addr, &Request { headers: &headers, ..*req })
    };
    if !crate::model::host::is_loopback(addr) {
        return match token() {
            Some(t) => with(&t),
            None => send(addr, req),
        };
    }
    let answer = send(addr, req)?;
    if answer.status != 401 {
        return Ok(answer);
    }
    match token() {
        Some(t) => with(&t),
        None => Ok(answer),
    }
}

/// A TCP connection to `host:port`, trying each address it resolves to within `timeout` each.
pub(crate) fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{addr} resolves to no address"));
    for a in resolve(addr, timeout)? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The addresses of `host:port`: parsed directly when it is an IP address; otherwise looked up on a
/// helper thread, so a slow name server costs at most `timeout`.
fn resolve(addr: &str, timeout: Duration) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = addr.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(owned.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    });
    rx.recv_timeout(timeout)
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "name lookup timed out")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            s.write_all(answer).unwrap();
        });
        addr
    }

    fn get(max_body: u64) -> Request<'static> {
        Request { method: "GET", path: "/x", headers: "", body: b"", timeout: Duration::from_secs(2), max_body }
    }

    #[test]
    fn reads_status_and_a_bounded_body() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
        let r = send(&addr, &get(5)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let addr = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(send(&addr, &get(0)).unwrap().status, 503);
    }

    #[test]
    fn refuses_what_is_not_http() {
        let addr = serve_once(b"SSH-2.0-OpenSSH_9.6\r\n");
        assert!(matches!(send(&addr, &get(0)), Err(HttpError::NotHttp)));
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        assert!(matches!(send(&closed, &get(0)), Err(HttpError::Connect(_))));
    }
}
