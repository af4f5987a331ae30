//! Old JSONL event logs: each line a JSON object becomes a custom event, with its own time and, when
//! it names one, its session. Pure apart from reading the file.

use std::path::Path;

use serde_json::{Map, Value};

use crate::backfill::error::BackfillError;
use crate::model::time::{rfc3339_ns, unix_seconds_ns, NS_PER_SEC};

/// A custom event read from a JSONL event log.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomEvent {
    pub name: String,
    pub session_id: Option<String>,
    /// Unix nanoseconds.
    pub at: u64,
    pub attributes: Map<String, Value>,
    /// Stable deduplication key: a hash of the file's path, the line number and the line.
    pub key: String,
}

/// Fields that may carry an event's time, in order of preference.
const TIME_KEYS: [&str; 3] = ["timestamp", "ts", "time"];
/// Fields that may carry an event's session.
const SESSION_KEYS: [&str; 2] = ["session_id", "sessionId"];

/// Read a JSONL event log: each line a JSON object becomes a custom event named `name`. The time
/// comes from `timestamp`, `ts` or `time` (RFC 3339, or Unix seconds, milliseconds, microseconds or
/// nanoseconds told apart by size), the session from `session_id` or `sessionId`; the other fields
/// are its attributes. Returns the events and the number of lines skipped: not a JSON object, or
/// no usable time (a backfill has no other time to give them). Blank lines are not counted.
pub fn events_from_jsonl(path: &Path, name: &str) -> Result<(Vec<CustomEvent>, usize), BackfillError> {
    // opened without blocking and read only if a regular file: a FIFO would hang the import
    let mut file = crate::usage::agent_dirs::open_nonblocking(path).map_err(BackfillError::read(path))?;
    if !file.metadata().map_err(BackfillError::read(path))?.is_file() {
        return Err(BackfillError::read(path)(std::io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(BackfillError::read(path))?;
    let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let file = file.to_string_lossy();
    let (mut events, mut skipped) = (Vec::new(), 0);
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(line) else {
            skipped += 1;
            continue;
        };
        let Some((key, at)) = TIME_KEYS.iter().find_map(|k| Some((*k, fields.get(*k).and_then(event_time)?))) else {
            skipped += 1;
            continue;
        };
        // shift, not swap (`remove` with serde_json's preserve_order): the attributes keep the line's order
        fields.shift_remove(key);
        let mut session_id = None;
        for k in SESSION_KEYS {
            if let Some(v) = fields.shift_remove(k) {
                session_id = session_id.or(v.as_str().filter(|s| !s.is_empty()).map(str::to_owned));
            }
        }
        let mut seed = format!("{file}\n{}\n", n + 1).into_bytes();
        seed.extend_from_slice(line);
        let key = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, &seed).simple().to_string();
        events.push(CustomEvent { name: name.to_owned(), session_id, at, attributes: fields, key });
    }
    Ok((events, skipped))
}

/// An event's time in Unix nanoseconds: RFC 3339, or a Unix number whose unit is read from its size.
fn event_time(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => rfc3339_ns(s.trim()),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                // seconds past the year 2554 do not fit in u64 nanoseconds: refused, not wrapped
                return match i {
                    0..100_000_000_000 => i.checked_mul(NS_PER_SEC),
                    100_000_000_000..100_000_000_000_000 => i.checked_mul(1_000_000),
                    100_000_000_000_000..100_000_000_000_000_000 => i.checked_mul(1_000),
                    _ => Some(i),
                };
            }
            let f = n.as_f64().filter(|f| f.is_finite() && *f > 0.0)?;
            // the same bands as for integers, as seconds
            let seconds = if f < 1e11 {
                f
            } else if f < 1e14 {
                f / 1e3
            } else if f < 1e17 {
                f / 1e6
            } else {
                f / 1e9
            };
            unix_seconds_ns(seconds)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_in_any_unit() {
        let ns = 1_795_235_483_896_000_000u64;
        assert_eq!(event_time(&Value::from("2026-11-21T04:31:23.896Z")), Some(ns));
        assert_eq!(event_time(&Value::from(1_795_235_483u64)), Some(1_795_235_483_000_000_000));
        assert_eq!(event_time(&Value::from(1_795_235_483_896u64)), Some(ns));
        assert_eq!(event_time(&Value::from(1_795_235_483_896_000u64)), Some(ns));
        assert_eq!(event_time(&Value::from(ns)), Some(ns));
        assert_eq!(event_time(&Value::from(1_795_235_483.5)), Some(1_795_235_483_500_000_000));
        assert_eq!(event_time(&Value::from("yesterday")), None);
        assert_eq!(event_time(&Value::from(-5)), None);
        assert_eq!(event_time(&Value::Null), None);
    }

    #[test]
    fn attributes_keep_the_order_of_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"ts\": 1795235483, \"b\": 1, \"session_id\": \"s\", \"a\": 2, \"c\": 3}\n").unwrap();
        let (events, skipped) = events_from_jsonl(&path, "deploy").unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(events[0].session_id.as_deref(), Some("s"));
        assert_eq!(events[0].attributes.keys().collect::<Vec<_>>(), ["b", "a", "c"]);
    }

    /// `i * 1_000_000_000` overflowed for seconds past 2554 (a panic in debug, a wrap in release).
    #[test]
    fn times_past_u64_nanoseconds_are_refused() {
        assert_eq!(event_time(&Value::from(99_999_999_999u64)), None);
        assert_eq!(event_time(&Value::from(18_446_744_074u64)), None);
        assert_eq!(event_time(&Value::from(18_446_744_073u64)), Some(18_446_744_073_000_000_000));
        assert_eq!(event_time(&Value::from(9.9e10)), None);
        assert_eq!(event_time(&Value::from(1e300)), None);
        assert_eq!(event_time(&Value::from(u64::MAX)), Some(u64::MAX));
    }
}
