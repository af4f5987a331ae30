//! Spend against the budgets set (`HOOKTEL_BUDGET_USD_PER_DAY`, `_PER_SESSION`), as the pipeline
//! keeps it: the day's spend (journaled by the caller), the gauges of both scopes, the session views'
//! copy for the status line, and the span event a threshold crossing puts on its session's root.
//! When a threshold is crossed is `budget`'s (pure).

use std::sync::Arc;

use opentelemetry::KeyValue;

use crate::metrics::Metrics;
use crate::model::semconv;
use crate::model::session_view::SessionViews;
use crate::model::span::SpanEvent;
use crate::model::time::now_ns;
use crate::pipeline::budget::{self, Crossing, DaySpend, Scope};
use crate::pipeline::views::usd;

/// Spend against the budgets set: today's, kept in the journal; the gauges of both scopes.
pub(super) struct Spending {
    pub(super) views: Arc<SessionViews>,
    metrics: Arc<Metrics>,
    day: DaySpend,
}

impl Spending {
    pub(super) fn new(views: Arc<SessionViews>, metrics: Arc<Metrics>, kept: Option<(u64, f64)>) -> Spending {
        let budgets = views.budgets;
        for (scope, limit) in [(Scope::Day, budgets.day_usd), (Scope::Session, budgets.session_usd)] {
            if let Some(limit) = limit {
                metrics.budget_usd.with_label_values(&[scope.label()]).set(limit);
                metrics.budget_spent_usd.with_label_values(&[scope.label()]).set(0.0);
            }
        }
        let day = kept.map(|(day, usd)| DaySpend { day, usd }).unwrap_or_default();
        let mut spending = Spending { views, metrics, day };
        spending.tick(now_ns());
        spending
    }

    /// A model call's `cost`, which took its session from `session_cost.0` to `.1` (when it has a
    /// view): the thresholds it crossed, of the day's budget and the session's; and the day's spend
    /// when it changed (for the journal).
    pub(super) fn counted(
        &mut self,
        cost: f64,
        session_cost: Option<(f64, f64)>,
        now: u64,
    ) -> (Vec<Crossing>, Option<DaySpend>) {
        let budgets = self.views.budgets;
        let (mut crossings, mut day) = (Vec::new(), None);
        if let Some(limit) = budgets.day_usd.filter(|_| usd(cost) > 0.0) {
            crossings = self.day.add(usd(cost), now, limit);
            self.views.set_day_spent(self.day.usd);
            self.metrics.budget_spent_usd.with_label_values(&[Scope::Day.label()]).set(self.day.usd);
            day = Some(self.day);
        }
        if let (Some(limit), Some((before, after))) = (budgets.session_usd, session_cost) {
            crossings.extend(budget::crossed(Scope::Session, limit, before, after));
        }
        (crossings, day)
    }

    /// A new UTC day starts from nothing; the session gauge follows the open sessions.
    pub(super) fn tick(&mut self, now: u64) {
        let budgets = self.views.budgets;
        if budgets.day_usd.is_some() {
            self.day.roll(now);
            self.views.set_day_spent(self.day.usd);
            self.metrics.budget_spent_usd.with_label_values(&[Scope::Day.label()]).set(self.day.usd);
        }
        if budgets.session_usd.is_some() {
            let largest = self.views.largest_open_cost();
            self.metrics.budget_spent_usd.with_label_values(&[Scope::Session.label()]).set(largest);
        }
    }
}

/// The span event a threshold crossing puts on its session's root.
pub(super) fn threshold_event(c: &Crossing, at: u64) -> SpanEvent {
    SpanEvent {
        name: semconv::BUDGET_THRESHOLD_EVENT.into(),
        at,
        attrs: vec![
            KeyValue::new(semconv::BUDGET_SCOPE, c.scope.label()),
            KeyValue::new(semconv::BUDGET_THRESHOLD, c.threshold),
            KeyValue::new(semconv::BUDGET_SPENT_USD, c.spent),
            KeyValue::new(semconv::BUDGET_LIMIT_USD, c.limit),
        ],
    }
}
