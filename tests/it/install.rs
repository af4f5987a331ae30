//! `hooktel install`, `uninstall` and `doctor`, end to end: the built binary writes hooks into a
//! throwaway HOME that already holds a user's settings (the recorded fixtures), the real Claude Code
//! CLI runs a scripted session with them, and the events reach a sidecar and its OTLP receiver, for
//! command hooks and for http hooks. Claude Code's `-p` silently ignores a settings file that fails
//! validation, so events arriving is the proof that what `install` writes is valid. Then `uninstall`
//! must give back the user's file, and `doctor` must pass with everything up and fail with advice
//! when the sidecar is down or the hooks are gone.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::claude::{claude_bin, Cli, Mock, Scratch};
use crate::support::{lan_ip, wait_until, Protocol, Receiver, Sidecar, BIN};
use serde_json::Value;

/// A user's settings with command hooks of their own (exec form, async) for another sidecar.
const COMMAND_HOOKS_FIXTURE: &str = include_str!("../fixtures/settings/settings.command-hooks.json");
/// A user's settings with http hooks of their own and an `allowedHttpHookUrls` that would block hooktel's.
const HTTP_HOOKS_FIXTURE: &str = include_str!("../fixtures/settings/settings.http-hooks.json");

const SPANS_TIMEOUT: Duration = Duration::from_secs(60);

/// Run the built `hooktel` with HOME set and none of the caller's hooktel / Claude / OTLP settings.
fn hooktel(home: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).env("HOME", home);
    for k in [
        "CLAUDE_CONFIG_DIR",
        "HOOKTEL_LISTEN",
        "HOOKTEL_ADDR",
        "HOOKTEL_DATA_DIR",
        "XDG_DATA_HOME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run hooktel")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn expect_exit(out: &Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "{what}:\n{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn event_count(sidecar: &Sidecar, event: &str) -> f64 {
    sidecar.metric(&format!("hooktel_hook_events_total{{event=\"{event}\"}}"))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Install into a HOME holding `fixture`, run a real session, check the events and the trace, run
/// `doctor`, then uninstall.
fn claude_reports_through(http: bool, fixture: &str) {
    let claude = claude_bin();
    let scratch = Scratch::new();
    let receiver = Receiver::start(Protocol::Http);
    // http hooks reach the sidecar as another host would, so they must present the token
    let listen = if http { std::net::SocketAddr::new(lan_ip(), 0).to_string() } else { "127.0.0.1:0".into() };
    let sidecar = Sidecar::builder().exporting_to(&receiver).listen(&listen).start();
    let token = fs::read_to_string(sidecar.data_dir.join("token")).expect("the token file serve made");
    let token = token.trim();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let home = scratch.dir("home");
        let work = scratch.dir("work");
        let elsewhere = scratch.dir("elsewhere");
        fs::write(work.join("CLAUDE.md"), "# Project notes\nA throwaway project for hooktel's install test.\n")
            .unwrap();
        let settings = home.join(".claude/settings.json");
        fs::create_dir_all(settings.parent().unwrap()).unwrap();
        fs::write(&settings, fixture).unwrap();

        let addr = sidecar.addr.to_string();
        let args: &[&str] = if http { &["install", "--http"] } else { &["install"] };
        let out = expect_exit(&hooktel(&home, &elsewhere, args, &[("HOOKTEL_LISTEN", &addr)]), 0, "hooktel install");
        assert!(out.contains(&format!("added ({})", hooktel::cli::install::EVENTS.len())), "{out}");
        let installed = json(&settings);
        let url = format!("http://{addr}/v1/hooks");
        if http {
            assert!(installed["allowedHttpHookUrls"].as_array().unwrap().contains(&Value::from(url.clone())));
            let text = fs::read_to_string(&settings).unwrap();
            assert!(text.contains("Bearer $HOOKTEL_TOKEN") && !text.contains(token), "the token by name only");
        }
        let again = expect_exit(&hooktel(&home, &elsewhere, args, &[("HOOKTEL_LISTEN", &addr)]), 0, "install again");
        assert!(again.contains("nothing to change"), "{again}");

        let mock = Mock::start(&scratch, "main", &work);
        let cli = Cli { bin: claude, scratch: &scratch, home: home.clone(), addr, data_dir: sidecar.data_dir.clone() };
        // the command hook (SessionStart) reads the token from the data dir; Claude Code interpolates
        // it into the http hooks' header from its environment
        let claude_env: &[(&str, &str)] = if http { &[("HOOKTEL_TOKEN", token)] } else { &[] };
        let run = cli.spawn_with("main", &work, &mock, &["-p", "Run the scripted scenario."], claude_env).wait();
        let session = run.expect_exit(0).session_id();
        wait_until(
            Duration::from_secs(20),
            "hook events from the run (claude -p silently ignores an invalid settings.json)",
            || event_count(&sidecar, "PreToolUse") > 0.0 && event_count(&sidecar, "SessionEnd") >= 1.0,
        );
        // SessionStart takes the command hook even with --http (Claude Code skips http hooks there)
        assert_eq!(event_count(&sidecar, "SessionStart"), 1.0, "SessionStart events");
        assert_eq!(sidecar.metric("hooktel_ingest_rejected_total{reason=\"unauthorized\"}"), 0.0);
        let trace = session.replace('-', "");
        receiver.wait_for(SPANS_TIMEOUT, "the session's root span", |spans| {
            spans.iter().any(|s| s.trace_id == trace && s.parent.is_empty())
        });

        let env = [
            ("HOOKTEL_ADDR", sidecar.addr.to_string()),
            ("HOOKTEL_DATA_DIR", sidecar.data_dir.display().to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let report = expect_exit(&hooktel(&home, &elsewhere, &["doctor"], &env), 0, "hooktel doctor, all up");
        // every destination takes an empty export through the sidecar's own clients: spans, and
        // Claude Code's logs, metrics and traces forwarded
        assert!(report.contains("all 9 checks ok"), "{report}");
        for purpose in ["exporter:", "exporter (forwarded logs):", "exporter (forwarded metrics):"] {
            assert!(report.contains(&format!("{purpose} {}", receiver.endpoint())), "{purpose} {report}");
        }

        let out = expect_exit(&hooktel(&home, &elsewhere, &["uninstall"], &[]), 0, "hooktel uninstall");
        assert!(out.contains(&format!("removed ({})", hooktel::cli::install::EVENTS.len())), "{out}");
        let after = fs::read_to_string(&settings).unwrap();
        assert!(!after.contains("hooktel") && !after.contains(&url), "hooktel entries left:\n{after}");
        assert_eq!(json(&settings), serde_json::from_str::<Value>(fixture).unwrap(), "the user's settings back");
        let backups = fs::read_dir(settings.parent().unwrap())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("settings.json.hooktel-backup-"))
            .count();
        assert_eq!(backups, 2, "one backup per change (install, uninstall)");
    }));
    if let Err(panic) = outcome {
        eprintln!("---- hooktel serve log ----\n{}", sidecar.log());
        let metrics = sidecar.metrics();
        let events: Vec<&str> = metrics.lines().filter(|l| l.starts_with("hooktel_hook_events_total")).collect();
        eprintln!("---- events ----\n{}", events.join("\n"));
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn real_claude_code_reports_through_installed_command_hooks() {
    let _cli = crate::support::claude::one_cli_at_a_time();
    claude_reports_through(false, COMMAND_HOOKS_FIXTURE);
}

#[test]
fn real_claude_code_reports_through_installed_http_hooks() {
    let _cli = crate::support::claude::one_cli_at_a_time();
    claude_reports_through(true, HTTP_HOOKS_FIXTURE);
}

#[test]
fn doctor_fails_with_advice_when_the_sidecar_is_down_or_the_hooks_are_gone() {
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    let cwd = scratch.dir("elsewhere");
    let sidecar = Sidecar::start(None, &[]);
    let addr = sidecar.addr.to_string();
    let data_dir = sidecar.data_dir.display().to_string();
    let env = [("HOOKTEL_ADDR", addr.as_str()), ("HOOKTEL_DATA_DIR", data_dir.as_str())];
    expect_exit(&hooktel(&home, &cwd, &["install"], &[]), 0, "hooktel install");

    let report = expect_exit(&hooktel(&home, &cwd, &["doctor"], &env), 0, "doctor, sidecar up");
    assert!(report.contains("all 6 checks ok") && report.contains("local mode"), "{report}");
    // doctor asks the sidecar what it runs with
    let config = report.lines().find(|l| l.contains("configuration:")).expect("the sidecar's configuration");
    assert!(config.contains(&format!("data directory {data_dir}")) && config.contains("capture metadata"), "{config}");

    // a shell whose HOOKTEL_DATA_DIR is not the sidecar's: its hooks would spool where nothing drains
    let other = scratch.dir("other-data");
    let other = other.display().to_string();
    let elsewhere = [("HOOKTEL_ADDR", addr.as_str()), ("HOOKTEL_DATA_DIR", other.as_str())];
    let report = expect_exit(&hooktel(&home, &cwd, &["doctor"], &elsewhere), 0, "doctor, another data dir");
    assert!(report.contains("[WARN] configuration") && report.contains("never drains"), "{report}");
    assert!(report.contains(&format!("fix: set HOOKTEL_DATA_DIR={data_dir}")), "{report}");

    drop(sidecar);
    let report = expect_exit(&hooktel(&home, &cwd, &["doctor"], &env), 1, "doctor, sidecar down");
    assert!(report.contains("[FAIL] sidecar") && report.contains("fix: start it: `hooktel serve`"), "{report}");
    assert!(report.contains("[ok  ] hooks (user)"), "{report}");

    expect_exit(&hooktel(&home, &cwd, &["uninstall"], &[]), 0, "hooktel uninstall");
    let report = expect_exit(&hooktel(&home, &cwd, &["doctor"], &env), 1, "doctor, no hooks");
    assert!(report.contains("[FAIL] hooks (user)") && report.contains("fix: hooktel install"), "{report}");

    // a settings file that is not JSON is refused, and doctor says so
    let settings = home.join(".claude/settings.json");
    fs::write(&settings, "{\"model\": \"opus\",}").unwrap();
    let out = hooktel(&home, &cwd, &["install"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not valid JSON"), "{}", text(&out));
    assert_eq!(fs::read_to_string(&settings).unwrap(), "{\"model\": \"opus\",}");
    let report = expect_exit(&hooktel(&home, &cwd, &["doctor"], &env), 1, "doctor, broken settings");
    assert!(report.contains("[FAIL] hooks (user)") && report.contains("is not valid JSON"), "{report}");
}

/// Run the built `hooktel` with HOME set for at most `limit`: its output (`None` if it had to be
/// killed) and its peak memory in MiB.
fn hooktel_within(home: &Path, args: &[&str], limit: Duration) -> (Option<Output>, f64) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("HOME", home).env_remove("CLAUDE_CONFIG_DIR");
    crate::support::run_sampled(&mut cmd, limit)
}

/// A settings file that is a FIFO, a symlink to /dev/zero or a huge file is refused at once, with
/// nothing written and memory flat (these hung install, or grew it past 1.4 GiB); a backup of a
/// private settings file (one holding an API key) is as private as the file.
#[test]
fn install_refuses_settings_that_are_no_settings_file_and_keeps_backups_private() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    let claude = home.join(".claude");
    fs::create_dir_all(&claude).unwrap();
    let settings = claude.join("settings.json");
    let fifo = std::ffi::CString::new(settings.to_str().unwrap()).unwrap();
    let huge = scratch.dir("elsewhere").join("huge.json");
    fs::File::create(&huge).unwrap().set_len(1 << 30).unwrap();
    let cases: [(&str, &dyn Fn()); 3] = [
        ("is not a regular file", &|| {
            // SAFETY: mkfifo with a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        }),
        ("is not a regular file", &|| std::os::unix::fs::symlink("/dev/zero", &settings).unwrap()),
        ("is larger than 16 MiB", &|| std::os::unix::fs::symlink(&huge, &settings).unwrap()),
    ];
    for (why, make) in cases {
        let _ = fs::remove_file(&settings);
        make();
        for command in ["install", "uninstall", "doctor"] {
            let (out, peak) = hooktel_within(&home, &[command], Duration::from_secs(10));
            let out = out.unwrap_or_else(|| panic!("{command} hung on a settings file that {why}"));
            assert!(!out.status.success() || command == "uninstall", "{command}: {}", text(&out));
            assert!(text(&out).contains(why), "{command}, {why}: {}", text(&out));
            assert!(peak < 64.0, "{command} peaked at {peak:.0} MiB on a settings file that {why}");
        }
        let backups = fs::read_dir(&claude).unwrap().filter(|e| e.as_ref().unwrap().path() != settings).count();
        assert_eq!(backups, 0, "nothing written beside a settings file that {why}");
    }

    // a private settings file with a key in it: its backup is private too, whatever the umask
    fs::remove_file(&settings).unwrap();
    fs::write(&settings, "{\"env\": {\"ANTHROPIC_API_KEY\": \"sk-ant-secret\"}}\n").unwrap();
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o600)).unwrap();
    expect_exit(&hooktel(&home, &home, &["install"], &[]), 0, "install over a private file");
    let backup = fs::read_dir(&claude)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("hooktel-backup-"))
        .expect("a backup");
    assert_eq!(fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600, "{}", backup.display());
    assert_eq!(fs::metadata(&settings).unwrap().permissions().mode() & 0o777, 0o600);
}
