//! The HTTP front: `/v1/hooks` (Claude Code's http hooks and `hooktel hook`), `/v1/events`,
//! `/metrics`, `/healthz`; and, on `--metrics-listen`, the last two alone.
//!
//! Each request is parsed and normalised in its own task (spreading JSON work over the cores), then
//! queued for the pipeline. The reply never waits for processing: `200` with an empty body as soon
//! as the event is queued. When the queue is full the request gets `503` (the event was not
//! accepted, so nothing accepted is lost; the hook client keeps what it could not deliver). Bodies
//! are capped (`413`), slow clients time out, malformed input gets `400` with the reason; every
//! refusal is counted by reason.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;

use crate::ingest::accept::{accept, Admission, Ingest, Refusal};
use crate::ingest::native;
use crate::ingest::shape;
use crate::metrics::openmetrics;
use crate::model::payload::{self, RECEIVED_AT_HEADER};
use crate::model::time::{self, now_ns};
use crate::store::token;

/// A client has this long to send its request headers; hooks send theirs at once.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A client has this long to send its body once the headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

type Reply = Response<Full<Bytes>>;

/// The sidecar's configuration: under the token and `Host` rules of a write.
const STATUS: &str = "/v1/status";

/// `GET /v1/sessions/<uuid>`: one session's tokens, cost, model and turns (the status line's), under
/// the rules of `/v1/status` (what a session costs is not for a web page or another host to read).
const SESSIONS: &str = "/v1/sessions/";

/// A read under the token and `Host` rules of a write.
fn private_read(path: &str) -> bool {
    path == STATUS || path.starts_with(SESSIONS)
}

/// What a listener serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Surface {
    /// Everything: ingest, `/metrics`, `/healthz`.
    All,
    /// `GET /metrics` and `/healthz` only (`--metrics-listen`): nothing on it can write.
    MetricsOnly,
    /// Claude Code's own telemetry, OTLP/HTTP (`--otlp-listen`): `/v1/logs`, `/v1/metrics`, `/v1/traces`.
    Otlp,
}

/// Serve until `shutdown` resolves: stop accepting, let open connections finish (bounded), return.
/// Dropping the last `Ingest` closes the queue, which lets the pipeline drain and stop.
pub(crate) async fn run(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    surface: Surface,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    // out of file descriptors and the like: back off instead of spinning
                    tracing::warn!(error = %e, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(held) = ingest.connections.clone().try_acquire_owned() else {
            // past the connection cap: say so and close, without reading anything
            ingest.metrics.ingest_rejected.with_label_values(&["too_many_connections"]).inc();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let busy = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(busy)).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ingest = ingest.clone();
        let from_loopback = crate::model::host::is_loopback_ip(peer.ip());
        let service = hyper::service::service_fn(move |req| {
            let ingest = ingest.clone();
            async move {
                Ok::<_, Infallible>(match surface {
                    Surface::All => route(req, &ingest, from_loopback).await,
                    Surface::MetricsOnly => metrics_route(req, &ingest),
                    Surface::Otlp => otlp(req, &ingest, from_loopback).await,
                })
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Connection ended with an error");
            }
            drop(held);
        });
    }
    drop(listener);
    drop(ingest);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

async fn route(req: Request<Incoming>, ingest: &Ingest, from_loopback: bool) -> Reply {
    let authorized = authorized(&req, ingest);
    if (req.method() == Method::POST || private_read(req.uri().path())) && !from_loopback && !authorized {
        return unauthorized(ingest);
    }
    if let Err(refused) = browser_guard(&req, ingest, authorized) {
        return refuse_browser(ingest, &refused);
    }
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/hooks") => hook(req, ingest).await,
        (&Method::POST, "/v1/events") => custom(req, ingest).await,
        (_, "/v1/hooks" | "/v1/events") => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        // its configuration names paths and endpoints: loopback, or the token
        (&Method::GET, STATUS) if from_loopback || authorized => status(ingest),
        (&Method::GET, path) if path.starts_with(SESSIONS) && (from_loopback || authorized) => {
            session(ingest, &path[SESSIONS.len()..])
        }
        (_, path) if path.starts_with(SESSIONS) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        (_, STATUS | "/v1/probe") if !from_loopback && !authorized => unauthorized(ingest),
        // it sends requests to the configured backends: loopback or the token, and a POST
        (&Method::POST, "/v1/probe") => probe(ingest).await,
        (_, "/v1/probe") => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => metrics_route(req, ingest),
    }
}

/// An OTLP/HTTP export of Claude Code's own telemetry, under the same rules as `/v1/hooks` (no
/// `Origin`; beyond loopback the token; a loopback or configured `Host`; the body limits) but for its
/// content types (protobuf or JSON). Its `api_request` and `api_error` events join their session
/// through the one ingest path; the answer is an empty OTLP response in the request's encoding.
async fn otlp(req: Request<Incoming>, ingest: &Ingest, from_loopback: bool) -> Reply {
    if let Err(refused) = no_origin(&req) {
        return refuse_browser(ingest, &refused);
    }
    let Some(signal) = native::Signal::of_path(req.uri().path()) else {
        return text(StatusCode::NOT_FOUND, "not found: OTLP/HTTP takes /v1/logs, /v1/metrics, /v1/traces\n");
    };
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let authorized = authorized(&req, ingest);
    if !from_loopback && !authorized {
        return unauthorized(ingest);
    }
    if let Err(refused) = host_ok(&req, ingest, authorized) {
        return refuse_browser(ingest, &refused);
    }
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(encoding) = native::Encoding::of_content_type(content_type) else {
        let msg = "OTLP bodies are application/x-protobuf or application/json";
        return refuse(ingest, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_content_type", msg);
    };
    let (body, _held) = match read_body(req, ingest).await {
        Ok(b) => b,
        Err(e) => return refuse_body(ingest, &e),
    };
    // counted before it is decoded: 8 MiB of empty records would decode to 100 times that
    let _decoding = match native::shape(&body, encoding) {
        Ok(elements) => decoding(ingest, body.len(), elements).await,
        Err(e) => return refuse(ingest, StatusCode::BAD_REQUEST, e.metric_label(), &e.to_string()),
    };
    let events = match native::events(&body, signal, encoding) {
        Ok(events) => events,
        Err(e) => return refuse(ingest, StatusCode::BAD_REQUEST, "malformed_otlp", &e.to_string()),
    };
    ingest.metrics.native_requests.with_label_values(&[signal.label()]).inc();
    if let Some(forward) = ingest.forward.as_ref().filter(|_| ingest.forwarded.contains(&signal)) {
        let cut = native::for_forwarding(&body, signal, encoding, ingest.capture).unwrap_or_default();
        if !forward.offer(signal, encoding, Bytes::from(cut)) {
            ingest.metrics.native_forwarded.with_label_values(&[signal.label(), "dropped"]).inc();
        }
    }
    for (payload, at) in events {
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        match accept(ingest, &bytes, at, Admission::RefuseWhenFull).await {
            Ok(()) => {}
            // one bad record does not refuse the rest; it is counted by reason
            Err(Refusal::Invalid(e)) => ingest.metrics.ingest_rejected.with_label_values(&[e.metric_label()]).inc(),
            Err(refusal) => return reply(ingest, Err(refusal)),
        }
    }
    let (content_type, body) = encoding.empty_response();
    let mut r = Response::new(Full::new(Bytes::from_static(body)));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `GET /v1/status`: the sidecar's effective configuration and its spools' depth, as JSON.
fn status(ingest: &Ingest) -> Reply {
    let mut status = ingest.status.clone();
    let items = |spool: &str| ingest.metrics.spool_events_by.with_label_values(&[spool]).get();
    status["spool"] = serde_json::json!({"hook_items": items("hook"), "export_items": items("export")});
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec_pretty(&status).unwrap_or_default())));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `GET /v1/sessions/<uuid>`: the pipeline's view of one session, as JSON; 404 when it has none.
/// The id is parsed as a UUID before anything is looked up (Claude Code's session ids are UUIDs).
fn session(ingest: &Ingest, id: &str) -> Reply {
    let Ok(uuid) = uuid::Uuid::try_parse(id) else {
        return refuse(ingest, StatusCode::BAD_REQUEST, "bad_session_id", "the session id must be a UUID");
    };
    let Some(v) = ingest.views.get(uuid.as_u128()) else {
        return text(StatusCode::NOT_FOUND, "no such session\n");
    };
    let budgets = ingest.views.budgets;
    let mut budget = serde_json::Map::new();
    if let Some(limit) = budgets.day_usd {
        budget.insert("day".into(), serde_json::json!({"limit_usd": limit, "spent_usd": ingest.views.day_spent()}));
    }
    if let Some(limit) = budgets.session_usd {
        budget.insert("session".into(), serde_json::json!({"limit_usd": limit, "spent_usd": v.cost_usd}));
    }
    let body = serde_json::json!({
        "session_id": uuid.hyphenated().to_string(),
        "agent": v.agent.map(|a| a.name()),
        "model": v.model,
        "turns": v.turns,
        "tokens": {
            "input": v.tokens.input,
            "output": v.tokens.output,
            "cache_read": v.tokens.cache_read,
            "cache_creation": v.tokens.cache_write(),
        },
        "cost_usd": v.cost_usd,
        "ended": v.ended_at.is_some(),
        "budget": budget,
    });
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap_or_default())));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `POST /v1/probe`: an empty OTLP export to every configured destination, each outcome as JSON.
async fn probe(ingest: &Ingest) -> Reply {
    let report = match &ingest.probe {
        Some(probe) => probe().await,
        None => serde_json::Value::Array(Vec::new()),
    };
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec_pretty(&report).unwrap_or_default())));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `/metrics` and `/healthz`, all a `--metrics-listen` address serves.
fn metrics_route(req: Request<Incoming>, ingest: &Ingest) -> Reply {
    if let Err(refused) = no_origin(&req) {
        return refuse_browser(ingest, &refused);
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/metrics") => {
            // OpenMetrics (with exemplars) for a scraper that prefers it, the classic text otherwise
            let accept = req.headers().get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok());
            let (body, content_type) = match accept.into_iter().any(openmetrics::prefers_openmetrics) {
                true => (ingest.metrics.render_openmetrics(), openmetrics::CONTENT_TYPE),
                false => (ingest.metrics.render(), "text/plain; version=0.0.4"),
            };
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        (_, "/healthz" | "/metrics") => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Whether the request carries `Authorization: Bearer <the token>`. Without a token configured,
/// no client beyond loopback is authorized (serve refuses such a listener anyway).
fn authorized(req: &Request<Incoming>, ingest: &Ingest) -> bool {
    let Some(token) = &ingest.token else { return false };
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|presented| token::matches(token, presented.trim_ascii()))
}

async fn hook(req: Request<Incoming>, ingest: &Ingest) -> Reply {
    let at = req
        .headers()
        .get(RECEIVED_AT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(now_ns);
    let (body, _held) = match read_body(req, ingest).await {
        Ok(b) => b,
        Err(e) => return refuse_body(ingest, &e),
    };
    let _decoding = match shape::json(&body) {
        Ok(elements) => decoding(ingest, body.len(), elements).await,
        Err(e) => return refuse(ingest, StatusCode::BAD_REQUEST, e.metric_label(), &e.to_string()),
    };
    reply(ingest, accept(ingest, &body, at, Admission::RefuseWhenFull).await)
}

/// A share of the decoding budget for a body of `len` bytes and `elements` elements, waited for
/// (the body is already held under the body budget): what decodes at once is bounded in bytes.
async fn decoding(ingest: &Ingest, len: usize, elements: usize) -> Option<OwnedSemaphorePermit> {
    let cost = u32::try_from(shape::decode_cost(len, elements).min(ingest.decode_share)).unwrap_or(u32::MAX);
    ingest.decode_budget.clone().acquire_many_owned(cost).await.ok()
}

/// The answer to a live request, whatever route brought the event.
fn reply(ingest: &Ingest, accepted: Result<(), Refusal>) -> Reply {
    match accepted {
        Ok(()) => Response::new(Full::new(Bytes::new())),
        Err(Refusal::Invalid(e)) => refuse(ingest, StatusCode::BAD_REQUEST, e.metric_label(), &e.to_string()),
        Err(Refusal::QueueFull) => {
            let mut r = refuse(ingest, StatusCode::SERVICE_UNAVAILABLE, "queue_full", "ingest queue full, retry later");
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(Refusal::Closed) => {
            refuse(ingest, StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "hooktel is shutting down")
        }
    }
}

/// `POST /v1/events`: a custom event. With a session it joins that session's trace (a span event
/// on its innermost open span), through the same queue, spool and journal as hook events; without
/// one it is only counted, since hooktel never invents a session.
async fn custom(req: Request<Incoming>, ingest: &Ingest) -> Reply {
    let (body, _held) = match read_body(req, ingest).await {
        Ok(b) => b,
        Err(e) => return refuse_body(ingest, &e),
    };
    let _decoding = match shape::json(&body) {
        Ok(elements) => decoding(ingest, body.len(), elements).await,
        Err(e) => return refuse(ingest, StatusCode::BAD_REQUEST, e.metric_label(), &e.to_string()),
    };
    let ev: payload::CustomEvent = match serde_json::from_slice(&body) {
        Ok(ev) => ev,
        Err(e) => {
            let msg =
                format!("not a custom event ({{\"name\", \"session_id\"?, \"timestamp\"?, \"attributes\"?}}): {e}");
            return refuse(ingest, StatusCode::BAD_REQUEST, "malformed_event", &msg);
        }
    };
    if ev.name.trim().is_empty() {
        return refuse(ingest, StatusCode::BAD_REQUEST, "missing_field", "field `name` is empty");
    }
    let at = match &ev.timestamp {
        None => now_ns(),
        Some(t) => match time::timestamp_ns(t) {
            Some(at) => at,
            None => {
                return refuse(
                    ingest,
                    StatusCode::BAD_REQUEST,
                    "bad_timestamp",
                    "`timestamp`: RFC 3339 or Unix seconds",
                )
            }
        },
    };
    let Some(session) = ev.session_id.clone().filter(|s| !s.is_empty()) else {
        ingest.metrics.custom_event(&ev.name);
        return Response::new(Full::new(Bytes::new()));
    };
    let payload = serde_json::to_vec(&ev.into_payload(&session)).unwrap_or_default();
    reply(ingest, accept(ingest, &payload, at, Admission::RefuseWhenFull).await)
}

/// Why a request was refused before it was read: what a web page can send and hooktel's own clients
/// never do. A page can POST to localhost ("simple" cross-site requests need no preflight) and can
/// rebind its own name to 127.0.0.1; hooktel's clients (the hook, `emit`, Claude Code's http hooks,
/// Prometheus, probes) send no `Origin`, and POST JSON to a loopback or configured host.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum BrowserRefusal {
    #[error("requests from a web page (with an Origin header) are refused")]
    Origin,
    #[error("host {0:?} is not loopback nor in HOOKTEL_ALLOWED_HOSTS")]
    Host(String),
    #[error("the body must be application/json")]
    ContentType,
}

impl BrowserRefusal {
    fn status(&self) -> StatusCode {
        match self {
            BrowserRefusal::Origin | BrowserRefusal::Host(_) => StatusCode::FORBIDDEN,
            BrowserRefusal::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// The bounded `reason` of `hooktel_ingest_rejected_total`.
    fn metric_label(&self) -> &'static str {
        match self {
            BrowserRefusal::Origin => "origin_refused",
            BrowserRefusal::Host(_) => "host_refused",
            BrowserRefusal::ContentType => "unsupported_content_type",
        }
    }
}

/// No request may carry an `Origin`; a POST must be JSON, to a loopback or configured `Host` unless it
/// carries the token (which no web page has), and so must a read of `/v1/status` (the data directory,
/// the endpoints: a rebinding page's same-origin GET sends no `Origin`). `/metrics` and `/healthz` are
/// read by Prometheus and probes under the pod's own address, so only the `Origin` rule applies to
/// them; they name no path and no endpoint.
fn browser_guard(req: &Request<Incoming>, ingest: &Ingest, authorized: bool) -> Result<(), BrowserRefusal> {
    no_origin(req)?;
    if req.method() != Method::POST {
        if private_read(req.uri().path()) {
            host_ok(req, ingest, authorized)?;
        }
        return Ok(());
    }
    host_ok(req, ingest, authorized)?;
    let json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(BrowserRefusal::ContentType);
    }
    Ok(())
}

/// No request may carry an `Origin`: no browser is a client of hooktel.
fn no_origin(req: &Request<Incoming>) -> Result<(), BrowserRefusal> {
    if req.headers().contains_key(ORIGIN) {
        return Err(BrowserRefusal::Origin);
    }
    Ok(())
}

/// A request that writes names a loopback or configured `Host`, unless it carries the token.
fn host_ok(req: &Request<Incoming>, ingest: &Ingest, authorized: bool) -> Result<(), BrowserRefusal> {
    let host = req.headers().get(HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()).unwrap_or_default();
    if !authorized && !host_allowed(&host, &ingest.allowed_hosts) {
        return Err(BrowserRefusal::Host(payload::truncate_utf8(&host, 64).to_owned()));
    }
    Ok(())
}

fn refuse_browser(ingest: &Ingest, refused: &BrowserRefusal) -> Reply {
    refuse(ingest, refused.status(), refused.metric_label(), &refused.to_string())
}

/// 401 for a write from beyond loopback without the token.
fn unauthorized(ingest: &Ingest) -> Reply {
    let mut r =
        refuse(ingest, StatusCode::UNAUTHORIZED, "unauthorized", "a client beyond loopback must send the token");
    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// A `Host` value (name or address, with or without a port) that names this machine's loopback, or a
/// name in `allowed`. An HTTP/1.1 request without `Host` is malformed and refused.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    crate::model::host::name_of(host)
        .is_some_and(|name| crate::model::host::is_loopback_name(&name) || allowed.contains(&name))
}

/// Why a request's body was not read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("body over {0} bytes")]
    TooLarge(usize),
    #[error("reading body: {0}")]
    Read(String),
    #[error("body not received in time")]
    Timeout,
    #[error("too many request bodies held at once, retry later")]
    Busy,
}

impl BodyError {
    fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The bounded `reason` of `hooktel_ingest_rejected_total`.
    fn metric_label(&self) -> &'static str {
        match self {
            BodyError::TooLarge(_) => "body_too_large",
            BodyError::Read(_) => "body_read_error",
            BodyError::Timeout => "body_timeout",
            BodyError::Busy => "body_budget_full",
        }
    }
}

/// The body, read within its time and size bounds, and the share of the body budget it holds (keep
/// it as long as the bytes): bodies declared or allowed to be large reserve their size before a
/// byte is read, so slow clients cannot together hold more than `--max-buffered-bytes`.
async fn read_body(req: Request<Incoming>, ingest: &Ingest) -> Result<(Bytes, OwnedSemaphorePermit), BodyError> {
    let max = ingest.max_body_bytes;
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let reserve = u32::try_from(declared.unwrap_or(max as u64).max(1)).unwrap_or(u32::MAX);
    let held = ingest.body_budget.clone().try_acquire_many_owned(reserve).map_err(|_| BodyError::Busy)?;
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), max).collect()).await {
        Ok(Ok(collected)) => Ok((collected.to_bytes(), held)),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(max)),
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
        Err(_) => Err(BodyError::Timeout),
    }
}

/// The answer to a body that was not read; a full budget is temporary, so it says when to retry.
fn refuse_body(ingest: &Ingest, e: &BodyError) -> Reply {
    let mut r = refuse(ingest, e.status(), e.metric_label(), &e.to_string());
    if matches!(e, BodyError::Busy) {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn refuse(ingest: &Ingest, status: StatusCode, reason: &'static str, msg: &str) -> Reply {
    ingest.metrics.ingest_rejected.with_label_values(&[reason]).inc();
    // `?`: the message can quote a header, escaped so that no request can forge a log line
    if let Some(left_out) = ingest.metrics.may_warn(reason) {
        tracing::warn!(status = status.as_u16(), reason, detail = ?msg, left_out, "Refused a request");
    }
    text(status, &format!("{msg}\n"))
}

fn text(status: StatusCode, body: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_or_configured_hosts() {
        let none: &[String] = &[];
        for ok in ["127.0.0.1:4388", "localhost:4388", "LOCALHOST", "[::1]:4388", "127.9.8.7", "a.localhost:1"] {
            assert!(host_allowed(ok, none), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:4388",
            "",
            "[::1",
            "10.0.0.1:4388",
            "localhost.evil.com",
            "127.0.0.1.nip.io",
            "localhost:x",
        ] {
            assert!(!host_allowed(bad, none), "{bad:?}");
        }
        let allowed = vec!["hooktel.observability.svc".to_owned()];
        assert!(host_allowed("hooktel.observability.svc:4388", &allowed));
        assert!(!host_allowed("other.svc:4388", &allowed));
    }
}
