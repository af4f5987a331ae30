//! Pull requests a shell command opened: the rule that tells one from a command's line and output,
//! and the URL it keeps of it (nothing else of the output).
//!
//! A Bash call opened a pull request when both hold: its command line runs a command that creates
//! one (`gh pr create`, `glab mr create`, `tea pulls create`, `git push -o merge_request.create`, a
//! `git push` to `refs/for/<branch>`), and its output names a URL of that forge's pull-request shape
//! (`/<owner>/<repo>/pull/<n>`, `/<group>/<project>/-/merge_requests/<n>`, `/<owner>/<repo>/pulls/<n>`).
//! A `cat` or `echo` of such a URL is no creation; GitHub's `pull/new/<branch>` hint after a push is
//! no pull request. Kept: the URL without credentials, query or fragment, at most `MAX_URL_BYTES`.
//!
//! Pure and `std` only (plus serde's derive): the hook client runs it on a huge output before cutting
//! it, so it scans in one pass, linear in the output's size.

/// Longest pull-request URL kept: a forge's host and a repository path fit in far less; a longer
/// "URL" is no pull request's.
pub(crate) const MAX_URL_BYTES: usize = 512;

/// Most bytes of a command line read for the command that creates a pull request: Claude Code's
/// `gh pr create` carries its body in a heredoc of a few KiB; the command itself comes first.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The forge a pull request is on, by the shape of its URL (`vcs.provider.name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Forge {
    /// GitHub and GitHub Enterprise: `gh pr create`.
    GitHub,
    /// GitLab: `glab mr create`, `git push -o merge_request.create`.
    GitLab,
    /// Gitea and Forgejo: `tea pulls create`, `git push` to `refs/for/<branch>` (AGit).
    Gitea,
}

impl Forge {
    /// The `vcs.provider.name` value, also the `provider` label of `hooktel_pull_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }
}

/// A pull request (merge request) as its URL names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PullRequest {
    /// Its URL: scheme, host and path only.
    pub(crate) url: String,
    /// The repository's URL (`vcs.repository.url.full`).
    pub(crate) repository: String,
    /// Its number in the repository (`vcs.change.id`).
    pub(crate) number: u64,
    pub(crate) forge: Forge,
}

/// The pull request a shell command opened, from its command line and its outputs (stdout, then
/// stderr): the first URL of a pull-request shape of a forge whose creating command the line runs.
pub(crate) fn opened(command: &str, outputs: &[&str]) -> Option<PullRequest> {
    let mut end = command.len().min(MAX_COMMAND_BYTES);
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    let forges = creating_forges(&command[..end]);
    if forges.is_empty() {
        return None;
    }
    outputs.iter().flat_map(|text| urls_in(text)).filter_map(parse).find(|pr| forges.contains(&pr.forge))
}

/// The forges whose pull requests the simple commands of `line` create.
fn creating_forges(line: &str) -> Vec<Forge> {
    line.split([';', '&', '|', '\n', '(', ')', '`'])
        .filter_map(|simple| {
            let words: Vec<&str> =
                simple.split_whitespace().map(|w| w.trim_matches(|c| c == '"' || c == '\'')).collect();
            creates(&words)
        })
        .collect()
}

/// Words that run what follows them as a command.
const PREFIXES: &[&str] = &["env", "command", "exec", "time", "nohup", "sudo"];

/// The forge whose pull request one simple command creates, if it creates one.
fn creates(words: &[&str]) -> Option<Forge> {
    // `NAME=value` assignments and wrappers before the program
    let start = words.iter().position(|w| !w.contains('=') && !PREFIXES.contains(w))?;
    let program = words[start].rsplit('/').next().unwrap_or_default();
    let args = &words[start + 1..];
    match program {
        "gh" | "glab" => {
            let (noun, forge) = if program == "gh" { ("pr", Forge::GitHub) } else { ("mr", Forge::GitLab) };
            let v = verbs(args, &["-R", "--repo"]);
            (v.first() == Some(&noun) && matches!(v.get(1), Some(&"create") | Some(&"new"))).then_some(forge)
        }
        "tea" => {
            let v = verbs(args, &["--repo", "-r", "--login", "-l", "--remote", "-R"]);
            let noun = matches!(v.first(), Some(&"pulls") | Some(&"pull") | Some(&"pr"));
            (noun && matches!(v.get(1), Some(&"create") | Some(&"c"))).then_some(Forge::Gitea)
        }
        "git" if verbs(args, &["-C", "-c", "--git-dir", "--work-tree"]).first() == Some(&"push") => {
            let option = |i: usize| matches!(args.get(i.wrapping_sub(1)), Some(&"-o") | Some(&"--push-option"));
            let gitlab = args.iter().enumerate().any(|(i, w)| {
                matches!(*w, "--push-option=merge_request.create" | "-omerge_request.create")
                    || (*w == "merge_request.create" && option(i))
            });
            if gitlab {
                Some(Forge::GitLab)
            } else {
                args.iter().any(|w| w.contains("refs/for/")).then_some(Forge::Gitea)
            }
        }
        _ => None,
    }
}

/// The words of a command's arguments that are not flags nor the values of `valued` flags.
fn verbs<'a>(args: &[&'a str], valued: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut skip = false;
    for w in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if w.starts_with('-') {
            skip = valued.contains(w);
        } else {
            out.push(*w);
        }
    }
    out
}

/// Every `http://` or `https://` token of `text`, in order: each runs to the first space, quote,
/// angle bracket or control character. One pass: a token is never scanned twice.
fn urls_in(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let at = rest.find("http")?;
        let tail = &rest[at..];
        if !(tail.starts_with("https://") || tail.starts_with("http://")) {
            rest = &tail[4..];
            continue;
        }
        let end =
            tail.find(|c: char| c.is_whitespace() || c.is_control() || "\"'<>`\\".contains(c)).unwrap_or(tail.len());
        rest = &tail[end..];
        return Some(&tail[..end]);
    })
}

/// A pull request's URL, if `token` is one: credentials, query and fragment dropped, trailing
/// punctuation of the text around it too.
pub(crate) fn parse(token: &str) -> Option<PullRequest> {
    let token = token.trim_end_matches(|c| ".,;:)]}!".contains(c));
    if token.len() > MAX_URL_BYTES {
        return None;
    }
    let (scheme, rest) = match token.strip_prefix("https://") {
        Some(rest) => ("https://", rest),
        None => ("http://", token.strip_prefix("http://")?),
    };
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let (authority, path) = rest.split_once('/')?;
    // `user:token@host`: the credentials stay home
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host_ok = |c: char| c.is_ascii_alphanumeric() || ".-:".contains(c);
    if host.is_empty() || !host.chars().all(host_ok) {
        return None;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let segment_ok = |s: &&str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-._~%+".contains(c));
    if !segments.iter().all(segment_ok) {
        return None;
    }
    let (last, before) = segments.split_last()?;
    if last.len() > 12 || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = last.parse().ok()?;
    let (forge, repo) = match before.split_last()? {
        (&"pull", repo) if repo.len() == 2 => (Forge::GitHub, repo),
        (&"pulls", repo) if repo.len() == 2 => (Forge::Gitea, repo),
        (&"merge_requests", [repo @ .., "-"]) if repo.len() >= 2 => (Forge::GitLab, repo),
        _ => return None,
    };
    let repository = format!("{scheme}{host}/{}", repo.join("/"));
    Some(PullRequest { url: format!("{scheme}{host}/{}", segments.join("/")), repository, number, forge })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `gh pr create`'s output as it prints it when not on a terminal.
    const GH_STDOUT: &str = "https://github.com/acme/api/pull/42\n";
    const GH_STDERR: &str = "\nCreating pull request for fix-auth into main in acme/api\n\n";

    #[test]
    fn gh_pr_create_opens_one() {
        let pr = opened("gh pr create --title 'Fix auth' --body 'x'", &[GH_STDOUT, GH_STDERR]).unwrap();
        assert_eq!(pr.url, "https://github.com/acme/api/pull/42");
        assert_eq!(pr.repository, "https://github.com/acme/api");
        assert_eq!((pr.number, pr.forge), (42, Forge::GitHub));
        // as Claude Code writes it: after a push, with the body in a heredoc
        let command = "git push -u origin fix-auth && gh pr create --title \"Fix auth\" --body \"$(cat <<'EOF'\n## Summary\n- fix\nEOF\n)\"";
        assert_eq!(opened(command, &[GH_STDOUT, ""]).unwrap().number, 42);
        assert_eq!(
            opened("cd api; GH_HOST=ghe.acme.io gh pr new --fill", &["https://ghe.acme.io/a/b/pull/7"]).unwrap().number,
            7
        );
        assert!(opened("gh pr -R acme/api create --fill", &[GH_STDOUT]).is_some());
    }

    #[test]
    fn gitlab_merge_requests_by_glab_and_by_push() {
        let glab = "\nCreating merge request for fix-auth into main in acme/platform/api\n\n!17 Fix auth (fix-auth)\n https://gitlab.com/acme/platform/api/-/merge_requests/17\n\n";
        let pr = opened("glab mr create --fill --yes", &[glab, ""]).unwrap();
        assert_eq!(pr.url, "https://gitlab.com/acme/platform/api/-/merge_requests/17");
        assert_eq!(pr.repository, "https://gitlab.com/acme/platform/api");
        assert_eq!((pr.number, pr.forge), (17, Forge::GitLab));
        let push = "remote: \nremote: View merge request for fix-auth:\nremote:   https://gitlab.example.com/acme/api/-/merge_requests/5\nremote: \nTo gitlab.example.com:acme/api.git\n * [new branch]      fix-auth -> fix-auth\n";
        let pr = opened("git push -u origin fix-auth -o merge_request.create", &["", push]).unwrap();
        assert_eq!((pr.number, pr.forge), (5, Forge::GitLab));
        assert!(opened("git push --push-option=merge_request.create origin HEAD", &["", push]).is_some());
        // a plain push only offers to create one
        let offer = "remote: To create a merge request for fix-auth, visit:\nremote:   https://gitlab.com/acme/api/-/merge_requests/new?merge_request%5Bsource_branch%5D=fix-auth\n";
        assert_eq!(opened("git push -u origin fix-auth", &["", offer]), None);
        assert_eq!(opened("git push -o merge_request.create", &["", offer]), None);
    }

    #[test]
    fn a_github_push_hint_is_no_pull_request() {
        let hint = "remote: \nremote: Create a pull request for 'fix-auth' on GitHub by visiting:\nremote:      https://github.com/acme/api/pull/new/fix-auth\nremote: \nTo github.com:acme/api.git\n * [new branch]      fix-auth -> fix-auth\n";
        assert_eq!(opened("git push -u origin fix-auth", &["", hint]), None);
        assert_eq!(opened("gh pr create --fill", &["", hint]), None, "not a number");
    }

    #[test]
    fn gitea_by_tea_and_by_agit_push() {
        let pr = opened("tea pulls create --title x", &["https://codeberg.org/acme/api/pulls/3\n"]).unwrap();
        assert_eq!((pr.number, pr.forge, pr.repository.as_str()), (3, Forge::Gitea, "https://codeberg.org/acme/api"));
        let agit = "remote: Visit the existing pull request:\nremote:   https://gitea.acme.io/acme/api/pulls/9\n";
        assert!(opened("git push origin HEAD:refs/for/main -o topic=fix", &["", agit]).is_some());
    }

    #[test]
    fn a_url_in_other_output_is_no_creation() {
        for command in [
            "cat notes.md",
            "echo https://github.com/a/b/pull/1",
            "grep -r pull/ docs",
            "gh pr view 42",
            "gh pr list",
            "echo gh pr create",
            "git log --oneline",
        ] {
            assert_eq!(opened(command, &["see https://github.com/a/b/pull/1\n", ""]), None, "{command}");
        }
        // the command opens a GitHub pull request: a GitLab URL in its output is not it
        assert_eq!(opened("gh pr create", &["https://gitlab.com/a/b/-/merge_requests/1"]), None);
    }

    #[test]
    fn credentials_query_and_fragment_never_stay() {
        let out = "https://x-access-token:ghs_abcdefghijklmnop0123@github.com/acme/api/pull/42?notify=1#top.";
        let pr = opened("gh pr create", &[out]).unwrap();
        assert_eq!(pr.url, "https://github.com/acme/api/pull/42");
        assert_eq!(pr.repository, "https://github.com/acme/api");
        let pr = parse("http://oauth2:glpat-secret@gitlab.local:8080/g/p/-/merge_requests/3").unwrap();
        assert_eq!(pr.url, "http://gitlab.local:8080/g/p/-/merge_requests/3");
    }

    #[test]
    fn hostile_outputs_are_bounded() {
        // 10 MB of output before the URL: found in one pass; 10 MB of URL-like text: nothing kept
        let big = format!("{}\n{GH_STDOUT}", "x".repeat(10 << 20));
        let started = std::time::Instant::now();
        assert_eq!(opened("gh pr create", &[&big]).unwrap().number, 42);
        let many = "https://https://http".repeat(512 * 1024);
        assert_eq!(opened("gh pr create", &[&many]), None);
        let long = format!("https://github.com/{}/api/pull/1", "a".repeat(600));
        assert_eq!(opened("gh pr create", &[&long]), None, "longer than MAX_URL_BYTES");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
        for bad in [
            "https://github.com/a/b/pull/1x",
            "https://github.com/a/b/pull/1;rm",
            "https://github.com/a/b/c/pull/1",
            "https://github.com/a/b/pull/99999999999999",
            "https://gith ub.com/a/b/pull/1",
            "https:///a/b/pull/1",
            "https://github.com/a/b/pull/",
            "https://github.com/a%2F..%2Fb/b/pull/x",
        ] {
            assert_eq!(opened("gh pr create", &[bad]).map(|p| p.url), None, "{bad}");
        }
        // a huge command line is read no further than MAX_COMMAND_BYTES
        let command = format!("echo {} && gh pr create", "y".repeat(MAX_COMMAND_BYTES));
        assert_eq!(opened(&command, &[GH_STDOUT]), None);
    }
}
