//! The sidecar's view of each session for `hooktel statusline`: its tokens by type, cost, last model
//! and turn count, kept while the session is open and a while after it ended; and the spend budgets
//! with the day's spend. The pipeline writes it, `GET /v1/sessions/<uuid>` reads it.
//!
//! A fixed bound, not a share of the memory budget: at most [`MAX_VIEWS`] entries of at most about
//! 200 bytes (the model name is cut to [`MAX_MODEL_BYTES`]), 2.5 MiB with the map's overhead, out of
//! the sidecar's own reserve. Past the bound the entry seen longest ago goes first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::model::tokens::TokenUsage;

/// Most sessions viewed at once: twice the open sessions' default cap (5,000), so that every open
/// session and as many recently ended ones fit.
pub const MAX_VIEWS: usize = 10_000;

/// A model name longer than this is cut (real ones are under 40 bytes).
pub const MAX_MODEL_BYTES: usize = 64;

/// How long an ended session stays viewable: a status line rendered just after the end (or a
/// `--resume` a little later) still finds it.
pub const KEEP_ENDED_NS: u64 = 10 * 60 * crate::model::time::NS_PER_SEC;

/// One session as the status line shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionView {
    /// The coding agent whose session it is (its first event's).
    pub agent: Option<crate::model::agent::Agent>,
    /// The model of its last counted response; empty before the first.
    pub model: String,
    pub tokens: TokenUsage,
    pub cost_usd: f64,
    /// Prompts submitted (turns started).
    pub turns: u64,
    /// When it ended (ns), if it has.
    pub ended_at: Option<u64>,
    /// When an event or usage last touched it (ns): the oldest goes first past the bound.
    pub seen: u64,
}

/// The spend budgets set (`HOOKTEL_BUDGET_USD_PER_DAY`, `HOOKTEL_BUDGET_USD_PER_SESSION`), in USD.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budgets {
    pub day_usd: Option<f64>,
    pub session_usd: Option<f64>,
}

/// Every viewed session, by [`session_key`](crate::model::ids::session_key). A `std` mutex: held for
/// a map lookup at a time, never across an await.
#[derive(Debug, Default)]
pub struct SessionViews {
    views: Mutex<HashMap<u128, SessionView>>,
    pub budgets: Budgets,
    /// Today's spend (UTC), as the bits of an `f64`; kept only with a day budget.
    day_spent: AtomicU64,
}

impl SessionViews {
    pub fn new(budgets: Budgets) -> SessionViews {
        SessionViews { budgets, ..SessionViews::default() }
    }

    /// Today's spend, in USD.
    pub fn day_spent(&self) -> f64 {
        f64::from_bits(self.day_spent.load(Ordering::Relaxed))
    }

    pub fn set_day_spent(&self, usd: f64) {
        self.day_spent.store(usd.to_bits(), Ordering::Relaxed);
    }

    /// The largest cost of a session not ended (what the session budget's gauge shows).
    pub fn largest_open_cost(&self) -> f64 {
        let views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.values().filter(|v| v.ended_at.is_none()).map(|v| v.cost_usd).fold(0.0, f64::max)
    }

    /// Change the view of `key` (made when it is new, `seen` set to `now`).
    pub fn update(&self, key: u128, now: u64, change: impl FnOnce(&mut SessionView)) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if !views.contains_key(&key) && views.len() >= MAX_VIEWS {
            if let Some(oldest) = views.iter().min_by_key(|(_, v)| v.seen).map(|(k, _)| *k) {
                views.remove(&oldest);
            }
        }
        let view = views.entry(key).or_default();
        view.seen = now;
        change(view);
    }

    /// Change the view of `key` only if it is already there (usage for a session no event opened).
    pub fn update_existing(&self, key: u128, now: u64, change: impl FnOnce(&mut SessionView)) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(view) = views.get_mut(&key) {
            view.seen = now;
            change(view);
        }
    }

    /// A copy of the view of `key`.
    pub fn get(&self, key: u128) -> Option<SessionView> {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }

    /// Forget sessions ended over [`KEEP_ENDED_NS`] ago, and those untouched for `idle_ns` and that
    /// long again (closed by the idle timeout or evicted, so no end was seen).
    pub fn forget(&self, now: u64, idle_ns: u64) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.retain(|_, v| match v.ended_at {
            Some(end) => now.saturating_sub(end) < KEEP_ENDED_NS,
            None => now.saturating_sub(v.seen) < idle_ns.saturating_add(KEEP_ENDED_NS),
        });
    }

    pub fn len(&self) -> usize {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SessionView {
    /// Set the model of the latest response, cut to [`MAX_MODEL_BYTES`].
    pub fn set_model(&mut self, model: &str) {
        if !model.is_empty() && model != self.model {
            self.model = crate::model::payload::truncate_utf8(model, MAX_MODEL_BYTES).to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_entries_and_bytes() {
        let views = SessionViews::default();
        for k in 0..(MAX_VIEWS as u128 + 50) {
            views.update(k, k as u64 + 1, |v| v.set_model(&"m".repeat(10_000)));
        }
        assert_eq!(views.len(), MAX_VIEWS);
        assert!(views.get(0).is_none(), "the oldest went first");
        assert_eq!(views.get(MAX_VIEWS as u128 + 49).unwrap().model.len(), MAX_MODEL_BYTES);
    }

    #[test]
    fn ended_sessions_are_kept_a_while_then_forgotten() {
        let views = SessionViews::default();
        views.update(1, 0, |v| v.ended_at = Some(0));
        views.update(2, 0, |_| {});
        views.update_existing(3, 0, |v| v.turns = 1);
        assert!(views.get(3).is_none(), "usage alone opens no view");
        views.forget(KEEP_ENDED_NS - 1, 100);
        assert!(views.get(1).is_some());
        views.forget(KEEP_ENDED_NS, 100);
        assert!(views.get(1).is_none() && views.get(2).is_some());
        views.forget(KEEP_ENDED_NS + 100, 100);
        assert!(views.is_empty());
    }
}
