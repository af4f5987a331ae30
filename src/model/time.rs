//! Time as hooktel keeps it: Unix nanoseconds in a `u64`, read from the clock here and nowhere else,
//! and parsed from the forms producers write (RFC 3339 with an offset, or Unix seconds).
//!
//! Inputs come from outside (payloads, event logs, transcripts, the command line): a time before
//! 1970 or past what a `u64` of nanoseconds holds (the year 2554) is refused, never wrapped. An
//! event's time must also be [`plausible`]: from 2020 on, and at most a day ahead of the clock.

use serde_json::Value;

/// Nanoseconds in a second: every time hooktel keeps is Unix nanoseconds in a `u64`.
pub(crate) const NS_PER_SEC: u64 = 1_000_000_000;

/// The wall clock, in Unix nanoseconds (0 if the clock is before 1970).
pub(crate) fn now_ns() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(0)
}

/// Parse an RFC 3339 date-time (`2026-11-21T04:31:23.896Z`, `2026-11-21T06:31:23+02:00`) into Unix
/// nanoseconds. An offset is required: a time without one names no instant.
pub fn rfc3339_ns(s: &str) -> Option<u64> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(ts.as_nanosecond()).ok()
}

/// Unix seconds (integer or fraction) as nanoseconds; `None` when negative, not finite, or past
/// what a `u64` of nanoseconds holds.
pub(crate) fn unix_seconds_ns(seconds: f64) -> Option<u64> {
    let ns = seconds * 1e9;
    (ns.is_finite() && ns >= 0.0 && ns < u64::MAX as f64).then_some(ns as u64)
}

/// A timestamp as producers write it, in Unix nanoseconds: RFC 3339 with `Z` or an offset, or Unix
/// seconds as a number.
pub(crate) fn timestamp_ns(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => unix_seconds_ns(n.as_f64()?),
        Value::String(s) => rfc3339_ns(s),
        _ => None,
    }
}

/// The earliest time an event of a coding agent can carry: 2020-01-01T00:00:00Z (Claude Code came
/// out in 2025; a time before is a clock or a producer gone wrong: 0, or a few seconds after 1970).
pub(crate) const EARLIEST_NS: u64 = 1_577_836_800 * NS_PER_SEC;

/// How far ahead of the clock an event's time may be (clocks of two processes on one machine, or
/// of a host and a container, differ by far less).
pub(crate) const AHEAD_NS: u64 = 24 * 3600 * NS_PER_SEC;

/// Whether `at` can be the time of an event that reached hooktel at `now`: from 2020 on, and no
/// more than a day ahead of `now`.
pub(crate) fn plausible(at: u64, now: u64) -> bool {
    at >= EARLIEST_NS && at <= now.saturating_add(AHEAD_NS)
}

/// Milliseconds (a payload's `duration_ms`) as nanoseconds, saturating at `u64::MAX`.
pub(crate) fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

/// `2026-11-21T04:31:21.123Z` (UTC, to the millisecond) for machine-read views.
pub(crate) fn rfc3339(ns: u64) -> String {
    let ts = i64::try_from(ns / 1_000_000).ok().and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
    match ts {
        Some(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "-".into(),
    }
}

/// `2026-11-21 04:31:21` (UTC, to the second) for terminal views.
pub(crate) fn utc_seconds(ns: u64) -> String {
    let ts = i64::try_from(ns / NS_PER_SEC).ok().and_then(|s| jiff::Timestamp::from_second(s).ok());
    match ts {
        Some(ts) => ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".into(),
    }
}

/// How often a warning that input can cause may be logged: once per kind per interval, with the
/// number left out.
pub(crate) const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// One line per [`WARN_EVERY`] for one kind of warning, and the count of those left out in between:
/// what keeps a flood of bad input (or a full journal) from flooding the log. The caller reads the
/// clock.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<std::time::Instant>,
    left_out: u64,
}

impl Throttle {
    /// `Some(lines left out since the last one)` when a line may be written at `now`; else `None`,
    /// and this one is counted as left out.
    pub(crate) fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < WARN_EVERY => {
                self.left_out += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.left_out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_round_trips_to_the_millisecond() {
        assert_eq!(rfc3339(1_795_235_483_896_123_456), "2026-11-21T04:31:23.896Z");
        assert_eq!(rfc3339_ns(&rfc3339(1_795_235_483_896_000_000)), Some(1_795_235_483_896_000_000));
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ns("2026-11-21T04:31:23.896Z"), Some(1_795_235_483_896_000_000));
        assert_eq!(rfc3339_ns("2026-11-21T06:31:23.896+02:00"), rfc3339_ns("2026-11-21T04:31:23.896Z"));
        assert_eq!(rfc3339_ns("2000-02-29T12:00:00.123456789Z"), Some(951_825_600_123_456_789));
        for bad in ["", "2026-13-01T00:00:00Z", "2026-11-21 04:31", "2026-11-21T04:31:23", "yesterday"] {
            assert_eq!(rfc3339_ns(bad), None, "{bad}");
        }
        assert_eq!(timestamp_ns(&json!(1.5)), Some(1_500_000_000));
        assert_eq!(timestamp_ns(&json!(true)), None);
    }

    /// The hand-written parser sliced `&rest[3..4]` and panicked on a multi-byte offset.
    #[test]
    fn multi_byte_offsets_are_refused_not_a_panic() {
        for bad in [
            "2026-11-21T04:31:23+0é00",
            "2026-11-21T04:31:23.5+é0:00",
            "2026-11-21T04:31:23+00:0é",
            "2026-11-21T04:31:2é+00:00",
        ] {
            assert_eq!(rfc3339_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_outside_u64_nanoseconds_are_refused() {
        assert_eq!(rfc3339_ns("1969-12-31T23:59:59Z"), None);
        assert_eq!(rfc3339_ns("9999-12-31T23:59:59Z"), None, "past 2554 does not fit");
        assert_eq!(rfc3339_ns("2554-07-21T23:34:33Z"), Some(18_446_744_073_000_000_000));
        for n in [json!(-1), json!(1e300), json!(f64::MAX), json!(u64::MAX)] {
            assert_eq!(timestamp_ns(&n), None, "{n}");
        }
        assert_eq!(ms_to_ns(u64::MAX), u64::MAX);
        assert_eq!(ms_to_ns(5), 5_000_000);
    }

    #[test]
    fn event_times_before_2020_or_over_a_day_ahead_are_implausible() {
        let now = 1_795_235_483_896_000_000;
        assert!(plausible(now, now) && plausible(EARLIEST_NS, now) && plausible(now + AHEAD_NS, now));
        for bad in [0, 1, EARLIEST_NS - 1, now + AHEAD_NS + 1, u64::MAX] {
            assert!(!plausible(bad, now), "{bad}");
        }
        assert_eq!(rfc3339(EARLIEST_NS), "2020-01-01T00:00:00.000Z");
        assert!(plausible(u64::MAX - 1, u64::MAX), "no overflow near the end of u64");
    }

    #[test]
    fn utc_seconds_formats() {
        assert_eq!(utc_seconds(1_795_235_481_500_000_000), "2026-11-21 04:31:21");
    }
}
