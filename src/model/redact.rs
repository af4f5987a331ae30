//! Secrets never printed: the one redaction of an endpoint or URL for every place one shows (log
//! lines, `/v1/status`, `/v1/probe`, `hooktel doctor`, error texts), and of known secret values
//! (header values, a URL's password or key) inside a text, such as a backend's error message.
//!
//! A URL keeps its scheme, host, port and path, so that the user can see where data goes; its
//! userinfo (everything up to the last `@` before the host, also when a raw `/`, `?`, `#` or `@` in a
//! password would end the authority early), its query and its fragment are not shown (keys, tokens
//! and signatures travel there). In a text, the values a URL carries in those places are masked.

use crate::model::capture;

/// What stands for a hidden value.
pub(crate) const MASK: &str = "***";

/// Query parameter names (lowercase, whole) that carry a credential besides those
/// [`capture::is_secret_name`] catches by a word in them.
const SECRET_PARAMS: &[&str] = &[
    "key",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-goog-signature",
    "x-goog-credential",
    "code",
    "pass",
    "sas",
    "jwt",
];

/// `url` as it may be shown: no userinfo, no query, no fragment.
pub(crate) fn url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let (userinfo, after) = match userinfo_end(rest) {
        Some(at) => (true, &rest[at + 1..]),
        None => (false, rest),
    };
    let path = &after[..after.find(['?', '#']).unwrap_or(after.len())];
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    if userinfo {
        out.push_str(MASK);
        out.push('@');
    }
    out.push_str(path);
    out
}

/// Where the userinfo of `rest` (the URL after `scheme://`) ends: the last `@` of the authority as a
/// URL parser reads it; and when a raw `/`, `\`, `?` or `#` in a password ends that authority before
/// its `@` (what is left is no `host[:port]`, or the path holds `@host.name/`), the last `@` that is
/// followed by a host.
fn userinfo_end(rest: &str) -> Option<usize> {
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if let Some(at) = authority.rfind('@') {
        return Some(at);
    }
    let followed_by_host = |at: usize| {
        let after = &rest[at + 1..];
        let host = &after[..after.find(['/', '\\', '?', '#']).unwrap_or(after.len())];
        host_port(host)
    };
    let mut candidates = rest.match_indices('@').map(|(i, _)| i).filter(|&i| followed_by_host(i));
    if !host_port(authority) {
        // not a URL the client can send to: hide up to the last `@` that a host follows
        return candidates.next_back();
    }
    // a valid authority and an `@` further on: userinfo only when a named host (`a.b`, `h:port`)
    // follows it before the query; an `@` in a path (`/a@b`) stays
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    candidates.rev().find(|&i| i < before_query && named_host(&rest[i + 1..]))
}

/// `host[:port]`: a name, an IPv4 address or a bracketed IPv6 one, and digits for the port.
pub(crate) fn host_port(s: &str) -> bool {
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    if let Some(v6) = s.strip_prefix('[') {
        let Some((addr, rest)) = v6.split_once(']') else { return false };
        let port_ok = rest.is_empty() || rest.strip_prefix(':').is_some_and(digits);
        return !addr.is_empty() && addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') && port_ok;
    }
    let (host, port) = s.rsplit_once(':').unwrap_or((s, ""));
    !host.is_empty() && host.chars().all(|c| c.is_alphanumeric() || "-._~%".contains(c)) && digits(port)
}

/// The segment at the start of `s` (up to `/`, `?`, `#`) names a host the way an endpoint does: a
/// dotted name or address, or a port.
fn named_host(s: &str) -> bool {
    let seg = &s[..s.find(['/', '\\', '?', '#']).unwrap_or(s.len())];
    host_port(seg) && (seg.contains('.') || seg.contains(':'))
}

/// A parameter whose value is a key, token or signature: by its name, or by the value's looks.
fn secret_param(name: &str, value: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    capture::is_secret_name(&lower) || SECRET_PARAMS.contains(&lower.as_str()) || looks_secret(value)
}

/// A value that looks like a credential: a vendor's token, or 16 or more characters mixing letters
/// and digits (ids of datasets and regions are shorter or plain words).
fn looks_secret(value: &str) -> bool {
    capture::is_vendor_token(value)
        || (value.len() >= 16
            && value.chars().any(|c| c.is_ascii_digit())
            && value.chars().any(|c| c.is_ascii_alphabetic()))
}

/// The secret parts of `url` (its userinfo, whole and as user and password, and its secret query
/// values, raw and percent-decoded): what must not appear in a text about it.
pub(crate) fn secrets_of_url(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let mut out = Vec::new();
    let mut push = |s: &str| {
        for v in [s.to_owned(), percent_decoded(s)] {
            if v.len() >= 3 && !out.contains(&v) {
                out.push(v);
            }
        }
    };
    let after = match userinfo_end(rest) {
        Some(at) => {
            let info = &rest[..at];
            push(info);
            if let Some((user, password)) = info.split_once(':') {
                push(user);
                push(password);
            }
            // as it travels: `Authorization: Basic base64(user:password)`, which a backend may echo
            push(&base64(percent_decoded(info).as_bytes()));
            push(&base64(info.as_bytes()));
            &rest[at + 1..]
        }
        None => rest,
    };
    if let Some((_, query)) = after.split_once('?') {
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        for pair in query.split('&') {
            if let Some((_, value)) = pair.split_once('=').filter(|(n, v)| secret_param(n, v)) {
                push(value);
            }
        }
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `%XX` decoded where it can be, else left as it is.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every one of `secrets`, and each word of one long enough to be a key ("Basic" stays,
/// the token goes), replaced by `***`.
pub(crate) fn text<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut s = text.to_owned();
    let mut secrets: Vec<&str> = secrets.iter().map(AsRef::as_ref).filter(|v| !v.is_empty()).collect();
    // the longest first, so a part never leaves the rest of a whole one behind
    secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for value in secrets {
        s = s.replace(value, MASK);
        for part in value.split_whitespace().filter(|p| p.len() >= 8) {
            s = s.replace(part, MASK);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_goes_up_to_the_last_at_before_the_host() {
        let cases = [
            ("https://user:secret@otel.corp:4318/v1/traces", "https://***@otel.corp:4318/v1/traces"),
            ("http://alice:PA@SS@otel.corp/v1/traces", "http://***@otel.corp/v1/traces"),
            ("http://alice:PA/SS@127.0.0.1:9/v1/traces", "http://***@127.0.0.1:9/v1/traces"),
            ("http://alice:PA?SS@127.0.0.1:9/v1/traces", "http://***@127.0.0.1:9/v1/traces"),
            ("http://alice:PA#SS@127.0.0.1:9/v1/traces", "http://***@127.0.0.1:9/v1/traces"),
            ("http://alice:P\\SS@127.0.0.1:9/", "http://***@127.0.0.1:9/"),
            ("http://tok/en==@api.honeycomb.io/v1/traces", "http://***@api.honeycomb.io/v1/traces"),
            ("http://a:b@[::1]:4318/", "http://***@[::1]:4318/"),
            ("alice:pw@otel.corp:4318", "***@otel.corp:4318"),
        ];
        for (raw, want) in cases {
            assert_eq!(url(raw), want, "{raw}");
        }
        assert_eq!(url("http://otel:4318/a@b"), "http://otel:4318/a@b", "an @ in the path is no userinfo");
        assert_eq!(url("https://otel.corp/v1/traces"), "https://otel.corp/v1/traces");
        assert_eq!(url("otel.corp:4318"), "otel.corp:4318");
    }

    #[test]
    fn the_query_and_the_fragment_are_not_shown() {
        assert_eq!(
            url("https://otel.corp/v1/traces?api_key=secret&dataset=prod&sig=abc#x"),
            "https://otel.corp/v1/traces"
        );
        assert_eq!(url("https://u:p@h/x?token=t0k#frag"), "https://***@h/x");
        assert_eq!(url("https://h/x#access_token=t0k"), "https://h/x");
    }

    #[test]
    fn the_secrets_of_a_url_are_masked_in_a_text_about_it() {
        let raw = "http://alice:PA%2FSS@otel.corp/v1/traces?api_key=KEY123&dataset=prod";
        let secrets = secrets_of_url(raw);
        for s in ["alice:PA%2FSS", "PA%2FSS", "PA/SS", "KEY123"] {
            assert!(secrets.iter().any(|x| x == s), "{s} in {secrets:?}");
        }
        assert!(!secrets.iter().any(|x| x == "prod"));
        assert!(secrets.iter().any(|x| x == "YWxpY2U6UEEvU1M="), "as Basic auth sends it: {secrets:?}");
        assert_eq!(base64(b"ab"), "YWI=");
        let said = text("denied for alice:PA/SS (key KEY123)", &secrets);
        assert_eq!(said, "denied for *** (key ***)");
        assert_eq!(
            text("invalid credentials: Basic c2VjcmV0a2V5", &["Basic c2VjcmV0a2V5"]),
            "invalid credentials: ***"
        );
        assert_eq!(text("key c2VjcmV0a2V5 is revoked", &["Basic c2VjcmV0a2V5"]), "key *** is revoked");
    }
}
