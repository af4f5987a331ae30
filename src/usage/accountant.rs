//! Token accounting: reads the transcripts of live sessions as they grow and counts their usage
//! and cost, exactly once.
//!
//! Runs on its own thread (file reads are blocking). The pipeline *touches* a transcript when an
//! event of its session arrives; touched files are read from their saved offset every
//! `READ_INTERVAL`. A turn's end (Stop, SubagentStop, SessionEnd) reads at once and again at half
//! and at nine tenths of the settle time, because Claude Code writes the last response to the file
//! after the hook fires (seen 150 ms after SubagentStop), and the usage must be on the span before
//! it settles. A session's end re-reads every transcript of the session. Every transcript of a
//! session counts under the session's project (its first `cwd`), whatever a subagent's `cwd` is. Each file's
//! [`Ledger`] is saved under `<data dir>/transcripts/` *before* its usage is counted, so a restart
//! never counts a line twice (a crash between the two loses that one read rather than doubling it).
//! A missing, unreadable or garbage transcript is skipped and counted; it never stalls ingest.

use std::collections::HashMap;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::usage::files::{OpenError, TranscriptRoots};
use crate::usage::pricing::PriceTable;
use crate::usage::transcript::{self, Delta, Ledger};

/// How often touched transcripts are read: often enough that a turn's usage is on its span before
/// the span settles, rarely enough that a busy session costs one read per interval, not per event.
const READ_INTERVAL: Duration = Duration::from_millis(100);

/// Most bytes read from one transcript at a time; the rest follows on the next read.
const MAX_READ: u64 = 64 * 1024 * 1024;

/// Files not touched for this long are dropped from memory (their saved ledger stays on disk).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Saved ledgers older than this are deleted at start.
const KEEP_SAVED: Duration = Duration::from_secs(30 * 24 * 3600);

/// A request to read a transcript, sent by the pipeline.
#[derive(Clone, Debug)]
pub(crate) struct Touch {
    pub(crate) session_id: String,
    pub(crate) path: PathBuf,
    /// Set for a subagent's transcript.
    pub(crate) agent_id: Option<String>,
    pub(crate) project: String,
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
    pub(crate) session_id: String,
    pub(crate) delta: Delta,
}

struct Tracked {
    ledger: Ledger,
    session_id: String,
    project: String,
    dirty: bool,
    /// Re-reads still due, earliest first.
    rereads: Vec<Instant>,
    last_touch: Instant,
    final_read: bool,
    /// A subagent's transcript: some subagents (the compaction agent) never write one.
    subagent: bool,
}

impl Tracked {
    fn new(ledger: Ledger, t: &Touch, project: String, now: Instant) -> Tracked {
        Tracked {
            ledger,
            session_id: t.session_id.clone(),
            project,
            dirty: false,
            rereads: Vec::new(),
            last_touch: now,
            final_read: false,
            subagent: t.agent_id.is_some(),
        }
    }
}

pub(crate) struct Accountant {
    files: HashMap<PathBuf, Tracked>,
    /// The project of each session: the one its first touch named.
    projects: HashMap<String, String>,
    prices: PriceTable,
    state_dir: PathBuf,
    metrics: Arc<Metrics>,
    settle: Duration,
    /// Where transcripts may be read (a payload's path is untrusted).
    roots: TranscriptRoots,
    /// Refused paths already logged, so a flood of them logs each once (bounded).
    refused_logged: std::collections::HashSet<PathBuf>,
}

/// Refused paths logged at most: past this, refusals are only counted.
const MAX_REFUSALS_LOGGED: usize = 100;

impl Accountant {
    pub(crate) fn new(
        prices: PriceTable,
        data_dir: &Path,
        metrics: Arc<Metrics>,
        settle: Duration,
        roots: TranscriptRoots,
    ) -> Accountant {
        let state_dir = data_dir.join("transcripts");
        if let Err(e) = std::fs::create_dir_all(&state_dir) {
            tracing::warn!(dir = %state_dir.display(), error = %e, "Cannot create the transcript state directory");
        }
        remove_old_state(&state_dir);
        Accountant {
            files: HashMap::new(),
            projects: HashMap::new(),
            prices,
            state_dir,
            metrics,
            settle,
            roots,
            refused_logged: std::collections::HashSet::new(),
        }
    }

    /// Run until every `Touch` sender is gone; usage goes to `usage`.
    pub(crate) fn run(mut self, touches: Receiver<Touch>, usage: mpsc::Sender<SessionUsage>) {
        loop {
            match touches.recv_timeout(READ_INTERVAL) {
                Ok(t) => {
                    self.touch(t);
                    while let Ok(t) = touches.try_recv() {
                        self.touch(t);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.read_due(&usage);
        }
        // last reads of whatever was touched, then stop
        for t in self.files.values_mut() {
            t.dirty = true;
        }
        self.read_due(&usage);
    }

    fn touch(&mut self, t: Touch) {
        if let Err(why) = self.roots.admit(&t.path) {
            self.refuse(&t.path, &why);
            return;
        }
        if t.kind == TouchKind::SessionEnd {
            self.discover_subagents(&t);
        }
        let now = Instant::now();
        let rereads = [now + self.settle / 2, now + self.settle * 9 / 10];
        let project = self.projects.entry(t.session_id.clone()).or_insert_with(|| t.project.clone()).clone();
        if !self.files.contains_key(&t.path) {
            let ledger = self.restore_ledger(&t.path);
            self.files.insert(t.path.clone(), Tracked::new(ledger, &t, project, now));
        }
        let Some(tracked) = self.files.get_mut(&t.path) else { return };
        tracked.dirty = true;
        tracked.last_touch = now;
        if t.kind != TouchKind::Grow {
            tracked.rereads = rereads.to_vec();
        }
        if t.kind == TouchKind::SessionEnd {
            tracked.final_read = true;
            // every transcript of the session gets its last reads: lines arrive after the hooks
            for other in self.files.values_mut().filter(|f| f.session_id == t.session_id) {
                other.dirty = true;
                other.rereads = rereads.to_vec();
                other.final_read = true;
            }
        }
    }

    /// The saved ledger of a transcript. A missing one starts at the beginning; a damaged one (garbage
    /// in the file) starts at the transcript's current end: re-reading from the start would count
    /// every response of it a second time, so what was added since the last save is given up instead.
    fn restore_ledger(&self, transcript: &Path) -> Ledger {
        match load_ledger(&self.state_dir, transcript) {
            SavedLedger::Found(ledger) => ledger,
            SavedLedger::Missing => Ledger::default(),
            SavedLedger::Damaged => {
                self.metrics.transcript_errors.with_label_values(&["bad_ledger"]).inc();
                let end = std::fs::metadata(transcript).map_or(0, |m| m.len());
                tracing::warn!(path = ?transcript, offset = end, "Saved progress of a transcript is damaged; counting from its current end");
                let mut ledger = Ledger::default();
                ledger.offset = end;
                ledger
            }
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
        let Some(dir) = t.path.to_str().and_then(transcript::subagents_dir) else { return };
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

    fn read_due(&mut self, usage: &mpsc::Sender<SessionUsage>) {
        let now = Instant::now();
        let mut deltas = Vec::new();
        for (path, t) in self.files.iter_mut() {
            let reread = t.rereads.first().is_some_and(|at| *at <= now);
            if !t.dirty && !reread {
                continue;
            }
            t.dirty = false;
            t.rereads.retain(|at| *at > now);
            let final_read = t.final_read && t.rereads.is_empty();
            for delta in read_file(path, t, final_read, &self.prices, &self.state_dir, &self.metrics, &self.roots) {
                deltas.push(SessionUsage { session_id: t.session_id.clone(), delta });
            }
        }
        self.files.retain(|_, t| now.duration_since(t.last_touch) < FORGET_AFTER || !t.rereads.is_empty());
        let live: std::collections::HashSet<&str> = self.files.values().map(|t| t.session_id.as_str()).collect();
        self.projects.retain(|sid, _| live.contains(sid.as_str()));
        for d in deltas {
            // back-pressure: the pipeline is busy; usage must not be lost, so wait
            if usage.blocking_send(d).is_err() {
                return;
            }
        }
    }
}

/// Read what is new in one transcript; save the ledger, then count.
fn read_file(
    path: &Path,
    t: &mut Tracked,
    final_read: bool,
    prices: &PriceTable,
    state_dir: &Path,
    metrics: &Metrics,
    roots: &TranscriptRoots,
) -> Vec<Delta> {
    let bytes = match new_bytes(path, &mut t.ledger, roots) {
        Ok(b) => b,
        Err(OpenError::Refused(why)) => {
            // a FIFO, a directory, or a symlink out of the roots, found when opening
            metrics.transcript_errors.with_label_values(&["refused"]).inc();
            tracing::debug!(path = ?path, reason = %why, "Transcript refused when opened; not read");
            return Vec::new();
        }
        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            // not written yet (SessionStart comes before the first line); an error only at the end
            if final_read && t.ledger.offset == 0 && !t.subagent {
                metrics.transcript_errors.with_label_values(&["missing"]).inc();
                tracing::debug!(path = %path.display(), "Transcript missing at session end");
            }
            return Vec::new();
        }
        Err(OpenError::Io(e)) => {
            metrics.transcript_errors.with_label_values(&["unreadable"]).inc();
            tracing::warn!(path = ?path, error = %e, "Transcript unreadable; skipped");
            return Vec::new();
        }
    };
    if bytes.is_empty() {
        return Vec::new();
    }
    let before = t.ledger.offset;
    let read = t.ledger.read(&bytes, prices);
    if read.bad_lines > 0 {
        metrics.transcript_errors.with_label_values(&["bad_line"]).inc_by(read.bad_lines);
    }
    if t.ledger.offset != before {
        save_ledger(state_dir, path, &t.ledger);
    }
    for d in &read.deltas {
        metrics.count_usage(&d.model, &t.project, &d.usage, d.cost, d.priced);
    }
    read.deltas
}

/// The file's bytes from the ledger's offset (at most `MAX_READ`). A file shorter than the offset
/// was replaced: it is read from the start, and the ledger's memory of recent responses still
/// keeps anything already counted from being counted again.
fn new_bytes(path: &Path, ledger: &mut Ledger, roots: &TranscriptRoots) -> Result<Vec<u8>, OpenError> {
    let mut file = roots.open(path)?;
    let len = file.metadata()?.len();
    if len < ledger.offset {
        ledger.offset = 0;
    }
    if len == ledger.offset {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(ledger.offset))?;
    let mut bytes = Vec::with_capacity((len - ledger.offset).min(MAX_READ) as usize);
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn state_file(state_dir: &Path, transcript: &Path) -> PathBuf {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, transcript.as_os_str().as_encoded_bytes());
    state_dir.join(format!("{}.json", id.simple()))
}

/// What the state directory holds for a transcript.
enum SavedLedger {
    Found(Ledger),
    Missing,
    /// There, but not a ledger (garbage, a truncated write, a foreign file).
    Damaged,
}

fn load_ledger(state_dir: &Path, transcript: &Path) -> SavedLedger {
    match std::fs::read(state_file(state_dir, transcript)) {
        Ok(text) => serde_json::from_slice(&text).map_or(SavedLedger::Damaged, SavedLedger::Found),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedLedger::Missing,
        Err(_) => SavedLedger::Damaged,
    }
}

/// Write the ledger atomically (a temporary file renamed over the old one).
fn save_ledger(state_dir: &Path, transcript: &Path, ledger: &Ledger) {
    let path = state_file(state_dir, transcript);
    let tmp = path.with_extension("tmp");
    let result = serde_json::to_vec(ledger)
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
