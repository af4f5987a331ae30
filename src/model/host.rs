//! Which `host[:port]` names this machine's loopback: the sidecar's rule for a request that may write
//! or read its configuration without the token, and the hook client's for where it need not send it.
//! One rule for both, so the client leaves the token out exactly where the sidecar wants none.

/// The host part of `host[:port]` (`[v6]:port` too), lowercased; `None` when it is not of that form.
pub(crate) fn name_of(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if rest.is_empty() || rest.strip_prefix(':').is_some_and(all_digits) => addr,
            _ => return None,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if all_digits(port) => name,
            Some(_) => return None,
            None => host.as_str(),
        },
    };
    (!name.is_empty()).then(|| name.to_owned())
}

fn all_digits(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_digit())
}

/// A name that is this machine's loopback: `localhost`, a `.localhost` name, or a loopback address
/// (also IPv4-mapped IPv6). Lowercase, as [`name_of`] gives it.
pub(crate) fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::IpAddr>().is_ok_and(is_loopback_ip)
}

/// An IPv4 or IPv6 loopback address, also as an IPv4-mapped IPv6 one (a dual-stack listener).
pub(crate) fn is_loopback_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        v4 => v4.is_loopback(),
    }
}

/// `host[:port]` naming this machine's loopback.
pub(crate) fn is_loopback(host: &str) -> bool {
    name_of(host).is_some_and(|n| is_loopback_name(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_with_or_without_a_port() {
        for ok in [
            "127.0.0.1:4388",
            "localhost:4388",
            "LOCALHOST",
            "[::1]:4388",
            "127.9.8.7",
            "a.localhost:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:4388",
            "",
            "[::1",
            "[::1]x",
            "10.0.0.1:4388",
            "localhost.evil.com",
            "127.0.0.1.nip.io",
            "localhost:x",
            "0.0.0.0:4388",
        ] {
            assert!(!is_loopback(bad), "{bad:?}");
        }
        assert_eq!(name_of("Hooktel.Internal:4388").as_deref(), Some("hooktel.internal"));
    }
}
