//! Wire types shared by the hook client and the sidecar: the payload as Claude Code sends it, and
//! the one edit hooktel makes to it before it travels (cutting huge tool outputs).
//!
//! Only `serde_json` and `std` here: the hook client links this module and must start in about a
//! millisecond, so nothing from Tokio or OpenTelemetry may come in through it.

use serde_json::{Map, Value};

/// Header carrying the time the hook client read the payload, in Unix nanoseconds. Hook payloads
/// carry no time of their own, and hook processes run concurrently, so the client's stamp is what
/// orders and times the spans; without it the sidecar stamps the time it received the body.
pub const RECEIVED_AT_HEADER: &str = "x-hooktel-received-at";

/// Field added to a payload whose `tool_response` was cut: the size of the original, in bytes.
pub const ORIGINAL_RESPONSE_BYTES: &str = "hooktel_tool_response_bytes";

/// Field added to a payload whose long strings were cut: the size of the original payload, in bytes.
pub const ORIGINAL_PAYLOAD_BYTES: &str = "hooktel_payload_bytes";

/// Field of a payload that carries a custom event's attributes (`POST /v1/events`, `hooktel emit`).
/// A custom event for a session travels as a hook payload named after the event, with its
/// attributes under this key: one path through queue, spool and journal for both kinds.
pub const CUSTOM_ATTRIBUTES: &str = "hooktel_custom";

/// A custom event as producers send it.
#[derive(Debug, serde::Deserialize)]
pub struct CustomEvent {
    pub name: String,
    #[serde(default)]
    pub session_id: Option<String>,
    /// RFC 3339 (`2026-11-21T04:31:23.896Z`) or Unix seconds; the receive time when absent.
    #[serde(default)]
    pub timestamp: Option<Value>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

impl CustomEvent {
    /// The hook-shaped payload that carries it for its session.
    pub fn into_payload(self, session_id: &str) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("session_id".into(), session_id.into());
        p.insert("hook_event_name".into(), self.name.into());
        p.insert(CUSTOM_ATTRIBUTES.into(), Value::Object(self.attributes));
        p
    }
}

/// A timestamp as producers write it, in Unix nanoseconds: RFC 3339 with `Z` or an offset
/// (`2026-11-21T04:31:23.896Z`, `2026-11-21T06:31:23+02:00`), or Unix seconds as a number.
pub fn timestamp_ns(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|s| s.is_finite() && *s >= 0.0).map(|s| (s * 1e9) as u64),
        Value::String(s) => rfc3339_ns(s),
        _ => None,
    }
}

/// Parse an RFC 3339 date-time into Unix nanoseconds.
pub fn rfc3339_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let offset_s = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60)
        }
        _ => return None,
    };
    // days from the civil date (Howard Hinnant's algorithm)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    (secs >= 0).then(|| secs as u64 * 1_000_000_000 + nanos as u64)
}

/// Largest payload (after cutting tool outputs) kept as it is. A `Write` of a large file carries the
/// whole file in `tool_input.content`; past this size every long string in the payload is cut, so
/// no tool call is ever refused for its size. Paths, ids and names are far shorter than this.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Length a long string is cut to when the payload is over `MAX_PAYLOAD_BYTES`.
const LONG_STRING_KEEP: usize = 1024;

/// Bound a payload's size before it travels or is held: cut huge tool outputs, then, if the payload
/// is still over `MAX_PAYLOAD_BYTES`, cut every string longer than 1 KiB. Records the original sizes.
/// Returns whether anything was cut.
pub fn trim_payload(payload: &mut Map<String, Value>) -> bool {
    let mut cut = trim_tool_responses(payload, MAX_TOOL_RESPONSE_BYTES);
    let size = serde_json::to_vec(&*payload).map(|v| v.len()).unwrap_or(0);
    if size > MAX_PAYLOAD_BYTES {
        for value in payload.values_mut() {
            cut_long_strings(value);
        }
        payload.insert(ORIGINAL_PAYLOAD_BYTES.into(), Value::from(size));
        cut = true;
    }
    cut
}

fn cut_long_strings(value: &mut Value) {
    match value {
        Value::String(s) if s.len() > LONG_STRING_KEEP => {
            let kept = truncate_utf8(s, LONG_STRING_KEEP).to_owned();
            *s = kept;
        }
        Value::Array(items) => items.iter_mut().for_each(cut_long_strings),
        Value::Object(map) => map.values_mut().for_each(cut_long_strings),
        _ => {}
    }
}

/// Largest `tool_response` (serialised) kept as it is. Tool outputs (a `Read` of a large file, a
/// long build log) can be megabytes; hooktel never exports them by default, so keeping more than
/// this costs memory and bandwidth and buys nothing.
pub const MAX_TOOL_RESPONSE_BYTES: usize = 16 * 1024;

/// Cut `tool_response` (and `tool_calls[].tool_response` of PostToolBatch) when its JSON is larger
/// than `cap`, keeping the fields hooktel reads (`agentId`, `interrupted`) and recording the
/// original size. Returns whether anything was cut.
pub fn trim_tool_responses(payload: &mut Map<String, Value>, cap: usize) -> bool {
    let mut cut = false;
    if let Some(resp) = payload.get_mut("tool_response") {
        if let Some(bytes) = trim_one(resp, cap) {
            payload.insert(ORIGINAL_RESPONSE_BYTES.into(), Value::from(bytes));
            cut = true;
        }
    }
    if let Some(Value::Array(calls)) = payload.get_mut("tool_calls") {
        for call in calls.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(resp) = call.get_mut("tool_response") {
                if let Some(bytes) = trim_one(resp, cap) {
                    call.insert(ORIGINAL_RESPONSE_BYTES.into(), Value::from(bytes));
                    cut = true;
                }
            }
        }
    }
    cut
}

/// Replace `resp` by a cut-down copy when its JSON exceeds `cap`; returns the original size.
fn trim_one(resp: &mut Value, cap: usize) -> Option<usize> {
    let size = serde_json::to_vec(resp).map(|v| v.len()).unwrap_or(0);
    if size <= cap {
        return None;
    }
    let mut kept = Map::new();
    if let Value::Object(obj) = resp {
        for key in ["agentId", "agentType", "interrupted", "status"] {
            if let Some(v) = obj.get(key).filter(|v| !v.is_object() && !v.is_array()) {
                kept.insert(key.into(), v.clone());
            }
        }
    }
    let text = match &*resp {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    kept.insert("truncated".into(), Value::String(truncate_utf8(&text, cap / 2).to_owned()));
    *resp = Value::Object(kept);
    Some(size)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_responses_are_untouched() {
        let mut p = json!({"tool_response": {"stdout": "hi"}}).as_object().unwrap().clone();
        assert!(!trim_tool_responses(&mut p, 1024));
        assert_eq!(p["tool_response"]["stdout"], "hi");
    }

    #[test]
    fn huge_responses_are_cut_and_sized() {
        let big = "x".repeat(100_000);
        let mut p = json!({"tool_response": {"stdout": big, "agentId": "a1", "interrupted": false},
                           "tool_calls": [{"tool_response": big}]})
        .as_object()
        .unwrap()
        .clone();
        assert!(trim_tool_responses(&mut p, 1024));
        assert_eq!(p["tool_response"]["agentId"], "a1");
        assert_eq!(p["tool_response"]["interrupted"], false);
        assert!(p[ORIGINAL_RESPONSE_BYTES].as_u64().unwrap() > 100_000);
        assert!(p["tool_response"]["truncated"].as_str().unwrap().len() <= 512);
        assert!(p["tool_calls"][0][ORIGINAL_RESPONSE_BYTES].as_u64().unwrap() > 100_000);
    }

    #[test]
    fn huge_inputs_are_cut_but_keep_their_keys() {
        let content = "y".repeat(9 * 1024 * 1024);
        let mut p = json!({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Write",
                           "tool_input": {"file_path": "/a/b.txt", "content": content}})
        .as_object()
        .unwrap()
        .clone();
        assert!(trim_payload(&mut p));
        assert_eq!(p["tool_input"]["file_path"], "/a/b.txt");
        assert_eq!(p["session_id"], "s");
        assert!(p[ORIGINAL_PAYLOAD_BYTES].as_u64().unwrap() > 9 * 1024 * 1024);
        assert!(serde_json::to_vec(&p).unwrap().len() < MAX_PAYLOAD_BYTES);
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

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
