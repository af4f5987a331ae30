//! End to end with the real Claude Code CLI, offline: the pinned CLI (installed by
//! `scripts/install-test-deps.sh`) talks to a scripted mock Messages API (`tests/e2e/mock_api.py`) and runs
//! `hooktel hook` for every hook event; the sidecar exports to a real OTLP receiver. Two sessions run at
//! once in different work directories, together with a prompt the mock answers with HTTP 400
//! (StopFailure); then one session is resumed with `/compact`. The spans are checked against the
//! transcripts the CLI wrote: one trace per session keyed by its UUID, one root, one `execute_tool` span
//! per tool call that ran (errors marked), subagents under the `Agent` call that spawned them.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::{assert_tree, wait_until, Protocol, Receiver, Sidecar, Span};

/// A CLI run taking longer than this is killed (one run takes a few seconds).
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the spans of finished sessions may take to reach the receiver.
const SPANS_TIMEOUT: Duration = Duration::from_secs(60);

/// The events hooked, as in the harness's `run-scenario.sh` (WorktreeCreate/Remove replace git logic).
const HOOK_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "SessionStart",
    "SessionEnd",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "PermissionRequest",
    "PermissionDenied",
    "Setup",
    "TeammateIdle",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "InstructionsLoaded",
    "CwdChanged",
    "FileChanged",
    "MessageDisplay",
];

const MAIN_PROMPT: &str = "Run the scripted scenario.";
const API_ERROR_PROMPT: &str = "[scenario:api-error] hi";

/// The CLI, from `HOOKTEL_CLAUDE_BIN` or where `scripts/install-test-deps.sh` puts it.
fn claude_bin() -> PathBuf {
    let path =
        std::env::var_os("HOOKTEL_CLAUDE_BIN").filter(|p| !p.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/claude-code/node_modules/.bin/claude")
        });
    assert!(
        path.is_file(),
        "the Claude Code CLI is not installed at {}: run scripts/install-test-deps.sh \
         (or set HOOKTEL_CLAUDE_BIN to the claude binary)",
        path.display()
    );
    path
}

/// A scratch directory under the system temp dir: removed when the test passes, kept when it fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("hooktel-e2e-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.0.join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("e2e: CLI output, debug logs, transcripts and mock request logs kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// `tests/e2e/mock_api.py` on a free port, killed on drop.
struct Mock {
    port: u16,
    child: Child,
}

impl Mock {
    fn start(scratch: &Scratch, name: &str, workdir: &Path) -> Mock {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/mock_api.py");
        let port_file = scratch.0.join(format!("mock.{name}.port"));
        let err_file = scratch.0.join(format!("mock.{name}.err"));
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", "0", "--workdir"])
            .arg(workdir)
            .arg("--log")
            .arg(scratch.0.join(format!("mock.{name}.requests.jsonl")))
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err_file).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start python3 for the mock API ({e}): run scripts/install-test-deps.sh")
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()) {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mock API exited ({status}): {}", fs::read_to_string(&err_file).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mock API did not start: {}", fs::read_to_string(&err_file).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        Mock { port, child }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Quote for a POSIX shell (Claude Code runs command hooks through one).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `<home>/.claude/settings.json` with `hooktel hook` as a command hook for every event.
fn write_settings(home: &Path) {
    let command = format!("{} hook", shell_quote(support::BIN));
    let hooks: serde_json::Map<String, Value> = HOOK_EVENTS
        .iter()
        .map(|e| (e.to_string(), json!([{"hooks": [{"type": "command", "command": command}]}])))
        .collect();
    let dir = home.join(".claude");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("settings.json"), serde_json::to_vec_pretty(&json!({ "hooks": hooks })).unwrap()).unwrap();
}

/// What every CLI run shares: the binary, the throwaway HOME and the sidecar to report to.
struct Cli<'a> {
    bin: PathBuf,
    scratch: &'a Scratch,
    home: PathBuf,
    sidecar: &'a Sidecar,
}

/// A CLI process under way.
struct Running {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    deadline: Instant,
}

/// A finished CLI run.
struct Finished {
    name: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Cli<'_> {
    /// Start `claude --output-format stream-json --verbose --dangerously-skip-permissions ARGS` in `workdir`,
    /// with a clean environment, like the harness's `run-scenario.sh`.
    fn spawn(&self, name: &str, workdir: &Path, mock: &Mock, args: &[&str]) -> Running {
        let s = &self.scratch.0;
        let (stdout, stderr) = (s.join(format!("cli.{name}.stdout.jsonl")), s.join(format!("cli.{name}.stderr")));
        let child = Command::new(&self.bin)
            .env_clear()
            .current_dir(workdir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("TERM", "dumb")
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", self.scratch.dir("tmp"))
            .env("IS_SANDBOX", "1")
            .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{}", mock.port))
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("HOOKTEL_ADDR", self.sidecar.addr.to_string())
            .env("HOOKTEL_DATA_DIR", self.scratch.dir("hooktel-data"))
            .args(["--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions", "--debug-file"])
            .arg(s.join(format!("debug.{name}.log")))
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}): run scripts/install-test-deps.sh", self.bin.display()));
        Running { name: name.into(), child, stdout, stderr, deadline: Instant::now() + CLI_TIMEOUT }
    }
}

impl Running {
    /// Wait for the process to exit; kill it at its deadline.
    fn wait(mut self) -> Finished {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "claude run `{}` still running after {CLI_TIMEOUT:?}, killed; stderr:\n{}",
                    self.name,
                    fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Finished {
            name: self.name,
            status,
            stdout: fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Finished {
    fn expect_exit(&self, code: i32) -> &Finished {
        assert_eq!(
            self.status.code(),
            Some(code),
            "claude run `{}` exited with {}; stderr:\n{}\nstdout tail:\n{}",
            self.name,
            self.status,
            self.stderr,
            tail(&self.stdout, 3000)
        );
        self
    }

    /// The `session_id` of the stream-json output.
    fn session_id(&self) -> String {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["session_id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no session_id in the output of `{}`:\n{}", self.name, tail(&self.stdout, 3000)))
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A tool call found in a transcript.
#[derive(Debug)]
struct Call {
    name: String,
    /// The subagent that made it; `None` for the main agent.
    agent: Option<String>,
}

/// The `tool_result` of a call.
#[derive(Debug)]
struct Outcome {
    is_error: bool,
    /// Refused before it ran (an unknown tool): no hook fires for it.
    never_ran: bool,
}

/// `subagents/agent-<id>.meta.json`.
#[derive(Debug)]
struct AgentMeta {
    id: String,
    agent_type: String,
    tool_use_id: String,
}

/// What the CLI wrote about one session.
#[derive(Debug, Default)]
struct Transcript {
    calls: BTreeMap<String, Call>,
    results: HashMap<String, Outcome>,
    prompt_ids: HashSet<String>,
    agents: Vec<AgentMeta>,
}

impl Transcript {
    /// `<projects>/<project>/<session>.jsonl`, its subagents' transcripts and meta files.
    fn read(projects: &Path, session: &str) -> Transcript {
        let mains: Vec<PathBuf> = fs::read_dir(projects)
            .unwrap_or_else(|e| panic!("no transcripts in {}: {e}", projects.display()))
            .map(|e| e.unwrap().path().join(format!("{session}.jsonl")))
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(mains.len(), 1, "transcript of session {session} under {}: {mains:?}", projects.display());
        let mut t = Transcript::default();
        t.add_lines(&mains[0], None);
        let subagents = mains[0].with_extension("").join("subagents");
        if subagents.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(&subagents).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                let name = file.file_name().unwrap().to_str().unwrap().to_owned();
                if let Some(id) = name.strip_prefix("agent-").and_then(|n| n.strip_suffix(".meta.json")) {
                    let meta: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
                    let field = |k: &str| {
                        meta[k].as_str().unwrap_or_else(|| panic!("{k} missing in {}", file.display())).to_owned()
                    };
                    t.agents.push(AgentMeta {
                        id: id.into(),
                        agent_type: field("agentType"),
                        tool_use_id: field("toolUseId"),
                    });
                } else if let Some(id) = name.strip_prefix("agent-").and_then(|n| n.strip_suffix(".jsonl")) {
                    t.add_lines(&file, Some(id));
                }
            }
        }
        for (id, call) in &t.calls {
            assert!(t.results.contains_key(id), "tool call {id} ({}) has no tool_result in the transcripts", call.name);
        }
        t
    }

    /// Tool calls from assistant lines, results from user lines (other line types repeat them).
    fn add_lines(&mut self, file: &Path, agent: Option<&str>) {
        let text = fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON ({e}): {line}", file.display(), n + 1));
            let kind = v["type"].as_str().unwrap_or_default();
            if kind == "user" {
                if let Some(pid) = v["promptId"].as_str() {
                    self.prompt_ids.insert(pid.to_owned());
                }
            }
            let Some(blocks) = v["message"]["content"].as_array() else { continue };
            for b in blocks {
                match (kind, b["type"].as_str()) {
                    ("assistant", Some("tool_use")) => {
                        let id = b["id"].as_str().expect("tool_use id").to_owned();
                        let name = b["name"].as_str().expect("tool_use name").to_owned();
                        // one API response is written as one line per content block: dedupe by id
                        if let Some(seen) = self.calls.get(&id) {
                            assert_eq!(seen.name, name, "tool_use {id} written with two names");
                            continue;
                        }
                        self.calls.insert(id, Call { name, agent: agent.map(str::to_owned) });
                    }
                    ("user", Some("tool_result")) => {
                        let id = b["tool_use_id"].as_str().expect("tool_use_id").to_owned();
                        let content = match &b["content"] {
                            Value::String(s) => s.clone(),
                            Value::Array(parts) => {
                                parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")
                            }
                            _ => String::new(),
                        };
                        let never_ran = content.starts_with("<tool_use_error>Error: No such tool available");
                        self.results.insert(id, Outcome { is_error: b["is_error"] == Value::Bool(true), never_ran });
                    }
                    _ => {}
                }
            }
        }
    }

    /// The tool calls that ran (and so fired PreToolUse), by id.
    fn ran(&self) -> BTreeMap<&str, &Call> {
        self.calls.iter().filter(|(id, _)| !self.results[*id].never_ran).map(|(id, c)| (id.as_str(), c)).collect()
    }
}

/// The hex trace id of a session: its UUID without dashes.
fn trace_of(session: &str) -> String {
    session.replace('-', "").to_ascii_lowercase()
}

fn op(s: &Span) -> &str {
    s.attr("gen_ai.operation.name").unwrap_or_default()
}

/// One session's spans against its transcript.
/// `api_error`: the session whose only turn failed; `Some(true)` when its StopFailure hook was delivered,
/// `Some(false)` when Claude Code killed that hook before hooktel could run (see `hook_exit_status`).
fn check_session(all: &[Span], session: &str, t: &Transcript, resumed: bool, api_error: Option<bool>) {
    let stop_failure_lost = api_error == Some(false);
    let api_error = api_error.is_some();
    let trace = trace_of(session);
    // one root, no dangling parent, no span id exported twice
    assert_tree(all, &trace);
    let mine: Vec<&Span> = all.iter().filter(|s| s.trace_id == trace).collect();
    for s in &mine {
        assert_eq!(s.attr("session.id"), Some(session), "session.id of {}", s.name);
        assert_eq!(s.attr("gen_ai.conversation.id"), Some(session), "gen_ai.conversation.id of {}", s.name);
        let lost_turn_end = stop_failure_lost && s.name == "invoke_agent claude-code";
        if !lost_turn_end {
            assert_ne!(s.attr("hooktel.incomplete"), Some("true"), "{} ({}) closed as incomplete", s.name, s.span_id);
        }
        assert!(s.start_ns > 0 && s.start_ns <= s.end_ns, "times of {}", s.name);
    }
    let root = mine.iter().find(|s| s.parent.is_empty()).unwrap();
    assert_eq!(root.name, "claude-code session", "the root of {session}");
    let by_id: HashMap<&str, &Span> = mine.iter().map(|s| (s.span_id.as_str(), *s)).collect();

    // a resumed run is a segment under the root
    let segments: Vec<&&Span> = mine.iter().filter(|s| s.name == "claude-code session resumed").collect();
    if resumed {
        assert_eq!(segments.len(), 1, "one resumed segment in {session}");
        assert_eq!(segments[0].parent, root.span_id, "the resumed segment hangs under the root");
    } else {
        assert!(segments.is_empty(), "{session} was not resumed, yet has a resumed segment");
    }
    let tops: HashSet<&str> = segments.iter().map(|s| s.span_id.as_str()).chain([root.span_id.as_str()]).collect();

    // turns: children of the root or the segment, each for a prompt of the transcript
    let turns: Vec<&&Span> = mine.iter().filter(|s| s.name == "invoke_agent claude-code").collect();
    assert!(!turns.is_empty(), "no turn in {session}");
    for turn in &turns {
        assert!(tops.contains(turn.parent.as_str()), "turn {} hangs under {}", turn.span_id, parent_of(&by_id, turn));
        let pid = turn.attr("hooktel.prompt.id").unwrap_or_default();
        assert!(t.prompt_ids.contains(pid), "turn for prompt {pid:?}, not a promptId of the transcript");
        if stop_failure_lost {
            // closed by SessionEnd instead, and said so
            assert_eq!(turn.attr("hooktel.incomplete"), Some("true"), "the API error turn without its StopFailure");
        } else if api_error {
            assert_eq!(turn.attr("hooktel.turn.outcome"), Some("failure"), "the API error turn's outcome");
            assert_eq!(turn.status, 2, "the API error turn (StopFailure) has status ERROR");
        } else {
            assert_eq!(turn.attr("hooktel.turn.outcome"), Some("stop"), "turn {pid} outcome");
            assert_ne!(turn.status, 2, "turn {pid} has status ERROR");
        }
    }
    if api_error {
        assert_eq!(turns.len(), 1, "one turn in the API error session");
    }
    let turn_ids: HashSet<&str> = turns.iter().map(|s| s.span_id.as_str()).collect();

    // one execute_tool span per tool call that ran, none for the others
    let tools: Vec<&&Span> = mine.iter().filter(|s| op(s) == "execute_tool").collect();
    for s in &mine {
        assert_eq!(s.name.starts_with("execute_tool "), op(s) == "execute_tool", "operation of {}", s.name);
    }
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &tools {
        *count.entry(s.attr("gen_ai.tool.call.id").unwrap_or_default()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tool calls with more than one span in {session}: {twice:?}");
    let ran = t.ran();
    let expected: BTreeSet<&str> = ran.keys().copied().collect();
    let actual: BTreeSet<&str> = count.keys().copied().collect();
    let missing: Vec<_> = expected.difference(&actual).map(|id| (id, &ran[id].name)).collect();
    let extra: Vec<_> = actual.difference(&expected).map(|id| (id, t.calls.get(*id).map(|c| &c.name))).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "tool spans of {session} differ from the transcript's tool calls: missing {missing:?}, unexpected {extra:?}"
    );
    assert!(ran.len() < t.calls.len() || api_error, "the unknown tool call of the script is missing from {session}");
    for s in &tools {
        let id = s.attr("gen_ai.tool.call.id").unwrap();
        let call = ran[id];
        assert_eq!(s.name, format!("execute_tool {}", call.name), "span of call {id}");
        assert_eq!(s.attr("gen_ai.tool.name"), Some(call.name.as_str()), "gen_ai.tool.name of {id}");
        let failed = t.results[id].is_error;
        assert_eq!(
            s.status == 2,
            failed,
            "{} {id}: is_error {failed} in the transcript, span status {} {:?}",
            s.name,
            s.status,
            s.status_message
        );
        assert_eq!(s.attr("gen_ai.agent.id"), call.agent.as_deref(), "gen_ai.agent.id of {} {id}", s.name);
        if call.agent.is_none() {
            assert!(turn_ids.contains(s.parent.as_str()), "{} {id} hangs under {}", s.name, parent_of(&by_id, s));
        }
    }
    if !api_error {
        assert!(tools.iter().any(|s| s.status == 2), "the script's failing Bash call is missing in {session}");
    }

    // subagents: under the Agent call that spawned them, their tools under them
    let subagents: Vec<&&Span> =
        mine.iter().filter(|s| op(s) == "invoke_agent" && s.name != "invoke_agent claude-code").collect();
    let sub_ids: BTreeSet<&str> = subagents.iter().map(|s| s.attr("gen_ai.agent.id").unwrap_or_default()).collect();
    let meta_ids: BTreeSet<&str> = t.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(sub_ids, meta_ids, "subagent spans of {session} vs subagents/agent-*.meta.json");
    assert_eq!(subagents.len(), meta_ids.len(), "one span per subagent in {session}");
    if !api_error {
        assert!(!t.agents.is_empty(), "the script's subagent is missing from {session}'s transcripts");
    }
    for meta in &t.agents {
        let sub = subagents.iter().find(|s| s.attr("gen_ai.agent.id") == Some(meta.id.as_str())).unwrap();
        assert_eq!(sub.name, format!("invoke_agent {}", meta.agent_type), "name of subagent {}", meta.id);
        let spawner = tools
            .iter()
            .find(|s| s.attr("gen_ai.tool.call.id") == Some(meta.tool_use_id.as_str()))
            .unwrap_or_else(|| panic!("no span for the call {} that spawned {}", meta.tool_use_id, meta.id));
        assert_eq!(spawner.name, "execute_tool Agent", "the call that spawned {}", meta.id);
        assert_eq!(
            sub.parent,
            spawner.span_id,
            "subagent {} should hang under the Agent call {}, hangs under {}",
            meta.id,
            meta.tool_use_id,
            parent_of(&by_id, sub)
        );
        let its_tools: Vec<&&&Span> =
            tools.iter().filter(|s| s.attr("gen_ai.agent.id") == Some(meta.id.as_str())).collect();
        let its_calls = ran.values().filter(|c| c.agent.as_deref() == Some(meta.id.as_str())).count();
        assert_eq!(its_tools.len(), its_calls, "tool spans of subagent {}", meta.id);
        assert!(its_calls > 0, "the script's subagent {} made no tool call", meta.id);
        for s in its_tools {
            assert_eq!(
                s.parent,
                sub.span_id,
                "{} of subagent {} hangs under {}",
                s.name,
                meta.id,
                parent_of(&by_id, s)
            );
        }
    }

    // the /compact of the resumed run
    let compactions: Vec<&&Span> = mine.iter().filter(|s| s.name == "compaction").collect();
    if resumed {
        assert_eq!(compactions.len(), 1, "one compaction in the resumed {session}");
        let segment = segments[0].span_id.as_str();
        let parent = compactions[0].parent.as_str();
        let under_segment = parent == segment || by_id.get(parent).is_some_and(|p| p.parent == segment);
        assert!(under_segment, "the compaction hangs under {}", parent_of(&by_id, compactions[0]));
    } else {
        assert!(compactions.is_empty(), "compaction in {session}, which never compacted");
    }
}

/// The parent of `s`, for messages.
fn parent_of(by_id: &HashMap<&str, &Span>, s: &Span) -> String {
    match by_id.get(s.parent.as_str()) {
        Some(p) => format!("{} ({})", p.name, p.span_id),
        None if s.parent.is_empty() => "nothing (a root)".into(),
        None => format!("unknown span {}", s.parent),
    }
}

/// The exit status Claude Code's debug log reports for the hook run of `event`
/// (`StopFailure:unknown ['…/hooktel' hook] completed with status 1`).
fn hook_exit_status(debug_log: &Path, event: &str) -> Option<i32> {
    let log = fs::read_to_string(debug_log).ok()?;
    log.lines()
        .filter(|l| l.contains(&format!("] {event}:")) || l.contains(&format!("Hooks: {event}")))
        .find_map(|l| l.split("with status ").nth(1)?.split_whitespace().next()?.parse().ok())
}

fn event_count(sidecar: &Sidecar, event: &str) -> f64 {
    sidecar.metric(&format!("hooktel_hook_events_total{{event=\"{event}\"}}"))
}

fn scenario(claude: PathBuf, scratch: &Scratch, receiver: &Receiver, sidecar: &Sidecar) {
    let home = scratch.dir("home");
    write_settings(&home);
    let (work_a, work_b, work_c) = (scratch.dir("work-a"), scratch.dir("work-b"), scratch.dir("work-c"));
    for w in [&work_a, &work_b, &work_c] {
        fs::write(w.join("CLAUDE.md"), "# Project notes\nA throwaway project for hooktel's end-to-end test.\n")
            .unwrap();
    }
    // one mock per work directory: the scripted Write/Read/Edit point into it
    let (mock_a, mock_b) = (Mock::start(scratch, "a", &work_a), Mock::start(scratch, "b", &work_b));
    let cli = Cli { bin: claude, scratch, home: home.clone(), sidecar };

    // two sessions at once, and a third whose only API call fails
    let a = cli.spawn("a", &work_a, &mock_a, &["-p", MAIN_PROMPT]);
    let b = cli.spawn("b", &work_b, &mock_b, &["-p", MAIN_PROMPT]);
    let c = cli.spawn("api-error", &work_c, &mock_b, &["-p", API_ERROR_PROMPT]);
    let (a, b, c) = (a.wait(), b.wait(), c.wait());
    let sid_a = a.expect_exit(0).session_id();
    let sid_b = b.expect_exit(0).session_id();
    let sid_c = c.expect_exit(1).session_id();
    let sessions = [&sid_a, &sid_b, &sid_c];
    assert_eq!(sessions.iter().collect::<HashSet<_>>().len(), 3, "three distinct sessions: {sessions:?}");
    wait_until(
        Duration::from_secs(10),
        "hook events from the three runs (claude -p silently ignores an invalid settings.json)",
        || event_count(sidecar, "PreToolUse") > 0.0 && event_count(sidecar, "SessionEnd") >= 3.0,
    );

    // resume the first session once its trace is out, and compact it
    let (ta, tb, tc) = (trace_of(&sid_a), trace_of(&sid_b), trace_of(&sid_c));
    receiver.wait_for(SPANS_TIMEOUT, "the root of the first session", |s| {
        s.iter().any(|s| s.trace_id == ta && s.parent.is_empty())
    });
    let resumed = cli.spawn("compact", &work_a, &mock_a, &["--resume", &sid_a, "-p", "/compact"]).wait();
    assert_eq!(resumed.expect_exit(0).session_id(), sid_a, "--resume continues the same session");

    // every session's root, and the resumed segment, have arrived; then nothing is in flight
    receiver.wait_for(SPANS_TIMEOUT, "every session's root and the resumed segment", |s| {
        let root = |t: &str| s.iter().any(|s| s.trace_id == t && s.parent.is_empty());
        root(&tb) && root(&tc) && s.iter().any(|s| s.trace_id == ta && s.name == "claude-code session resumed")
    });
    wait_until(Duration::from_secs(10), "the exported spans to reach the receiver", || {
        sidecar.metric("hooktel_spans_exported_total") as usize == receiver.spans().len()
    });
    let spans = receiver.spans();

    let known: HashSet<String> = sessions.iter().map(|s| trace_of(s)).collect();
    let strays: Vec<_> =
        spans.iter().filter(|s| !known.contains(&s.trace_id)).map(|s| (&s.name, &s.trace_id)).collect();
    assert!(strays.is_empty(), "spans outside the sessions' traces: {strays:?}");

    let projects = home.join(".claude/projects");
    let transcripts: Vec<Transcript> = sessions.iter().map(|s| Transcript::read(&projects, s)).collect();

    // every tool call that ran fired exactly one PreToolUse, every run ended, the API error was reported
    let ran: usize = transcripts.iter().map(|t| t.ran().len()).sum();
    assert_eq!(event_count(sidecar, "PreToolUse"), ran as f64, "PreToolUse events vs tool calls that ran");
    assert_eq!(event_count(sidecar, "SessionEnd"), 4.0, "SessionEnd events (a, b, api-error, compact)");
    // Claude Code SIGTERMs the process group of hooks still running when it exits, a few ms after
    // starting the StopFailure hook. hooktel ignores SIGTERM from its first instruction and then
    // always delivers (the hook exits 0); a hook killed before it could start at all is the one loss
    // hooktel cannot prevent, and the CLI's own debug log tells which of the two happened.
    let delivered = match hook_exit_status(&scratch.0.join("debug.api-error.log"), "StopFailure") {
        Some(0) => true,
        Some(status) => {
            eprintln!("e2e: Claude Code killed the StopFailure hook before it started (status {status})");
            false
        }
        None => panic!("the CLI's debug log shows no StopFailure hook run"),
    };
    let expected = if delivered { 1.0 } else { 0.0 };
    assert_eq!(event_count(sidecar, "StopFailure"), expected, "StopFailure events received from the api-error run");

    check_session(&spans, &sid_a, &transcripts[0], true, None);
    check_session(&spans, &sid_b, &transcripts[1], false, None);
    check_session(&spans, &sid_c, &transcripts[2], false, Some(delivered));
}

#[test]
fn real_claude_code_sessions_become_one_trace_each() {
    let claude = claude_bin();
    let scratch = Scratch::new();
    let receiver = Receiver::start(Protocol::Http);
    let sidecar = Sidecar::start(Some(&receiver), &[]);
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| scenario(claude, &scratch, &receiver, &sidecar)));
    if let Err(panic) = outcome {
        eprintln!("---- hooktel serve log ----\n{}", sidecar.log());
        let metrics = sidecar.metrics();
        let samples: Vec<&str> =
            metrics.lines().filter(|l| l.starts_with("hooktel_") && !l.contains("_bucket{")).collect();
        eprintln!("---- hooktel metrics ----\n{}", samples.join("\n"));
        eprintln!("---- spans received (trace, span, parent, status, name, call id, agent id) ----");
        let mut spans = receiver.spans();
        spans.sort_by(|a, b| (&a.trace_id, a.start_ns).cmp(&(&b.trace_id, b.start_ns)));
        for s in &spans {
            eprintln!(
                "{} {} {:16} {} {} {} {}",
                s.trace_id,
                s.span_id,
                s.parent,
                s.status,
                s.name,
                s.attr("gen_ai.tool.call.id").unwrap_or("-"),
                s.attr("gen_ai.agent.id").unwrap_or("-")
            );
        }
        std::panic::resume_unwind(panic);
    }
    eprintln!("e2e: claude runs and checks took {:.1} s", started.elapsed().as_secs_f64());
}
