//! Spend budgets (`HOOKTEL_BUDGET_USD_PER_DAY`, `HOOKTEL_BUDGET_USD_PER_SESSION`): today's spend
//! (a UTC calendar day), and which of the thresholds (80, 90, 100%) a model call's cost carried the
//! day or its session across.
//!
//! Pure: time comes in as an argument. A threshold is crossed when the spend goes from below it to
//! at or above it; spend only grows within a day (and within a session), so each threshold is crossed
//! once a day, once a session, and a restart that brings back the day's spend (the journal keeps it)
//! crosses nothing twice.

use crate::model::time::NS_PER_SEC;

/// The shares of a limit at which the sidecar marks the session whose call crossed them.
pub(crate) const THRESHOLDS: [f64; 3] = [0.8, 0.9, 1.0];

const NS_PER_DAY: u64 = 86_400 * NS_PER_SEC;

/// The UTC calendar day of `at` (ns since the epoch), as days since the epoch. UTC, not the machine's
/// zone: a team's sidecars (and Prometheus, whose alerts compare them) agree on when a day starts.
pub(crate) fn day_of(at: u64) -> u64 {
    at / NS_PER_DAY
}

/// What a budget is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Day,
    Session,
}

impl Scope {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Scope::Day => "day",
            Scope::Session => "session",
        }
    }
}

/// A threshold a cost carried its scope's spend across.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Crossing {
    pub(crate) scope: Scope,
    pub(crate) threshold: f64,
    pub(crate) spent: f64,
    pub(crate) limit: f64,
}

/// The thresholds of `limit` that spend going from `before` to `after` crossed.
pub(crate) fn crossed(scope: Scope, limit: f64, before: f64, after: f64) -> impl Iterator<Item = Crossing> {
    THRESHOLDS.into_iter().filter(move |t| before < t * limit && after >= t * limit).map(move |threshold| Crossing {
        scope,
        threshold,
        spent: after,
        limit,
    })
}

/// The day's spend against the day's budget.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct DaySpend {
    /// The UTC day it is of ([`day_of`]).
    pub(crate) day: u64,
    pub(crate) usd: f64,
}

impl DaySpend {
    /// The spend of the day of `now`: what it was if it is still that day, else nothing yet.
    pub(crate) fn roll(&mut self, now: u64) {
        let today = day_of(now);
        if self.day != today {
            *self = DaySpend { day: today, usd: 0.0 };
        }
    }

    /// Add `cost` spent at `now`; the thresholds of `limit` it crossed.
    pub(crate) fn add(&mut self, cost: f64, now: u64, limit: f64) -> Vec<Crossing> {
        self.roll(now);
        let before = self.usd;
        self.usd += cost;
        crossed(Scope::Day, limit, before, self.usd).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threshold_is_crossed_once_a_day() {
        let noon = 20_000 * NS_PER_DAY + NS_PER_DAY / 2;
        let mut day = DaySpend::default();
        let at = |c: &[Crossing]| c.iter().map(|c| c.threshold).collect::<Vec<_>>();
        assert!(day.add(7.0, noon, 10.0).is_empty());
        assert_eq!(at(&day.add(1.5, noon, 10.0)), vec![0.8]);
        assert!(day.add(0.1, noon, 10.0).is_empty());
        // one call over two thresholds marks both
        assert_eq!(at(&day.add(5.0, noon, 10.0)), vec![0.9, 1.0]);
        assert!(day.add(5.0, noon, 10.0).is_empty(), "over the limit, nothing is crossed again");
        assert!((day.usd - 18.6).abs() < 1e-9, "{}", day.usd);
        // the next UTC day starts from nothing
        let tomorrow = noon + NS_PER_DAY / 2;
        assert_eq!(at(&day.add(8.5, tomorrow, 10.0)), vec![0.8]);
        assert_eq!((day.day, day.usd), (20_001, 8.5));
        day.roll(tomorrow + NS_PER_DAY);
        assert_eq!(day.usd, 0.0);
    }

    #[test]
    fn a_session_crosses_from_below_to_at_or_above() {
        let c: Vec<_> = crossed(Scope::Session, 2.0, 1.0, 2.0).collect();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2], Crossing { scope: Scope::Session, threshold: 1.0, spent: 2.0, limit: 2.0 });
        assert_eq!(crossed(Scope::Session, 2.0, 1.6, 1.7).count(), 0, "1.6 is 80%: crossed before");
        assert_eq!(crossed(Scope::Session, 2.0, 0.0, 0.0).count(), 0);
    }
}
