//! Tests of agent teams in the span tree: in-process and pane teammates, the spans they carry their
//! team on, the links between a lead and its teammates, tasks from creation to completion, forked
//! sessions, and the bound on what a session holds of its teammates.

use super::*;
use crate::model::ids::{self, SpanKey};
use crate::model::span::SpanLink;
use crate::pipeline::sessions::state::MAX_TEAMMATES;
use crate::pipeline::sessions::{teams, SEC};
use crate::usage::accountant::SessionUsage;

fn by_call<'a>(spans: &'a [SpanRecord], call: &str) -> &'a SpanRecord {
    spans.iter().find(|r| r.attr("gen_ai.tool.call.id").as_deref() == Some(call)).unwrap()
}

/// An in-process teammate (Claude Code 2.1.329 and 2.1.332): one span named for it under the
/// `Agent` call that spawned it, from its first start to its last stop, its wake-up and idle
/// periods as events, its tools under it; every span carries the team and its agent's name;
/// the task it completed is a span from its creation by the lead to its completion.
#[test]
fn an_in_process_teammate_is_a_span_under_its_agent_call_with_its_task() {
    for (run, spawn) in [("in-process-2.1.332", "toolu_01qaVEetaQy42JWBldMsp4xn2t"), ("in-process-2.1.329", "")] {
        let spans = team_run(run);
        assert_tree(&spans);
        let mates: Vec<&SpanRecord> =
            spans.iter().filter(|r| r.attr("hooktel.agent.kind").as_deref() == Some("teammate")).collect();
        assert_eq!(mates.len(), 1, "{run}");
        let mate = mates[0];
        assert_eq!(mate.name, "invoke_agent worker");
        assert!(!mate.incomplete, "{run}: closed at its last stop");
        if !spawn.is_empty() {
            assert_eq!(mate.parent, Some(by_call(&spans, spawn).span_id), "{run}: under its Agent call");
            // started 6.49, stopped 9.07, woke 9.37, stopped 9.56 (s past 1796193000)
            let cs = |ns: u64| (ns + 5 * MS) / (10 * MS);
            assert_eq!((cs(mate.start), cs(mate.end)), (179_619_300_649, 179_619_300_956));
        }
        let idle = mate.events.iter().filter(|e| e.name == "TeammateIdle").count();
        let woke = mate.events.iter().filter(|e| e.name == "SubagentStart").count();
        assert!(idle >= 1 && woke >= 1, "{run}: wake-ups visible: {:?}", mate.events);
        let tools = spans.iter().filter(|r| r.key == SpanKey::Tool && r.parent == Some(mate.span_id)).count();
        assert!(tools >= 3, "{run}: the teammate's tools hang under it");
        for r in &spans {
            assert_eq!(
                r.attr("hooktel.team.name").as_deref(),
                Some(teams::own_team(&r.session_id).as_str()),
                "{}",
                r.name
            );
        }
        assert_eq!(mate.attr("hooktel.team.agent").as_deref(), Some("worker"));
        let root = spans.iter().find(|r| r.key == SpanKey::Root).unwrap();
        assert_eq!(root.attr("hooktel.team.agent").as_deref(), Some("team-lead"));
        let tasks: Vec<&SpanRecord> = spans.iter().filter(|r| r.key == SpanKey::Task).collect();
        assert_eq!(tasks.len(), 1, "{run}");
        assert_eq!(
            (tasks[0].name.as_str(), tasks[0].attr("hooktel.task.id").as_deref()),
            ("task Echo check", Some("1"))
        );
        assert_eq!(tasks[0].parent, Some(mate.span_id), "{run}: in the agent that completed it");
        assert!(tasks[0].end > tasks[0].start && !tasks[0].incomplete && tasks[0].links.is_empty());
    }
}

/// With agent teams on (the hook client says so), a session's spans wait until its team is
/// known, so that every span of a team's traces carries the team and its agent's name, even
/// handed out as the run goes (here: a tick 5 s after every event); without it, spans the
/// session handed out before its team formed do not.
#[test]
fn with_agent_teams_on_every_span_carries_its_team() {
    for run in ["in-process-2.1.332", "tmux-panes-2.1.332"] {
        for teams_on in [true, false] {
            let mut s = Sessions::new(settings());
            let mut out = Vec::new();
            for mut ev in team_events(run) {
                let at = ev.at;
                ev.agent_teams = teams_on;
                s.ingest(ev, at, &mut out);
                s.tick(at + 5 * SEC, &mut out);
            }
            s.tick(u64::MAX / 2, &mut out);
            let bare: Vec<&str> =
                out.iter().filter(|r| r.attr("hooktel.team.name").is_none()).map(|r| r.name.as_str()).collect();
            assert_eq!(bare.is_empty(), teams_on, "{run}, teams on {teams_on}: without the team: {bare:?}");
            assert!(out
                .iter()
                .all(|r| r.attr("hooktel.team.name").is_none() || r.attr("hooktel.team.agent").is_some()));
        }
    }
}

/// Teammates at work or idle count as active while their session is open; none once it ended.
#[test]
fn teammates_are_active_while_their_session_is_open() {
    for (run, active) in [("in-process-2.1.332", 1), ("tmux-panes-2.1.332", 1)] {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        let mut most = 0;
        for ev in team_events(run) {
            let at = ev.at;
            s.ingest(ev, at, &mut out);
            most = most.max(s.teammates_active());
        }
        assert_eq!(most, active, "{run}");
        assert_eq!(s.teammates_active(), 0, "{run}: every session ended");
    }
}

/// Pane teammates (tmux) are sessions of their own: the teammate's root links to its lead's,
/// the lead's `Agent` call to the teammate's trace; both carry the team; the task the lead
/// created and the teammate completed is a span in the teammate's trace, linked to the lead.
#[test]
fn a_pane_teammate_links_to_its_lead_and_back() {
    for (run, lead, mate, spawn) in [
        ("tmux-panes-2.1.332", "859c7e3e-8fa0-4df2-8d03-c77a415fe327", "34e8d59d", "toolu_01cvk1Vv2Bzz6DZ2dERsnIQcrz"),
        ("tmux-panes-2.1.329", "", "", ""),
    ] {
        let spans = team_run(run);
        let roots: Vec<&SpanRecord> = spans.iter().filter(|r| r.key == SpanKey::Root).collect();
        assert_eq!(roots.len(), 2, "{run}");
        let team = roots.iter().filter_map(|r| r.attr("hooktel.team.name")).collect::<HashSet<_>>();
        assert_eq!(team.len(), 1, "{run}: one team: {team:?}");
        let lead_root = roots.iter().find(|r| r.links.is_empty()).expect("the lead's root links nowhere");
        let mate_root = roots.iter().find(|r| !r.links.is_empty()).expect("the teammate's root links");
        assert_eq!(
            mate_root.links,
            [SpanLink { trace_id: lead_root.trace_id, span_id: lead_root.span_id, kind: "team_lead".into() }]
        );
        assert_eq!(mate_root.attr("hooktel.team.agent").as_deref(), Some("worker"));
        assert_eq!(lead_root.attr("hooktel.team.agent").as_deref(), Some("team-lead"));
        if !lead.is_empty() {
            assert_eq!(&*lead_root.session_id, lead);
            assert!(mate_root.session_id.starts_with(mate));
            let agent = by_call(&spans, spawn);
            assert_eq!(agent.links.len(), 1, "the lead's Agent call links to the teammate");
            assert_eq!((agent.links[0].trace_id, agent.links[0].kind.as_str()), (mate_root.trace_id, "teammate"));
        }
        let mates_spans = spans.iter().filter(|r| r.trace_id == mate_root.trace_id);
        assert!(mates_spans.clone().all(|r| r.attr("hooktel.team.agent").as_deref() == Some("worker")));
        let task = spans.iter().find(|r| r.key == SpanKey::Task).expect("the task");
        assert_eq!(task.trace_id, mate_root.trace_id, "in the trace of the agent that completed it");
        assert_eq!(task.links[0].trace_id, lead_root.trace_id);
        assert_eq!(task.attr("hooktel.task.created_by").as_deref(), Some(&*lead_root.session_id));
        assert!(task.end > task.start, "from the lead's TaskCreated to the teammate's TaskCompleted");
    }
}

/// A sidecar that never saw the lead (its hooks went elsewhere) links a pane teammate to it
/// from the team's file alone; when the file and the lead's own answer disagree, no link.
#[test]
fn a_pane_teammate_links_from_the_team_file_and_never_on_disagreement() {
    const LEAD: &str = "859c7e3e-8fa0-4df2-8d03-c77a415fe327";
    const MATE: &str = "34e8d59d";
    for (with_lead, file_says, linked) in [(false, LEAD, true), (true, "859c7e3e-0000-0000-0000-000000000000", false)] {
        let mut s = Sessions::new(settings());
        let mut out = Vec::new();
        for mut ev in team_events("tmux-panes-2.1.332") {
            let mine = ev.session_id.starts_with(MATE);
            if !mine && !with_lead {
                continue;
            }
            let at = ev.at;
            if mine && ev.team.is_some() {
                ev.team_lead = Some(file_says.to_owned());
            }
            s.ingest(ev, at, &mut out);
        }
        s.tick(u64::MAX / 2, &mut out);
        let mate = out.iter().find(|r| r.key == SpanKey::Root && r.session_id.starts_with(MATE)).unwrap();
        assert_eq!(mate.attr("hooktel.team.name").as_deref(), Some("session-859c7e3e"));
        let want = linked.then(|| SpanLink {
            trace_id: ids::trace_id(LEAD),
            span_id: ids::span_id(LEAD, SpanKey::Root, LEAD),
            kind: "team_lead".into(),
        });
        assert_eq!(mate.links.first(), want.as_ref(), "lead seen: {with_lead}, file says {file_says}");
    }
}

/// A task nobody completed closes as incomplete with its creator's session.
#[test]
fn a_task_never_completed_closes_incomplete() {
    let payloads = [
        (simple("SessionStart", json!({})), MS),
        (simple("UserPromptSubmit", json!({})), 2 * MS),
        (simple("TaskCreated", json!({"task_id": "7", "task_subject": "never done"})), 3 * MS),
        (simple("SessionEnd", json!({"reason": "other"})), 9 * MS),
    ];
    let spans = run(&payloads);
    let task = spans.iter().find(|r| r.key == SpanKey::Task).unwrap();
    assert_eq!((task.name.as_str(), task.incomplete, task.start, task.end), ("task never done", true, 3 * MS, 9 * MS));
}

/// A `--fork-session` session: its root says it began as a fork and links to its origin's root
/// (learnt from its transcript's copied responses), and counts only its own responses.
#[test]
fn a_fork_links_to_its_origin_and_counts_only_its_own_usage() {
    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/transcripts/fork-2.1.329");
    const ORIGIN: &str = "082b7548-ad4a-4949-86a5-67e6cb172c59";
    const FORK: &str = "ff7c266d-769e-439d-a6c5-940a3331fc54";
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    let hooks =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/teams/fork-2.1.329/hooks.jsonl"))
            .unwrap();
    // the fork's first run, up to its first SessionEnd
    let mut payloads: Vec<Value> = Vec::new();
    for line in hooks.lines() {
        let p = serde_json::from_str::<Value>(line).unwrap()["payload"].clone();
        if p["session_id"] == FORK {
            let end = p["hook_event_name"] == "SessionEnd";
            payloads.push(p);
            if end {
                break;
            }
        }
    }
    let bytes = std::fs::read(format!("{FIXTURE}/-home-dev-rf329-work/{FORK}.jsonl")).unwrap();
    let deltas = crate::usage::logs::claude_code::Ledger::default()
        .read(&bytes, &crate::usage::pricing::PriceTable::builtin())
        .deltas;
    for (i, p) in payloads.iter().enumerate() {
        let at = (i as u64 + 1) * 100 * MS;
        s.ingest(event(p, at), at, &mut out);
        if i == 1 {
            for delta in deltas.clone() {
                s.add_usage(&SessionUsage { session_id: FORK.into(), delta }, at);
            }
        }
    }
    s.tick(u64::MAX / 2, &mut out);
    let root = out.iter().find(|r| r.key == SpanKey::Root).unwrap();
    assert_eq!(root.attr("hooktel.session.source").as_deref(), Some("fork"));
    assert_eq!(root.attr("hooktel.session.forked_from").as_deref(), Some(ORIGIN));
    assert_eq!(
        root.links,
        [SpanLink {
            trace_id: ids::trace_id(ORIGIN),
            span_id: ids::span_id(ORIGIN, SpanKey::Root, ORIGIN),
            kind: "forked_from".into()
        }]
    );
    assert_eq!(root.usage.as_ref().unwrap().tokens.output, 50, "only the fork's own two responses");
    assert_eq!(out.iter().filter(|r| r.key == SpanKey::Chat).count(), 2);
}

/// A flood of made-up teammates and teammate spawns in one session: the teammates and the held
/// `Agent` calls of pane teammates it remembers stop at `MAX_TEAMMATES`; past it a teammate is a
/// plain subagent, a spawn a plain tool call.
#[test]
fn teammates_held_per_session_are_bounded() {
    let mut s = Sessions::new(settings());
    let mut out = Vec::new();
    s.ingest(event(&simple("SessionStart", json!({})), MS), MS, &mut out);
    for i in 0..MAX_TEAMMATES as u64 + 300 {
        let name = format!("w{i}");
        let start = simple("SubagentStart", json!({"agent_id": format!("a{name}-{i:016x}"), "agent_type": name}));
        let spawn = tool(
            "PostToolUse",
            &format!("toolu_{i}"),
            json!({"tool_name": "Agent", "tool_response": {"status": "teammate_spawned", "agentId": format!("{name}@session-x"),
                   "team_name": format!("session-{}", &S1[..8]), "name": name}}),
        );
        for p in [start, spawn] {
            s.ingest(event(&p, 2 * MS), 2 * MS, &mut out);
        }
    }
    let state = &s.live[S1];
    assert_eq!((state.teammates.len(), state.pane_spawns.len()), (MAX_TEAMMATES, MAX_TEAMMATES));
}
