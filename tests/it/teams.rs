//! Agent teams and forks with the real Claude Code CLI.
//!
//! An in-process team needs the interactive CLI: it runs in a pseudo-terminal (`tests/e2e/ptyrun.py`)
//! against `tests/e2e/mock_teams.py`, a lead that creates a task and spawns a teammate `worker`, who
//! completes it. The trace: the teammate one span under the lead's `Agent` call, its tools and model
//! calls under it, the task under it, every span with the team.
//!
//! Pane teammates (`teammateMode: tmux`) are `claude` processes of their own, in panes of a private
//! tmux server (Debian's `tmux`, installed by `scripts/install-test-deps.sh`): the teammate's root
//! links to the lead's, the lead's `Agent` call to the teammate's trace, both carry the team, and
//! the task the lead created and the teammate completed is in the teammate's trace, linked back.
//!
//! `--resume <id> --fork-session` starts a new session whose transcript begins with copies of its
//! origin's responses. Its trace's root says it began as a fork, links to the origin's root, and
//! counts only its own responses: the copied history is the origin's, counted once, there.

use std::time::Duration;

use crate::support::claude::{
    claude_bin, run_interactive, seed_interactive, write_settings, Cli, Mock, Scratch, Transcript,
};
use crate::support::{Protocol, Receiver, Sidecar, Span};

fn trace_of(session: &str) -> String {
    session.replace('-', "")
}

fn int(s: &Span, key: &str) -> u64 {
    s.attr(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// All tokens a root carries (input incl. cache reads and writes, and output).
fn root_tokens(root: &Span) -> u64 {
    int(root, "gen_ai.usage.input_tokens") + int(root, "gen_ai.usage.output_tokens")
}

#[test]
fn a_real_fork_links_to_its_origin_and_counts_only_its_own_responses() {
    let _cli = crate::support::claude::one_cli_at_a_time();
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    write_settings(&home);
    let work = scratch.dir("work");
    let mock = Mock::start(&scratch, "fork", &work);
    let cli = Cli::for_sidecar(claude_bin(), &scratch, &home, &sidecar);
    let origin = cli.spawn("origin", &work, &mock, &["-p", "Run the scripted scenario."]).wait();
    let origin = origin.expect_exit(0).session_id();
    let fork = cli.spawn("fork", &work, &mock, &["--resume", &origin, "--fork-session", "-p", "And now?"]).wait();
    let fork = fork.expect_exit(0).session_id();
    assert_ne!(fork, origin, "--fork-session starts a new session");

    let (to, tf) = (trace_of(&origin), trace_of(&fork));
    let spans = receiver.wait_for(Duration::from_secs(60), "both roots", |s| {
        [&to, &tf].iter().all(|t| s.iter().any(|s| &s.trace_id == *t && s.parent.is_empty()))
    });
    let root = |t: &str| spans.iter().find(|s| s.trace_id == t && s.parent.is_empty()).unwrap().clone();
    let (origin_root, fork_root) = (root(&to), root(&tf));
    assert_eq!(fork_root.attr("hooktel.session.source"), Some("fork"), "{:?}", fork_root.attrs);
    assert_eq!(fork_root.attr("hooktel.session.forked_from"), Some(origin.as_str()));
    let links: Vec<_> =
        fork_root.links.iter().map(|(t, s, a)| (t.as_str(), s.as_str(), a.get("hooktel.link.kind"))).collect();
    assert_eq!(links, [(to.as_str(), origin_root.span_id.as_str(), Some(&"forked_from".to_owned()))]);
    assert!(origin_root.links.is_empty());
    assert_eq!(origin_root.attr("hooktel.session.source"), Some("startup"));

    // each counts its own responses: the fork's transcript copied the origin's, which stay the origin's
    let projects = home.join(".claude/projects");
    let (t_origin, t_fork) = (Transcript::read(&projects, &origin), Transcript::read(&projects, &fork));
    assert!(!t_fork.responses().is_empty() && t_fork.responses().is_disjoint(&t_origin.responses()));
    assert_eq!(root_tokens(&origin_root), t_origin.total_tokens(), "the origin's tokens");
    assert_eq!(root_tokens(&fork_root), t_fork.total_tokens(), "the fork's own tokens, not its copied history");
    let chats = spans.iter().filter(|s| s.trace_id == tf && s.attr("gen_ai.operation.name") == Some("chat")).count();
    assert_eq!(chats, t_fork.responses().len(), "one chat span per response of the fork's own");
    let counted: f64 = sidecar
        .metrics()
        .lines()
        .filter(|l| l.starts_with("hooktel_tokens_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        counted as u64,
        t_origin.total_tokens() + t_fork.total_tokens(),
        "hooktel_tokens_total counts each once"
    );
}

/// What a team test runs against: a receiver, a sidecar exporting to it, a throwaway HOME with the
/// hooks, onboarding done and the teammate mode set, a work directory, and the team mock.
struct Team {
    receiver: Receiver,
    sidecar: Sidecar,
    scratch: Scratch,
    home: std::path::PathBuf,
    work: std::path::PathBuf,
    mock: Mock,
}

impl Team {
    fn start(teammate_mode: &str) -> Team {
        let receiver = Receiver::start(Protocol::Http);
        let sidecar = Sidecar::start(Some(&receiver), &[]);
        let scratch = Scratch::new();
        let (home, work) = (scratch.dir("home"), scratch.dir("work"));
        std::fs::write(work.join("CLAUDE.md"), "# Project notes\nA throwaway project for hooktel's team test.\n")
            .unwrap();
        write_settings(&home);
        seed_interactive(&home, &work, serde_json::json!({ "teammateMode": teammate_mode }));
        let mock = Mock::start_script(&scratch, "team", &work, "mock_teams.py");
        Team { receiver, sidecar, scratch, home, work, mock }
    }
}

#[test]
fn a_real_in_process_team_is_one_tree_with_its_teammate_and_task() {
    let _cli = crate::support::claude::one_cli_at_a_time();
    let Team { receiver, sidecar, scratch, home, work, mock } = Team::start("in-process");
    let cli = Cli::for_sidecar(claude_bin(), &scratch, &home, &sidecar);
    let env = [("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1"), ("CLAUDE_CODE_ENABLE_TODO_TOOLS", "1")];
    let said = run_interactive(&cli, "team", &work, &mock, &env, "Start the team.", "TeammateIdle");
    let spans = receiver.wait_for(Duration::from_secs(60), "the team's session, ended", |s| {
        s.iter().any(|s| s.parent.is_empty() && s.attr("hooktel.session.end_reason").is_some())
    });
    let dump = || {
        format!("{said}\n{}", spans.iter().map(|s| format!("{} {:?}", s.name, s.attrs)).collect::<Vec<_>>().join("\n"))
    };
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    let trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == root.trace_id).collect();
    crate::support::assert_tree(&spans, &root.trace_id);
    let team = format!("session-{}", &root.trace_id[..8]);
    // agent teams on (the hook client says so): every span waits for its team and carries it
    let bare: Vec<&str> =
        trace.iter().filter(|s| s.attr("hooktel.team.name") != Some(team.as_str())).map(|s| s.name.as_str()).collect();
    assert!(bare.is_empty(), "spans without the team: {bare:?}");
    assert_eq!(root.attr("hooktel.team.name"), Some(team.as_str()), "{}", dump());
    assert_eq!(root.attr("hooktel.team.agent"), Some("team-lead"));

    // the teammate: one span named for it, under the Agent call that spawned it
    let mates: Vec<&&Span> = trace.iter().filter(|s| s.attr("hooktel.agent.kind") == Some("teammate")).collect();
    assert_eq!(mates.len(), 1, "{}", dump());
    let mate = mates[0];
    assert_eq!(mate.name, "invoke_agent worker");
    let spawner = trace.iter().find(|s| s.span_id == mate.parent).expect("the teammate's parent");
    assert_eq!(spawner.name, "execute_tool Agent");
    assert_eq!(mate.attr("hooktel.team.agent"), Some("worker"));
    assert!(mate.events.iter().any(|(n, _)| n == "TeammateIdle"), "idle periods are events: {:?}", mate.events);
    // its tools (the echo among them) and model calls hang under it
    let under = |s: &&&Span| s.parent == mate.span_id;
    let bash: Vec<&&Span> = trace.iter().filter(under).filter(|s| s.name == "execute_tool Bash").collect();
    assert_eq!(bash.len(), 1, "the teammate's echo: {}", dump());
    assert!(trace.iter().filter(under).any(|s| s.attr("gen_ai.operation.name") == Some("chat")), "its model calls");
    assert!(trace.iter().filter(under).all(|s| s.attr("hooktel.team.agent") == Some("worker")));

    // the task the lead created and the teammate completed
    let tasks: Vec<&&Span> = trace.iter().filter(|s| s.name.starts_with("task ")).collect();
    assert_eq!(tasks.len(), 1, "{}", dump());
    assert_eq!((tasks[0].name.as_str(), tasks[0].attr("hooktel.task.id")), ("task Echo check", Some("1")));
    assert_eq!(tasks[0].parent, mate.span_id, "in the agent that completed it");
    assert!(tasks[0].end_ns > tasks[0].start_ns && tasks[0].attr("hooktel.incomplete").is_none());

    // the team's metrics: its teammate, its task, its sessions, and the tokens of its model calls by role
    let metric = |m: &str| sidecar.metric(m);
    assert_eq!(metric(r#"hooktel_teammates_total{mode="in_process"}"#), 1.0);
    assert_eq!(metric(r#"hooktel_tasks_total{outcome="completed"}"#), 1.0);
    assert_eq!(metric(r#"hooktel_tasks_total{outcome="created"}"#), 1.0);
    let mate_tools = trace
        .iter()
        .filter(|s| s.name.starts_with("execute_tool") && s.attr("hooktel.team.agent") == Some("worker"))
        .count();
    assert_eq!(metric(r#"hooktel_team_tool_calls_total{role="teammate",status="ok"}"#), mate_tools as f64);
    assert_eq!(metric(r#"hooktel_team_sessions_total{role="lead"}"#), 1.0);
    let mates_tokens: u64 = trace
        .iter()
        .filter(|s| s.attr("gen_ai.operation.name") == Some("chat") && s.attr("hooktel.team.agent") == Some("worker"))
        .map(|s| root_tokens(s))
        .sum();
    let counted: f64 = ["input", "output", "cache_read", "cache_creation"]
        .iter()
        .map(|t| metric(&format!(r#"hooktel_team_tokens_total{{role="teammate",type="{t}"}}"#)))
        .sum();
    assert!(mates_tokens > 0);
    assert_eq!(counted as u64, mates_tokens, "the teammate's tokens, as its model calls carry them");
}

/// A private tmux server, killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new("tmux");
        c.args(["-L", &self.0, "-f", "/dev/null"]);
        c
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

#[test]
fn a_real_pane_teammate_links_to_its_lead_and_back() {
    let _cli = crate::support::claude::one_cli_at_a_time();
    let Team { receiver, sidecar, scratch, home, work, mock } = Team::start("tmux");
    let tmux =
        Tmux(format!("hooktel-test-{}-{}", std::process::id(), scratch.path().file_name().unwrap().to_string_lossy()));
    let claude = claude_bin();
    let debug = scratch.path().join("debug.lead.log");
    let lead = format!(
        "{} --dangerously-skip-permissions --debug-file {} 'Start the team.'; sleep 1",
        claude.display(),
        debug.display()
    );
    // the server's environment is what the lead and its teammates' panes get
    let started = tmux
        .cmd()
        .env_clear()
        .current_dir(&work)
        .envs([
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("TERM", "xterm-256color"),
            ("LANG", "C.UTF-8"),
            ("SHELL", "/bin/bash"),
            ("IS_SANDBOX", "1"),
            ("ANTHROPIC_API_KEY", "test-key"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_TELEMETRY", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1"),
            ("CLAUDE_CODE_ENABLE_TODO_TOOLS", "1"),
        ])
        .env("HOME", &home)
        .env("TMPDIR", scratch.dir("tmp"))
        .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{}", mock.port))
        .env("HOOKTEL_ADDR", sidecar.addr.to_string())
        .env("HOOKTEL_DATA_DIR", &sidecar.data_dir)
        .args(["new-session", "-d", "-s", "lead", "-x", "220", "-y", "60", &lead])
        .output()
        .unwrap_or_else(|e| panic!("cannot run tmux ({e}): run scripts/install-test-deps.sh (Debian's tmux)"));
    assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
    let events = |e: &str| sidecar.metric(&format!("hooktel_hook_events_total{{event=\"{e}\"}}"));
    crate::support::wait_until(Duration::from_secs(60), "the teammate to complete its task and idle", || {
        events("TaskCompleted") >= 1.0 && events("TeammateIdle") >= 1.0
    });
    std::thread::sleep(Duration::from_secs(2));
    // closing the panes (the tmux server's end) ends both sessions, each with its SessionEnd
    drop(tmux);
    crate::support::wait_until(Duration::from_secs(30), "both sessions to end", || events("SessionEnd") >= 2.0);

    let spans = receiver
        .wait_for(Duration::from_secs(60), "both roots", |s| s.iter().filter(|s| s.parent.is_empty()).count() == 2);
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    let lead_root = roots.iter().find(|r| r.links.is_empty()).expect("the lead's root links nowhere");
    let mate_root = roots.iter().find(|r| !r.links.is_empty()).expect("the teammate's root links to its lead");
    assert_eq!(mate_root.links[0].0, lead_root.trace_id);
    assert_eq!(mate_root.links[0].1, lead_root.span_id);
    assert_eq!(mate_root.links[0].2.get("hooktel.link.kind").map(String::as_str), Some("team_lead"));
    let team = format!("session-{}", &lead_root.trace_id[..8]);
    let bare: Vec<&str> =
        spans.iter().filter(|s| s.attr("hooktel.team.name") != Some(team.as_str())).map(|s| s.name.as_str()).collect();
    assert!(bare.is_empty(), "every span of both traces carries the team: {bare:?}");
    for (root, agent) in [(lead_root, "team-lead"), (mate_root, "worker")] {
        assert_eq!(root.attr("hooktel.team.name"), Some(team.as_str()), "{:?}", root.attrs);
        assert_eq!(root.attr("hooktel.team.agent"), Some(agent));
    }
    let agent = spans
        .iter()
        .find(|s| s.trace_id == lead_root.trace_id && s.name == "execute_tool Agent")
        .expect("the lead's Agent call");
    let to_mate: Vec<_> =
        agent.links.iter().map(|(t, s, a)| (t.as_str(), s.as_str(), a.get("hooktel.link.kind"))).collect();
    assert_eq!(to_mate, [(mate_root.trace_id.as_str(), mate_root.span_id.as_str(), Some(&"teammate".to_owned()))]);
    let task = spans.iter().find(|s| s.name == "task Echo check").expect("the task");
    assert_eq!(task.trace_id, mate_root.trace_id, "in the trace of the agent that completed it");
    assert_eq!(
        (task.links[0].0.as_str(), task.links[0].1.as_str()),
        (lead_root.trace_id.as_str(), lead_root.span_id.as_str())
    );
    assert!(task.start_ns < task.end_ns);
    for (metric, n) in [
        (r#"hooktel_teammates_total{mode="pane"}"#, 1.0),
        (r#"hooktel_team_sessions_total{role="lead"}"#, 1.0),
        (r#"hooktel_team_sessions_total{role="teammate"}"#, 1.0),
        (r#"hooktel_tasks_total{outcome="completed"}"#, 1.0),
    ] {
        assert_eq!(sidecar.metric(metric), n, "{metric}");
    }
}

/// A sidecar that never saw the lead (its hooks went to another sidecar) still links a pane
/// teammate to its lead, from the team's file `~/.claude/teams/<team>/config.json` (the captured
/// 2.1.332 run's teammate payloads, the team file as Claude Code wrote it).
#[test]
fn a_pane_teammate_links_to_its_lead_from_the_team_file() {
    const LEAD: &str = "859c7e3e8fa04df28d03c77a415fe327";
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/teams/tmux-panes-2.1.332");
    let home = crate::support::temp_dir("team-home");
    let team = home.path().join(".claude/teams/session-859c7e3e");
    std::fs::create_dir_all(&team).unwrap();
    std::fs::create_dir_all(home.path().join(".claude/projects")).unwrap();
    std::fs::copy(fixtures.join("teamcfg.26831.json"), team.join("config.json")).unwrap();
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::builder().exporting_to(&receiver).env("HOME", &home.path().to_string_lossy()).start();
    for line in std::fs::read_to_string(fixtures.join("hooks.jsonl")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["payload"]["session_id"].as_str().unwrap().starts_with("34e8d59d") {
            assert_eq!(sidecar.request("POST", "/v1/hooks", v["payload"].to_string().as_bytes()).0, 200);
        }
    }
    let spans =
        receiver.wait_for(Duration::from_secs(30), "the teammate's root", |s| s.iter().any(|s| s.parent.is_empty()));
    let root = spans.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.attr("hooktel.team.name"), Some("session-859c7e3e"));
    let links: Vec<(&str, Option<&String>)> =
        root.links.iter().map(|(t, _, a)| (t.as_str(), a.get("hooktel.link.kind"))).collect();
    assert_eq!(links, [(LEAD, Some(&"team_lead".to_owned()))], "{:?}", root.attrs);
}
