//! How much a body would become once decoded, measured on its bytes before anything is built: a
//! count of its elements and its depth, for JSON (hook bodies, custom events, OTLP/JSON) and for the
//! protobuf wire format (OTLP). An 8 MiB body of 4 million empty records or zeros decodes to 100 times
//! its size; counted first, it is refused for the price of one pass over its bytes. Pure: no I/O.

/// Most elements a body may hold: JSON values and object keys (each `{`, `[`, `,`, `:` outside a
/// string), protobuf fields that are messages, strings or bytes. Claude Code's largest captured
/// body holds 5,125 (an OTLP/JSON logs export of 47 records, about 110 each; 2,591 as protobuf; a
/// hook body under 100): the largest batch its OpenTelemetry SDK sends (512 records) would hold
/// about 56,000, under a third of this.
pub const MAX_ELEMENTS: usize = 200_000;

/// Deepest nesting a body may have. Claude Code's payloads nest under 12 levels (OTLP: request,
/// resource, scope, record, attribute, value, and arrays or maps of values).
pub(crate) const MAX_DEPTH: usize = 64;

/// What decoding an element may cost, in bytes: the largest OTLP struct prost builds (a span, 264
/// bytes) or a `serde_json` value (72) with its share of a small map, rounded up.
pub(crate) const COST_PER_ELEMENT: usize = 320;

/// Why a body was refused before it was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooBig {
    #[error("body holds over {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("body nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl TooBig {
    /// The bounded `reason` of `hooktel_ingest_rejected_total`.
    pub(crate) fn metric_label(self) -> &'static str {
        match self {
            TooBig::TooManyElements => "too_many_elements",
            TooBig::TooDeep => "too_deep",
        }
    }
}

/// What decoding a body of `len` bytes with `elements` elements may hold at most, in bytes: what it
/// reserves of the decoding share of the memory budget (`model::budget`; a body at the bounds, 8 MiB
/// and [`MAX_ELEMENTS`], costs 69 MiB: more than the share, it reserves all of it).
pub(crate) fn decode_cost(len: usize, elements: usize) -> usize {
    len.saturating_add(elements.saturating_mul(COST_PER_ELEMENT)).max(1)
}

/// The elements of a JSON text (see [`MAX_ELEMENTS`]), or why it is refused. Malformed JSON is
/// counted as far as it goes and left to the parser to refuse.
pub(crate) fn json(body: &[u8]) -> Result<usize, TooBig> {
    let (mut elements, mut depth) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(TooBig::TooDeep);
                }
                elements += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' | b':' => elements += 1,
            _ => continue,
        }
        if elements > MAX_ELEMENTS {
            return Err(TooBig::TooManyElements);
        }
    }
    Ok(elements)
}

/// The elements of a protobuf message (see [`MAX_ELEMENTS`]), or why it is refused. Without its
/// schema, every length-delimited field counts, and one whose bytes read as a message is counted
/// inside too (a string that happens to read as one is over-counted, never under). A body that is
/// not protobuf is left to the decoder to refuse.
pub(crate) fn protobuf(body: &[u8]) -> Result<usize, TooBig> {
    let mut elements = 0;
    message(body, 1, &mut elements, true)?;
    Ok(elements)
}

/// Count the fields of `buf` read as a message at `depth` into `elements` (and inside its fields,
/// if `nest`); `Ok(false)` when it is not one (then whatever it added is taken back by the caller).
fn message(buf: &[u8], depth: usize, elements: &mut usize, nest: bool) -> Result<bool, TooBig> {
    let mut at = 0;
    // open groups (wire types 3 and 4, skipped by the decoder as unknown fields): a message
    // holding one is still a message, and what it holds still counts
    let mut groups = Vec::new();
    while at < buf.len() {
        let Some(key) = varint(buf, &mut at) else { return Ok(false) };
        if key >> 3 == 0 {
            return Ok(false);
        }
        match key & 7 {
            3 => {
                groups.push(key >> 3);
                if depth + groups.len() > MAX_DEPTH {
                    return Err(TooBig::TooDeep);
                }
            }
            4 => {
                if groups.pop() != Some(key >> 3) {
                    return Ok(false);
                }
            }
            0 => {
                if varint(buf, &mut at).is_none() {
                    return Ok(false);
                }
            }
            1 | 5 => {
                at += if key & 7 == 1 { 8 } else { 4 };
                if at > buf.len() {
                    return Ok(false);
                }
            }
            2 => {
                let Some(len) = varint(buf, &mut at) else { return Ok(false) };
                let Some(end) = usize::try_from(len).ok().and_then(|l| at.checked_add(l)).filter(|&e| e <= buf.len())
                else {
                    return Ok(false);
                };
                *elements += 1;
                if *elements > MAX_ELEMENTS {
                    return Err(TooBig::TooManyElements);
                }
                let inner = &buf[at..end];
                if nest && !inner.is_empty() {
                    if depth >= MAX_DEPTH {
                        // deeper than any OTLP message: refused if it reads as one (without
                        // going further in: the stack stays flat whatever the body)
                        let mut probe = 0;
                        if message(inner, depth, &mut probe, false).unwrap_or(true) {
                            return Err(TooBig::TooDeep);
                        }
                    } else {
                        let before = *elements;
                        if !message(inner, depth + 1, elements, true)? {
                            *elements = before;
                        }
                    }
                }
                at = end;
            }
            _ => return Ok(false),
        }
    }
    Ok(groups.is_empty())
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    fn bodies(fixture: &str) -> Vec<Vec<u8>> {
        let all: Vec<serde_json::Value> = serde_json::from_str(fixture).unwrap();
        all.iter().map(|b| serde_json::to_vec(b).unwrap()).collect()
    }

    /// Every captured body of Claude Code, hook and OTLP in both encodings, is far under the bounds.
    #[test]
    fn real_bodies_are_far_under_the_bounds() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hooks/captured");
        let mut most = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let body = std::fs::read(entry.unwrap().path()).unwrap();
            most = most.max(json(&body).unwrap());
        }
        assert!(most * 100 < MAX_ELEMENTS, "hook body with {most} elements");
        let otel = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/otel/captured-2.1.329/");
        let mut most = (0, 0);
        for signal in ["logs", "metrics", "traces"] {
            let fixture = std::fs::read_to_string(format!("{otel}otlp-{signal}.http-json.json")).unwrap();
            for body in bodies(&fixture) {
                let proto = match signal {
                    "logs" => serde_json::from_slice::<ExportLogsServiceRequest>(&body).unwrap().encode_to_vec(),
                    "metrics" => serde_json::from_slice::<ExportMetricsServiceRequest>(&body).unwrap().encode_to_vec(),
                    _ => serde_json::from_slice::<ExportTraceServiceRequest>(&body).unwrap().encode_to_vec(),
                };
                most = (most.0.max(json(&body).unwrap()), most.1.max(protobuf(&proto).unwrap()));
            }
        }
        println!("most elements: JSON {}, protobuf {}", most.0, most.1);
        assert!(most.0 * 10 < MAX_ELEMENTS && most.1 * 10 < MAX_ELEMENTS, "{most:?}");
    }

    #[test]
    fn expanding_json_is_refused_before_it_is_built() {
        let zeros = format!("[{}0]", "0,".repeat(MAX_ELEMENTS));
        assert_eq!(json(zeros.as_bytes()), Err(TooBig::TooManyElements));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(json(deep.as_bytes()), Err(TooBig::TooDeep));
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(json(fine.as_bytes()), Ok(MAX_DEPTH));
        // brackets, commas and colons inside strings are text
        assert_eq!(json(br#"{"a":"[[[,,,:::\"{{{","b":[1,2]}"#), Ok(6));
    }

    #[test]
    fn expanding_protobuf_is_refused_before_it_is_built() {
        // ResourceLogs { ScopeLogs { millions of empty LogRecords } }, as the wire has them
        let records = [0x12u8, 0x00].repeat(MAX_ELEMENTS + 1);
        let scope = [vec![0x12], encode_len(records.len()), records].concat();
        let resource = [vec![0x0a], encode_len(scope.len()), scope].concat();
        assert_eq!(protobuf(&resource), Err(TooBig::TooManyElements));
        let decoded = ExportLogsServiceRequest::decode(&resource[..]).unwrap();
        assert_eq!(decoded.resource_logs[0].scope_logs[0].log_records.len(), MAX_ELEMENTS + 1);
        // an unknown group field does not hide the records beside it
        let records = [[0x12u8, 0x00].repeat(MAX_ELEMENTS + 1), vec![0x9b, 0x06, 0x9c, 0x06]].concat();
        let scope = [vec![0x12], encode_len(records.len()), records].concat();
        let resource = [vec![0x0a], encode_len(scope.len()), scope].concat();
        let decoded = ExportLogsServiceRequest::decode(&resource[..]).unwrap();
        assert_eq!(decoded.resource_logs[0].scope_logs[0].log_records.len(), MAX_ELEMENTS + 1);
        assert_eq!(protobuf(&resource), Err(TooBig::TooManyElements));
        // nested messages past the depth
        let mut deep = vec![0x0a, 0x00];
        for _ in 0..MAX_DEPTH + 2 {
            deep = [vec![0x0a], encode_len(deep.len()), deep].concat();
        }
        assert_eq!(protobuf(&deep), Err(TooBig::TooDeep));
        assert!(protobuf(&[0xff, 0xff, 0xff]).is_ok(), "not protobuf: left to the decoder");
    }

    fn encode_len(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_varint(n as u64, &mut out);
        out
    }
}
