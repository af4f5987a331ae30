//! The `hooktel` binary: parses the command line and calls into the library. `hooktel hook` is
//! dispatched before anything else is set up, so the per-event path stays as small as it can be.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hooktel::cli::config::{self, OutputArgs, ServeArgs};
use hooktel::cli::{doctor, hook, import, install, install_codex, install_gemini, serve, statusline, view};
use hooktel::model::agent::Agent;

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
        /// How many sessions to list (at least 1).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// The sidecar's data directory, where the local store is (default ~/.local/share/hooktel).
        #[arg(long, env = "HOOKTEL_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
        /// Whole values, however wide (by default the table fits the terminal).
        #[arg(long)]
        wide: bool,
        /// JSON, for scripts: every field whole.
        #[arg(long)]
        json: bool,
    },
    /// One session from the local store: its turns, tool calls, subagents, tokens and cost.
    Show {
        /// The session id (with or without dashes) or a unique prefix of at least 4 characters.
        session: String,
        /// The sidecar's data directory, where the local store is (default ~/.local/share/hooktel).
        #[arg(long, env = "HOOKTEL_DATA_DIR")]
        data_dir: Option<std::path::PathBuf>,
        /// Whole lines, however wide (by default they are cut to the terminal's width).
        #[arg(long)]
        wide: bool,
        /// JSON, for scripts: the session and every span with its attributes and links.
        #[arg(long)]
        json: bool,
    },
    /// Backfill: historic transcripts and rollouts (default ~/.claude/projects, ~/.codex/sessions) and
    /// old JSONL event logs become traces, in the collector or the local store. Importing twice creates
    /// no duplicates.
    Import {
        /// Claude Code transcripts, Codex CLI rollouts, or directories of them (default: both agents' own).
        paths: Vec<std::path::PathBuf>,
        /// A JSONL event log to import as custom events (with --name).
        #[arg(long, requires = "name")]
        events: Option<std::path::PathBuf>,
        /// The name the event log's events get.
        #[arg(long, requires = "events")]
        name: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
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
        #[arg(long, env = "HOOKTEL_LISTEN", default_value = config::DEFAULT_LISTEN, value_parser = config::listen_addr)]
        listen: std::net::SocketAddr,
        /// Also send Claude Code's own telemetry (OTLP logs and metrics, never prompts) to the
        /// sidecar, which times each model call by it; left alone if the file already sends it elsewhere.
        #[arg(long)]
        native_telemetry: bool,
        /// The sidecar's receiver for that telemetry.
        #[arg(long, env = "HOOKTEL_OTLP_LISTEN", default_value = config::DEFAULT_OTLP_LISTEN)]
        otlp_listen: config::Listen,
        /// Also set Claude Code's status line to `hooktel statusline` (the session's model, turns,
        /// tokens and cost); a status line the file already has is left alone.
        #[arg(long)]
        statusline: bool,
        /// The agent to wire: `claude-code`; `codex` (Codex CLI's ~/.codex/hooks.json, its hooks
        /// trusted through `codex app-server`); or `gemini` (also `gemini-cli`: Gemini CLI's
        /// ~/.gemini/settings.json).
        #[arg(long, default_value = "claude-code", value_parser = AGENTS)]
        agent: String,
    },
    /// The status line: reads Claude Code's status-line JSON on stdin and prints the session's
    /// model, turns, tokens and cost from the sidecar; nothing when the sidecar is away.
    Statusline,
    /// Remove hooktel's hooks from Claude Code's settings.json (or Codex CLI's hooks.json, or Gemini
    /// CLI's settings.json), and nothing else.
    Uninstall {
        /// Change DIR/.claude/settings.json instead of the user's settings.
        #[arg(long, value_name = "DIR")]
        project: Option<std::path::PathBuf>,
        /// The agent to unwire: `claude-code`, `codex`, or `gemini` (also `gemini-cli`).
        #[arg(long, default_value = "claude-code", value_parser = AGENTS)]
        agent: String,
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

/// What `install --agent` and `uninstall --agent` take.
const AGENTS: [&str; 4] = ["claude-code", "codex", "gemini", "gemini-cli"];

fn main() -> ExitCode {
    // the hook path: no argument parsing, no runtime, no logging set-up
    if std::env::args_os().nth(1).is_some_and(|a| a == "hook") {
        // Claude Code runs it with no argument (another agent with `--agent <name>`) and the payload
        // on a pipe: anything else is a person asking what it is (`hooktel hook --help`, or a
        // terminal as stdin), who gets the help rather than a hook waiting on stdin
        use std::io::IsTerminal;
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
        match hook::agent_of_args(&args) {
            Some(agent) if !std::io::stdin().is_terminal() => return hook::run(agent),
            _ => {
                print!("{}", hook::HELP);
                return ExitCode::SUCCESS;
            }
        }
    }
    // the status line starts the same way: Claude Code runs it at every update
    if std::env::args_os().nth(1).is_some_and(|a| a == "statusline") {
        use std::io::IsTerminal;
        if std::env::args_os().len() > 2 || std::io::stdin().is_terminal() {
            print!("{}", statusline::HELP);
            return ExitCode::SUCCESS;
        }
        return statusline::run();
    }
    match Cli::parse().command {
        Command::Hook => hook::run(None),
        Command::Statusline => statusline::run(),
        Command::Emit { name, attributes, session, time } => {
            hook::emit(&name, &attributes, session.as_deref(), time.as_deref())
        }
        Command::Import { paths, events, name, output } => match import::run(paths, events.zip(name), &output) {
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
        },
        Command::Sessions { limit, data_dir, wide, json } => {
            let dir = data_dir.unwrap_or_else(config::default_data_dir);
            print_view(view::sessions(&dir, limit as usize, view::Output::of_flags(json, wide)))
        }
        Command::Show { session, data_dir, wide, json } => {
            let dir = data_dir.unwrap_or_else(config::default_data_dir);
            print_view(view::show(&dir, &session, view::Output::of_flags(json, wide)))
        }
        Command::Install { agent, project, http, native_telemetry, statusline, .. } if agent == "codex" => {
            print_view(if project.is_some() || http || native_telemetry || statusline {
                Err(anyhow::anyhow!(
                    "--project, --http, --native-telemetry and --statusline are Claude Code's: Codex CLI takes \
                     command hooks in its own home (~/.codex/hooks.json, or $CODEX_HOME's)"
                ))
            } else {
                install::hook_command()
                    .and_then(|command| install_codex::install(&format!("{command} --agent codex")))
                    .map(|report| report.to_string())
            })
        }
        Command::Install { agent, project, http, native_telemetry, statusline, .. }
            if Agent::named(&agent) == Some(Agent::Gemini) =>
        {
            print_view(if project.is_some() || http || native_telemetry || statusline {
                Err(anyhow::anyhow!(
                    "--project, --http, --native-telemetry and --statusline are Claude Code's: Gemini CLI takes \
                     command hooks in the user's ~/.gemini/settings.json (or $GEMINI_CLI_HOME/.gemini's)"
                ))
            } else {
                install::hook_command()
                    .and_then(|command| install_gemini::install(&format!("{command} --agent gemini")))
                    .map(|report| report.to_string())
            })
        }
        Command::Install { project, http, listen, native_telemetry, otlp_listen, statusline, .. } => {
            let kind = if http { install::HookKind::Http } else { install::HookKind::Command };
            print_view(install::settings_path(project.as_deref()).and_then(|target| {
                let command = install::hook_command()?;
                let native = match (native_telemetry, otlp_listen.0) {
                    (false, _) => None,
                    (true, Some(at)) => Some(install::base_url(at)),
                    (true, None) => anyhow::bail!("--native-telemetry needs the sidecar's --otlp-listen (it is off)"),
                };
                let status_line = if statusline { Some(install::statusline_command()?) } else { None };
                let url = install::hook_url(listen);
                let report =
                    install::install(&target, kind, &command, &url, native.as_deref(), status_line.as_deref())?;
                Ok(report.to_string())
            }))
        }
        Command::Uninstall { project: Some(_), agent } if agent == "codex" => {
            print_view(Err(anyhow::anyhow!("--project is Claude Code's: Codex CLI's hooks are in its own home")))
        }
        Command::Uninstall { agent, .. } if agent == "codex" => {
            print_view(install_codex::uninstall().map(|report| report.to_string()))
        }
        Command::Uninstall { project: Some(_), agent } if Agent::named(&agent) == Some(Agent::Gemini) => {
            print_view(Err(anyhow::anyhow!(
                "--project is Claude Code's: hooktel installs Gemini CLI's hooks in the user's settings"
            )))
        }
        Command::Uninstall { agent, .. } if Agent::named(&agent) == Some(Agent::Gemini) => {
            print_view(install_gemini::uninstall().map(|report| report.to_string()))
        }
        Command::Uninstall { project, .. } => print_view(
            install::settings_path(project.as_deref())
                .and_then(|target| install::uninstall(&target))
                .map(|report| report.to_string()),
        ),
        Command::Doctor => {
            let checks = doctor::doctor(&doctor::Options::from_env());
            print!("{}", doctor::render(&checks));
            if doctor::failed(&checks) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Serve(args) => match serve::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hooktel: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
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
