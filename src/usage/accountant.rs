//! Token accounting: reads the transcripts of live sessions as they grow and counts their usage
//! and cost, exactly once.
//!
//! Runs on its own thread (file reads are blocking). The pipeline *touches* a transcript when an
//! event of its session arrives; touched files are read from their saved offset every
//! `READ_INTERVAL`. A turn's end (Stop, SubagentStop, SessionEnd) reads at once and again at
//! `READ_MARGIN`, at half and at nine tenths of the settle time, because Claude Code can write the
//! last response to the file after the hook fires (seen 150 ms after SubagentStop), and the usage
//! must be on the span before it is handed out. Each of these re-reads is reported to the pipeline
//! ([`TranscriptRead`], after the usage it found), so that a span closed by the turn's end waits
//! for a read that started `READ_MARGIN` after it. A session's end re-reads every transcript of the
//! session. Every transcript of a
//! session counts under the session's project (its first `cwd`), whatever a subagent's `cwd` is, and
//! under the repository and branch of its latest checkout, as the `vcs` reader tells
//! ([`CheckoutNote`]). A session's first reads wait for its first checkout (at most
//! [`CHECKOUT_WAIT`]) when the pipeline says one is being looked up, so that its first usage is not
//! counted outside its repository. Each file's
//! [`Ledger`] is saved under `<data dir>/transcripts/` *before* its usage is counted, so a restart
//! never counts a line twice (a crash between the two loses that one read rather than doubling it).
//! Ledgers belong to a file's resolved path, so aliases of one file (symlinks, `//`) share one and
//! count it once; a file is read again only once it has grown past a read that found no whole line.
//! A missing, unreadable or garbage transcript is skipped and counted; it never stalls ingest.

use std::collections::HashMap;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::metrics::{Metrics, Place};
use crate::model::agent::Agent;
use crate::model::ids::SessionId;
use crate::model::time::now_ns;
use crate::usage::agent_dirs::{AgentDirs, OpenError};
use crate::usage::logs::{self, Delta, LogReader};
use crate::usage::pricing::PriceTable;

/// How often touched transcripts are read: often enough that a turn's usage is on its span before
/// the span settles, rarely enough that a busy session costs one read per interval, not per event.
const READ_INTERVAL: Duration = Duration::from_millis(100);

/// Most bytes read from one transcript at a time; the rest follows on the next read.
const MAX_READ: u64 = logs::MAX_LINE_BYTES;

/// Files not touched for this long are dropped from memory (their saved ledger stays on disk).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Most transcripts tracked at once (a payload can name any number of paths): past it, the one
/// touched longest ago is forgotten (its saved ledger stays on disk).
const MAX_FILES: usize = 10_000;

/// Saved ledgers older than this are deleted at start.
const KEEP_SAVED: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long after a turn's end a read must start to see the turn's last response: Claude Code
/// writes it up to about 150 ms after SubagentStop fires on an idle machine; 500 ms is three times
/// that, for a machine under load, and half the default settle time, so that with the default
/// settings the read it asks for is one the accountant makes anyway and no span waits longer.
pub(crate) const READ_MARGIN: Duration = Duration::from_millis(500);

/// Most refusals of awaited reads reported at once; past it a span waits for its bound instead.
const MAX_REFUSALS_PENDING: usize = 4096;

/// Longest a session's first reads wait for its checkout: the `vcs` reader answers in about a
/// millisecond; a reader stuck on a hung file system delays the first usage by this much at most.
pub(crate) const CHECKOUT_WAIT: Duration = Duration::from_secs(1);

/// What the accountant is told, in order: a transcript to read, or where a session works.
#[derive(Clone, Debug)]
pub(crate) enum Request {
    Touch(Touch),
    Checkout(CheckoutNote),
}

/// Where a session works in version control, from the `vcs` reader: its usage counts under this
/// repository and branch from now on (empty: in no repository).
#[derive(Clone, Debug)]
pub(crate) struct CheckoutNote {
    pub(crate) session_id: SessionId,
    pub(crate) repo: String,
    pub(crate) branch: String,
}

/// A request to read a transcript, sent by the pipeline.
#[derive(Clone, Debug)]
pub(crate) struct Touch {
    /// The agent that writes the file: how it is read.
    pub(crate) source: Agent,
    pub(crate) session_id: SessionId,
    pub(crate) path: PathBuf,
    /// Set for a subagent's transcript.
    pub(crate) agent_id: Option<String>,
    /// The session's project (basename of its `cwd`).
    pub(crate) project: String,
    /// The session's checkout is being looked up and has never been found: its reads wait for it.
    pub(crate) checkout_pending: bool,
    pub(crate) kind: TouchKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TouchKind {
    /// New content may be there.
    Grow,
    /// A turn or subagent ended: read now and once more shortly after.
    TurnEnd,
    /// The session ended: as `TurnEnd`, also look for subagent transcripts never touched, and count
    /// the transcript as missing if it is still not there.
    SessionEnd,
}

/// Usage newly counted for a session, sent to the pipeline for its spans.
#[derive(Clone, Debug)]
pub(crate) struct SessionUsage {
    pub(crate) session_id: SessionId,
    pub(crate) delta: Delta,
}

/// A scheduled re-read of a transcript, reported after the usage it found: the spans closed by the
/// turn's end that asked for it wait for one that started late enough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TranscriptRead {
    pub(crate) session_id: SessionId,
    /// The subagent whose transcript it is; `None` for the session's own.
    pub(crate) agent_id: Option<String>,
    pub(crate) read: ReadStart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadStart {
    /// The read started at this wall time (Unix ns), before the file was opened.
    At(u64),
    /// The path is refused: no read will come.
    Never,
}

/// What the accountant sends the pipeline, in the order it happened.
#[derive(Clone, Debug)]
pub(crate) enum Report {
    /// (Boxed: a usage is five times the size of a read, and the channel holds a thousand reports.)
    Usage(Box<SessionUsage>),
    Read(TranscriptRead),
}

struct Tracked {
    source: Agent,
    session_id: SessionId,
    dirty: bool,
    /// Re-reads still due, earliest first.
    rereads: Vec<Instant>,
    last_touch: Instant,
    final_read: bool,
    /// Set for a subagent's transcript: some subagents (the compaction agent) never write one.
    agent_id: Option<String>,
}

impl Tracked {
    fn new(t: &Touch, now: Instant) -> Tracked {
        Tracked {
            source: t.source,
            session_id: t.session_id.clone(),
            dirty: false,
            rereads: Vec::new(),
            last_touch: now,
            final_read: false,
            agent_id: t.agent_id.clone(),
        }
    }
}

/// How far one file (by resolved path) has been read.
struct Progress {
    reader: LogReader,
    /// The file's length at a read that found no whole line: not read again until it grows.
    stalled_at: Option<u64>,
}

pub(crate) struct Accountant {
    /// Touched transcripts, by the path their events named.
    files: HashMap<PathBuf, Tracked>,
    /// Reading progress, by resolved path (shared by every alias of a file).
    progress: HashMap<PathBuf, Progress>,
    /// Where each session works: the project its first touch named, the repository and branch the
    /// `vcs` reader last named.
    places: HashMap<SessionId, SessionPlace>,
    prices: PriceTable,
    state_dir: PathBuf,
    metrics: Arc<Metrics>,
    settle: Duration,
    /// Where transcripts may be read (a payload's path is untrusted).
    roots: AgentDirs,
    /// Refused paths already logged, so a flood of them logs each once (bounded).
    refused_logged: std::collections::HashSet<PathBuf>,
    /// Reads asked for by a turn's end whose path is refused, to report with the next reads.
    refused_reads: Vec<TranscriptRead>,
}

/// Where a session's usage counts, and whether its reads wait for its checkout.
#[derive(Default)]
struct SessionPlace {
    place: Place,
    /// The `vcs` reader has answered for it.
    known: bool,
    /// Set at the first touch that said its checkout is being looked up: until then (or until the
    /// answer), its transcripts are not read.
    waits_until: Option<Instant>,
}

impl SessionPlace {
    fn waiting(&self, now: Instant) -> bool {
        !self.known && self.waits_until.is_some_and(|until| until > now)
    }
}

/// Refused paths logged at most: past this, refusals are only counted.
const MAX_REFUSALS_LOGGED: usize = 100;

impl Accountant {
    pub(crate) fn new(
        prices: PriceTable,
        data_dir: &Path,
        metrics: Arc<Metrics>,
        settle: Duration,
        roots: AgentDirs,
    ) -> Accountant {
        let state_dir = data_dir.join("transcripts");
        if let Err(e) = std::fs::create_dir_all(&state_dir) {
            tracing::warn!(dir = %state_dir.display(), error = %e, "Cannot create the transcript state directory");
        }
        remove_old_state(&state_dir);
        Accountant {
            files: HashMap::new(),
            progress: HashMap::new(),
            places: HashMap::new(),
            prices,
            state_dir,
            metrics,
            settle,
            roots,
            refused_logged: std::collections::HashSet::new(),
            refused_reads: Vec::new(),
        }
    }

    /// Run until every sender of requests is gone; usage and reads go to `reports`.
    pub(crate) fn run(mut self, requests: Receiver<Request>, reports: mpsc::Sender<Report>) {
        loop {
            match requests.recv_timeout(READ_INTERVAL) {
                Ok(r) => {
                    self.take(r);
                    while let Ok(r) = requests.try_recv() {
                        self.take(r);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.read_due(&reports);
        }
        // last reads of whatever was touched, then stop
        for t in self.files.values_mut() {
            t.dirty = true;
        }
        self.read_due(&reports);
    }

    fn take(&mut self, r: Request) {
        match r {
            Request::Touch(t) => self.touch(t),
            Request::Checkout(c) => {
                let entry = self.places.entry(c.session_id).or_default();
                (entry.place.repo, entry.place.branch, entry.known) = (c.repo, c.branch, true);
            }
        }
    }

    fn touch(&mut self, t: Touch) {
        if let Err(why) = self.roots.admit(&t.path) {
            self.refuse(&t.path, &why);
            if t.kind != TouchKind::Grow && self.refused_reads.len() < MAX_REFUSALS_PENDING {
                let (session_id, agent_id) = (t.session_id, t.agent_id);
                self.refused_reads.push(TranscriptRead { session_id, agent_id, read: ReadStart::Never });
            }
            return;
        }
        if t.kind == TouchKind::SessionEnd {
            self.discover_subagents(&t);
        }
        let now = Instant::now();
        let mut rereads = vec![now + READ_MARGIN, now + self.settle / 2, now + self.settle * 9 / 10];
        rereads.sort();
        let entry = self.places.entry(t.session_id.clone()).or_default();
        if entry.place.project.is_empty() {
            entry.place.project.clone_from(&t.project);
        }
        if t.checkout_pending && !entry.known && entry.waits_until.is_none() {
            entry.waits_until = Some(now + CHECKOUT_WAIT);
        }
        if !self.files.contains_key(&t.path) {
            if self.files.len() >= MAX_FILES {
                self.forget_stalest();
            }
            self.files.insert(t.path.clone(), Tracked::new(&t, now));
        }
        let Some(tracked) = self.files.get_mut(&t.path) else { return };
        tracked.dirty = true;
        tracked.last_touch = now;
        if t.kind != TouchKind::Grow {
            tracked.rereads = rereads.clone();
        }
        if t.kind == TouchKind::SessionEnd {
            tracked.final_read = true;
            // every transcript of the session gets its last reads: lines arrive after the hooks
            for other in self.files.values_mut().filter(|f| f.session_id == t.session_id) {
                other.dirty = true;
                other.rereads = rereads.clone();
                other.final_read = true;
            }
        }
    }

    /// Forget the file touched longest ago, to make room (a scan, only when the map is full).
    fn forget_stalest(&mut self) {
        let stalest = self.files.iter().min_by_key(|(_, t)| t.last_touch).map(|(p, _)| p.clone());
        if let Some(path) = stalest {
            self.files.remove(&path);
        }
    }

    /// Count a transcript path that may not be read; log it once (escaped: a path can hold anything).
    fn refuse(&mut self, path: &Path, why: &dyn std::fmt::Display) {
        self.metrics.transcript_errors.with_label_values(&["refused"]).inc();
        if self.refused_logged.len() < MAX_REFUSALS_LOGGED && self.refused_logged.insert(path.to_path_buf()) {
            tracing::warn!(path = ?path, reason = %why, "Transcript path refused; not read");
        }
    }

    /// Subagent transcripts of a session that no event named (e.g. hooks installed for few events).
    fn discover_subagents(&mut self, t: &Touch) {
        let Some(dir) = t.path.to_str().and_then(|log| logs::subagent_logs_dir(t.source, log)) else { return };
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(agent) = name.to_str().and_then(|n| n.strip_prefix("agent-")?.strip_suffix(".jsonl")) else {
                continue;
            };
            let path = entry.path();
            if !self.files.contains_key(&path) {
                let agent_id = Some(agent.to_owned());
                self.touch(Touch { path, agent_id, kind: TouchKind::TurnEnd, ..t.clone() });
            }
        }
    }

    /// Read the files touched or due for a re-read; report their usage, then the re-reads.
    fn read_due(&mut self, reports: &mpsc::Sender<Report>) {
        let now = Instant::now();
        let started = now_ns();
        let mut deltas = Vec::new();
        let mut reads = std::mem::take(&mut self.refused_reads);
        let reader =
            Reader { prices: &self.prices, state_dir: &self.state_dir, metrics: &self.metrics, roots: &self.roots };
        for (path, t) in self.files.iter_mut() {
            let reread = t.rereads.first().is_some_and(|at| *at <= now);
            let place = self.places.get(&t.session_id);
            if (!t.dirty && !reread) || place.is_some_and(|p| p.waiting(now)) {
                continue;
            }
            t.dirty = false;
            t.rereads.retain(|at| *at > now);
            let final_read = t.final_read && t.rereads.is_empty();
            let place = place.map(|p| p.place.clone()).unwrap_or_default();
            for delta in reader.read_file(path, t, &place, final_read, &mut self.progress) {
                deltas.push(SessionUsage { session_id: t.session_id.clone(), delta });
            }
            if reread {
                let (session_id, agent_id) = (t.session_id.clone(), t.agent_id.clone());
                reads.push(TranscriptRead { session_id, agent_id, read: ReadStart::At(started) });
            }
        }
        self.files.retain(|_, t| now.duration_since(t.last_touch) < FORGET_AFTER || !t.rereads.is_empty());
        if self.files.is_empty() {
            self.progress.clear();
        } else if self.progress.len() > 2 * self.files.len() + 64 {
            // progress of files no longer touched: saved on disk, dropped from memory
            let live: std::collections::HashSet<PathBuf> =
                self.files.keys().filter_map(|p| std::fs::canonicalize(p).ok()).collect();
            self.progress.retain(|real, _| live.contains(real));
        }
        let live: std::collections::HashSet<&str> = self.files.values().map(|t| t.session_id.as_str()).collect();
        self.places.retain(|sid, _| live.contains(sid.as_str()));
        // the reads after all the usage they found: a span that waits for a read has its usage then
        let reports_due =
            deltas.into_iter().map(|d| Report::Usage(Box::new(d))).chain(reads.into_iter().map(Report::Read));
        for r in reports_due {
            // back-pressure: the pipeline is busy; usage must not be lost, so wait
            if reports.blocking_send(r).is_err() {
                return;
            }
        }
    }
}

/// What reading a transcript needs of the accountant.
struct Reader<'a> {
    prices: &'a PriceTable,
    state_dir: &'a Path,
    metrics: &'a Metrics,
    roots: &'a AgentDirs,
}

impl Reader<'_> {
    /// Read what is new in one transcript; save the ledger, then count.
    fn read_file(
        &self,
        path: &Path,
        t: &mut Tracked,
        place: &Place,
        final_read: bool,
        progress: &mut HashMap<PathBuf, Progress>,
    ) -> Vec<Delta> {
        let metrics = self.metrics;
        let (mut file, real) = match self.roots.open_resolved(path) {
            Ok(opened) => opened,
            Err(OpenError::Refused(why)) => {
                // a FIFO, a directory, or a symlink out of the roots, found when opening
                metrics.transcript_errors.with_label_values(&["refused"]).inc();
                tracing::debug!(path = ?path, reason = %why, "Transcript refused when opened; not read");
                return Vec::new();
            }
            Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                // not written yet (SessionStart comes before the first line); an error only at the end
                if final_read && !progress.contains_key(path) && t.agent_id.is_none() {
                    metrics.transcript_errors.with_label_values(&["missing"]).inc();
                    tracing::debug!(path = ?path, "Transcript missing at session end");
                }
                return Vec::new();
            }
            Err(OpenError::Io(e)) => {
                metrics.transcript_errors.with_label_values(&["unreadable"]).inc();
                if let Some(left_out) = metrics.may_warn("transcript_unreadable") {
                    tracing::warn!(path = ?path, error = %e, left_out, "Transcript unreadable; skipped");
                }
                return Vec::new();
            }
        };
        let p = progress
            .entry(real.clone())
            .or_insert_with(|| Progress { reader: self.restore_reader(t.source, &real, path), stalled_at: None });
        let bytes = match new_bytes(&mut file, p) {
            Ok(b) => b,
            Err(e) => {
                metrics.transcript_errors.with_label_values(&["unreadable"]).inc();
                if let Some(left_out) = metrics.may_warn("transcript_unreadable") {
                    tracing::warn!(path = ?path, error = %e, left_out, "Transcript unreadable; skipped");
                }
                return Vec::new();
            }
        };
        if bytes.is_empty() {
            return Vec::new();
        }
        if bytes.len() as u64 == MAX_READ {
            // more than one read holds: the rest at the next round, though nothing touches it again
            t.dirty = true;
        }
        let before = p.reader.offset();
        let read = p.reader.read(&bytes, self.prices);
        if read.bad_lines > 0 {
            metrics.transcript_errors.with_label_values(&["bad_line"]).inc_by(read.bad_lines);
        }
        if p.reader.offset() == before {
            // no whole line: not worth reading again until the file grows
            p.stalled_at = Some(before + bytes.len() as u64);
        } else {
            p.stalled_at = None;
            save_reader(self.state_dir, &real, &p.reader);
        }
        for d in read.deltas.iter().filter(|d| d.is_usage()) {
            metrics.count_usage(t.source, &d.model, place, &d.usage, d.cost, d.priced);
            metrics.count_mcp_cost(t.source, &d.mcp_shares, d.cost);
        }
        read.deltas
    }

    /// The saved reading state of a transcript (by its resolved path, else by the path an older
    /// hooktel saved it under). A missing one starts at the beginning; a damaged one (garbage in the
    /// file) starts at the transcript's current end: re-reading from the start would count every
    /// response of it a second time, so what was added since the last save is given up instead.
    fn restore_reader(&self, source: Agent, real: &Path, named: &Path) -> LogReader {
        let saved = match load_reader(source, self.state_dir, real) {
            Saved::Missing if real != named => load_reader(source, self.state_dir, named),
            saved => saved,
        };
        match saved {
            Saved::Found(reader) => *reader,
            Saved::Missing => LogReader::new(source),
            Saved::Damaged => {
                self.metrics.transcript_errors.with_label_values(&["bad_ledger"]).inc();
                let end = std::fs::metadata(real).map_or(0, |m| m.len());
                tracing::warn!(path = ?real, offset = end, "Saved progress of a transcript is damaged; counting from its current end");
                let mut reader = LogReader::new(source);
                reader.set_offset(end);
                reader
            }
        }
    }
}

/// The file's bytes from the ledger's offset (at most `MAX_READ`); none while the file has not grown
/// since a read that found no whole line. A file shorter than the offset was replaced: it is read
/// from the start, and the ledger's memory of recent responses still keeps anything already counted
/// from being counted again.
fn new_bytes(file: &mut std::fs::File, p: &mut Progress) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    if len < p.reader.offset() {
        p.reader.set_offset(0);
        p.stalled_at = None;
    }
    let offset = p.reader.offset();
    if len == offset || p.stalled_at == Some(len) {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity((len - offset).min(MAX_READ) as usize);
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn state_file(state_dir: &Path, transcript: &Path) -> PathBuf {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, transcript.as_os_str().as_encoded_bytes());
    state_dir.join(format!("{}.json", id.simple()))
}

/// What the state directory holds for a transcript.
enum Saved {
    Found(Box<LogReader>),
    Missing,
    /// There, but not the agent reader's state (garbage, a truncated write, a foreign file).
    Damaged,
}

fn load_reader(source: Agent, state_dir: &Path, transcript: &Path) -> Saved {
    match std::fs::read(state_file(state_dir, transcript)) {
        Ok(saved) => LogReader::restore(source, &saved).map_or(Saved::Damaged, |r| Saved::Found(Box::new(r))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::Missing,
        Err(_) => Saved::Damaged,
    }
}

/// Write the reading state atomically (a temporary file renamed over the old one).
fn save_reader(state_dir: &Path, transcript: &Path, reader: &LogReader) {
    let path = state_file(state_dir, transcript);
    let tmp = path.with_extension("tmp");
    let result = reader
        .saved()
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "Cannot save the transcript ledger; a restart may count this transcript again");
    }
}

fn remove_old_state(state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir) else { return };
    for entry in entries.flatten() {
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|m| m.elapsed().ok());
        if old.is_some_and(|age| age > KEEP_SAVED) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSCRIPT: &[u8] = include_bytes!(
        "../../tests/fixtures/transcripts/captured-2.1.329/-home-dev-proj/2cfb142e-3e2c-45c5-8192-58e43d4a510f.jsonl"
    );
    const SESSION: &str = "2cfb142e-3e2c-45c5-8192-58e43d4a510f";

    /// An accountant over `dir` (data dir and transcript root), and where its usage goes.
    fn accountant(dir: &Path, settle: Duration) -> (Accountant, mpsc::Sender<Report>, mpsc::Receiver<Report>) {
        let roots = AgentDirs::new(vec![dir.join("projects")]);
        let a = Accountant::new(
            PriceTable::builtin(),
            &dir.join("data"),
            Arc::new(Metrics::new(true, false)),
            settle,
            roots,
        );
        let (tx, rx) = mpsc::channel(1024);
        (a, tx, rx)
    }

    fn touch(path: &Path, kind: TouchKind) -> Touch {
        Touch {
            source: Agent::ClaudeCode,
            session_id: SESSION.into(),
            path: path.to_owned(),
            agent_id: None,
            project: "proj".into(),
            checkout_pending: false,
            kind,
        }
    }

    /// The usage reported so far (the reads are left out).
    fn drained(rx: &mut mpsc::Receiver<Report>) -> Vec<SessionUsage> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|r| match r {
                Report::Usage(u) => Some(*u),
                Report::Read(_) => None,
            })
            .collect()
    }

    fn output_tokens(usage: &[SessionUsage]) -> u64 {
        usage.iter().map(|u| u.delta.usage.output).sum()
    }

    /// A session whose checkout is being looked up is not read until the answer (its usage then
    /// counts under the repository and branch) or `CHECKOUT_WAIT`; once known, it never waits again.
    #[test]
    fn first_reads_wait_for_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects/proj");
        std::fs::create_dir_all(&projects).unwrap();
        let path = projects.join(format!("{SESSION}.jsonl"));
        std::fs::write(&path, TRANSCRIPT).unwrap();
        let (mut a, tx, mut rx) = accountant(dir.path(), Duration::from_millis(100));
        a.metrics = Arc::new(Metrics::new(true, true));
        a.take(Request::Touch(Touch { checkout_pending: true, ..touch(&path, TouchKind::Grow) }));
        a.read_due(&tx);
        assert!(drained(&mut rx).is_empty(), "waits for the checkout");
        let (repo, branch) = ("github.com/acme/widgets".to_owned(), "feature/ABC-1".to_owned());
        a.take(Request::Checkout(CheckoutNote { session_id: SESSION.into(), repo, branch }));
        a.read_due(&tx);
        assert!(output_tokens(&drained(&mut rx)) > 0);
        let text = String::from_utf8(a.metrics.render()).unwrap();
        assert!(
            text.contains(r#"hooktel_branch_cost_usd_total{agent="claude-code",branch="feature/ABC-1",repo="github.com/acme/widgets"}"#)
                && !text.contains(r#"repo="""#),
            "{text}"
        );
        // a lookup that never answers holds the first reads CHECKOUT_WAIT at most
        let other = projects.join("other.jsonl");
        std::fs::write(&other, TRANSCRIPT).unwrap();
        let pending = Touch { session_id: "s2".into(), checkout_pending: true, ..touch(&other, TouchKind::Grow) };
        a.take(Request::Touch(pending));
        a.places.get_mut("s2").unwrap().waits_until = Some(Instant::now());
        a.read_due(&tx);
        let late = drained(&mut rx);
        assert!(!late.is_empty() && late.iter().all(|u| u.session_id == "s2"), "read once the wait is over");
    }

    /// A transcript written in two halves is counted once, half by half; a second accountant on the
    /// same data dir (a restart) starts from the saved ledger and counts nothing again.
    #[test]
    fn a_growing_transcript_counts_once_across_reads_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects/proj");
        std::fs::create_dir_all(&projects).unwrap();
        let path = projects.join(format!("{SESSION}.jsonl"));
        let cut = TRANSCRIPT.len() / 2;
        let cut = cut + TRANSCRIPT[cut..].iter().position(|&b| b == b'\n').unwrap() + 1;
        std::fs::write(&path, &TRANSCRIPT[..cut]).unwrap();

        let (mut a, tx, mut rx) = accountant(dir.path(), Duration::from_millis(100));
        a.touch(touch(&path, TouchKind::Grow));
        a.read_due(&tx);
        let first = drained(&mut rx);
        assert!(!first.is_empty() && first.iter().all(|u| u.session_id == SESSION));
        // touched again without growing: nothing new
        a.touch(touch(&path, TouchKind::Grow));
        a.read_due(&tx);
        assert!(drained(&mut rx).is_empty());
        std::fs::write(&path, TRANSCRIPT).unwrap();
        a.touch(touch(&path, TouchKind::Grow));
        a.read_due(&tx);
        let second = drained(&mut rx);
        assert_eq!(output_tokens(&first) + output_tokens(&second), 445 - 174, "the main transcript's output tokens");

        let (mut again, tx, mut rx) = accountant(dir.path(), Duration::from_millis(100));
        again.touch(touch(&path, TouchKind::SessionEnd));
        again.read_due(&tx);
        assert!(drained(&mut rx).is_empty(), "a restart counts nothing it counted before");
    }

    /// A turn's end reads now, and again at `READ_MARGIN` and at half and nine tenths of the settle time.
    #[test]
    fn a_turn_end_schedules_the_rereads_that_catch_late_lines() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects/proj");
        std::fs::create_dir_all(&projects).unwrap();
        let path = projects.join(format!("{SESSION}.jsonl"));
        std::fs::write(&path, b"").unwrap();
        let settle = Duration::from_secs(10);
        let (mut a, _tx, _rx) = accountant(dir.path(), settle);
        let before = Instant::now();
        a.touch(touch(&path, TouchKind::TurnEnd));
        let t = &a.files[&path];
        assert!(t.dirty && t.rereads.len() == 3);
        let after = |i: usize| t.rereads[i].duration_since(before);
        assert!(after(0) >= READ_MARGIN && after(0) < READ_MARGIN + Duration::from_secs(1), "{:?}", after(0));
        assert!(after(1) >= settle / 2 && after(1) < settle / 2 + Duration::from_secs(1), "{:?}", after(1));
        assert!(after(2) >= settle * 9 / 10 && after(2) < settle, "{:?}", after(2));
        // a plain growth does not reschedule them
        a.touch(touch(&path, TouchKind::Grow));
        assert_eq!(a.files[&path].rereads.len(), 3);
    }

    /// A scheduled re-read is reported after the usage it found, with the time it started; the
    /// read at the turn's end itself is not (it starts too early to count); a turn's end naming a
    /// refused path is reported as never to be read, a plain growth not at all.
    #[test]
    fn rereads_are_reported_after_their_usage() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects/proj");
        std::fs::create_dir_all(&projects).unwrap();
        let path = projects.join(format!("{SESSION}.jsonl"));
        let cut = TRANSCRIPT.len() / 2;
        let cut = cut + TRANSCRIPT[cut..].iter().position(|&b| b == b'\n').unwrap() + 1;
        std::fs::write(&path, &TRANSCRIPT[..cut]).unwrap();
        let (mut a, tx, mut rx) = accountant(dir.path(), Duration::from_secs(10));
        a.touch(touch(&path, TouchKind::TurnEnd));
        a.read_due(&tx);
        let first: Vec<Report> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert!(!first.is_empty() && first.iter().all(|r| matches!(r, Report::Usage(_))), "{first:?}");

        std::fs::write(&path, TRANSCRIPT).unwrap();
        a.files.get_mut(&path).unwrap().rereads[0] = Instant::now();
        let before = now_ns();
        a.read_due(&tx);
        let reports: Vec<Report> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let (last, usage) = reports.split_last().unwrap();
        assert!(!usage.is_empty() && usage.iter().all(|r| matches!(r, Report::Usage(_))), "{reports:?}");
        match last {
            Report::Read(r) => {
                assert_eq!((r.session_id.as_str(), r.agent_id.as_deref()), (SESSION, None));
                assert!(matches!(r.read, ReadStart::At(at) if at >= before), "{r:?}");
            }
            other => panic!("the read comes last: {other:?}"),
        }

        let refused = Path::new("/etc/passwd.jsonl");
        a.touch(touch(refused, TouchKind::Grow));
        a.touch(Touch { agent_id: Some("a1".into()), ..touch(refused, TouchKind::TurnEnd) });
        a.read_due(&tx);
        let reports: Vec<Report> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert!(
            matches!(&reports[..], [Report::Read(TranscriptRead { read: ReadStart::Never, agent_id: Some(a), .. })] if a == "a1"),
            "{reports:?}"
        );
    }

    /// A path outside the transcript roots is counted as refused and never tracked; aliases of one
    /// file share its progress, so it counts once.
    #[test]
    fn refused_paths_are_counted_and_aliases_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let projects = dir.path().join("projects/proj");
        std::fs::create_dir_all(&projects).unwrap();
        let path = projects.join(format!("{SESSION}.jsonl"));
        std::fs::write(&path, TRANSCRIPT).unwrap();
        let alias = projects.join("alias.jsonl");
        std::os::unix::fs::symlink(&path, &alias).unwrap();
        let (mut a, tx, mut rx) = accountant(dir.path(), Duration::from_millis(100));
        a.touch(touch(Path::new("/etc/passwd.jsonl"), TouchKind::Grow));
        assert!(a.files.is_empty());
        assert_eq!(a.metrics.transcript_errors.with_label_values(&["refused"]).get(), 1);
        a.touch(touch(&path, TouchKind::Grow));
        a.touch(touch(&alias, TouchKind::Grow));
        a.read_due(&tx);
        assert_eq!(output_tokens(&drained(&mut rx)), 445 - 174, "the file once, whatever names it");
    }
}
