//! What the registry counts of finished work: a span (tool calls and their durations, turns,
//! subagents, teams' work) and a usage delta (tokens and cost; cost also by repository and branch),
//! each under its agent, with the (agent, name, project, repo) combinations capped; and the
//! exemplars a finished tool or model-call span leaves on the series it moved.

use crate::metrics::caps::PairCap;
use crate::metrics::caps::MAX_LABEL_BYTES;
use crate::metrics::exemplars::Exemplar;
use crate::metrics::{Metrics, Place};
use crate::model::agent::Agent;
use crate::model::ids::SpanKey;
use crate::model::payload::truncate_utf8;
use crate::model::semconv;
use crate::model::span::{SpanRecord, Subject, TeamMember, TeamRole, ToolStatus};
use crate::model::tokens::TokenUsage;

impl Metrics {
    /// Count usage newly read from `agent`'s session log, spent at `place`.
    pub fn count_usage(&self, agent: Agent, model: &str, place: &Place, usage: &TokenUsage, cost: f64, priced: bool) {
        let agent = agent.name();
        let model = self.models.label(model);
        let (project, repo) = (self.projects.label(&place.project), self.repos.label(&place.repo));
        let (model, project, repo) =
            self.combine(&self.model_projects, "hooktel_tokens_total", agent, model, project, repo);
        let labels = |kind: &'static str| -> Vec<&str> {
            let mut l = vec![agent, model, kind];
            l.extend(self.place_values(project, repo));
            l
        };
        for (kind, n) in [
            ("input", usage.input),
            ("output", usage.output),
            ("cache_read", usage.cache_read),
            ("cache_creation", usage.cache_write()),
        ] {
            self.tokens.with_label_values(&labels(kind)).inc_by(n);
        }
        let mut cost_labels = vec![agent, model];
        cost_labels.extend(self.place_values(project, repo));
        self.cost.with_label_values(&cost_labels).inc_by(cost.max(0.0));
        if self.repo_label {
            let branch = truncate_utf8(&place.branch, MAX_LABEL_BYTES);
            let pair = match self.repo_branches.admit(&[agent, repo, branch]) {
                true => [agent, repo, branch],
                false => {
                    self.label_overflow.with_label_values(&["hooktel_branch_cost_usd_total"]).inc();
                    [agent, "other", "other"]
                }
            };
            self.branch_cost.with_label_values(&pair).inc_by(cost.max(0.0));
        }
        if !priced {
            let n = usage.total();
            self.unpriced_tokens.with_label_values(&[agent, model]).inc_by(n);
            let mut logged = self.unpriced_logged.lock().unwrap_or_else(|e| e.into_inner());
            if logged.insert(model.to_owned()) {
                tracing::warn!(model, "Model not in the price table; its tokens are counted at cost 0");
            }
        }
    }

    /// Count a finished span: tool calls and their durations, turns, subagents, model calls.
    /// The cost of a model call that read MCP servers' tool results, each server counted its share
    /// (`shares`: its part of the results read). Servers are capped with the tool calls' `mcp_server`.
    pub fn count_mcp_cost(&self, agent: Agent, shares: &[(String, f64)], cost: f64) {
        for (server, share) in shares {
            let server = self.mcp_servers.label(server);
            self.mcp_cost.with_label_values(&[agent.name(), server]).inc_by((cost * share).max(0.0));
        }
    }

    pub fn span_finished(&self, rec: &SpanRecord) {
        let agent = rec.agent.name();
        self.model_call(rec);
        if rec.key == SpanKey::Chat {
            self.usage_exemplars(rec);
        }
        match rec.key {
            SpanKey::Tool => {
                let name = rec.subject.as_ref().map_or("", Subject::name);
                let tool = self.tools.label(name);
                let status = rec.tool.map_or(ToolStatus::Incomplete, |t| t.status);
                let (project, repo) = (self.projects.label(&rec.project), self.repos.label(&rec.repo));
                let (tool, project, repo) =
                    self.combine(&self.tool_projects, "hooktel_tool_calls_total", agent, tool, project, repo);
                // empty for a tool that is not an MCP server's; `other` with its tool, so that a capped
                // tool's calls stay in one series rather than one per server
                let server = match semconv::mcp_server(name) {
                    None => "",
                    Some(_) if tool == "other" => "other",
                    Some(s) => self.mcp_servers.label(s),
                };
                let mut labels = vec![agent, tool, status.label(), server];
                labels.extend(self.place_values(project, repo));
                self.tool_calls.with_label_values(&labels).inc();
                let mut series =
                    vec![("agent", agent), ("tool", tool), ("status", status.label()), ("mcp_server", server)];
                series.extend(self.place_labels(project, repo));
                self.exemplars.offer("hooktel_tool_calls_total", &series, exemplar(rec, 1.0));
                if let Some(forge) = rec.tool.and_then(|t| t.pull_request) {
                    // at most three forges times the capped places of its call: no cap of its own
                    let mut labels = vec![agent, forge.label()];
                    labels.extend(self.place_values(project, repo));
                    self.pull_requests.with_label_values(&labels).inc();
                    let mut series = vec![("agent", agent), ("provider", forge.label())];
                    series.extend(self.place_labels(project, repo));
                    self.exemplars.offer("hooktel_pull_requests_total", &series, exemplar(rec, 1.0));
                }
                if let Some(m) = &rec.team {
                    self.team_tool_calls.with_label_values(&[m.role().label(), status.label()]).inc();
                }
                if status != ToolStatus::Incomplete {
                    // Claude Code's own timing when it sent one, else the span's
                    let ms = rec.tool.and_then(|t| t.duration_ms);
                    let seconds = ms.map_or(rec.end.saturating_sub(rec.start) as f64 / 1e9, |ms| ms as f64 / 1000.0);
                    self.tool_duration.with_label_values(&[tool, server]).observe(seconds);
                    let series = [("tool", tool), ("mcp_server", server)];
                    self.exemplars.offer("hooktel_tool_duration_seconds", &series, exemplar(rec, seconds));
                }
            }
            SpanKey::Turn => {
                if let Some(outcome) = &rec.turn {
                    self.turns.with_label_values(&[agent, outcome.label()]).inc();
                }
            }
            SpanKey::Subagent if matches!(rec.subject, Some(Subject::Teammate(_))) => {
                self.teammates.with_label_values(&["in_process"]).inc();
            }
            SpanKey::Subagent => {
                let agent = rec.subject.as_ref().map_or("", Subject::name);
                self.subagents.with_label_values(&[self.agent_types.label(agent)]).inc();
            }
            SpanKey::Task => {
                self.tasks.with_label_values(&[if rec.incomplete { "incomplete" } else { "completed" }]).inc();
            }
            SpanKey::Root | SpanKey::Segment if rec.team.is_some() => {
                let role = rec.team.as_ref().map_or(TeamRole::Lead, TeamMember::role);
                self.team_sessions.with_label_values(&[role.label()]).inc();
                if role == TeamRole::Teammate {
                    self.teammates.with_label_values(&["pane"]).inc();
                }
            }
            SpanKey::Chat if rec.team.is_some() => {
                let role = rec.team.as_ref().map_or(TeamRole::Lead, TeamMember::role).label();
                if let Some(u) = &rec.usage {
                    let t = &u.tokens;
                    let kinds = [
                        ("input", t.input),
                        ("output", t.output),
                        ("cache_read", t.cache_read),
                        ("cache_creation", t.cache_write()),
                    ];
                    for (kind, n) in kinds {
                        self.team_tokens.with_label_values(&[role, kind]).inc_by(n);
                    }
                    self.team_cost.with_label_values(&[role]).inc_by(u.cost);
                }
            }
            _ => {}
        }
    }

    /// A model call's exemplars on the token and cost series its usage was counted under (by
    /// `count_usage`, when the transcript was read): its tokens of each type, its cost.
    fn usage_exemplars(&self, rec: &SpanRecord) {
        let Some(usage) = &rec.usage else { return };
        let Some(model) = usage.models.first() else { return };
        let agent = rec.agent.name();
        let model = self.models.label(model);
        let (project, repo) = (self.projects.label(&rec.project), self.repos.label(&rec.repo));
        // the labels count_usage chose: the combination, or `other` in each if the cap refused it
        let (model, project, repo) = match self.model_projects.admitted(&self.combination(agent, model, project, repo))
        {
            true => (model, project, repo),
            false if !self.project_label && !self.repo_label => (model, project, repo),
            false => ("other", "other", "other"),
        };
        let t = &usage.tokens;
        let kinds = [
            ("input", t.input),
            ("output", t.output),
            ("cache_read", t.cache_read),
            ("cache_creation", t.cache_write()),
        ];
        for (kind, n) in kinds.into_iter().filter(|(_, n)| *n > 0) {
            let mut series = vec![("agent", agent), ("model", model), ("type", kind)];
            series.extend(self.place_labels(project, repo));
            self.exemplars.offer("hooktel_tokens_total", &series, exemplar(rec, n as f64));
        }
        if usage.cost > 0.0 {
            let mut series = vec![("agent", agent), ("model", model)];
            series.extend(self.place_labels(project, repo));
            self.exemplars.offer("hooktel_cost_usd_total", &series, exemplar(rec, usage.cost));
        }
    }

    /// The `project` and `repo` labels a series carries, those switched off left out.
    fn place_labels<'a>(&self, project: &'a str, repo: &'a str) -> impl Iterator<Item = (&'static str, &'a str)> {
        let project = self.project_label.then_some(("project", project));
        let repo = self.repo_label.then_some(("repo", repo));
        project.into_iter().chain(repo)
    }

    /// The values of [`place_labels`](Self::place_labels), in the registry's label order.
    fn place_values<'a>(&self, project: &'a str, repo: &'a str) -> impl Iterator<Item = &'a str> {
        self.place_labels(project, repo).map(|(_, v)| v)
    }

    /// What a metric's cap counts: the agent and the name with the place labels switched on (an
    /// empty value for one switched off).
    fn combination<'a>(&self, agent: &'a str, name: &'a str, project: &'a str, repo: &'a str) -> [&'a str; 4] {
        [agent, name, if self.project_label { project } else { "" }, if self.repo_label { repo } else { "" }]
    }

    /// An (agent, name, project, repo) combination within the metric's series cap, else `other` in
    /// the name and the place (never in the agent: a closed set), counted. With neither place label
    /// there is nothing to cap: the agents times the capped names.
    fn combine<'a>(
        &self,
        cap: &PairCap,
        metric: &str,
        agent: &'a str,
        name: &'a str,
        project: &'a str,
        repo: &'a str,
    ) -> (&'a str, &'a str, &'a str) {
        if (!self.project_label && !self.repo_label) || cap.admit(&self.combination(agent, name, project, repo)) {
            return (name, project, repo);
        }
        self.label_overflow.with_label_values(&[metric]).inc();
        ("other", "other", "other")
    }
}

/// The exemplar a span leaves: its trace (the session's), its id, what it added, when it ended.
fn exemplar(rec: &SpanRecord, value: f64) -> Exemplar {
    let at_ns = if rec.end > 0 { rec.end } else { crate::model::time::now_ns() };
    Exemplar { trace_id: rec.trace_id, span_id: rec.span_id, value, at_ns }
}
