//! The ticket a branch names (`feature/ABC-123-fix` → `ABC-123`), by a pattern
//! (`HOOKTEL_TICKET_PATTERN`): its first match, or the match's first group when it has one.
//! The default finds Jira-style keys and `#123`.
//!
//! Pure. A pattern is compiled once at start and refused there when it does not compile, is too
//! long, or could match nothing but the empty string; regex-lite's matching time is linear in the
//! branch's length, which is bounded.

use std::sync::Arc;

use regex_lite::Regex;

use crate::model::checkout::MAX_FIELD_BYTES;
use crate::model::payload::truncate_utf8;

/// `ABC-123` (a capital, then capitals or digits, a dash, digits) or `#123`.
pub const DEFAULT_PATTERN: &str = r"[A-Z][A-Z0-9]+-[0-9]+|#[0-9]+";

/// Longest pattern taken: a ticket pattern is a line, not a program.
const MAX_PATTERN_BYTES: usize = 512;

/// The compiled ticket pattern (shared: a compiled pattern is large); an empty one finds no ticket.
#[derive(Clone, Debug)]
pub struct TicketPattern(Option<Arc<Regex>>);

impl Default for TicketPattern {
    fn default() -> Self {
        TicketPattern(Some(Arc::new(Regex::new(DEFAULT_PATTERN).expect("the default pattern compiles"))))
    }
}

impl std::str::FromStr for TicketPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<TicketPattern, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(TicketPattern(None));
        }
        if s.len() > MAX_PATTERN_BYTES {
            return Err(format!("is longer than {MAX_PATTERN_BYTES} bytes"));
        }
        let re = Regex::new(s).map_err(|e| format!("is not a regular expression: {e}"))?;
        if re.is_match("") {
            return Err("matches the empty string: every branch would name a ticket".into());
        }
        Ok(TicketPattern(Some(Arc::new(re))))
    }
}

impl TicketPattern {
    /// The ticket `branch` names: the first match (its first group, when the pattern has one that
    /// took part), cut to `MAX_FIELD_BYTES`; `None` when nothing (or only an empty text) matches.
    pub fn find(&self, branch: &str) -> Option<String> {
        let re = self.0.as_ref()?;
        let caps = re.captures(branch)?;
        let m = caps.get(1).or_else(|| caps.get(0))?;
        let ticket = truncate_utf8(m.as_str(), MAX_FIELD_BYTES);
        (!ticket.is_empty()).then(|| ticket.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_finds_jira_keys_and_hash_numbers() {
        let p = TicketPattern::default();
        for (branch, want) in [
            ("feature/ABC-123-fix", Some("ABC-123")),
            ("ABC-123", Some("ABC-123")),
            ("fix/#456-crash", Some("#456")),
            ("PROJ2-7/and-XY-9", Some("PROJ2-7")),
            ("main", None),
            ("feature/abc-123", None),
            ("A-1", None),
            ("release-2026", None),
        ] {
            assert_eq!(p.find(branch).as_deref(), want, "{branch}");
        }
    }

    #[test]
    fn a_pattern_of_ones_own_with_a_group_gives_the_group() {
        let p: TicketPattern = r"(?:^|/)(\d+)-".parse().unwrap();
        assert_eq!(p.find("feature/4711-speed").as_deref(), Some("4711"));
        assert_eq!(p.find("main"), None);
        let none: TicketPattern = "".parse().unwrap();
        assert_eq!(none.find("ABC-1"), None);
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for (pattern, why) in [("([A-Z]+", "regular expression"), ("x*", "empty string"), ("(a|)", "empty string")] {
            let err = pattern.parse::<TicketPattern>().unwrap_err();
            assert!(err.contains(why), "{pattern}: {err}");
        }
        assert!("a".repeat(600).parse::<TicketPattern>().unwrap_err().contains("longer"));
    }

    #[test]
    fn a_long_branch_is_matched_in_bounded_time_and_cut() {
        let p: TicketPattern = "[a-z]+".parse().unwrap();
        let branch = "a".repeat(1 << 16);
        let started = std::time::Instant::now();
        assert_eq!(p.find(&branch).map(|t| t.len()), Some(MAX_FIELD_BYTES));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
