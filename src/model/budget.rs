//! The one memory budget every holder of memory answers to (`HOOKTEL_MEMORY_BUDGET`, 256 MiB by
//! default), and its split into a share for each holder: the sidecar itself, request bodies held,
//! bodies being decoded, Claude Code's telemetry waiting to be forwarded, the journal writer's
//! backlog, spans on their way to the exporter, and the state of every open session; and what a
//! holder keeps of its share while it holds ([`Held`]). The shares add up to the budget, so a sidecar whose
//! holders are all full at once still fits it. Pure: no I/O.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget when none is set: the shipped Kubernetes limit and systemd's `MemoryMax`.
pub const DEFAULT: usize = 256 << 20;

/// The smallest budget taken: below it a largest body (8 MiB) and its decoding would not fit.
pub const MIN: usize = 64 << 20;

/// A session's spans may take at most this much of the sessions' share (and never more than half
/// of it): one session can never push all the others out.
const MAX_SESSION_SPANS: usize = 32 << 20;

/// What each holder of memory may take, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shares {
    /// The whole budget.
    pub total: usize,
    /// Not given to any holder: the sidecar's own code, runtime, connections, registry and SQLite
    /// caches (about 20-40 MiB measured idle), an eighth.
    pub reserve: usize,
    /// Request bodies held across all connections (`--max-buffered-bytes`), an eighth.
    pub bodies: usize,
    /// Bodies being decoded, by their estimated cost (`ingest::shape::decode_cost`), a quarter.
    pub decoding: usize,
    /// Claude Code's telemetry queued to be forwarded, an eighth.
    pub forwarding: usize,
    /// Journal entries sent and not yet committed, a sixteenth.
    pub journal_backlog: usize,
    /// Spans handed out and not yet exported, spooled or stored, a sixteenth.
    pub exporting: usize,
    /// Every open session's state (spans, ids, reports waiting for their match), the rest.
    pub sessions: usize,
    /// Spans one session may hold: a quarter of the sessions' share, at most 32 MiB.
    pub session_spans: usize,
}

impl Shares {
    /// The split of a budget of `total` bytes (at least [`MIN`]).
    pub fn of(total: usize) -> Shares {
        let total = total.max(MIN);
        let eighth = total / 8;
        let (reserve, bodies, decoding, forwarding) = (eighth, eighth, total / 4, eighth);
        let (journal_backlog, exporting) = (total / 16, total / 16);
        let sessions = total - reserve - bodies - decoding - forwarding - journal_backlog - exporting;
        Shares {
            total,
            reserve,
            bodies,
            decoding,
            forwarding,
            journal_backlog,
            exporting,
            sessions,
            session_spans: (sessions / 4).min(MAX_SESSION_SPANS),
        }
    }

    /// With request bodies held set by hand (`--max-buffered-bytes`, raised to `--max-body-bytes`):
    /// refused past the bodies' share, where the shares would add up to more than the budget.
    pub fn with_bodies(self, bodies: usize) -> Result<Shares, String> {
        if bodies > self.bodies {
            return Err(format!(
                "request bodies held at once ({}, HOOKTEL_MAX_BUFFERED_BYTES or HOOKTEL_MAX_BODY_BYTES) exceed their \
                 share of the memory budget ({} of {}): raise HOOKTEL_MEMORY_BUDGET or lower them",
                mib(bodies),
                mib(self.bodies),
                mib(self.total)
            ));
        }
        Ok(Shares { bodies, ..self })
    }
}

/// A size as people write it: bytes, or a number with `KiB`, `MiB`, `GiB` (or `K`, `M`, `G`, also
/// meaning powers of 1,024).
pub fn parse(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" | "k" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        other => return Err(format!("unknown unit `{other}` in `{t}`: use bytes, KiB, MiB or GiB")),
    };
    let n: usize = digits.parse().map_err(|_| format!("`{t}` is not a size: use e.g. 256MiB"))?;
    let bytes = n.checked_mul(1usize << shift).ok_or_else(|| format!("`{t}` is too large"))?;
    if bytes < MIN {
        return Err(format!("{} is below the smallest memory budget, {}", mib(bytes), mib(MIN)));
    }
    Ok(bytes)
}

/// Bytes of a share a holder keeps while it holds (an event in the ingest queue, spans on their way
/// to the exporter); given back when the last clone is dropped.
#[derive(Clone, Default)]
pub struct Held(Option<Arc<OwnedSemaphorePermit>>);

impl Held {
    /// `bytes` of `share`, a semaphore of `size` permits: at once, or `None` when they are not free.
    pub fn try_take(share: &Arc<Semaphore>, size: usize, bytes: usize) -> Option<Held> {
        share.clone().try_acquire_many_owned(permits(size, bytes)).ok().map(|p| Held(Some(Arc::new(p))))
    }

    /// `bytes` of `share` (of `size` permits), waited for; `None` once the share is closed.
    pub async fn take(share: &Arc<Semaphore>, size: usize, bytes: usize) -> Option<Held> {
        share.clone().acquire_many_owned(permits(size, bytes)).await.ok().map(|p| Held(Some(Arc::new(p))))
    }
}

/// The permits `bytes` take of a share of `size`: at least one, never more than the share.
fn permits(size: usize, bytes: usize) -> u32 {
    u32::try_from(bytes.clamp(1, size.max(1))).unwrap_or(u32::MAX)
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({})", self.0.as_ref().map_or(0, |p| p.num_permits()))
    }
}

/// Bytes as MiB, for messages.
pub fn mib(bytes: usize) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_add_up_to_the_budget() {
        for total in [MIN, DEFAULT, 300 << 20, 1 << 30, DEFAULT + 7] {
            let s = Shares::of(total);
            let given = s.bodies + s.decoding + s.forwarding + s.journal_backlog + s.exporting + s.sessions;
            assert_eq!(s.reserve + given, total);
            assert!(s.session_spans <= s.sessions / 4);
        }
        let s = Shares::of(DEFAULT);
        assert_eq!((s.bodies, s.decoding, s.forwarding, s.journal_backlog), (32 << 20, 64 << 20, 32 << 20, 16 << 20));
        assert_eq!((s.exporting, s.sessions, s.session_spans), (16 << 20, 64 << 20, 16 << 20));
        assert_eq!(Shares::of(1 << 30).session_spans, MAX_SESSION_SPANS);
    }

    #[test]
    fn bodies_set_apart_must_fit() {
        let s = Shares::of(DEFAULT);
        assert_eq!(s.with_bodies(1 << 20).unwrap().bodies, 1 << 20);
        let err = s.with_bodies(64 << 20).unwrap_err();
        assert!(err.contains("HOOKTEL_MEMORY_BUDGET"), "{err}");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse("256MiB"), Ok(256 << 20));
        assert_eq!(parse("1G"), Ok(1 << 30));
        assert_eq!(parse(" 268435456 "), Ok(256 << 20));
        assert_eq!(parse("65536 KiB"), Ok(64 << 20));
        assert!(parse("1MiB").unwrap_err().contains("smallest"));
        assert!(parse("256MB").unwrap_err().contains("unknown unit"));
        assert!(parse("lots").is_err());
        assert!(parse("99999999999999999999G").is_err());
    }

    #[tokio::test]
    async fn a_holder_keeps_its_bytes_until_dropped_and_never_more_than_the_share() {
        let share = Arc::new(Semaphore::new(100));
        let a = Held::try_take(&share, 100, 60).unwrap();
        assert!(Held::try_take(&share, 100, 60).is_none());
        let b = a.clone();
        drop(a);
        assert!(Held::try_take(&share, 100, 60).is_none(), "a clone still holds");
        drop(b);
        let all = Held::take(&share, 100, 1 << 30).await.unwrap();
        assert_eq!(share.available_permits(), 0, "more than the share takes all of it: {all:?}");
    }
}
