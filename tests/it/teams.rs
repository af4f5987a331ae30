//! Forks (and, to come, agent teams) with the real Claude Code CLI: `--resume <id> --fork-session`
//! starts a new session whose transcript begins with copies of its origin's responses. Its trace's
//! root says it began as a fork, links to the origin's root, and counts only its own responses:
//! the copied history is the origin's, counted once, there.

use std::time::Duration;

use crate::support::claude::{claude_bin, write_settings, Cli, Mock, Scratch, Transcript};
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
    let cli = Cli {
        bin: claude_bin(),
        scratch: &scratch,
        home: home.clone(),
        addr: sidecar.addr.to_string(),
        data_dir: sidecar.data_dir.clone(),
    };
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
