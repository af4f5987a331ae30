//! The documentation against the code it describes: where README.md or a page under docs/ states a
//! fact the code can contradict, the code is asked. The settings table of docs/configuration.md
//! against `hooktel serve --help`, the metrics table of docs/metrics.md against a real sidecar's
//! `/metrics` and the registry behind it, the hand-written hooks of docs/claude-code.md against what
//! `install` writes, the bounds docs/traces.md gives the git reader against its constants, the price
//! tables of docs/metrics.md against the built-in table, and every
//! relative link against the files it names.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::hook_events::{hooks_of, installed, with_command};
use crate::support::claude::Scratch;
use crate::support::{captured_session_at, copy_captured_transcripts, temp_dir, wait_until, Sidecar, BIN};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The text of `page` from the line `heading` to the next heading of the same or a higher level.
fn section<'a>(page: &'a str, rel: &str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let start = page.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("{rel}: no heading {heading:?}"))
        + heading.len()
        + 2;
    let rest = &page[start..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| rest[i + 1..].chars().take_while(|&c| c == '#').count() <= level)
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// The rows of the first Markdown table in `text`, as cells (header and separator rows left out), an
/// escaped pipe (`\|`, a regular expression's alternation) read as the `|` it stands for.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> =
        text.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).collect();
    lines
        .iter()
        .skip(2)
        .map(|l| l.trim().trim_matches('|').split(" | ").map(|c| c.trim().replace("\\|", "|")).collect())
        .collect()
}

/// Everything in backticks in a table cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// One option of a `--help` text: its environment variable and default, as clap prints them.
#[derive(Debug, Default, PartialEq)]
struct HelpOption {
    env: Option<String>,
    default: Option<String>,
}

/// The long options of `hooktel <command> --help` (but `--help`).
fn help_options(command: &str) -> BTreeMap<String, HelpOption> {
    let out = Command::new(BIN).args([command, "--help"]).output().expect("run hooktel --help");
    assert!(out.status.success(), "hooktel {command} --help: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("help is UTF-8");
    let mut options = BTreeMap::<String, HelpOption>::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let flag = trimmed.strip_prefix("-h, ").unwrap_or(trimmed);
        if let Some(rest) = flag.strip_prefix("--") {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            current = (name != "help").then(|| format!("--{name}"));
            if let Some(name) = &current {
                options.insert(name.clone(), HelpOption::default());
            }
        }
        let Some(option) = current.as_ref().and_then(|c| options.get_mut(c)) else { continue };
        if let Some(env) = trimmed.strip_prefix("[env: ").and_then(|e| e.split_once('=')) {
            option.env = Some(env.0.to_owned());
        }
        if let Some(default) = trimmed.strip_prefix("[default: ").and_then(|d| d.strip_suffix(']')) {
            option.default = Some(default.trim_matches('"').to_owned()).filter(|d| !d.is_empty());
        }
    }
    assert!(options.contains_key("--listen"), "no --listen in `hooktel {command} --help`:\n{text}");
    options
}

/// docs/configuration.md's table of `hooktel serve` settings names every flag `hooktel serve --help`
/// prints, with the same variable and default, and no flag the command does not have.
#[test]
fn the_serve_settings_table_matches_serve_help() {
    let rel = "docs/configuration.md";
    let page = read(rel);
    let rows = table_rows(section(&page, rel, "## `hooktel serve`"));
    assert!(rows.len() > 10, "{rel}: the `hooktel serve` table has {} rows", rows.len());
    let help = help_options("serve");
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for row in &rows {
        let [flag, var, default, ..] = &row[..] else { panic!("{rel}: a short row {row:?}") };
        let Some(flag) = code_spans(flag).first().map(|f| f.to_string()) else { continue };
        documented.insert(flag.clone());
        let Some(option) = help.get(&flag) else {
            problems.push(format!("{rel} names {flag}, which `hooktel serve --help` does not have"));
            continue;
        };
        let var = code_spans(var).first().map(|v| v.to_string());
        if var != option.env {
            problems.push(format!("{rel}: {flag} has the variable {var:?}, --help says {:?}", option.env));
        }
        if let Some(d) = &option.default {
            if *default != format!("`{d}`") {
                problems.push(format!("{rel}: {flag} defaults to {default}, --help says `{d}`"));
            }
        }
    }
    for flag in help.keys().filter(|f| !documented.contains(*f)) {
        problems.push(format!("`hooktel serve --help` has {flag}, which {rel} does not document"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The metric names of docs/metrics.md's table, with the type the table gives each.
fn documented_metrics() -> BTreeMap<String, String> {
    let rel = "docs/metrics.md";
    let page = read(rel);
    let mut metrics = BTreeMap::new();
    for row in table_rows(section(&page, rel, "## Prometheus metrics")) {
        let [names, kind, ..] = &row[..] else { panic!("{rel}: a short row {row:?}") };
        for name in code_spans(names) {
            // hooktel's own, and the OpenTelemetry GenAI client metrics as /metrics serves them
            assert!(
                name.starts_with("hooktel_") || name.starts_with("gen_ai_"),
                "{rel}: {name:?} in the metric column"
            );
            metrics.insert(name.to_owned(), kind.clone());
        }
    }
    assert!(metrics.len() > 20, "{rel}: {} metrics in the table", metrics.len());
    metrics
}

/// Every `hooktel_*` family a sidecar serves, fed the captured session (with its transcripts, so
/// tokens and cost count), a custom event and a refused request, is in docs/metrics.md's table with
/// its type; every metric the table names is registered, and every registered family is in the table
/// (a labelled family is served only once it has a series, so the registry answers for the rest).
#[test]
fn the_metrics_table_matches_what_the_sidecar_serves() {
    let documented = documented_metrics();
    let dir = temp_dir("docs-metrics");
    let transcript = copy_captured_transcripts(dir.path());
    let sidecar = Sidecar::builder().start();
    for p in captured_session_at(&transcript) {
        let (status, body) = sidecar.request("POST", "/v1/hooks", p.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
    }
    let event = br#"{"name": "docs.check"}"#;
    assert_eq!(sidecar.request("POST", "/v1/events", event).0, 200);
    assert_eq!(sidecar.request("POST", "/v1/hooks", b"not json").0, 400);
    wait_until(Duration::from_secs(20), "the captured session counted", || {
        let text = sidecar.metrics();
        text.contains("hooktel_sessions_ended_total{") && text.contains("hooktel_cost_usd_total{")
    });

    let text = sidecar.metrics();
    let served: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| name.starts_with("hooktel_") || name.starts_with("gen_ai_"))
        .collect();
    assert!(served.contains_key("hooktel_tokens_total"), "no tokens served:\n{text}");
    let registered: BTreeSet<String> =
        hooktel::metrics::Metrics::new(true, true).family_names().iter().cloned().collect();
    let mut problems = Vec::new();
    for (name, kind) in &served {
        match documented.get(*name) {
            None => problems.push(format!("the sidecar serves {name} ({kind}), which docs/metrics.md does not list")),
            Some(doc) if doc != kind => {
                problems.push(format!("docs/metrics.md says {name} is a {doc}, it is a {kind}"))
            }
            Some(_) => {}
        }
    }
    for name in documented.keys().filter(|n| !registered.contains(*n)) {
        problems.push(format!("docs/metrics.md lists {name}, which hooktel does not register"));
    }
    for name in registered.iter().filter(|n| !documented.contains_key(*n)) {
        problems.push(format!("hooktel registers {name}, which docs/metrics.md does not list"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The hand-written command hooks of docs/claude-code.md: the ```json block after "## Command hooks".
fn doc_hooks(page: &str) -> BTreeMap<String, serde_json::Value> {
    let section = page.split_once("## Command hooks").expect("docs/claude-code.md: a ## Command hooks section").1;
    let block = section.split_once("```json\n").expect("docs/claude-code.md: a json block after ## Command hooks").1;
    let block = block.split_once("```").expect("docs/claude-code.md: the json block ends").0;
    hooks_of(block, "the command hooks example of docs/claude-code.md")
}

/// The example of docs/claude-code.md hooks exactly the events `install` hooks, each as install writes it.
#[test]
fn the_command_hooks_example_is_what_install_writes() {
    let scratch = Scratch::new();
    let expected = with_command(&installed(&scratch), "hooktel hook");
    let hooks = doc_hooks(&read("docs/claude-code.md"));
    let what = "the command hooks example of docs/claude-code.md";
    let mut problems = Vec::new();
    let names = |h: &BTreeMap<String, serde_json::Value>| h.keys().cloned().collect::<BTreeSet<_>>();
    let absent: Vec<_> = names(&expected).difference(&names(&hooks)).cloned().collect();
    let extra: Vec<_> = names(&hooks).difference(&names(&expected)).cloned().collect();
    if !absent.is_empty() || !extra.is_empty() {
        problems.push(format!("{what} leaves out {absent:?} and adds {extra:?} against what install writes"));
    }
    for (event, entry) in &hooks {
        if expected.get(event).is_some_and(|e| e != entry) {
            problems.push(format!("{what}: {event} is {entry}, install writes {}", expected[event]));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// README.md and every page under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut pages: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("a docs/ directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// The anchors GitHub gives a page's headings: lower case, punctuation but `-` and `_` dropped,
/// spaces as `-`, a repeated heading suffixed `-1`, `-2`... Lines inside code fences are no headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    let mut in_fence = false;
    let mut anchors = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        let Some(title) = line.strip_prefix('#').filter(|_| !in_fence) else { continue };
        let title = title.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *n == 0 { slug.clone() } else { format!("{slug}-{n}") });
        *n += 1;
    }
    anchors
}

/// The targets of a page's inline links `[text](target)`, outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if in_fence {
            continue;
        }
        // drop code spans: `[x](y)` in backticks is no link
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// Every relative link of README.md and docs/*.md names a file that exists, and an anchor in a
/// Markdown file names one of its headings.
#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
            let linked = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            if !linked.exists() {
                problems.push(format!("{rel}: the link {target} names no file"));
                continue;
            }
            if let Some(anchor) = anchor.filter(|_| linked.extension().is_some_and(|e| e == "md")) {
                if !anchors(&fs::read_to_string(&linked).unwrap()).contains(anchor) {
                    problems.push(format!("{rel}: the link {target} names no heading of {}", linked.display()));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} relative links found: is the link parser broken?");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README's `hooktel doctor` sample is what doctor prints on a laptop in local mode, after
/// `hooktel install` (paths, pid and port aside).
#[test]
fn the_readme_doctor_sample_is_what_doctor_prints() {
    let readme = read("README.md");
    let sample = readme
        .split("```\n[ok  ] sidecar:")
        .nth(1)
        .map(|rest| format!("[ok  ] sidecar:{}", rest.split("```").next().unwrap()))
        .expect("README: the doctor sample");
    let scratch = Scratch::new();
    let home = scratch.dir("home");
    let data = home.join(".local/share/hooktel");
    let sidecar = Sidecar::builder().data_dir(&data).env("HOOKTEL_OTLP_LISTEN", "off").start();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("HOME", &home)
            .env("HOOKTEL_ADDR", sidecar.addr.to_string())
            .env_remove("HOOKTEL_DATA_DIR")
            .env_remove("XDG_DATA_HOME")
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["install"]);
    let printed = run(&["doctor"]);
    let normal = |text: &str, home: &str, addr: &str| {
        let text = text.replace(home, "HOME").replace(addr, "ADDR");
        let pid = text.find("(pid ").map(|i| i + 5);
        match pid {
            Some(i) => {
                let end = i + text[i..].find(')').unwrap();
                format!("{}N{}", &text[..i], &text[end..])
            }
            None => text,
        }
    };
    assert_eq!(
        normal(&printed, home.to_str().unwrap(), &sidecar.addr.to_string()),
        normal(&sample, "/home/you", "127.0.0.1:4388"),
        "README.md's doctor sample"
    );
}

/// The README's memory budget is the sidecar's default, as its start-up line reports it.
#[test]
fn the_readmes_memory_budget_is_the_default() {
    let readme = read("README.md");
    let stated = readme
        .split("`HOOKTEL_MEMORY_BUDGET` (")
        .nth(1)
        .and_then(|rest| rest.split(" by").next())
        .expect("README: the memory budget and its default");
    let sidecar = Sidecar::builder().shipped_defaults().env_removed("HOOKTEL_MEMORY_BUDGET").start();
    wait_until(Duration::from_secs(10), "the start-up line of the memory budget", || {
        sidecar.log().contains("memory budget")
    });
    let log = sidecar.log();
    let line = log.lines().find(|l| l.contains("memory budget")).unwrap();
    assert!(line.contains(&format!("budget={stated}")), "README says {stated:?}; the sidecar: {line}");
}

/// A count as the docs write it: `1,024`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// docs/traces.md's section on what is read from git states the bounds the reader keeps.
#[test]
fn the_git_section_states_the_readers_bounds() {
    use hooktel::vcs::{MAX_CWD_BYTES, MAX_DIRS, MAX_PARENTS, QUEUE};
    let rel = "docs/traces.md";
    let page = read(rel);
    let text = section(&page, rel, "## What is read from git and what it costs")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for fact in [
        format!("walks up at most {} directories", thousands(MAX_PARENTS)),
        format!("queue up to {}", thousands(QUEUE)),
        format!("at most {} directories, the oldest", thousands(MAX_DIRS)),
        format!("each key at most {} bytes", thousands(MAX_CWD_BYTES)),
        "hooktel never runs `git`".to_owned(),
    ] {
        assert!(text.contains(&fact), "{rel} does not say: {fact}");
    }
}

/// The price tables of docs/metrics.md are the built-in table: every model it prices, at its
/// rates, its long-prompt tier and its fast mode, and no other.
#[test]
fn the_price_tables_are_the_built_in_table() {
    use hooktel::usage::pricing::{ModelPrice, PriceTable, Rates};
    let rel = "docs/metrics.md";
    let page = read(rel);
    let text = section(&page, rel, "## Prices");
    let number = |s: &str| s.trim().replace(',', "").parse::<f64>().unwrap_or_else(|e| panic!("{rel}: {s:?}: {e}"));
    let mut documented = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for table in lines.split(|l| !l.starts_with('|')).filter(|t| t.len() > 2) {
        let cells = |l: &str| l.trim().trim_matches('|').split(" | ").map(|c| c.trim().to_owned()).collect::<Vec<_>>();
        let header = cells(table[0]);
        // the rate columns, in the table's order, as the notes list them too
        let columns: Vec<&str> = header[1..].iter().map(String::as_str).filter(|h| *h != "notes").collect();
        let rates_of = |values: &[f64]| {
            assert_eq!(values.len(), columns.len(), "{rel}: {values:?} against {columns:?}");
            let mut r = Rates { input: 0.0, output: 0.0, cache_write_5m: 0.0, cache_write_1h: 0.0, cache_read: 0.0 };
            for (column, &v) in columns.iter().zip(values) {
                match *column {
                    "input" => r.input = v,
                    "output" => r.output = v,
                    "cache write 5m" => r.cache_write_5m = v,
                    "cache write 1h" => r.cache_write_1h = v,
                    "cache write" => (r.cache_write_5m, r.cache_write_1h) = (v, v),
                    "cache read" | "cached input" => r.cache_read = v,
                    other => panic!("{rel}: unknown price column {other:?}"),
                }
            }
            r
        };
        let tier = |note: &str| rates_of(&note.split(" / ").map(number).collect::<Vec<_>>());
        for row in &table[2..] {
            let row = cells(row);
            let standard = rates_of(&row[1..=columns.len()].iter().map(|c| number(c)).collect::<Vec<_>>());
            let (mut fast, mut long) = (None, None);
            for note in row[columns.len() + 1].split("; ").filter(|n| !n.is_empty()) {
                if let Some(v) = note.strip_prefix("fast mode ") {
                    fast = Some(tier(v));
                } else if let Some((above, v)) =
                    note.strip_prefix("above ").and_then(|n| n.split_once(" prompt tokens: "))
                {
                    long = Some((number(above) as u64, tier(v)));
                } else {
                    panic!("{rel}: a note this test cannot read: {note:?}");
                }
            }
            for model in row[0].split(", ") {
                let prev = documented.insert(model.to_owned(), (standard, long, fast));
                assert!(prev.is_none(), "{rel}: {model} listed twice");
            }
        }
    }
    let builtin = PriceTable::builtin();
    let built: BTreeMap<String, &ModelPrice> = builtin.models().map(|(m, p)| (m.to_owned(), p)).collect();
    assert_eq!(documented.keys().collect::<Vec<_>>(), built.keys().collect::<Vec<_>>(), "{rel}: the models priced");
    for (model, (standard, long, fast)) in documented {
        let p = built[&model];
        assert_eq!(p.standard, standard, "{rel}: {model}");
        assert_eq!(p.long_prompt.map(|l| (l.above_prompt_tokens, l.rates)), long, "{rel}: {model}, long prompts");
        assert_eq!(p.fast, fast, "{rel}: {model}, fast mode");
    }
}
