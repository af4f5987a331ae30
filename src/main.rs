//! The `hooktel` binary: parses the command line and calls into the library. `hooktel hook` is
//! dispatched before anything else is set up, so the per-event path stays as small as it can be.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hooktel::accounting::Accountant;
use hooktel::config::{self, ServeArgs};
use hooktel::local::LocalStore;
use hooktel::pricing::PriceTable;
use hooktel::span_spool::SpanSpool;
use hooktel::{export, journal, metrics::Metrics, pipeline, server, spool};

#[derive(Parser)]
#[command(name = "hooktel", version, about = "Claude Code hook events as OpenTelemetry traces and Prometheus metrics")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar.
    Serve(ServeArgs),
    /// The command hook: reads one payload on stdin and hands it to the sidecar. Always exits 0.
    Hook,
    /// Recent sessions from the local store (local mode).
    Sessions {
        /// How many sessions to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, env = "HOOKTEL_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
    /// One session from the local store: its turns, tool calls, subagents, tokens and cost.
    Show {
        /// The session id (with or without dashes) or a unique prefix of at least 4 characters.
        session: String,
        #[arg(long, env = "HOOKTEL_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Backfill: historic transcripts (default ~/.claude/projects) and old JSONL event logs become
    /// traces, in the collector or the local store. Importing twice creates no duplicates.
    Import {
        /// Transcript files or directories of them.
        paths: Vec<std::path::PathBuf>,
        /// A JSONL event log to import as custom events (with --name).
        #[arg(long, requires = "name")]
        events: Option<std::path::PathBuf>,
        /// The name the event log's events get.
        #[arg(long, requires = "events")]
        name: Option<String>,
        #[arg(long, env = "HOOKTEL_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
        #[arg(long, env = "HOOKTEL_CAPTURE", value_enum, default_value_t = hooktel::capture::Capture::Metadata)]
        capture: hooktel::capture::Capture,
        #[arg(long, env = "HOOKTEL_PRICES_FILE")]
        prices_file: Option<std::path::PathBuf>,
        #[arg(long, env = "HOOKTEL_SERVICE_NAME", default_value = "hooktel")]
        service_name: String,
        /// Local store: sessions older than this many days are not kept (raise it to keep old history).
        #[arg(long, env = "HOOKTEL_RETENTION_DAYS", default_value_t = 30)]
        retention_days: u64,
        #[arg(long, env = "HOOKTEL_STORE_MAX_BYTES", default_value_t = 512 * 1024 * 1024)]
        store_max_bytes: u64,
    },
    /// Wire hooktel's hooks into Claude Code's settings.json (user-level by default), keeping the
    /// rest of the file; the old file is backed up first. Installing twice changes nothing.
    Install {
        /// Change DIR/.claude/settings.json instead of the user's settings.
        #[arg(long, value_name = "DIR")]
        project: Option<std::path::PathBuf>,
        /// HTTP hooks (Claude Code POSTs to the sidecar) instead of command hooks; SessionStart and
        /// Setup keep the command hook (Claude Code skips http hooks there).
        #[arg(long)]
        http: bool,
        /// The sidecar's address, for the http hooks' URL.
        #[arg(long, env = "HOOKTEL_LISTEN", default_value = config::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
    },
    /// Remove hooktel's hooks from Claude Code's settings.json, and nothing else.
    Uninstall {
        /// Change DIR/.claude/settings.json instead of the user's settings.
        #[arg(long, value_name = "DIR")]
        project: Option<std::path::PathBuf>,
    },
    /// Check the sidecar, the installed hooks, the exporter, the spool and the data directory.
    Doctor,
    /// Send one custom event: `hooktel emit NAME [KEY=VALUE...] [--session ID]`.
    Emit {
        /// The event's name, e.g. `routing.decision`.
        name: String,
        /// Attributes as KEY=VALUE; numbers and booleans keep their type.
        #[arg(value_name = "KEY=VALUE")]
        attributes: Vec<String>,
        /// The Claude Code session it belongs to: the event joins that session's trace.
        #[arg(long, env = "HOOKTEL_SESSION_ID")]
        session: Option<String>,
        /// When it happened: RFC 3339 or Unix seconds (default: now).
        #[arg(long)]
        time: Option<String>,
    },
}

fn main() -> ExitCode {
    // the hook path: no argument parsing, no runtime, no logging set-up
    if std::env::args_os().nth(1).is_some_and(|a| a == "hook") {
        return hooktel::client::run();
    }
    match Cli::parse().command {
        Command::Hook => hooktel::client::run(),
        Command::Emit { name, attributes, session, time } => {
            hooktel::client::emit(&name, &attributes, session.as_deref(), time.as_deref())
        }
        Command::Import {
            paths,
            events,
            name,
            data_dir,
            capture,
            prices_file,
            service_name,
            retention_days,
            store_max_bytes,
        } => {
            let retention = hooktel::local::Retention {
                max_age: std::time::Duration::from_secs(retention_days.saturating_mul(24 * 3600)),
                max_bytes: store_max_bytes,
            };
            match import(paths, events.zip(name), data_dir, capture, prices_file, service_name, retention) {
                Ok(summary) => {
                    print!("{summary}");
                    if summary.failed_files.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("hooktel import: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sessions { limit, data_dir } => {
            print_view(hooktel::view::sessions(&data_dir.unwrap_or_else(config::default_data_dir), limit))
        }
        Command::Show { session, data_dir } => {
            print_view(hooktel::view::show(&data_dir.unwrap_or_else(config::default_data_dir), &session))
        }
        Command::Install { project, http, listen } => {
            let kind = if http { hooktel::install::HookKind::Http } else { hooktel::install::HookKind::Command };
            print_view(hooktel::install::settings_path(project.as_deref()).and_then(|target| {
                let command = hooktel::install::hook_command()?;
                let report = hooktel::install::install(&target, kind, &command, &hooktel::install::hook_url(listen))?;
                Ok(report.to_string())
            }))
        }
        Command::Uninstall { project } => print_view(
            hooktel::install::settings_path(project.as_deref())
                .and_then(|target| hooktel::install::uninstall(&target))
                .map(|report| report.to_string()),
        ),
        Command::Doctor => {
            let checks = hooktel::doctor::doctor(&hooktel::doctor::Options::from_env());
            print!("{}", hooktel::doctor::render(&checks));
            if hooktel::doctor::failed(&checks) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Serve(args) => match serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hooktel: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn import(
    mut paths: Vec<std::path::PathBuf>,
    events: Option<(std::path::PathBuf, String)>,
    data_dir: Option<std::path::PathBuf>,
    capture: hooktel::capture::Capture,
    prices_file: Option<std::path::PathBuf>,
    service_name: String,
    retention: hooktel::local::Retention,
) -> anyhow::Result<hooktel::backfill::Summary> {
    if paths.is_empty() && events.is_none() {
        paths.extend(hooktel::backfill::default_projects_dir());
    }
    let prices = match prices_file {
        Some(p) => PriceTable::with_file(&p).with_context(|| format!("reading prices from {}", p.display()))?,
        None => PriceTable::builtin(),
    };
    hooktel::backfill::run(hooktel::backfill::Request {
        paths,
        events,
        data_dir: data_dir.unwrap_or_else(config::default_data_dir),
        capture,
        prices,
        service_name,
        retention,
    })
}

fn print_view(view: anyhow::Result<String>) -> ExitCode {
    match view {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hooktel: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HOOKTEL_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let protocol = config::otlp_protocol().map_err(anyhow::Error::msg)?;
        let data_dir = args.data_dir();
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let sink = match protocol {
            Some(p) => {
                let resource = export::resource(&args.service_name);
                export::Sink::Otlp(Box::new(
                    export::build_exporter(p, &resource).context("building the OTLP exporter")?,
                ))
            }
            None => export::Sink::Local(std::sync::Mutex::new(
                LocalStore::open(&data_dir, args.retention()).context("opening the local store")?,
            )),
        };
        let listener =
            tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        let mode = match protocol {
            Some(p) => format!("OTLP {p:?}"),
            None => format!("local store in {} (no OTEL_EXPORTER_OTLP_ENDPOINT)", data_dir.display()),
        };
        tracing::info!(%addr, export = %mode, "hooktel listening on http://{addr}");

        let prices = match &args.prices_file {
            Some(path) => {
                PriceTable::with_file(path).with_context(|| format!("reading prices from {}", path.display()))?
            }
            None => PriceTable::builtin(),
        };

        let metrics = Arc::new(Metrics::new(args.project_label));
        let (event_tx, event_rx) = tokio::sync::mpsc::channel(args.queue_capacity.max(1));
        let (span_tx, span_rx) = tokio::sync::mpsc::channel(64);
        // touches are hints: a bounded queue, dropped when full (reads start from saved offsets)
        let (touch_tx, touch_rx) = std::sync::mpsc::sync_channel(4096);
        let (usage_tx, usage_rx) = tokio::sync::mpsc::channel(1024);
        let settle = std::time::Duration::from_millis(args.settle_ms);
        let accountant = Accountant::new(prices, &data_dir, metrics.clone(), settle);
        let accountant = std::thread::Builder::new()
            .name("hooktel-accounting".into())
            .spawn(move || accountant.run(touch_rx, usage_tx))?;
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
        let exporter = tokio::spawn(export::run(span_rx, sink, span_spool, metrics.clone()));
        let (journal_tx, restored, journal_writer) = match open_journal(&data_dir) {
            Some((conn, restored)) => {
                let (tx, rx) = std::sync::mpsc::channel();
                let failures = metrics.journal_failures.clone();
                let writer = std::thread::Builder::new()
                    .name("hooktel-journal".into())
                    .spawn(move || journal::write(conn, rx, failures))?;
                (Some(tx), restored, Some(writer))
            }
            None => (None, Vec::new(), None),
        };
        let pipeline = tokio::spawn(pipeline::run(pipeline::Parts {
            events: event_rx,
            usage: usage_rx,
            touches: touch_tx,
            spans: span_tx,
            journal: journal_tx,
            restored,
            settings: args.session_settings(),
            capture: args.capture,
            metrics: metrics.clone(),
        }));
        let ingest = Arc::new(server::Ingest {
            queue: event_tx,
            metrics,
            capture: args.capture,
            max_body_bytes: args.max_body_bytes,
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let drain = tokio::spawn(spool::drain(data_dir.clone(), ingest.clone(), stop_rx));
        server::run(listener, ingest, shutdown_signal()).await;
        tracing::info!("Stopped accepting; draining");
        let _ = stop_tx.send(true);
        let _ = drain.await;
        pipeline.await?;
        let _ = accountant.join();
        if let Some(w) = journal_writer {
            let _ = w.join();
        }
        // the exporter ends when the pipeline's channel closes; bound its last export
        if tokio::time::timeout(std::time::Duration::from_secs(10), exporter).await.is_err() {
            tracing::error!("Exporter did not finish within 10 s; remaining spans lost");
        }
        Ok(())
    })
}

/// The journal and the open sessions it holds; `None` (logged) when it cannot be opened.
fn open_journal(data_dir: &std::path::Path) -> Option<(rusqlite::Connection, Vec<(String, journal::Restored)>)> {
    let conn = match journal::open(data_dir) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Cannot open the journal; open sessions will not survive a restart");
            return None;
        }
    };
    // how long an ended session is remembered, so that a --resume continues its trace
    journal::forget_old_endings(&conn, 24 * 3600 * 1_000_000_000, pipeline::now_ns());
    match journal::read(&conn) {
        Ok(restored) => Some((conn, restored)),
        Err(e) => {
            tracing::error!(error = %e, "Cannot read the journal; starting without the open sessions it held");
            Some((conn, Vec::new()))
        }
    }
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
