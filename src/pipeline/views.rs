//! What the pipeline tells the status line of each session (`model::session_view`, read by
//! `GET /v1/sessions/<uuid>`): a turn started, the session (re)started or ended, its usage counted
//! (tokens, cost, latest model). Applied live and on the journal's replay alike.

use crate::model::agent::Agent;
use crate::model::event::{Event, Kind};
use crate::model::ids;
use crate::model::session_view::SessionViews;
use crate::usage::accountant::SessionUsage;

/// What an event changes in its session's view: it starts a turn, (re)starts or ends the session,
/// or (any other) only marks it seen; an event arriving after the end does not reopen it. The view
/// names the agent of the session's first event, as its spans do.
#[derive(Clone, Copy)]
pub(super) struct ViewNote {
    change: Change,
    agent: Agent,
}

#[derive(Clone, Copy)]
enum Change {
    Turn,
    Start,
    End,
    Seen,
}

impl ViewNote {
    pub(super) fn of(ev: &Event) -> ViewNote {
        let change = match ev.kind {
            Kind::PromptSubmit { .. } => Change::Turn,
            Kind::SessionStart { .. } => Change::Start,
            Kind::SessionEnd { .. } => Change::End,
            _ => Change::Seen,
        };
        ViewNote { change, agent: ev.source }
    }

    pub(super) fn apply(self, views: &SessionViews, sid: &str, now: u64) {
        views.update(ids::session_key(sid), now, |v| {
            v.agent.get_or_insert(self.agent);
            match self.change {
                Change::Turn => {
                    v.turns += 1;
                    v.ended_at = None;
                }
                Change::Start => v.ended_at = None,
                Change::End => v.ended_at = Some(now),
                Change::Seen => {}
            }
        });
    }
}

/// Usage counted for a session its view shows (one an event opened): tokens, cost, latest model.
/// Returns the session's cost before and after, when it has a view.
pub(super) fn view_usage(views: &SessionViews, u: &SessionUsage, now: u64) -> Option<(f64, f64)> {
    let d = &u.delta;
    if d.usage.is_zero() && d.cost == 0.0 {
        return None;
    }
    let mut costs = None;
    views.update_existing(ids::session_key(&u.session_id), now, |v| {
        let before = v.cost_usd;
        v.tokens.add(d.usage);
        v.cost_usd += usd(d.cost);
        v.set_model(&d.model);
        costs = Some((before, v.cost_usd));
    });
    costs
}

/// A cost as spend: what is not a finite, positive number adds nothing.
pub(super) fn usd(cost: f64) -> f64 {
    if cost.is_finite() {
        cost.max(0.0)
    } else {
        0.0
    }
}
