//! Claude Code's own telemetry in a session: the model calls it reports (timing their chat spans,
//! failed tries as events, a request that failed for good as an ERROR chat span), its tool reports
//! (permission decision and wait, execution time) and its session counters; and how long the
//! session's model and tool calls, and its end, wait for those reports ([`Native::wait`]: learned from
//! how late its batches arrive). What a session holds of it is bounded by `MAX_NATIVE`.

use std::collections::{HashMap, HashSet};

use opentelemetry::trace::SpanId;
use opentelemetry::KeyValue;

use super::span::{OpenSpan, Parent};
use super::state::{SessionState, MAX_NATIVE, MAX_WAITING};
use crate::model::event::{ApiCall, ToolTiming};
use crate::model::ids::SpanKey;
use crate::model::semconv::{self, int};
use crate::model::span::{ChatCall, SpanEvent, Status};
use crate::model::time::ms_to_ns;

/// What a session holds of Claude Code's own telemetry (each map bounded by `MAX_NATIVE`, those of
/// reports waiting for their match by `MAX_WAITING`).
#[derive(Default)]
pub(super) struct Native {
    pub(super) seen: bool,
    /// Its hooks said Claude Code runs it with its telemetry on: its first batch is coming.
    pub(super) on: bool,
    /// The longest one of its batches took to arrive after its oldest record (at most
    /// `MAX_NATIVE_WAIT`): about Claude Code's export interval.
    pub(super) batch_delay: Option<u64>,
    pub(super) chat_by_request: HashMap<String, SpanId>,
    pub(super) pending: HashMap<String, (u64, ApiCall)>,
    pub(super) failed_try: HashMap<String, (u64, ApiCall, Option<String>)>,
    pub(super) failed_turns: HashSet<String>,
    pub(super) tool_by_span: HashMap<String, String>,
    pub(super) waits: HashMap<String, (u64, ToolTiming)>,
    pub(super) counters: Vec<(&'static str, f64)>,
}

/// Longest a session's model and tool calls (and its end) wait for Claude Code's reports, however
/// late its batches arrive: three times Claude Code's default export interval (5 s). An interval
/// past it (or a clock far apart from the sidecar's) leaves some calls timed by the transcripts.
pub(crate) const MAX_NATIVE_WAIT: u64 = 15 * crate::model::time::NS_PER_SEC;

/// Claude Code's default export interval (`OTEL_LOGS_EXPORT_INTERVAL`): how late a session's first
/// batch can come, when its hooks say its telemetry is on.
pub(crate) const DEFAULT_INTERVAL: u64 = 5 * crate::model::time::NS_PER_SEC;

/// Added to a session's batch delay: the next batch's export can take a little longer, and the
/// pipeline hands spans out on a 250 ms tick.
pub(crate) const BATCH_MARGIN: u64 = crate::model::time::NS_PER_SEC;

impl Native {
    /// How long the session's model and tool calls, and its end, wait for Claude Code's reports:
    /// `settle` when its telemetry is neither expected (the receiver is on) nor seen; else at least
    /// `native_settle`; once its batches have come, the longest of them took, before that (its hooks
    /// said its telemetry is on) `DEFAULT_INTERVAL`, plus `BATCH_MARGIN`, `MAX_NATIVE_WAIT` at most
    /// (a longer `native_settle` is kept).
    pub(super) fn wait(&self, expected: bool, settle: u64, native_settle: u64) -> u64 {
        if !expected && !self.seen {
            return settle;
        }
        let delay = match self.batch_delay {
            Some(d) => Some(d),
            None if self.on && expected => Some(DEFAULT_INTERVAL),
            None => None,
        };
        let learned = delay.map_or(0, |d| (d + BATCH_MARGIN).min(MAX_NATIVE_WAIT));
        settle.max(native_settle).max(learned)
    }

    /// A batch of the session's telemetry arrived at `now`, its oldest record made at `oldest`.
    pub(super) fn batch(&mut self, oldest: u64, now: u64) {
        self.seen = true;
        let delay = now.saturating_sub(oldest).min(MAX_NATIVE_WAIT);
        self.batch_delay = Some(self.batch_delay.map_or(delay, |d| d.max(delay)));
    }

    /// About the bytes it holds: each id remembered, each report waiting with its texts.
    pub(super) fn held(&self) -> usize {
        let call = |c: &ApiCall| {
            256 + c.model.len()
                + c.request_id.as_ref().map_or(0, String::len)
                + c.error.as_ref().map_or(0, String::len)
                + c.status_code.as_ref().map_or(0, String::len)
        };
        let ids = self.chat_by_request.len() + self.failed_turns.len() + 2 * self.tool_by_span.len();
        ids * 96
            + self.pending.iter().map(|(k, (_, c))| k.len() + call(c)).sum::<usize>()
            + self
                .failed_try
                .iter()
                .map(|(k, (_, c, a))| k.len() + call(c) + a.as_ref().map_or(0, String::len))
                .sum::<usize>()
            + self.waits.len() * 1280
            + self.counters.len() * 32
    }
}

impl SessionState {
    /// Claude Code's report of a tool call, found by its `tool_use_id` or, for a permission wait
    /// (which has none), by Claude Code's span of the call; a wait reported before that span waits
    /// for it. Reports of a tool span already handed out come too late and are dropped.
    pub(super) fn tool_timing(&mut self, timing: ToolTiming, at: u64) {
        self.native.seen = true;
        if let (Some(span), Some(call)) = (&timing.otel_tool_span, &timing.tool_use_id) {
            if self.native.tool_by_span.len() < MAX_NATIVE {
                self.native.tool_by_span.insert(span.clone(), call.clone());
            }
            if let Some((at, wait)) = self.native.waits.remove(span) {
                self.time_tool(call, wait, at);
            }
        }
        let span = timing.otel_tool_span.as_ref();
        match timing.tool_use_id.clone().or_else(|| span.and_then(|s| self.native.tool_by_span.get(s).cloned())) {
            Some(call) => self.time_tool(&call, timing, at),
            None if self.native.waits.len() < MAX_WAITING => {
                if let Some(span) = span.cloned() {
                    self.native.waits.insert(span, (at, timing));
                }
            }
            None => {}
        }
    }

    /// Put a tool call's decision, permission wait and execution time on its span.
    fn time_tool(&mut self, call_id: &str, timing: ToolTiming, at: u64) {
        let id = self.span_id(SpanKey::Tool, call_id);
        let Some(span) = self.spans.get_mut(&id) else { return };
        let decided = timing.decision.is_some();
        if let Some(d) = timing.decision {
            span.set_attr(KeyValue::new(semconv::TOOL_DECISION, d));
        }
        if let Some(s) = timing.decision_source {
            span.set_attr(KeyValue::new(semconv::TOOL_DECISION_SOURCE, s));
        }
        match timing.wait_ms {
            Some(wait) => {
                span.exact = true;
                span.set_attr(KeyValue::new(semconv::TOOL_PERMISSION_WAIT_MS, int(wait)));
            }
            // from the call's start to the decision (the PreToolUse hooks' own time included)
            None if decided && !span.exact && !span.start_estimated && at >= span.start => {
                let wait = (at - span.start) / 1_000_000;
                span.set_attr(KeyValue::new(semconv::TOOL_PERMISSION_WAIT_MS, int(wait)));
            }
            None => {}
        }
        if let Some(ms) = timing.execution_ms {
            span.set_attr(KeyValue::new(semconv::TOOL_EXECUTION_MS, int(ms)));
        }
    }

    /// One of Claude Code's session counters, added up (or set, when cumulative) on the root span.
    pub(super) fn session_counter(&mut self, attr: &'static str, value: f64, cumulative: bool) {
        self.native.seen = true;
        let counters = &mut self.native.counters;
        let total = match counters.iter_mut().find(|(a, _)| *a == attr) {
            Some((_, total)) => {
                // a sum of deltas stops at the counter's bound: it never grows past what a span holds
                *total = if cumulative { value } else { (*total + value).min(semconv::MAX_SESSION_COUNTER) };
                *total
            }
            None => {
                counters.push((attr, value));
                value
            }
        };
        self.top.set_attr(semconv::session_counter(attr, total));
    }

    /// Claude Code's report of one API request. A success times its chat span exactly (now, or when
    /// its response is read); a failed try is an `api_error` event on its turn (a retry storm shows as
    /// many), and the last failed try of a turn that failed is a chat span of its own, in ERROR.
    pub(super) fn model_call(
        &mut self,
        call: ApiCall,
        at: u64,
        now: u64,
        prompt_id: Option<String>,
        agent_id: Option<String>,
        max_events: usize,
    ) {
        self.native.seen = true;
        if call.error.is_none() {
            let Some(rid) = call.request_id.clone() else { return };
            match self.native.chat_by_request.get(&rid).copied() {
                Some(id) => {
                    if let Some(span) = self.spans.get_mut(&id) {
                        time_chat(span, &call, at, now);
                    }
                }
                None if self.native.pending.len() < MAX_WAITING => {
                    self.native.pending.insert(rid, (at, call));
                }
                None => {}
            }
            return;
        }
        let mut attrs = vec![
            KeyValue::new(semconv::REQUEST_MODEL, call.model.clone()),
            KeyValue::new(semconv::API_DURATION_MS, int(call.duration_ms)),
        ];
        attrs.extend(call.attempt.map(|a| KeyValue::new(semconv::API_ATTEMPT, int(a))));
        attrs.extend(call.error.clone().map(|e| KeyValue::new(semconv::API_ERROR, e)));
        attrs.extend(call.status_code.clone().map(|c| KeyValue::new(semconv::API_STATUS_CODE, c)));
        attrs.extend(call.request_id.clone().map(|r| KeyValue::new(semconv::API_REQUEST_ID, r)));
        let e = SpanEvent { name: "api_error".into(), at, attrs };
        self.add_event(agent_id.as_deref(), prompt_id.as_deref(), e, max_events);
        let pid = prompt_id.unwrap_or_default();
        if self.native.failed_turns.contains(&pid) {
            self.failed_chat(&pid, at, call, agent_id, now);
        } else if self.native.failed_try.len() < MAX_WAITING || self.native.failed_try.contains_key(&pid) {
            // reports can come out of order: the last try is the latest
            if self.native.failed_try.get(&pid).is_none_or(|(t, ..)| *t <= at) {
                self.native.failed_try.insert(pid, (at, call, agent_id));
            }
        }
    }

    /// A turn failed: its last failed API try, if reported, becomes an ERROR chat span.
    pub(super) fn turn_failed(&mut self, prompt_id: &str, now: u64) {
        if self.native.failed_turns.len() < MAX_NATIVE {
            self.native.failed_turns.insert(prompt_id.to_owned());
        }
        if let Some((at, call, agent)) = self.native.failed_try.remove(prompt_id) {
            self.failed_chat(prompt_id, at, call, agent, now);
        }
    }

    /// The chat span of the API request that failed a turn for good: no response, status ERROR. One
    /// per failed turn: of its failed tries (their reports can come in any order, and after the
    /// turn's end), the last one.
    fn failed_chat(&mut self, prompt_id: &str, at: u64, call: ApiCall, agent_id: Option<String>, now: u64) {
        let id = self.span_id(SpanKey::Chat, &format!("failed/{prompt_id}"));
        if self.handed_out.contains(&id) || self.spans.get(&id).is_some_and(|s| s.end > at) {
            return;
        }
        let parent = match agent_id {
            Some(aid) => Parent::Agent(aid, Some(prompt_id.to_owned())),
            None => Parent::Turn(Some(prompt_id.to_owned())),
        };
        let mut attrs = semconv::chat(self.agent, &call.model, &self.endpoint);
        // the class of the failure: its HTTP status when it has one (`529`), else the fallback
        let status = call.status_code.as_deref().filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()));
        attrs.push(KeyValue::new(semconv::ERROR_TYPE, status.unwrap_or(semconv::ERROR_OTHER).to_owned()));
        let mut span = OpenSpan::new(id, SpanKey::Chat, semconv::chat_name(&call.model), at, parent, attrs);
        span.chat = Some(ChatCall { request_id: call.request_id.clone().unwrap_or_default(), ..ChatCall::default() });
        span.status = Status::Error(call.error.clone().unwrap_or_else(|| "API error".into()));
        time_chat(&mut span, &call, at, now);
        self.insert(span);
    }
}

/// Time a chat span by Claude Code's report of its request: it ended at the report and took
/// `duration_ms`; the time to the first token and the try are attributes.
pub(super) fn time_chat(span: &mut OpenSpan, call: &ApiCall, at: u64, now: u64) {
    span.end = at;
    span.start = at.saturating_sub(ms_to_ns(call.duration_ms));
    span.exact = true;
    span.closed_at = Some(now);
    if let Some(attempt) = call.attempt {
        span.set_attr(KeyValue::new(semconv::API_ATTEMPT, int(attempt)));
    }
    span.set_attr(KeyValue::new(semconv::API_DURATION_MS, int(call.duration_ms)));
    if let Some(ttft) = call.ttft_ms {
        span.set_attr(KeyValue::new(semconv::TIME_TO_FIRST_CHUNK, ttft as f64 / 1000.0));
    }
}
