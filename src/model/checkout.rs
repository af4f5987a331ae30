//! A checkout: where in version control a session works (the repository, its remote normalised and
//! without credentials, the branch, the worktree and the ticket its branch names), and its span
//! attributes. Plain data, filled by `vcs` from the files of a `.git` directory; no I/O here.
//!
//! OpenTelemetry's VCS conventions (`vcs.*`, development stability) where they have a name,
//! `hooktel.*` for the rest; the names are in `semconv`.

use opentelemetry::KeyValue;

use crate::model::semconv;

/// Longest value of any field of a checkout: a repository, a branch, a worktree or a ticket longer
/// than this is cut (a repository is refused: see `vcs::remote`).
pub const MAX_FIELD_BYTES: usize = 256;

/// Where a session works, read from its `cwd` when a turn starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkout {
    /// The remote (`origin`, else the first) as `host/owner/repo`: lower-case host, no scheme,
    /// user, password, port, query or `.git`. Empty when the repository has no usable remote.
    pub repo: String,
    /// The branch HEAD is on; `None` when HEAD is detached (a commit checked out).
    pub branch: Option<String>,
    /// The commit HEAD points at, when a loose ref or `packed-refs` names it cheaply.
    pub revision: Option<String>,
    /// The worktree's name: its top directory's last component.
    pub worktree: String,
    /// A linked worktree (`git worktree add`), whose `.git` is a file naming a directory under the
    /// main repository's `.git/worktrees/`.
    pub linked: bool,
    /// The ticket the branch name names, by the ticket pattern.
    pub ticket: Option<String>,
}

/// Every attribute a checkout may set: those of an older checkout that a newer one lacks are removed.
pub const ATTRIBUTES: [&str; 11] = [
    semconv::REPO,
    semconv::VCS_REPOSITORY_URL_FULL,
    semconv::VCS_OWNER_NAME,
    semconv::VCS_REPOSITORY_NAME,
    semconv::VCS_PROVIDER_NAME,
    semconv::VCS_REF_HEAD_NAME,
    semconv::VCS_REF_HEAD_TYPE,
    semconv::VCS_REF_HEAD_REVISION,
    semconv::WORKTREE,
    semconv::WORKTREE_LINKED,
    semconv::TICKET,
];

impl Checkout {
    /// The repository's owner (`acme`, or `group/sub` on GitLab) and name (`widgets`).
    fn owner_and_name(&self) -> Option<(&str, &str)> {
        let (_, path) = self.repo.split_once('/')?;
        path.rsplit_once('/')
    }

    /// The provider of a well-known host (`github`, `gitlab`, `bitbucket`): the conventions'
    /// `vcs.provider.name` values. `None` for a host hooktel cannot tell.
    fn provider(&self) -> Option<&'static str> {
        let host = self.repo.split('/').next().unwrap_or_default();
        match host {
            "github.com" => Some("github"),
            "gitlab.com" => Some("gitlab"),
            "bitbucket.org" => Some("bitbucket"),
            "codeberg.org" | "gitea.com" => Some("gitea"),
            h if h.starts_with("github.") => Some("github"),
            h if h.starts_with("gitlab.") => Some("gitlab"),
            _ => None,
        }
    }

    /// Its span attributes: the repository's (when it has a remote), the branch's or the detached
    /// commit's, the worktree and the ticket.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(10);
        if !self.repo.is_empty() {
            attrs.push(KeyValue::new(semconv::REPO, self.repo.clone()));
            attrs.push(KeyValue::new(semconv::VCS_REPOSITORY_URL_FULL, format!("https://{}", self.repo)));
            if let Some((owner, name)) = self.owner_and_name() {
                attrs.push(KeyValue::new(semconv::VCS_OWNER_NAME, owner.to_owned()));
                attrs.push(KeyValue::new(semconv::VCS_REPOSITORY_NAME, name.to_owned()));
            }
            if let Some(provider) = self.provider() {
                attrs.push(KeyValue::new(semconv::VCS_PROVIDER_NAME, provider));
            }
        }
        if let Some(branch) = &self.branch {
            attrs.push(KeyValue::new(semconv::VCS_REF_HEAD_NAME, branch.clone()));
            attrs.push(KeyValue::new(semconv::VCS_REF_HEAD_TYPE, "branch"));
        }
        if let Some(rev) = &self.revision {
            attrs.push(KeyValue::new(semconv::VCS_REF_HEAD_REVISION, rev.clone()));
        }
        attrs.push(KeyValue::new(semconv::WORKTREE, self.worktree.clone()));
        attrs.push(KeyValue::new(semconv::WORKTREE_LINKED, self.linked));
        if let Some(ticket) = &self.ticket {
            attrs.push(KeyValue::new(semconv::TICKET, ticket.clone()));
        }
        attrs
    }

    /// About the bytes it holds.
    pub fn bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        128 + self.repo.len() + opt(&self.branch) + opt(&self.revision) + self.worktree.len() + opt(&self.ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(c: &Checkout, key: &str) -> Option<String> {
        c.attributes().into_iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
    }

    #[test]
    fn attributes_follow_the_vcs_conventions() {
        let c = Checkout {
            repo: "github.com/acme/widgets".into(),
            branch: Some("feature/ABC-123-fix".into()),
            revision: Some("a".repeat(40)),
            worktree: "widgets".into(),
            linked: false,
            ticket: Some("ABC-123".into()),
        };
        assert_eq!(attr(&c, "vcs.repository.url.full").as_deref(), Some("https://github.com/acme/widgets"));
        assert_eq!(attr(&c, "vcs.owner.name").as_deref(), Some("acme"));
        assert_eq!(attr(&c, "vcs.repository.name").as_deref(), Some("widgets"));
        assert_eq!(attr(&c, "vcs.provider.name").as_deref(), Some("github"));
        assert_eq!(attr(&c, "vcs.ref.head.name").as_deref(), Some("feature/ABC-123-fix"));
        assert_eq!(attr(&c, "vcs.ref.head.type").as_deref(), Some("branch"));
        assert_eq!(attr(&c, "hooktel.repo").as_deref(), Some("github.com/acme/widgets"));
        assert_eq!(attr(&c, "hooktel.ticket").as_deref(), Some("ABC-123"));
        let sub = Checkout { repo: "gitlab.example.com/group/sub/proj".into(), ..Checkout::default() };
        assert_eq!(attr(&sub, "vcs.owner.name").as_deref(), Some("group/sub"));
        assert_eq!(attr(&sub, "vcs.repository.name").as_deref(), Some("proj"));
        assert_eq!(attr(&sub, "vcs.provider.name").as_deref(), Some("gitlab"));
        let bare = Checkout { worktree: "scratch".into(), ..Checkout::default() };
        assert!(attr(&bare, "vcs.repository.url.full").is_none() && attr(&bare, "vcs.ref.head.name").is_none());
        assert_eq!(attr(&bare, "hooktel.worktree").as_deref(), Some("scratch"));
    }
}
