//! `hooktel install --agent gemini`, `uninstall --agent gemini` and doctor's `hooks (gemini)` check,
//! with the built binary in a throwaway HOME holding a user's Gemini CLI settings and hooks: what
//! install writes, that it writes it once, backs the old file up and gives the user's file back on
//! uninstall; what it refuses and leaves untouched; that hooks turned off by `hooksConfig` are said
//! loudly; that the hooks docs/gemini.md shows are what install writes. Then the real Gemini CLI
//! (pinned), offline against the scripted mock of the Gemini API (`tests/e2e/mock_gemini.py`), runs
//! hooktel's installed hook, and the user's own, for a prompt.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::claude::{shell_quote, Scratch};
use crate::support::gemini::{run, MockGemini};
use crate::support::{metric_value, wait_until, Sidecar, BIN};
use hooktel::cli::install_gemini;

/// The events install hooks (all of Gemini CLI 0.61's but `BeforeToolSelection`).
const EVENTS: [&str; 10] = [
    "SessionStart",
    "BeforeAgent",
    "AfterAgent",
    "BeforeModel",
    "AfterModel",
    "BeforeTool",
    "AfterTool",
    "PreCompress",
    "Notification",
    "SessionEnd",
];

/// What Gemini CLI needs to run offline with an API key, and no usage statistics.
fn offline_settings() -> Value {
    json!({"security": {"auth": {"selectedType": "gemini-api-key"}}, "privacy": {"usageStatisticsEnabled": false}})
}

/// A user's settings: their own, and hooks of their own, one with a matcher on BeforeTool.
fn users_settings(marker: &Path) -> Value {
    let mut settings = offline_settings();
    settings["ui"] = json!({"theme": "Dracula"});
    settings["hooks"] = json!({
        "BeforeTool": [{"matcher": "run_shell_command", "hooks": [{"type": "command", "command": "true"}]}],
        "BeforeAgent": [{"hooks": [{"type": "command", "name": "mine",
            "command": format!("printf x >> {}", shell_quote(marker.to_str().unwrap())), "timeout": 5000}]}],
    });
    settings
}

/// Run the built `hooktel` with only HOME (and PATH) from here, plus `env`.
fn hooktel(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .envs(env.iter().copied())
        .output()
        .expect("run hooktel")
}

fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn succeeds(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", said(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `<home>/.gemini/settings.json` holding `settings`.
fn write_settings(home: &Path, settings: &Value) -> PathBuf {
    let file = home.join(".gemini/settings.json");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, serde_json::to_vec_pretty(settings).unwrap()).unwrap();
    file
}

fn read(file: &Path) -> Value {
    serde_json::from_slice(&fs::read(file).unwrap()).unwrap()
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("settings.json.hooktel-backup-"))
        .collect();
    found.sort();
    found
}

/// doctor's `hooks (gemini)` line, if it shows one.
fn doctor_line(home: &Path, env: &[(&str, &str)]) -> Option<String> {
    let out = hooktel(home, &["doctor"], env);
    String::from_utf8_lossy(&out.stdout).lines().find(|l| l.contains("hooks (gemini)")).map(str::to_owned)
}

/// hooktel's handler as install writes it.
fn ours() -> Value {
    json!({"type": "command", "name": "hooktel", "command": format!("{BIN} hook --agent gemini"), "timeout": 10000})
}

#[test]
fn install_agent_gemini_keeps_the_users_settings_and_hooks_and_uninstall_gives_them_back() {
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    assert_eq!(doctor_line(&home, &[]), None, "no Gemini directory: no Gemini check");
    let users = users_settings(&scratch.path().join("marker"));
    let file = write_settings(&home, &users);
    let before = fs::read(&file).unwrap();
    let line = doctor_line(&home, &[]).expect("a Gemini directory: a Gemini check");
    assert!(line.starts_with("[WARN]") && line.contains("0 of 10 events hooked"), "{line}");

    let out = succeeds(hooktel(&home, &["install", "--agent", "gemini"], &[]), "install --agent gemini");
    assert!(out.contains("hooktel's hook added to 10 Gemini CLI events"), "{out}");
    let installed = read(&file);
    for (key, value) in users.as_object().unwrap().iter().filter(|(k, _)| *k != "hooks") {
        assert_eq!(&installed[key], value, "{key} kept");
    }
    for event in EVENTS {
        let groups = installed["hooks"][event].as_array().unwrap_or_else(|| panic!("{event} hooked"));
        let theirs = users["hooks"].get(event).and_then(Value::as_array).cloned().unwrap_or_default();
        assert_eq!(groups[..theirs.len()], theirs[..], "{event}: the user's groups first, unchanged");
        assert_eq!(groups[theirs.len()..], [json!({"hooks": [ours()]})], "{event}: hooktel's group last");
    }
    let hooked: Vec<&String> = installed["hooks"].as_object().unwrap().keys().collect();
    assert_eq!(hooked.len(), EVENTS.len(), "these events and no other (not BeforeToolSelection): {hooked:?}");
    let dir = home.join(".gemini");
    let backup = backups(&dir);
    assert_eq!(backup.len(), 1, "{backup:?}");
    assert_eq!(fs::read(&backup[0]).unwrap(), before, "the backup is the old file");

    let once = fs::read(&file).unwrap();
    let again = succeeds(hooktel(&home, &["install", "--agent", "gemini-cli"], &[]), "install again");
    assert!(again.contains("nothing to change"), "{again}");
    assert_eq!(fs::read(&file).unwrap(), once, "installing twice changes nothing");
    assert_eq!(backups(&dir).len(), 1, "and backs nothing up");
    let line = doctor_line(&home, &[]).unwrap();
    assert!(line.starts_with("[ok  ]") && line.contains("10 of 10 events hooked"), "{line}");

    let out = succeeds(hooktel(&home, &["uninstall", "--agent", "gemini"], &[]), "uninstall --agent gemini");
    assert!(out.contains("removed from 10 Gemini CLI events"), "{out}");
    assert_eq!(read(&file), users, "the user's settings as they were");
    assert_eq!(backups(&dir).len(), 2, "one backup per change");
    let line = doctor_line(&home, &[]).unwrap();
    assert!(line.starts_with("[WARN]") && line.contains("0 of 10 events hooked"), "{line}");
    let out = succeeds(hooktel(&home, &["uninstall", "--agent", "gemini"], &[]), "uninstall again");
    assert!(out.contains("no hooktel hook to remove"), "{out}");

    // Gemini CLI 0.61 takes $GEMINI_CLI_HOME for the whole home directory: so does install
    let elsewhere = scratch.dir("gemini-cli-home");
    let env = [("GEMINI_CLI_HOME", elsewhere.to_str().unwrap())];
    succeeds(hooktel(&home, &["install", "--agent", "gemini"], &env), "install with GEMINI_CLI_HOME");
    let there = read(&elsewhere.join(".gemini/settings.json"));
    assert_eq!(there["hooks"]["AfterAgent"], json!([{"hooks": [ours()]}]));
    assert_eq!(read(&file), users, "the settings under HOME untouched");
    let line = doctor_line(&home, &env).unwrap();
    assert!(line.contains(&format!("{}: 10 of 10", elsewhere.join(".gemini/settings.json").display())), "{line}");
    succeeds(hooktel(&home, &["uninstall", "--agent", "gemini"], &env), "uninstall with GEMINI_CLI_HOME");
    assert!(!elsewhere.join(".gemini/settings.json").exists(), "a file that held only hooktel's hooks goes");
}

#[test]
fn install_agent_gemini_refuses_what_it_cannot_change_safely_and_leaves_it_untouched() {
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    let file = home.join(".gemini/settings.json");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let cases = [
        ("[1, 2]", "does not hold a JSON object"),
        ("{\"ui\": {},}", "is not valid JSON"),
        ("{\"hooks\": []}", "has a \"hooks\" that is not an object"),
        ("{\"hooks\": {\"BeforeTool\": {}}}", "has hooks.BeforeTool that is not an array"),
        ("{\n  // mine\n  \"ui\": {\"theme\": \"Dracula\"}\n}\n", "has comments"),
    ];
    for (text, why) in cases {
        fs::write(&file, text).unwrap();
        for command in ["install", "uninstall"] {
            let out = hooktel(&home, &[command, "--agent", "gemini"], &[]);
            if command == "uninstall" && why == "has comments" {
                // nothing of hooktel's to take out: nothing to write, so nothing to refuse
                assert!(said(&out).contains("no hooktel hook to remove"), "{}", said(&out));
                continue;
            }
            assert_eq!(out.status.code(), Some(1), "{command} {text:?}: {}", said(&out));
            assert!(said(&out).contains(why) && said(&out).contains("not changing it"), "{}", said(&out));
        }
        assert_eq!(fs::read_to_string(&file).unwrap(), text, "left as it was");
        assert!(backups(file.parent().unwrap()).is_empty(), "nothing written beside it");
    }
    // Gemini CLI reads a file with comments, and so does doctor
    let line = doctor_line(&home, &[]).unwrap();
    assert!(line.starts_with("[WARN]") && line.contains("0 of 10 events hooked"), "{line}");
    // options of Claude Code's are refused, not ignored
    for flag in ["--project", "--http", "--native-telemetry", "--statusline"] {
        let args: &[&str] = if flag == "--project" {
            &["install", "--agent", "gemini", flag, "."]
        } else {
            &["install", "--agent", "gemini", flag]
        };
        let out = hooktel(&home, args, &[]);
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", said(&out));
        assert!(said(&out).contains("are Claude Code's"), "{}", said(&out));
    }
    let out = hooktel(&home, &["uninstall", "--agent", "gemini", "--project", "."], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("--project is Claude Code's"), "{}", said(&out));
}

#[test]
fn hooks_turned_off_by_hooks_config_are_refused_by_install_and_warned_by_doctor() {
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    for (config, why) in [
        (json!({"enabled": false}), "turns every hook off"),
        (json!({"disabled": ["mine", "hooktel"]}), "hooksConfig.disabled lists \"hooktel\""),
    ] {
        let mut settings = offline_settings();
        settings["hooksConfig"] = config.clone();
        let file = write_settings(&home, &settings);
        let text = fs::read(&file).unwrap();
        let out = hooktel(&home, &["install", "--agent", "gemini"], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", said(&out));
        assert!(said(&out).contains(why) && said(&out).contains("would not run hooktel's hook"), "{}", said(&out));
        assert_eq!(fs::read(&file).unwrap(), text, "left as it was");

        // turned off after install: doctor says so
        write_settings(&home, &offline_settings());
        succeeds(hooktel(&home, &["install", "--agent", "gemini"], &[]), "install");
        let mut installed = read(&file);
        installed["hooksConfig"] = config;
        write_settings(&home, &installed);
        let line = doctor_line(&home, &[]).unwrap();
        assert!(line.starts_with("[WARN]") && line.contains("10 of 10 events hooked"), "{line}");
        assert!(line.contains(why) && line.contains("runs none of hooktel's hooks"), "{line}");
        succeeds(hooktel(&home, &["uninstall", "--agent", "gemini"], &[]), "uninstall while turned off");
        fs::remove_dir_all(home.join(".gemini")).unwrap();
    }
}

#[test]
fn real_gemini_cli_runs_the_installed_hook_and_the_users_own() {
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    let work = scratch.dir("proj");
    let marker = scratch.path().join("user-hook-ran");
    let users = users_settings(&marker);
    let file = write_settings(&home, &users);
    succeeds(hooktel(&home, &["install", "--agent", "gemini"], &[]), "install --agent gemini");

    let sidecar = Sidecar::start(None, &[]);
    let mock = MockGemini::start(&scratch, "install");
    let (addr, data) = (sidecar.addr.to_string(), sidecar.data_dir.to_str().unwrap().to_owned());
    let env = [("HOOKTEL_ADDR", addr.as_str()), ("HOOKTEL_DATA_DIR", data.as_str())];
    let done = run(&home, &work, &mock, &["-p", "[turn:text] say hi"], &env);
    assert!(done.status.success(), "gemini: {}\n{}", done.status, done.stderr);
    assert!(done.response().starts_with("Streamed answer"), "{}", done.stdout);
    let counted = |event: &str| {
        metric_value(&sidecar.metrics(), &format!(r#"hooktel_hook_events_total{{event="{event}"}}"#)).unwrap_or(0.0)
    };
    wait_until(Duration::from_secs(15), "Gemini CLI's hook events at the sidecar", || counted("SessionEnd") == 1.0);
    for event in ["SessionStart", "BeforeAgent", "AfterAgent", "SessionEnd"] {
        assert_eq!(counted(event), 1.0, "{event}");
    }
    for event in ["BeforeModel", "AfterModel", "PreCompress"] {
        assert!(counted(event) >= 1.0, "{event}");
    }
    assert_eq!(counted("BeforeToolSelection"), 0.0, "not hooked");
    let started = r#"hooktel_sessions_started_total{agent="gemini-cli",source="startup"}"#;
    assert_eq!(metric_value(&sidecar.metrics(), started), Some(1.0), "read as Gemini CLI's");
    assert_eq!(fs::read_to_string(&marker).unwrap(), "x", "the user's BeforeAgent hook ran once");

    succeeds(hooktel(&home, &["uninstall", "--agent", "gemini"], &[]), "uninstall --agent gemini");
    assert_eq!(read(&file), users, "the user's settings as they were");
}

/// The hand-written hooks of docs/gemini.md are what install writes, but for the program's path.
#[test]
fn the_documented_hooks_are_what_install_writes() {
    let page = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gemini.md")).unwrap();
    let install = page.split_once("\n## Install\n").expect("docs/gemini.md: ## Install").1;
    let block = install.split_once("```json\n").and_then(|(_, b)| b.split_once("```")).expect("a json block").0;
    let mut documented: Value = serde_json::from_str(block).expect("docs/gemini.md: the hooks are JSON");
    for groups in documented["hooks"].as_object_mut().unwrap().values_mut() {
        groups[0]["hooks"][0]["command"] = json!(format!("{BIN} hook --agent gemini"));
    }
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    succeeds(hooktel(&home, &["install", "--agent", "gemini"], &[]), "install --agent gemini");
    assert_eq!(read(&home.join(".gemini/settings.json")), documented);
}

/// Gemini CLI's hook events, as the pinned CLI's bundle names them (its `HookEventName` enum).
fn cli_hook_events() -> BTreeSet<String> {
    let bin = fs::canonicalize(crate::support::gemini::gemini_bin()).unwrap();
    let bundle = bin.parent().unwrap();
    let mut events = BTreeSet::new();
    for path in fs::read_dir(bundle).unwrap().map(|e| e.unwrap().path()) {
        if path.extension().is_some_and(|x| x == "js") {
            let text = fs::read_to_string(&path).unwrap();
            events
                .extend(text.split("HookEventName2[\"").skip(1).filter_map(|r| r.split('"').next()).map(str::to_owned));
        }
    }
    assert!(!events.is_empty(), "no HookEventName enum in {}", bundle.display());
    events
}

/// Every event of the pinned Gemini CLI is hooked by install or left out with a reason; none else.
#[test]
fn every_event_of_the_pinned_gemini_cli_is_hooked_or_left_out_on_purpose() {
    let cli = cli_hook_events();
    let hooked: BTreeSet<String> = install_gemini::EVENTS.iter().map(|e| e.to_string()).collect();
    let left_out: BTreeSet<String> = install_gemini::LEFT_OUT.iter().map(|(e, _)| e.to_string()).collect();
    assert!(hooked.is_disjoint(&left_out), "{hooked:?} {left_out:?}");
    assert_eq!(
        hooked.union(&left_out).cloned().collect::<BTreeSet<_>>(),
        cli,
        "add a new event of Gemini CLI to install_gemini::EVENTS, or to LEFT_OUT with the reason"
    );
    assert_eq!(hooked, EVENTS.iter().map(|e| e.to_string()).collect(), "what the tests here expect");
}
