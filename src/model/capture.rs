//! What may leave the machine: the capture level, and the redacted summary of a tool's input.
//!
//! Prompts, tool inputs and tool outputs can hold secrets. At the default level (`metadata`) hooktel
//! exports names, ids, timings, paths and a truncated, redacted command line; no prompt text and no
//! tool output. `none` drops the input summary too; `full` adds prompts, inputs and outputs (clipped),
//! and the account Claude Code's telemetry names, as the spans' `user.id`.

use opentelemetry::KeyValue;
use serde_json::Value;

use crate::model::payload::truncate_utf8;

/// Longest text attribute at `full` capture. Backends cap attribute sizes too (Jaeger and Tempo keep
/// tens of KiB); past a few KiB a span stops being readable anyway.
pub(crate) const FULL_MAX: usize = 4096;

/// Longest command line in the default summary: enough to recognise it, short enough to skim.
const COMMAND_MAX: usize = 160;

/// How much of the content of a session is exported (`HOOKTEL_CAPTURE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Capture {
    /// Names, ids, timings and status only.
    None,
    /// Plus a redacted summary of tool inputs: paths, patterns, URLs without query, a clipped command.
    #[default]
    Metadata,
    /// Plus prompts, full tool inputs and outputs, messages (each clipped to 4 KiB), and the
    /// account of Claude Code's telemetry as `user.id`.
    Full,
}

impl Capture {
    pub(crate) fn prompts(self) -> bool {
        self == Capture::Full
    }
    pub(crate) fn outputs(self) -> bool {
        self == Capture::Full
    }
    /// Whether the account Claude Code's telemetry names (its email, else its uuid) may leave as the
    /// spans' `user.id`: only at `full`, never by default. `HOOKTEL_USER_ID` is the operator's own
    /// choice and goes at every level.
    pub(crate) fn identity(self) -> bool {
        self == Capture::Full
    }
    /// The error text of a failed call: its first line, redacted, at the default level (it can quote
    /// output or the command that failed, secrets and all).
    pub(crate) fn error_text(self, error: &str) -> String {
        match self {
            Capture::Full => clip(error, FULL_MAX),
            _ => clip(&redact_text(error.lines().next().unwrap_or_default()), 200),
        }
    }
}

/// Attributes describing a tool's input at this capture level.
pub(crate) fn tool_input(input: &Value, capture: Capture) -> Vec<KeyValue> {
    let mut out = Vec::new();
    match capture {
        Capture::None => {}
        Capture::Full => out.push(KeyValue::new("hooktel.tool.input", clip_json(input, FULL_MAX))),
        Capture::Metadata => {
            let field = |k: &str| input.get(k).and_then(Value::as_str);
            for key in ["file_path", "notebook_path", "path"] {
                if let Some(v) = field(key) {
                    out.push(KeyValue::new(format!("hooktel.tool.input.{key}"), clip(v, 512)));
                }
            }
            if let Some(v) = field("pattern") {
                out.push(KeyValue::new("hooktel.tool.input.pattern", clip(v, 120)));
            }
            if let Some(v) = field("command") {
                out.push(KeyValue::new("hooktel.tool.input.command", redact_command(v)));
            }
            if let Some(v) = field("url") {
                out.push(KeyValue::new("hooktel.tool.input.url", strip_query(v)));
            }
            if let Some(v) = field("subagent_type") {
                out.push(KeyValue::new("hooktel.tool.input.subagent_type", clip(v, 120)));
            }
        }
    }
    out
}

/// `s` cut to at most `max` bytes, with an ellipsis when cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_owned()
    } else {
        format!("{}…", truncate_utf8(s, max))
    }
}

/// A JSON value as text, clipped.
pub(crate) fn clip_json(v: &Value, max: usize) -> String {
    match v {
        Value::String(s) => clip(s, max),
        other => clip(&other.to_string(), max),
    }
}

fn strip_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    // drop credentials in `scheme://user:pass@host`
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => clip(&format!("{}{}", &url[..s + 3], &url[at + 1..]), 512),
        _ => clip(url, 512),
    }
}

/// Words in a key name that mark its value as a secret.
const SECRET_NAMES: &[&str] = &[
    "token",
    "secret",
    "passw",
    "pwd",
    "apikey",
    "api_key",
    "api-key",
    "auth",
    "credential",
    "private",
    "session-key",
    "access-key",
    "access_key",
];

/// A command line with likely secrets masked, then clipped to `COMMAND_MAX`.
pub(crate) fn redact_command(cmd: &str) -> String {
    clip(&redact_text(cmd), COMMAND_MAX)
}

/// Programs whose `-p` flag takes a password: attached (`mysql -pSECRET`) or the next word
/// (`sshpass -p SECRET`). Elsewhere `-p` is a port or a path (`ssh -p 22`, `mkdir -p dir`).
const PASSWORD_P_PROGRAMS: &[&str] = &["mysql", "mysqldump", "mysqladmin", "mariadb", "mariadb-dump", "sshpass"];

/// Authorization schemes: the word after one of them is the credential.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "negotiate", "apikey"];

/// Prefixes of vendors' tokens (GitHub, GitLab, Slack, Stripe, OpenAI and Anthropic, AWS access keys,
/// Google API keys, npm, Hugging Face, PyPI, DigitalOcean, Shopify): a word starting with one and
/// longer than it by 8 or more is a credential, whatever else it looks like.
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "AKIA",
    "ASIA",
    "AIza",
    "npm_",
    "hf_",
    "pypi-",
    "dop_v1_",
    "shpat_",
];

/// Text (a command line, an error's first line) with likely secrets masked: values of
/// `NAME=...`/`--name=...`/`Name: ...` when the name looks secret, the word after an authorization
/// scheme or a secret-named flag, a password given to `mysql -p…`/`sshpass -p …`, credentials and
/// queries of URLs, vendor tokens, and long opaque tokens (24+ characters mixing letters and digits).
pub(crate) fn redact_text(text: &str) -> String {
    let mut out = Vec::new();
    let mut mask_next = false;
    let mut program: Option<String> = None;
    for word in text.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let bare = lower.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
        let password_p = program.as_deref().is_some_and(|p| PASSWORD_P_PROGRAMS.contains(&p));
        let masked = if mask_next {
            // a scheme word names what follows: keep it, mask the credential after it
            mask_next = AUTH_SCHEMES.contains(&bare);
            if mask_next {
                word.to_owned()
            } else {
                "***".to_owned()
            }
        } else if word.contains("://") && (word.contains('@') || word.contains('?')) {
            strip_query(word)
        } else if let Some((name, _)) = word.split_once('=').filter(|(n, _)| is_secret_name(n)) {
            format!("{name}=***")
        } else if password_p && word.starts_with("-p") && word.len() > 2 && !word.starts_with("--") {
            "-p***".to_owned()
        } else if looks_like_token(word) || is_vendor_token(word) {
            "***".to_owned()
        } else {
            word.to_owned()
        };
        let header = word.ends_with(':') && is_secret_name(bare);
        let flag = bare.starts_with('-') && is_secret_name(bare) && !word.contains('=');
        if AUTH_SCHEMES[..2].contains(&bare) || header || flag || (password_p && word == "-p") {
            mask_next = true;
        }
        // a password-taking program seen in this simple command (also inside an error's text)
        let name = lower.rsplit('/').next().unwrap_or_default();
        if PASSWORD_P_PROGRAMS.contains(&name) {
            program = Some(name.to_owned());
        } else if matches!(word, "|" | "||" | "&&" | ";" | "&") {
            program = None;
        }
        out.push(masked);
    }
    out.join(" ")
}

pub(crate) fn is_vendor_token(word: &str) -> bool {
    let w = word.trim_matches(|c: char| "\"'`(),;".contains(c));
    let w = w.rsplit_once('=').map_or(w, |(_, v)| v);
    TOKEN_PREFIXES.iter().any(|p| w.starts_with(p) && w.len() >= p.len() + 8)
}

pub(crate) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| n.contains(s))
}

fn looks_like_token(word: &str) -> bool {
    let w = word.trim_matches(|c: char| "\"'`(),;".contains(c));
    w.len() >= 24
        && !w.contains('/')
        && w.chars().any(|c| c.is_ascii_digit())
        && w.chars().any(|c| c.is_ascii_alphabetic())
        && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+=:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_lose_their_secrets() {
        let r = redact_command("curl -H 'Authorization: Bearer abc.def' https://u:pw@h.example/x?k=v");
        assert!(!r.contains("abc.def"), "{r}");
        assert!(!r.contains("pw@"), "{r}");
        assert!(!r.contains("k=v"), "{r}");
        let r = redact_command("GITHUB_TOKEN=ghp_x deploy --password hunter2 --api-key=zzz");
        assert!(!r.contains("ghp_x") && !r.contains("hunter2") && !r.contains("zzz"), "{r}");
        assert!(!redact_command("echo sk-ant-api03-AbCdEf0123456789xyz").contains("AbCdEf"));
        assert_eq!(redact_command("ls -la /tmp && cargo test"), "ls -la /tmp && cargo test");
    }

    /// Each line: a command or an error's first line, and the secret that must not leave.
    const SECRETS: &[(&str, &str)] = &[
        ("mysql -uroot -pMYSQLPW2 app", "MYSQLPW2"),
        ("mysqldump --user=root -pDUMPPW9 db > out.sql", "DUMPPW9"),
        ("sshpass -p SSHPASS6 ssh deploy@host uptime", "SSHPASS6"),
        ("curl -H 'Authorization: token gho_16C7e42F292c6912E7710c838347Ae178B4a' https://api.github.com", "gho_16C7"),
        ("curl -H 'Authorization: token shortsecret' https://h.example", "shortsecret"),
        ("curl -H 'X-Api-Key: k3yval' https://h.example", "k3yval"),
        ("curl -H \"Private-Token: glpv9x\" https://gitlab.example", "glpv9x"),
        ("curl https://u:pw9@h.example/x?token=abc", "pw9"),
        ("curl https://u:pw9@h.example/x?token=abc", "abc"),
        ("git clone https://oauth2:glpat-abcdefghij0123456789@gitlab.example/g/r.git", "glpat-abc"),
        ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "wJalrXUtnFEMI"),
        ("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("psql postgres://app:dbpass1@db/app", "dbpass1"),
        ("slack-notify xoxb-1234-5678-abcdefgh", "xoxb-1234"),
        ("OPENAI_API_KEY=sk-proj-abcdefgh12345678 python run.py", "sk-proj"),
        ("python run.py --api-key sk-ant-api03-AbCdEf0123456789xyz", "AbCdEf"),
        ("Error: Command failed: mysql -u app -pERRPW5 -e 'select 1'", "ERRPW5"),
        ("error: connect failed (password=errpw7)", "errpw7"),
        ("deploy --password=hunter2 --token TOK3N", "hunter2"),
        ("deploy --password=hunter2 --token TOK3N", "TOK3N"),
        ("PGPASSWORD=pgpw7 psql -h db", "pgpw7"),
        ("npm publish --//registry.npmjs.org/:_authToken=npm_abcdefgh12345678", "npm_abcdefgh"),
        ("hf download org/model --token hf_abcdefghijklmnop", "hf_abcdef"),
    ];

    #[test]
    fn the_secret_corpus_stays_home() {
        for (text, secret) in SECRETS {
            let r = redact_command(text);
            assert!(!r.contains(secret), "{text:?} kept {secret:?}: {r:?}");
            let e = Capture::Metadata.error_text(text);
            assert!(!e.contains(secret), "error {text:?} kept {secret:?}: {e:?}");
        }
        // and what is not a secret stays readable
        for plain in ["ssh -p 22 host uptime", "mkdir -p /tmp/a/b", "docker run -p 8080:80 nginx", "cargo test -p api"]
        {
            assert_eq!(redact_command(plain), plain);
        }
    }

    #[test]
    fn long_commands_are_clipped() {
        assert!(redact_command(&"echo hi ".repeat(100)).len() <= COMMAND_MAX + 3);
    }

    #[test]
    fn capture_levels_differ() {
        let input = json!({"file_path": "/a", "content": "body"});
        assert!(tool_input(&input, Capture::None).is_empty());
        let meta = format!("{:?}", tool_input(&input, Capture::Metadata));
        assert!(meta.contains("/a") && !meta.contains("body"));
        assert!(format!("{:?}", tool_input(&input, Capture::Full)).contains("body"));
    }
}
