//! `hooktel serve`: wires the stages together and runs them until SIGINT or SIGTERM.
//!
//! Threads for blocking work (the accountant reads transcripts, the journal writer commits), Tokio
//! tasks for the rest. Shutdown is staged: stop accepting, drain the hook spool's in-flight batch,
//! let the pipeline hand out what closed, then give the exporter a deadline.

use std::sync::Arc;

use anyhow::Context;

use crate::cli::config::{self, ServeArgs};
use crate::export::clients::Clients;
use crate::export::outbound::Outbound;
use crate::export::{self, metrics_push, resource};
use crate::ingest::accept::Ingest;
use crate::ingest::server::Surface;
use crate::ingest::{drain, server};
use crate::metrics::Metrics;
use crate::model::budget;
use crate::model::session_view::SessionViews;
use crate::model::time::now_ns;
use crate::pipeline;
use crate::store::data_dir;
use crate::store::export_spool::SpanSpool;
use crate::store::import_registry::ImportRegistry;
use crate::store::journal;
use crate::store::local::LocalStore;
use crate::store::token;
use crate::usage::accountant::Accountant;
use crate::usage::agent_dirs::AgentDirs;
use crate::vcs;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    data_dir::private_files();
    // colour only on a terminal, and never with NO_COLOR (journald, launchd's log file, compose logs)
    let colour = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    };
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        // rustls-platform-verifier logs every failed verification at ERROR; hooktel says it once, with the fix
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOOKTEL_LOG")
                .unwrap_or_else(|_| "info,rustls_platform_verifier=off".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let outbound = config::outbound()?;
        let shares = args.shares().map_err(anyhow::Error::msg)?;
        let unread = config::unhonoured_otel_vars();
        if !unread.is_empty() {
            tracing::warn!(variables = %unread.join(", "), "hooktel does not read these OpenTelemetry variables; they have no effect");
        }
        let data_dir = args.output.data_dir();
        if data_dir.exists() && !data_dir.is_dir() {
            anyhow::bail!("the data directory {} is not a directory (set HOOKTEL_DATA_DIR or --data-dir)", data_dir.display());
        }
        data_dir::create(&data_dir).with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        // held until the sidecar exits: a second one on this directory would drain its spool twice
        let _held = data_dir::lock(&data_dir)?;
        let resource = resource::resource(
            &args.output.service_name,
            &data_dir,
            &outbound.resource,
            outbound.service_name.as_deref(),
        );
        let clients = Clients::new(&outbound, args.otlp_listen.0.is_some()).context("setting up OTLP")?;
        let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"].into_iter().find(|v| config::env_var(v).is_some());
        let grpc = clients.targets().into_iter().any(|(_, c)| c.destination().protocol == crate::export::destination::Protocol::Grpc);
        if let (Some(var), true) = (proxy, grpc) {
            tracing::warn!(variable = var, "gRPC export does not go through a proxy: its connections are direct (OTLP/HTTP, http/protobuf, goes through it)");
        }
        let sink = match &clients.spans {
            Some(client) => export::Sink::Otlp(export::Exporter { client: client.clone(), resource: resource.clone() }),
            None => export::Sink::Local(
                LocalStore::open(&data_dir, args.output.retention()).context("opening the local store")?,
            ),
        };
        let token = token_for(&args, &data_dir)?;
        let listener =
            tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        let metrics_listener = match args.metrics_listen {
            Some(at) => Some(tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding {at}"))?),
            None => None,
        };
        let otlp_listener = match args.otlp_listen.0 {
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding --otlp-listen {at} (set it to another address, or off)"))?,
            ),
            None => None,
        };
        // where spans go, credentials in the URL hidden (for the log and `/v1/status`)
        let mode = match &outbound.traces {
            Some(d) => format!("OTLP {} to {}", d.protocol.name(), d.shown()),
            None => format!("local store in {} ({})", data_dir.display(), outbound.local_because),
        };
        tracing::info!(%addr, export = %mode, "hooktel listening on http://{addr}");
        tracing::info!(
            budget = %budget::mib(shares.total),
            bodies = %budget::mib(shares.bodies),
            decoding = %budget::mib(shares.decoding),
            forwarding = %budget::mib(shares.forwarding),
            journal_backlog = %budget::mib(shares.journal_backlog),
            exporting = %budget::mib(shares.exporting),
            sessions = %budget::mib(shares.sessions),
            "memory budget"
        );
        if let Some(l) = &metrics_listener {
            let at = l.local_addr()?;
            tracing::info!(%at, "/metrics and /healthz also on http://{at}");
        }
        if let Some(l) = &otlp_listener {
            let at = l.local_addr()?;
            tracing::info!(%at, "Claude Code's own telemetry (OTLP/HTTP) on http://{at}");
        }

        let prices = args.output.prices()?;

        let metrics = Arc::new(Metrics::new(args.project_label, args.repo_label));
        // who runs this sidecar, as the resource already says
        let said = |key: &'static str| {
            resource.get(&opentelemetry::Key::from_static_str(key)).map(|v| v.as_str().into_owned()).unwrap_or_default()
        };
        let (host, user) = (said("host.name"), said("user.name"));
        metrics.info.with_label_values(&[env!("CARGO_PKG_VERSION"), &host, &user]).set(1);
        let (push_stop, push_stopped) = tokio::sync::watch::channel(false);
        let pusher = outbound.push.clone().zip(clients.push.clone()).map(|(push, client)| {
            tracing::info!(endpoint = %push.dest.shown(), protocol = push.dest.protocol.name(), every = ?push.interval, temporality = ?push.temporality, "metrics are pushed over OTLP");
            let proto = metrics_push::proto_resource(&resource);
            tokio::spawn(metrics_push::run(push, client, proto, metrics.clone(), now_ns(), push_stopped))
        });
        let (event_tx, event_rx) = tokio::sync::mpsc::channel(args.queue_capacity.max(1));
        let (span_tx, span_rx) = tokio::sync::mpsc::channel(64);
        // touches are hints: a bounded queue, dropped when full (reads start from saved offsets)
        let (touch_tx, touch_rx) = std::sync::mpsc::sync_channel(4096);
        let (report_tx, report_rx) = tokio::sync::mpsc::channel(1024);
        let settle = std::time::Duration::from_millis(args.settle_ms);
        let transcripts = AgentDirs::from_env();
        let accountant = Accountant::new(prices, &data_dir, metrics.clone(), settle, transcripts.clone());
        let accountant = std::thread::Builder::new()
            .name("hooktel-accounting".into())
            .spawn(move || accountant.run(touch_rx, report_tx))?;
        // checkouts are looked up off the pipeline's task: reading a cwd's .git files blocks
        let (lookup_tx, lookup_rx) = std::sync::mpsc::sync_channel(vcs::QUEUE);
        let (located_tx, located_rx) = tokio::sync::mpsc::channel(vcs::QUEUE);
        let vcs_reader = {
            let (tickets, metrics, accountant) = (args.ticket_pattern.clone(), metrics.clone(), touch_tx.clone());
            std::thread::Builder::new()
                .name("hooktel-vcs".into())
                .spawn(move || vcs::run(lookup_rx, accountant, located_tx, tickets, metrics))?
        };
        let span_spool = match &sink {
            export::Sink::Otlp(_) => match SpanSpool::open(&data_dir, args.spool_max_bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot open the export spool; failed exports will be lost");
                    None
                }
            },
            export::Sink::Local(_) => None,
        };
        // the sessions handed out, so that `hooktel import` never sends them a second time
        let live = match ImportRegistry::open(&data_dir) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "Cannot open the import registry; an import may send live sessions again");
                None
            }
        };
        let exporter = tokio::spawn(export::run(span_rx, sink, span_spool, live, metrics.clone()));
        let settings = args.session_settings();
        let mut day_spent = None;
        let (journal_tx, restored, journal_writer) = match open_journal(&data_dir, settings.ended_ttl_ns) {
            Some((conn, restored)) => {
                day_spent = journal::day_spent(&conn);
                let dropped = metrics.journal_dropped.with_label_values(&["backlog"]);
                let (tx, rx) = journal::channel(shares.journal_backlog, dropped);
                let limits = journal::Limits {
                    max_bytes: args.journal_max_bytes,
                    failures: metrics.journal_failures.clone(),
                    full: metrics.journal_full.clone(),
                };
                let writer = std::thread::Builder::new()
                    .name("hooktel-journal".into())
                    .spawn(move || journal::write(conn, rx, limits))?;
                (Some(tx), restored, Some(writer))
            }
            None => (None, Vec::new(), None),
        };
        let views = Arc::new(SessionViews::new(args.budgets()));
        let pipeline = tokio::spawn(pipeline::run(pipeline::Parts {
            events: event_rx,
            reports: report_rx,
            touches: touch_tx,
            lookups: lookup_tx,
            located: located_rx,
            spans: span_tx,
            exporting: (Arc::new(tokio::sync::Semaphore::new(shares.exporting)), shares.exporting),
            journal: journal_tx,
            restored: reparse(restored, args.output.capture, &transcripts).await,
            settings,
            metrics: metrics.clone(),
            views: views.clone(),
            day_spent,
        }));
        // Claude Code's own telemetry goes on to each signal's destination (cut to the capture level)
        let (forward_tx, forwarder) = if clients.forward.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = crate::model::otlp::ForwardQueue::new(export::forward::QUEUE, shares.forwarding);
            for c in &clients.forward {
                let d = c.destination();
                tracing::info!(signal = d.signal.label(), to = %d.shown(), protocol = d.protocol.name(), "Claude Code's own telemetry is forwarded");
            }
            (Some(tx), Some(tokio::spawn(export::forward::run(rx, clients.forward.clone(), metrics.clone()))))
        };
        if otlp_listener.is_some() {
            for (why, signals) in not_forwarded(&outbound) {
                tracing::info!(signals = %signals, why = %why, "Claude Code's own telemetry is not forwarded");
            }
        }
        let status = status_report(
            &args,
            &data_dir,
            &outbound,
            [Some(addr), bound(&metrics_listener), bound(&otlp_listener)],
            &clients,
        );
        let ingest = Arc::new(Ingest {
            queue: event_tx,
            metrics,
            capture: args.output.capture,
            max_body_bytes: args.max_body_bytes,
            allowed_hosts: args.allowed_hosts(),
            transcripts,
            connections: Arc::new(tokio::sync::Semaphore::new(args.max_connections.max(1))),
            body_budget: Arc::new(tokio::sync::Semaphore::new(shares.bodies)),
            body_share: shares.bodies,
            decode_budget: Arc::new(tokio::sync::Semaphore::new(shares.decoding)),
            decode_share: shares.decoding,
            token,
            forward: forward_tx,
            forwarded: clients.forward.iter().map(|c| c.destination().signal).collect(),
            status,
            probe: Some(Arc::new(clients.probe())),
            views,
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let drain = tokio::spawn(drain::drain(data_dir.clone(), ingest.clone(), stop_rx));
        let (signalled_tx, signalled) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = signalled_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let others: Vec<_> = [(metrics_listener, Surface::MetricsOnly), (otlp_listener, Surface::Otlp)]
            .into_iter()
            .filter_map(|(l, surface)| l.map(|l| (l, surface)))
            .map(|(l, surface)| tokio::spawn(server::run(l, ingest.clone(), surface, stopped(signalled.clone()))))
            .collect();
        server::run(listener, ingest, Surface::All, stopped(signalled)).await;
        for other in others {
            let _ = other.await;
        }
        tracing::info!("Stopped accepting; draining");
        let _ = stop_tx.send(true);
        let _ = drain.await;
        if let Some(f) = forwarder {
            // every Ingest is gone: the forwarder ends with its queue; the last bodies get their tries, bounded
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), f).await;
        }
        pipeline.await?;
        let _ = accountant.join();
        let _ = vcs_reader.join();
        if let Some(w) = journal_writer {
            let _ = w.join();
        }
        // the exporter ends when the pipeline's channel closes; bound its last export
        if tokio::time::timeout(std::time::Duration::from_secs(10), exporter).await.is_err() {
            tracing::error!("Exporter did not finish within 10 s; remaining spans lost");
        }
        // the last values, pushed once more (bounded)
        let _ = push_stop.send(true);
        if let Some(p) = pusher {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), p).await;
        }
        Ok(())
    })
}

/// The signals of Claude Code's telemetry that are not forwarded, grouped by why.
fn not_forwarded(outbound: &Outbound) -> Vec<(String, String)> {
    let mut by_why: Vec<(String, String)> = Vec::new();
    for (signal, why) in &outbound.not_forwarded {
        match by_why.iter_mut().find(|(w, _)| w == why) {
            Some((_, signals)) => {
                signals.push_str(", ");
                signals.push_str(signal.label());
            }
            None => by_why.push((why.clone(), signal.label().to_owned())),
        }
    }
    by_why
}

/// What `GET /v1/status` says of this sidecar's configuration (the spools' depth is added live):
/// endpoints with credentials hidden, header names without their values.
fn status_report(
    args: &ServeArgs,
    data_dir: &std::path::Path,
    outbound: &Outbound,
    [listen, metrics_listen, otlp_listen]: [Option<std::net::SocketAddr>; 3],
    clients: &Clients,
) -> serde_json::Value {
    let dest = |d: &crate::export::destination::Destination| {
        serde_json::json!({
            "protocol": d.protocol.name(),
            "endpoint": d.shown(),
            "compression": format!("{:?}", d.compression).to_lowercase(),
            "headers": d.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
            "certificate": d.tls.ca.as_ref().map(|(_, p)| p),
            "client_certificate": d.tls.client.as_ref().map(|((_, p), _)| p),
            "timeout_ms": d.timeout.as_millis() as u64,
        })
    };
    let export = match &outbound.traces {
        Some(d) => {
            let mut e = dest(d);
            e["mode"] = "otlp".into();
            e
        }
        None => serde_json::json!({
            "mode": "local",
            "store": data_dir.join(crate::store::local::FILE),
            "because": outbound.local_because,
        }),
    };
    let push = outbound.push.as_ref().map(|p| {
        let mut e = dest(&p.dest);
        e["interval_ms"] = (p.interval.as_millis() as u64).into();
        e["temporality"] = format!("{:?}", p.temporality).to_lowercase().into();
        e
    });
    let forward: Vec<serde_json::Value> = clients
        .forward
        .iter()
        .map(|c| {
            let mut e = dest(c.destination());
            e["signal"] = c.destination().signal.label().into();
            e
        })
        .collect();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "data_dir": data_dir,
        "export": export,
        "capture": format!("{:?}", args.output.capture).to_lowercase(),
        "listen": listen.map(|a| a.to_string()),
        "metrics_listen": metrics_listen.map(|a| a.to_string()),
        "otlp_listen": otlp_listen.map(|a| a.to_string()),
        "metrics_push": push,
        "forward": forward,
    })
}

/// The address a listener is bound to (port 0 resolved).
fn bound(listener: &Option<tokio::net::TcpListener>) -> Option<std::net::SocketAddr> {
    listener.as_ref().and_then(|l| l.local_addr().ok())
}

/// The token clients beyond loopback must present. Without one, a listener beyond loopback is
/// refused: it would take events from any host that can reach it.
fn token_for(args: &ServeArgs, data_dir: &std::path::Path) -> anyhow::Result<Option<String>> {
    let beyond_loopback = !args.listen.ip().is_loopback();
    match token::load_or_create(data_dir, config::token_var()) {
        Ok(t) => Ok(Some(t)),
        Err(e @ token::TokenError::WeakVar) => Err(e.into()),
        Err(e) if beyond_loopback => Err(anyhow::anyhow!(
            "--listen {} is beyond loopback and there is no usable token ({e}); set {} (at least {} characters) or make {} writable",
            args.listen,
            token::TOKEN_VAR,
            token::MIN_TOKEN_LEN,
            data_dir.display()
        )),
        Err(e) => {
            tracing::warn!(error = %e, "No token; only loopback clients can send events");
            Ok(None)
        }
    }
}

/// The journal and the open sessions it holds; `None` (logged) when it cannot be opened. Ended
/// sessions older than `ended_ttl_ns` are forgotten: the pipeline would no longer resume them.
fn open_journal(
    data_dir: &std::path::Path,
    ended_ttl_ns: u64,
) -> Option<(rusqlite::Connection, Vec<(String, journal::Restored)>)> {
    let conn = match journal::open(data_dir) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Cannot open the journal; open sessions will not survive a restart");
            return None;
        }
    };
    journal::forget_old_endings(&conn, ended_ttl_ns, now_ns());
    match journal::read(&conn) {
        Ok(restored) => Some((conn, restored)),
        Err(e) => {
            tracing::error!(error = %e, "Cannot read the journal; starting without the open sessions it held");
            Some((conn, Vec::new()))
        }
    }
}

/// The journal's open sessions with their hook events parsed again through the ingest path (the
/// same events give the same spans and ids), for the pipeline to rebuild them.
async fn reparse(
    restored: Vec<(String, journal::Restored)>,
    capture: crate::model::capture::Capture,
    roots: &AgentDirs,
) -> Vec<pipeline::Restored> {
    let mut out = Vec::with_capacity(restored.len());
    for (session_id, mut r) in restored {
        journal::sort_hooks(&mut r);
        let mut events = Vec::with_capacity(r.hooks.len());
        for (at, body) in &r.hooks {
            let Ok(mut ev) = crate::ingest::accept::parse(body, *at, capture) else { continue };
            crate::ingest::accept::enrich(&mut ev, roots).await;
            ev.raw = bytes::Bytes::new();
            events.push(ev);
        }
        out.push(pipeline::Restored {
            session_id: session_id.into(),
            events,
            usage: r.usage,
            handed_out: r.handed_out,
            ended: r.ended,
        });
    }
    out
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
