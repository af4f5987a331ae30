//! The transcript reads a session's closed spans wait for: a turn's end asks the accountant to read
//! the transcript that holds the turn's last response, and the span it closed is handed out only
//! once a read that started late enough has reported (its usage comes before it), or at a bound.
//!
//! Pure: the times are given. Bounded: `MAX_AWAITED` transcripts per session at once, each awaited
//! until its expiry at most.

use std::collections::HashMap;

use crate::usage::accountant::ReadStart;

/// Most transcripts one session waits for at once (its own and its subagents'): a real session has
/// a few subagents ending together; a flood of made-up agent ids past it is not waited for, as
/// before reads were awaited.
pub(super) const MAX_AWAITED: usize = 256;

/// A read one transcript is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Awaited {
    /// A read that started at this wall time or later sees what the turn's end was waiting for.
    due: u64,
    /// Past this wall time nothing waits for the read any more (the accountant is stuck or dropped
    /// the request).
    expires: u64,
}

/// Transcripts waiting for a read: the session's own, and its subagents' by agent id.
#[derive(Debug, Default)]
pub(super) struct AwaitedReads {
    own: Option<Awaited>,
    agents: HashMap<String, Awaited>,
}

impl AwaitedReads {
    /// Wait for a read of `agent`'s transcript (`None`: the session's own) that starts at `due` or
    /// later, until `expires`. A read already awaited waits for the later of the two, and still
    /// expires at its first expiry.
    pub(super) fn expect(&mut self, agent: Option<&str>, due: u64, expires: u64) {
        let fresh = Awaited { due, expires };
        let wait = match agent {
            None => self.own.get_or_insert(fresh),
            Some(aid) if self.agents.contains_key(aid) || self.agents.len() < MAX_AWAITED => {
                self.agents.entry(aid.to_owned()).or_insert(fresh)
            }
            Some(_) => return,
        };
        wait.due = wait.due.max(due);
    }

    /// A read of `agent`'s transcript reported: it ends the wait if it started late enough, or if
    /// no read will come.
    pub(super) fn read(&mut self, agent: Option<&str>, start: ReadStart) {
        let ends = |a: &Awaited| match start {
            ReadStart::At(at) => at >= a.due,
            ReadStart::Never => true,
        };
        match agent {
            None => self.own = self.own.filter(|a| !ends(a)),
            Some(aid) => {
                if self.agents.get(aid).is_some_and(ends) {
                    self.agents.remove(aid);
                }
            }
        }
    }

    /// Forget the waits that expired by `now`.
    pub(super) fn expire(&mut self, now: u64) {
        self.own = self.own.filter(|a| a.expires > now);
        self.agents.retain(|_, a| a.expires > now);
    }

    /// Whether a read of `agent`'s transcript is still awaited.
    pub(super) fn awaits(&self, agent: Option<&str>) -> bool {
        match agent {
            None => self.own.is_some(),
            Some(aid) => self.agents.contains_key(aid),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.own.is_none() && self.agents.is_empty()
    }

    /// Transcripts waited for.
    pub(super) fn len(&self) -> usize {
        usize::from(self.own.is_some()) + self.agents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a read that started at its due time or later ends a wait; a refusal ends it at once; the
    /// expiry ends it whatever comes; a second turn's end moves the due time, not the expiry.
    #[test]
    fn a_wait_ends_at_a_late_enough_read_a_refusal_or_its_expiry() {
        let mut r = AwaitedReads::default();
        r.expect(Some("a1"), 500, 10_000);
        r.expect(None, 500, 10_000);
        r.read(Some("a1"), ReadStart::At(499));
        assert!(r.awaits(Some("a1")), "a read that started too early");
        r.read(None, ReadStart::At(700));
        assert!(r.awaits(Some("a1")) && !r.awaits(None), "another transcript's read ends only its own wait");
        r.expect(Some("a1"), 900, 20_000);
        r.read(Some("a1"), ReadStart::At(600));
        assert!(r.awaits(Some("a1")), "the due time moved to the second end");
        r.expire(9_999);
        assert!(r.awaits(Some("a1")));
        r.expire(10_000);
        assert!(r.is_empty(), "the first expiry holds");

        r.expect(Some("a2"), 500, 10_000);
        r.read(Some("a2"), ReadStart::Never);
        assert!(r.is_empty(), "a refused path is not waited for");
    }

    /// Past `MAX_AWAITED` subagents' transcripts, no more are waited for; the session's own still is.
    #[test]
    fn waits_are_bounded() {
        let mut r = AwaitedReads::default();
        for i in 0..MAX_AWAITED + 10 {
            r.expect(Some(&format!("a{i}")), 1, 2);
        }
        assert_eq!(r.agents.len(), MAX_AWAITED);
        assert!(!r.awaits(Some(&format!("a{}", MAX_AWAITED + 1))));
        r.expect(None, 1, 2);
        assert!(r.awaits(None));
    }
}
