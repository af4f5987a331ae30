//! Settings: every flag, its `HOOKTEL_*` variable and its default, in one place.
//!
//! What leaves the machine is set by the OpenTelemetry SDK's own variables, read from the
//! environment here and interpreted by `export::outbound` (pure, per the specification).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::export::outbound::{self, Outbound};
use crate::model::budget::{self, Shares};
use crate::model::capture::Capture;
use crate::model::semconv::ModelEndpoint;
use crate::model::session_view::Budgets;
use crate::pipeline::sessions::Settings;
use crate::store::local::Retention;
use crate::store::token;
use crate::usage::pricing::PriceTable;
use crate::vcs::ticket::{TicketPattern, DEFAULT_PATTERN as DEFAULT_TICKET_PATTERN};

/// Where the sidecar listens by default: loopback only, and a port clear of OTLP (4317/4318),
/// Prometheus (9090) and the exporters' 9100-9999 range.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4388";

/// Where Claude Code's own telemetry (OTLP/HTTP) is received by default: beside the hooks' port.
pub const DEFAULT_OTLP_LISTEN: &str = "127.0.0.1:4387";

/// A listen address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Listen, Self::Err> {
        match s.trim() {
            "off" | "" => Ok(Listen(None)),
            addr => listen_addr(addr).map(|a| Listen(Some(a))),
        }
    }
}

/// A listen address: `IP:PORT`, or `HOST:PORT` with the host resolved (`localhost:4388`; its IPv4
/// address first, as a client resolving `localhost` usually tries it first).
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.trim().parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let found: Vec<SocketAddr> =
        s.trim().to_socket_addrs().map_err(|e| format!("{s:?}: {e} (use HOST:PORT)"))?.collect();
    found.iter().find(|a| a.is_ipv4()).or(found.first()).copied().ok_or_else(|| format!("{s:?} resolves to no address"))
}

#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address for /v1/hooks, /v1/events, /metrics and /healthz. Beyond loopback, clients must
    /// present the token (HOOKTEL_TOKEN, else the data dir's `token` file).
    #[arg(long, env = "HOOKTEL_LISTEN", default_value = DEFAULT_LISTEN, value_parser = listen_addr)]
    pub(crate) listen: SocketAddr,
    /// A second address serving only GET /metrics and /healthz, for Prometheus and probes, so that
    /// ingest can stay on loopback.
    #[arg(long, env = "HOOKTEL_METRICS_LISTEN", value_parser = listen_addr)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Address receiving Claude Code's own telemetry over OTLP/HTTP (/v1/logs, /v1/metrics,
    /// /v1/traces), or `off`.
    #[arg(long, env = "HOOKTEL_OTLP_LISTEN", default_value = DEFAULT_OTLP_LISTEN)]
    pub(crate) otlp_listen: Listen,
    /// Milliseconds the spans of a session that sends its own telemetry wait at least, for the
    /// api_request events Claude Code exports in batches (last when it exits).
    #[arg(long, env = "HOOKTEL_NATIVE_SETTLE_MS", default_value_t = 3000)]
    pub(crate) native_settle_ms: u64,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Host names, comma-separated, accepted in a request's `Host` besides loopback ones (a browser
    /// page that rebinds its own name to 127.0.0.1 sends its name there).
    #[arg(long, env = "HOOKTEL_ALLOWED_HOSTS", default_value = "")]
    pub(crate) allowed_hosts: String,
    /// Most connections open at once; past it a new one gets 503 and is closed (systemd's default
    /// descriptor limit is 1024).
    #[arg(long, env = "HOOKTEL_MAX_CONNECTIONS", default_value_t = 512)]
    pub(crate) max_connections: usize,
    /// The memory every holder answers to (bytes, or KiB/MiB/GiB), split into shares: request
    /// bodies held, decoding, forwarding, the journal's backlog, open sessions (see docs/security.md).
    #[arg(long, env = "HOOKTEL_MEMORY_BUDGET", default_value = "256MiB", value_parser = budget::parse)]
    pub(crate) memory_budget: usize,
    /// Most request-body bytes held at once over all connections; past it a request gets 503
    /// with Retry-After (never less than --max-body-bytes). Default: an eighth of the memory budget;
    /// more than that is refused.
    #[arg(long, env = "HOOKTEL_MAX_BUFFERED_BYTES")]
    pub(crate) max_buffered_bytes: Option<usize>,
    /// Most sessions open at once; past it, the session idle longest is closed (incomplete). A
    /// session takes about 8 KB, up to 33 KB with paths as long as ingest allows; all of them
    /// together answer to the sessions' share of the memory budget.
    #[arg(long, env = "HOOKTEL_MAX_SESSIONS", default_value_t = 5_000)]
    pub(crate) max_sessions: usize,
    /// Spend budget of a UTC day, in USD: a gauge of the day's spend against it, and a span event on
    /// the session whose model call crosses 80, 90 and 100% of it.
    #[arg(long, env = "HOOKTEL_BUDGET_USD_PER_DAY", value_name = "USD", value_parser = usd)]
    pub(crate) budget_usd_per_day: Option<f64>,
    /// Spend budget of one session, in USD: a gauge of the largest open session's spend against it,
    /// and a span event on a session whose model call crosses 80, 90 and 100% of it.
    #[arg(long, env = "HOOKTEL_BUDGET_USD_PER_SESSION", value_name = "USD", value_parser = usd)]
    pub(crate) budget_usd_per_session: Option<f64>,
    /// Close a session with no event for this many seconds (its open spans marked incomplete).
    #[arg(long, env = "HOOKTEL_IDLE_TIMEOUT_SECS", default_value_t = 3600)]
    pub(crate) idle_timeout_secs: u64,
    /// Milliseconds a closed span waits for late, out-of-order events before export (a turn or
    /// subagent also waits for a read of its transcript 500 ms after its end, 10 s at most).
    #[arg(long, env = "HOOKTEL_SETTLE_MS", default_value_t = 1000)]
    pub(crate) settle_ms: u64,
    /// Events accepted but not yet processed; when full, /v1/hooks answers 503.
    #[arg(long, env = "HOOKTEL_QUEUE_CAPACITY", default_value_t = 65_536)]
    pub(crate) queue_capacity: usize,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, env = "HOOKTEL_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub(crate) max_body_bytes: usize,
    /// Largest size of the export spool; beyond it the oldest spans are dropped (and counted).
    #[arg(long, env = "HOOKTEL_SPOOL_MAX_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub(crate) spool_max_bytes: u64,
    /// Size cap of the journal of open sessions; past it new events are not journaled (counted),
    /// so a restart then loses them.
    #[arg(long, env = "HOOKTEL_JOURNAL_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub(crate) journal_max_bytes: u64,
    /// Put a `project` label (basename of the session's cwd) on token, cost, tool-call and pull-request metrics.
    #[arg(long, env = "HOOKTEL_PROJECT_LABEL", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) project_label: bool,
    /// Put a `repo` label (the session's git remote as host/owner/repo) on token, cost, tool-call
    /// and pull-request metrics, and count cost by repository and branch (hooktel_branch_cost_usd_total).
    #[arg(long, env = "HOOKTEL_REPO_LABEL", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) repo_label: bool,
    /// The ticket a branch names (hooktel.ticket): a regular expression, its first match (or its
    /// first group); empty for none. Default: `ABC-123` or `#123`.
    #[arg(long, env = "HOOKTEL_TICKET_PATTERN", default_value = DEFAULT_TICKET_PATTERN)]
    pub(crate) ticket_pattern: TicketPattern,
}

/// Where spans go and what they carry: shared by `serve` and `import`, which must agree.
#[derive(Clone, Debug, clap::Args)]
pub struct OutputArgs {
    /// Directory for hooktel's own files (the spool and local store).
    #[arg(long, env = "HOOKTEL_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// What content leaves the machine: none, metadata (default) or full.
    #[arg(long, env = "HOOKTEL_CAPTURE", value_enum, default_value_t = Capture::Metadata)]
    pub(crate) capture: Capture,
    /// Local mode: sessions older than this many days are removed from the local store.
    #[arg(long, env = "HOOKTEL_RETENTION_DAYS", default_value_t = 30)]
    pub(crate) retention_days: u64,
    /// Local mode: the local store's size cap; the oldest sessions go first.
    #[arg(long, env = "HOOKTEL_STORE_MAX_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub(crate) store_max_bytes: u64,
    /// A JSON price table adding or replacing models of the built-in one.
    #[arg(long, env = "HOOKTEL_PRICES_FILE")]
    pub(crate) prices_file: Option<PathBuf>,
    /// Service name when OTEL_SERVICE_NAME is not set.
    #[arg(long, env = "HOOKTEL_SERVICE_NAME", default_value = "hooktel")]
    pub(crate) service_name: String,
    /// `user.id` on every span (what Phoenix's and Langfuse's user views read): an id of your
    /// choosing, sent at every capture level. Unset, no span names a user, except at `full`
    /// capture, where the account Claude Code's own telemetry names (email, else uuid) is used.
    #[arg(long, env = "HOOKTEL_USER_ID", value_parser = user_id)]
    pub(crate) user_id: Option<String>,
    /// The base URL Claude Code's model calls go to when it is not Anthropic's API (the value of
    /// Claude Code's ANTHROPIC_BASE_URL): only its host and port become chat spans'
    /// `server.address` and `server.port` (default api.anthropic.com, 443).
    #[arg(long, env = "HOOKTEL_ANTHROPIC_BASE_URL", value_parser = model_endpoint)]
    pub(crate) anthropic_base_url: Option<ModelEndpoint>,
}

/// A budget in US dollars: a positive, finite number (`50`, `12.5`).
fn usd(s: &str) -> Result<f64, String> {
    match s.trim().trim_start_matches('$').parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("is not a positive number of US dollars (e.g. 50 or 12.5)".into()),
    }
}

/// Longest `HOOKTEL_USER_ID`: an id or an email, not a document.
const MAX_USER_ID_BYTES: usize = 256;

/// `HOOKTEL_USER_ID`: any text up to 256 bytes, trimmed.
fn user_id(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("is empty (unset it to send no user)".into()),
        id if id.len() > MAX_USER_ID_BYTES => Err(format!("is longer than {MAX_USER_ID_BYTES} bytes")),
        id => Ok(id.to_owned()),
    }
}

/// The host and port of a base URL (`https://gateway.example:8443/anthropic`): the port its scheme
/// implies when it names none. Credentials, path and query are dropped, never shown.
pub(crate) fn model_endpoint(s: &str) -> Result<ModelEndpoint, String> {
    let uri: http::Uri = s.trim().parse().map_err(|_| "is not a URL (use https://HOST[:PORT][/PATH])".to_owned())?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => return Err("needs an http:// or https:// scheme".into()),
    };
    let host = uri.host().filter(|h| !h.is_empty()).ok_or("names no host")?;
    Ok(ModelEndpoint {
        address: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        port: uri.port_u16().unwrap_or(default_port),
    })
}

impl OutputArgs {
    /// Where model calls go: the base URL's host and port, else Anthropic's API.
    pub(crate) fn endpoint(&self) -> ModelEndpoint {
        self.anthropic_base_url.clone().unwrap_or_default()
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    pub(crate) fn retention(&self) -> Retention {
        Retention {
            max_age: Duration::from_secs(self.retention_days.saturating_mul(24 * 3600)),
            max_bytes: self.store_max_bytes,
        }
    }

    /// The built-in price table, or it amended by `--prices-file`.
    pub(crate) fn prices(&self) -> anyhow::Result<PriceTable> {
        match &self.prices_file {
            Some(p) => PriceTable::with_file(p).with_context(|| format!("reading prices from {}", p.display())),
            None => Ok(PriceTable::builtin()),
        }
    }
}

impl ServeArgs {
    /// The extra `Host` names ingest accepts, lowercase, without ports.
    pub(crate) fn allowed_hosts(&self) -> Vec<String> {
        self.allowed_hosts.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
    }

    /// The memory budget's shares, with request bodies as set (refused past their share).
    pub(crate) fn shares(&self) -> Result<Shares, String> {
        let shares = Shares::of(self.memory_budget);
        let bodies = self.max_buffered_bytes.unwrap_or(shares.bodies).max(self.max_body_bytes);
        shares.with_bodies(bodies)
    }

    /// The spend budgets set.
    pub(crate) fn budgets(&self) -> Budgets {
        Budgets { day_usd: self.budget_usd_per_day, session_usd: self.budget_usd_per_session }
    }

    pub(crate) fn session_settings(&self) -> Settings {
        let shares = Shares::of(self.memory_budget);
        Settings {
            max_state_bytes: shares.sessions,
            max_span_bytes: shares.session_spans,
            idle_timeout_ns: self.idle_timeout_secs.saturating_mul(crate::model::time::NS_PER_SEC),
            settle_ns: self.settle_ms.saturating_mul(1_000_000),
            capture: self.output.capture,
            max_sessions: self.max_sessions,
            native_settle_ns: self.native_settle_ms.saturating_mul(1_000_000),
            native_expected: self.otlp_listen.0.is_some(),
            user_id: self.output.user_id.clone(),
            endpoint: self.output.endpoint(),
            ..Settings::default()
        }
    }
}

/// `$XDG_DATA_HOME/hooktel`, else `~/.local/share/hooktel`.
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("hooktel")
}

/// A variable of the environment, trimmed; `None` when unset or blank.
pub(crate) fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// What leaves the machine over OTLP, from this process's environment.
pub(crate) fn outbound() -> anyhow::Result<Outbound> {
    Ok(Outbound::from_vars(&env_var)?)
}

/// `OTEL_*` variables set here that hooktel does not read (each would otherwise be ignored
/// without a word).
pub(crate) fn unhonoured_otel_vars() -> Vec<String> {
    let mut vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, v)| k.starts_with("OTEL_") && !v.is_empty() && !outbound::honoured(k))
        .map(|(k, _)| k)
        .collect();
    vars.sort();
    vars
}

/// `HOOKTEL_TOKEN`, read from the environment only: a secret on the command line is visible to
/// every user in `ps`.
pub(crate) fn token_var() -> Option<String> {
    std::env::var(token::TOKEN_VAR).ok()
}

/// The token a client of the sidecar presents where it needs one: `HOOKTEL_TOKEN`, else the data
/// directory's file (read only when asked: see [`http1::send_to_sidecar`](crate::cli::http1::send_to_sidecar)).
pub(crate) fn client_token(data_dir: &std::path::Path) -> Option<String> {
    token::for_client(data_dir, token_var())
}

/// Settings of the hook client, from `HOOKTEL_*` only (Claude Code strips `OTEL_*` from hooks).
#[derive(Clone, Debug)]
pub(crate) struct HookSettings {
    /// `host:port` of the sidecar (`HOOKTEL_ADDR`).
    pub(crate) addr: String,
    /// Budget for connecting, and separately for sending and reading the reply (`HOOKTEL_HOOK_TIMEOUT_MS`).
    pub(crate) timeout: Duration,
    /// Where the spool is (`HOOKTEL_DATA_DIR`), and the token file a sidecar beyond loopback wants.
    pub(crate) data_dir: PathBuf,
}

impl HookSettings {
    pub(crate) fn from_env() -> HookSettings {
        let addr =
            std::env::var("HOOKTEL_ADDR").ok().filter(|a| !a.is_empty()).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let ms = std::env::var("HOOKTEL_HOOK_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(500u64);
        let data_dir = std::env::var_os("HOOKTEL_DATA_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir);
        HookSettings { addr, timeout: Duration::from_millis(ms.clamp(10, 10_000)), data_dir }
    }

    /// What to present to a sidecar that wants the token (`HOOKTEL_TOKEN`, else the data dir's file).
    pub(crate) fn token(&self) -> Option<String> {
        client_token(&self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    /// `serve`'s arguments from a command line alone (no variable of the environment is set in
    /// these names by the test runner).
    fn serve(args: &[&str]) -> ServeArgs {
        Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).unwrap().args
    }

    /// The ticket pattern: the default finds `ABC-123`; one of the user's own is used; one that does
    /// not compile stops `serve` with the flag and the reason.
    #[test]
    fn a_bad_ticket_pattern_is_refused_at_start() {
        assert_eq!(serve(&[]).ticket_pattern.find("feature/ABC-123-fix").as_deref(), Some("ABC-123"));
        let own = serve(&["--ticket-pattern", r"(?:^|/)(\d+)-"]);
        assert_eq!(own.ticket_pattern.find("feature/4711-speed").as_deref(), Some("4711"));
        assert!(!serve(&["--repo-label", "false"]).repo_label && serve(&[]).repo_label);
        let parse = |p: &str| Serve::try_parse_from(["serve", "--ticket-pattern", p]).err().map(|e| e.to_string());
        let err = parse("([A-Z]+").expect("refused");
        assert!(err.contains("--ticket-pattern") && err.contains("not a regular expression"), "{err}");
        assert!(parse(".*").expect("refused").contains("matches the empty string"));
    }

    #[test]
    fn listen_addresses_take_ips_names_or_off() {
        assert_eq!(listen_addr("127.0.0.1:4388").unwrap(), "127.0.0.1:4388".parse().unwrap());
        assert_eq!(listen_addr(" [::1]:9 ").unwrap(), "[::1]:9".parse().unwrap());
        assert!(listen_addr("localhost:4388").unwrap().ip().is_loopback(), "a name resolves, IPv4 first");
        assert!(listen_addr("4388").unwrap_err().contains("HOST:PORT"));
        assert_eq!("off".parse::<Listen>(), Ok(Listen(None)));
        assert_eq!("".parse::<Listen>(), Ok(Listen(None)));
        assert_eq!("127.0.0.1:0".parse::<Listen>().unwrap().0.unwrap().port(), 0);
    }

    #[test]
    fn serve_settings_become_the_state_machines() {
        let args = serve(&[
            "--idle-timeout-secs",
            "60",
            "--settle-ms",
            "250",
            "--allowed-hosts",
            " Box.Local ,, agents.internal",
        ]);
        assert_eq!(args.allowed_hosts(), ["box.local", "agents.internal"]);
        let s = args.session_settings();
        assert_eq!(s.idle_timeout_ns, 60 * crate::model::time::NS_PER_SEC);
        assert_eq!(s.settle_ns, 250_000_000);
        assert!(s.native_expected, "the OTLP receiver is on by default");
        let off = serve(&["--otlp-listen", "off", "--idle-timeout-secs", &u64::MAX.to_string()]).session_settings();
        assert!(!off.native_expected);
        assert_eq!(off.idle_timeout_ns, u64::MAX, "saturates instead of wrapping");
        assert!(Serve::try_parse_from(["serve", "--listen", "nowhere"]).is_err());
    }

    /// Only the host and port of a base URL are kept: never its credentials, path or query; a URL
    /// that cannot be used is refused without being echoed.
    #[test]
    fn a_base_url_gives_its_host_and_port_only() {
        let at = |s: &str| model_endpoint(s).map(|e| (e.address, e.port));
        assert_eq!(at("https://gateway.example:8443/anthropic?key=SECRET"), Ok(("gateway.example".into(), 8443)));
        assert_eq!(at("http://10.0.0.7/v1"), Ok(("10.0.0.7".into(), 80)));
        assert_eq!(at("https://[::1]:9000"), Ok(("::1".into(), 9000)));
        assert_eq!(at(" https://proxy.example "), Ok(("proxy.example".into(), 443)));
        for bad in ["gateway.example:8443/SECRET", "ftp://h.example/SECRET", "not a url SECRET", ""] {
            let err = model_endpoint(bad).unwrap_err();
            assert!(!err.contains("SECRET"), "{err}");
        }
        let s = serve(&["--anthropic-base-url", "https://gw.example:8443", "--user-id", "dev@example.com"])
            .session_settings();
        assert_eq!((s.endpoint.address.as_str(), s.endpoint.port), ("gw.example", 8443));
        assert_eq!(s.user_id.as_deref(), Some("dev@example.com"));
        let plain = serve(&[]).session_settings();
        assert_eq!((plain.endpoint, plain.user_id), (ModelEndpoint::default(), None));
        assert_eq!(ModelEndpoint::default(), ModelEndpoint { address: "api.anthropic.com".into(), port: 443 });
        assert!(user_id(&"u".repeat(257)).is_err() && user_id("  ").is_err());
    }
}
