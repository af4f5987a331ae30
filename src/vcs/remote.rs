//! A remote's URL as `host/owner/repo`: what is kept of `git@github.com:acme/widgets.git`,
//! `ssh://git@github.com:22/acme/widgets` or `https://user:token@github.com/acme/widgets.git?x=y`.
//!
//! Pure. Credentials never survive: the user and password (everything up to the authority's last
//! `@`), the port, the query and the fragment are dropped, and what is left must be a plain host and
//! plain path segments, or nothing is kept at all (a local path, a `file://` URL, anything odd).

use crate::model::checkout::MAX_FIELD_BYTES;

/// The remote `url` as `host/path`, or `None` when it is not a network remote or not plain.
pub(crate) fn normalise(url: &str) -> Option<String> {
    let url = url.trim();
    let (host, path) = match url.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme.to_ascii_lowercase().as_str(), "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git")
            {
                return None;
            }
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = host_port.split_once(':').map_or(host_port, |(h, _)| h);
            (host, path)
        }
        None => {
            // scp-like `[user@]host:path`: the user (and anything like a password) ends at the last
            // `@` before the path's first `/`
            let head_end = url.find('/').unwrap_or(url.len());
            let from = url[..head_end].rfind('@').map_or(0, |at| at + 1);
            let (host, path) = url[from..].split_once(':')?;
            (host, path)
        }
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).trim_end_matches('/');
    let host = host.to_ascii_lowercase();
    // one letter is a Windows drive (`C:/repos`), not a host
    let plain_host = host.len() > 1
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && host.contains(|c: char| c.is_ascii_alphabetic() || c == '.');
    let segments: Vec<&str> = path.split('/').collect();
    let plain_path = segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+'))
        });
    let repo = format!("{host}/{path}");
    (plain_host && plain_path && repo.len() <= MAX_FIELD_BYTES).then_some(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_of_a_remote_become_host_owner_repo() {
        for (url, want) in [
            ("git@github.com:acme/widgets.git", "github.com/acme/widgets"),
            ("ssh://git@github.com:22/acme/widgets", "github.com/acme/widgets"),
            ("https://user:token@github.com/acme/widgets.git", "github.com/acme/widgets"),
            ("https://gitlab.example.com/group/sub/proj", "gitlab.example.com/group/sub/proj"),
            ("https://GitHub.com/acme/widgets/", "github.com/acme/widgets"),
            ("https://github.com/acme/widgets.git/", "github.com/acme/widgets"),
            ("git://git.kernel.org/pub/scm/git/git.git", "git.kernel.org/pub/scm/git/git"),
            ("ssh://git@bitbucket.org/team/repo.git", "bitbucket.org/team/repo"),
            ("github.com:acme/widgets", "github.com/acme/widgets"),
            ("https://dev.azure.com/org/project/_git/repo", "dev.azure.com/org/project/_git/repo"),
            ("  https://github.com/acme/widgets  ", "github.com/acme/widgets"),
        ] {
            assert_eq!(normalise(url).as_deref(), Some(want), "{url}");
        }
    }

    /// Whatever a credential looks like, it is never part of what is kept.
    #[test]
    fn credentials_never_survive() {
        for url in [
            "https://user:secret@github.com/acme/widgets.git",
            "https://x-access-token:secret@github.com/acme/widgets",
            "https://secret@github.com/acme/widgets",
            "https://user:sec@ret@github.com/acme/widgets",
            "https://github.com/acme/widgets.git?access_token=secret",
            "https://github.com/acme/widgets#secret",
            "ssh://user:secret@github.com:2222/acme/widgets",
            "user:secret@github.com:acme/widgets.git",
            "secret@github.com:acme/widgets.git",
        ] {
            let kept = normalise(url);
            assert_eq!(kept.as_deref(), Some("github.com/acme/widgets"), "{url}");
        }
        // a credential where a path segment should be: nothing is kept
        for url in ["https://github.com/acme:secret@x/widgets", "https://github.com/acme/wid gets?secret"] {
            assert!(normalise(url).is_none_or(|r| !r.contains("secret")), "{url}: {:?}", normalise(url));
        }
    }

    #[test]
    fn local_odd_and_hostile_remotes_keep_nothing() {
        for url in [
            "",
            "/srv/git/widgets.git",
            "../widgets",
            "file:///srv/git/widgets.git",
            "C:/repos/widgets",
            "ftp://example.com/a/b",
            "https://github.com/widgets",
            "https://github.com/acme/../widgets",
            "https://github.com//widgets",
            "https://gith\u{fc}b.com/acme/widgets",
            "https://github.com/acme/wid\u{0}gets",
            "https://github.com/acme/wid\ngets",
            "https://[::1]/acme/widgets",
            "https:///acme/widgets",
            "git@:acme/widgets",
        ] {
            assert_eq!(normalise(url), None, "{url:?}");
        }
        let long = format!("https://github.com/acme/{}", "w".repeat(300));
        assert_eq!(normalise(&long), None);
        assert!(normalise(&"a".repeat(1 << 20)).is_none());
    }
}
