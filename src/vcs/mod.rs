//! Version control: where a session works (repository, branch, worktree, ticket), read from its
//! `cwd` on a thread of its own, off the request path and off the pipeline's task.
//!
//! The pipeline asks ([`Lookup`]) when a session starts, when a turn starts (a branch can change
//! mid-session) and at a session's first event; the reader answers in the order it was asked: the
//! accountant first (the repository and branch a session's usage counts under), then the pipeline
//! ([`Located`], for the spans). A lookup at a session or turn start reads the files anew (`git`: a handful of small
//! files, no process); any other is answered from the cache when the directory is in it. The cache
//! holds at most [`MAX_DIRS`] directories (the oldest read goes first), each key at most
//! `git::MAX_CWD_BYTES` (kept twice: the map's and the order's) and each checkout's fields at most
//! `checkout::MAX_FIELD_BYTES`: under 2.5 MiB at the very most, outside the memory budget's shares
//! (documented in docs/traces.md).

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::model::checkout::Checkout;
use crate::model::ids::SessionId;
use crate::usage::accountant::{CheckoutNote, Request};

mod git;
pub(crate) mod remote;
pub mod ticket;

pub use git::{MAX_CWD_BYTES, MAX_PARENTS};
pub use ticket::TicketPattern;

/// Directories whose checkout is remembered: far more than the repositories one machine's agents
/// work in at once; a flood of made-up `cwd`s only turns the cache over.
pub const MAX_DIRS: usize = 256;

/// Lookups waiting for the reader: a turn start each, so a burst of sessions fits; past it a lookup
/// is dropped (counted), and the session's next turn asks again.
pub const QUEUE: usize = 1024;

/// A question from the pipeline: the checkout of `cwd`, for a session (and the turn it starts).
#[derive(Clone, Debug)]
pub(crate) struct Lookup {
    pub(crate) session_id: SessionId,
    pub(crate) prompt_id: Option<String>,
    pub(crate) cwd: String,
    /// Read the files anew (a session or a turn starts), rather than answer from the cache.
    pub(crate) fresh: bool,
}

/// The answer: the checkout (`None`: the `cwd` is in no repository hooktel can read).
#[derive(Clone, Debug)]
pub(crate) struct Located {
    pub(crate) session_id: SessionId,
    pub(crate) prompt_id: Option<String>,
    pub(crate) checkout: Option<Checkout>,
}

/// Checkouts by directory, the oldest read first out.
#[derive(Default)]
struct Cache {
    by_dir: HashMap<String, Option<Checkout>>,
    order: VecDeque<String>,
}

impl Cache {
    fn get(&self, cwd: &str) -> Option<&Option<Checkout>> {
        self.by_dir.get(cwd)
    }

    fn put(&mut self, cwd: &str, checkout: Option<Checkout>) {
        if self.by_dir.insert(cwd.to_owned(), checkout).is_none() {
            self.order.push_back(cwd.to_owned());
            while self.order.len() > MAX_DIRS {
                if let Some(old) = self.order.pop_front() {
                    self.by_dir.remove(&old);
                }
            }
        }
    }
}

/// Answer lookups until the pipeline's sender is gone: to the accountant first (the repository and
/// branch its usage counts under; dropped when its queue is full), then to the pipeline.
pub(crate) fn run(
    lookups: Receiver<Lookup>,
    accountant: SyncSender<Request>,
    located: mpsc::Sender<Located>,
    tickets: TicketPattern,
    metrics: Arc<Metrics>,
) {
    let mut cache = Cache::default();
    while let Ok(l) = lookups.recv() {
        let checkout = match cache.get(&l.cwd) {
            Some(c) if !l.fresh => {
                metrics.vcs_lookups.with_label_values(&["cached"]).inc();
                c.clone()
            }
            _ => {
                let c = git::read_checkout(&l.cwd, &tickets);
                metrics.vcs_lookups.with_label_values(&[if c.is_some() { "repo" } else { "no_repo" }]).inc();
                if l.cwd.len() <= git::MAX_CWD_BYTES {
                    cache.put(&l.cwd, c.clone());
                }
                c
            }
        };
        let note = CheckoutNote {
            session_id: l.session_id.clone(),
            repo: checkout.as_ref().map(|c| c.repo.clone()).unwrap_or_default(),
            branch: checkout.as_ref().and_then(|c| c.branch.clone()).unwrap_or_default(),
        };
        let _ = accountant.try_send(Request::Checkout(note));
        let answer = Located { session_id: l.session_id, prompt_id: l.prompt_id, checkout };
        if located.blocking_send(answer).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest() {
        let mut cache = Cache::default();
        for i in 0..MAX_DIRS + 10 {
            cache.put(&format!("/d{i}"), None);
        }
        cache.put("/d20", Some(Checkout::default()));
        assert_eq!((cache.by_dir.len(), cache.order.len()), (MAX_DIRS, MAX_DIRS));
        assert!(cache.get("/d0").is_none() && cache.get("/d10").is_some());
        assert_eq!(cache.get("/d20"), Some(&Some(Checkout::default())));
    }

    /// The reader answers in order; a fresh lookup reads again (a branch changed), a cached one
    /// does not.
    #[test]
    fn fresh_lookups_read_again_cached_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(&git).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/one\n").unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let (notes_tx, notes) = std::sync::mpsc::sync_channel(8);
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let metrics = Arc::new(Metrics::new(true, true));
        let reader = {
            let metrics = metrics.clone();
            std::thread::spawn(move || run(rx, notes_tx, out_tx, TicketPattern::default(), metrics))
        };
        let cwd = dir.path().to_str().unwrap().to_owned();
        let ask = |fresh| Lookup { session_id: "s".into(), prompt_id: None, cwd: cwd.clone(), fresh };
        let branch = |l: Located| l.checkout.and_then(|c| c.branch);
        tx.send(ask(true)).unwrap();
        assert_eq!(branch(out_rx.blocking_recv().unwrap()).as_deref(), Some("one"));
        std::fs::write(git.join("HEAD"), "ref: refs/heads/two\n").unwrap();
        tx.send(ask(false)).unwrap();
        assert_eq!(branch(out_rx.blocking_recv().unwrap()).as_deref(), Some("one"), "from the cache");
        tx.send(ask(true)).unwrap();
        assert_eq!(branch(out_rx.blocking_recv().unwrap()).as_deref(), Some("two"), "read anew");
        drop(tx);
        reader.join().unwrap();
        let branches: Vec<String> = notes
            .try_iter()
            .map(|r| match r {
                Request::Checkout(c) => c.branch,
                Request::Touch(_) => panic!("the reader only tells checkouts"),
            })
            .collect();
        assert_eq!(branches, ["one", "one", "two"], "the accountant hears every answer");
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains(r#"hooktel_vcs_lookups_total{result="cached"} 1"#), "{text}");
        assert!(text.contains(r#"hooktel_vcs_lookups_total{result="repo"} 2"#), "{text}");
    }
}
