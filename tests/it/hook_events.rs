//! The hook events of the pinned Claude Code CLI against what hooktel hooks: the event list is read out
//! of the CLI binary itself, so that moving the pin (`scripts/install-test-deps.sh`) to a release with a
//! new event fails here at once, until `install` hooks it (or leaves it out with a reason) and the
//! Kubernetes managed settings hook exactly what `install` writes, and docs/claude-code.md says how
//! many events that is (tests/it/docs.rs checks that page's hand-written example).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::claude::{claude_bin, Scratch};
use crate::support::BIN;

/// Events every release has; a list read out of the binary without them is not the event list.
const CORE_EVENTS: &[&str] = &["PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "SessionStart", "SessionEnd"];

/// The CLI keeps its hook event names as one JSON array literal (twice, in 2.1.332; other arrays hold
/// subsets, such as the events whose hooks can block). Fewer names than this is one of those subsets.
const MIN_EVENTS: usize = 20;

/// How far before a `"SessionStart"` the array's `[` may be (34 names take about 600 bytes).
const MAX_ARRAY_BYTES: usize = 4096;

/// The pinned CLI's version and its hook event names, in its order. Panics when the binary holds no
/// such list, so that a changed binary layout fails here instead of passing on an empty list.
fn cli_hook_events() -> (String, Vec<String>) {
    let bin = claude_bin();
    let out = Command::new(&bin).arg("--version").output().expect("run claude --version");
    let version = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    assert!(version.starts_with("2."), "claude --version said {:?}", String::from_utf8_lossy(&out.stdout));
    let bytes = fs::read(&bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display()));
    let lists = event_arrays(&bytes);
    let longest = lists.iter().max_by_key(|l| l.len()).cloned().unwrap_or_else(|| {
        panic!(
            "no JSON array of {MIN_EVENTS}+ hook event names (with {CORE_EVENTS:?}) in {} ({} bytes, Claude Code \
             {version}): the CLI keeps its event list some other way now; find it (`strings -n 6` the binary, \
             look near \"TeammateIdle\") and teach this test",
            bin.display(),
            bytes.len()
        )
    });
    let names: BTreeSet<&String> = longest.iter().collect();
    assert_eq!(names.len(), longest.len(), "an event named twice: {longest:?}");
    for other in &lists {
        assert!(other.iter().all(|e| names.contains(e)), "two event lists in the CLI: {longest:?} and {other:?}");
    }
    (version, longest)
}

/// Every JSON array of event names around a `"SessionStart"` that holds the core events.
fn event_arrays(bytes: &[u8]) -> Vec<Vec<String>> {
    const ANCHOR: &[u8] = b"\"SessionStart\"";
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], ANCHOR).map(|i| from + i) {
        from = at + ANCHOR.len();
        let lo = at.saturating_sub(MAX_ARRAY_BYTES);
        let Some(open) = bytes[lo..at].iter().rposition(|&b| b == b'[').map(|i| lo + i) else { continue };
        let hi = (at + MAX_ARRAY_BYTES).min(bytes.len());
        let Some(close) = bytes[at..hi].iter().position(|&b| b == b']').map(|i| at + i) else { continue };
        // nothing but quoted names and commas in between
        if !bytes[open + 1..close].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'"' || b == b',') {
            continue;
        }
        let Ok(list) = serde_json::from_slice::<Vec<String>>(&bytes[open..=close]) else { continue };
        if list.len() >= MIN_EVENTS && CORE_EVENTS.iter().all(|e| list.iter().any(|l| l == e)) {
            found.push(list);
        }
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut i = 0;
    while let Some(p) = haystack[i..].iter().position(|&b| b == first) {
        let at = i + p;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// What `hooktel install` writes into an empty HOME: event → hooktel's entry.
pub(crate) fn installed(scratch: &Scratch) -> BTreeMap<String, Value> {
    let home = scratch.dir("home");
    let mut cmd = Command::new(BIN);
    cmd.arg("install").current_dir(&home).env("HOME", &home);
    for k in ["CLAUDE_CONFIG_DIR", "HOOKTEL_LISTEN", "HOOKTEL_ADDR", "HOOKTEL_DATA_DIR", "XDG_DATA_HOME"] {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("run hooktel install");
    assert!(out.status.success(), "hooktel install: {}", String::from_utf8_lossy(&out.stderr));
    hooks_of(&fs::read_to_string(home.join(".claude/settings.json")).unwrap(), "what install wrote")
}

pub(crate) fn hooks_of(settings: &str, what: &str) -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(settings).unwrap_or_else(|e| panic!("{what} is not JSON: {e}"));
    let hooks = v["hooks"].as_object().unwrap_or_else(|| panic!("{what} has no hooks object"));
    hooks.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Each entry with its command hooks' command replaced, to compare a hand-written list with install's.
pub(crate) fn with_command(hooks: &BTreeMap<String, Value>, command: &str) -> BTreeMap<String, Value> {
    let mut hooks = hooks.clone();
    for groups in hooks.values_mut() {
        for group in groups.as_array_mut().into_iter().flatten() {
            for hook in group["hooks"].as_array_mut().into_iter().flatten() {
                if hook["type"] == "command" {
                    hook["command"] = command.into();
                }
            }
        }
    }
    hooks
}

/// The managed settings of deploy/kubernetes/claude-settings.configmap.yaml.
fn configmap_hooks(yaml: &str) -> BTreeMap<String, Value> {
    let cm: serde_json::Value = serde_norway::from_str(yaml).expect("the ConfigMap is YAML");
    let settings = cm["data"]["managed-settings.json"].as_str().expect("data.managed-settings.json");
    hooks_of(settings, "the ConfigMap's managed-settings.json")
}

fn names(hooks: &BTreeMap<String, Value>) -> BTreeSet<&str> {
    hooks.keys().map(String::as_str).collect()
}

/// The pinned CLI's events are all hooked by `install` but those it leaves out on purpose; the
/// ConfigMap hooks exactly what `install` writes, and docs/claude-code.md says how many.
#[test]
fn every_event_of_the_pinned_cli_is_hooked_by_install_and_the_configmap() {
    let (version, cli) = cli_hook_events();
    let cli: BTreeSet<&str> = cli.iter().map(String::as_str).collect();
    let left_out: BTreeSet<&str> = hooktel::cli::install::LEFT_OUT.iter().map(|(e, _)| *e).collect();
    let scratch = Scratch::new();
    let installed = installed(&scratch);
    let hooked = names(&installed);
    let mut problems = Vec::new();

    let events: BTreeSet<&str> = hooktel::cli::install::EVENTS.iter().copied().collect();
    if events != hooked {
        problems.push(format!("install wrote {hooked:?}, not its EVENTS {events:?}"));
    }
    let missing: Vec<_> = cli.difference(&hooked).filter(|e| !left_out.contains(*e)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "Claude Code {version} has hook events install neither hooks nor leaves out: {missing:?}; add them to \
             install::EVENTS (and see what they are in ingest/agents/claude_code.rs), or to install::LEFT_OUT with the reason"
        ));
    }
    let unknown: Vec<_> = hooked.union(&left_out).filter(|e| !cli.contains(*e)).collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "install hooks or leaves out events Claude Code {version} does not have: {unknown:?} (is the pin in \
             scripts/install-test-deps.sh behind the newest release?)"
        ));
    }
    let both: Vec<_> = hooked.intersection(&left_out).collect();
    if !both.is_empty() {
        problems.push(format!("install hooks events it says it leaves out: {both:?}"));
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = fs::read_to_string(root.join("docs/claude-code.md")).unwrap();
    let configmap = fs::read_to_string(root.join("deploy/kubernetes/claude-settings.configmap.yaml")).unwrap();
    for (what, hooks, command) in [(
        "deploy/kubernetes/claude-settings.configmap.yaml",
        configmap_hooks(&configmap),
        "/opt/hooktel/bin/hooktel hook",
    )] {
        let expected = with_command(&installed, command);
        let absent: Vec<_> = names(&expected).difference(&names(&hooks)).copied().collect();
        let extra: Vec<_> = names(&hooks).difference(&names(&expected)).copied().collect();
        if !absent.is_empty() || !extra.is_empty() {
            problems.push(format!("{what} leaves out {absent:?} and adds {extra:?} against what install writes"));
        }
        for (event, entry) in &hooks {
            if expected.get(event).is_some_and(|e| e != entry) {
                problems.push(format!("{what}: {event} is {entry}, install writes {}", expected[event]));
            }
        }
    }
    let said = format!("the {} events it uses (all of Claude Code {version}'s but", hooked.len());
    if !page.contains(&said) {
        problems.push(format!("docs/claude-code.md does not say \"{said}\""));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
