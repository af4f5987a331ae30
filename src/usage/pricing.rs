//! Prices of Claude, OpenAI and Gemini models and the cost of one API response, computed the way
//! Claude Code does.
//!
//! The built-in table is Claude Code 2.1.329's own baked model catalog (USD per million tokens: input,
//! output, cache write 5 minutes and 1 hour, cache read; a long-prompt tier where a model has one; the
//! fast-mode rates; $0.01 per web search), and beside it OpenAI's and Google's list prices for the
//! models Codex CLI and Gemini CLI run. A JSON file can add or replace models. A model that is not in the table costs 0 and is
//! reported as unpriced: its price is never guessed.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::model::tokens::TokenUsage;

// The built-in table was taken from Claude Code 2.1.329's model catalog on 2026-11-21, and OpenAI's
// and Google's prices on 2026-12-07 from GitHub's table of the models Copilot offers at their providers' list prices
// (github/docs, data/tables/copilot/models-and-pricing.yml, commit 024f6b0f): docs/metrics.md states both
// dates, and tests/it/docs.rs checks its tables against this one.

/// USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
}

const fn rates(input: f64, output: f64, cache_write_5m: f64, cache_write_1h: f64, cache_read: f64) -> Rates {
    Rates { input, output, cache_write_5m, cache_write_1h, cache_read }
}

/// The prices of one model.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ModelPrice {
    #[serde(flatten)]
    pub standard: Rates,
    /// Rates for a response whose prompt (input + cache read + cache write) exceeds the threshold.
    #[serde(default)]
    pub long_prompt: Option<LongPrompt>,
    /// Rates of fast mode (`usage.speed == "fast"`).
    #[serde(default)]
    pub fast: Option<Rates>,
    /// USD per web search request.
    #[serde(default = "web_search_default")]
    pub web_search: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct LongPrompt {
    pub above_prompt_tokens: u64,
    #[serde(flatten)]
    pub rates: Rates,
}

fn web_search_default() -> f64 {
    0.01
}

/// Claude Code prices responses served in the US (`usage.inference_geo == "us"`) at 1.1 times.
const US_GEO_MULTIPLIER: f64 = 1.1;

/// Why a price file (`HOOKTEL_PRICES_FILE`) was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PriceFileError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error("not a price table: {0}")]
    Parse(#[from] serde_json::Error),
}

/// How a response was served, which changes its price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Service {
    pub fast: bool,
    pub us_geo: bool,
}

/// The cost in USD of one response's usage.
pub fn cost(price: &ModelPrice, usage: &TokenUsage, service: Service) -> f64 {
    let prompt = usage.all_input();
    let rates = match (service.fast.then_some(price.fast).flatten(), price.long_prompt) {
        (Some(fast), _) => fast,
        (None, Some(long)) if prompt > long.above_prompt_tokens => long.rates,
        _ => price.standard,
    };
    let per_m = |tokens: u64, rate: f64| tokens as f64 / 1e6 * rate;
    let tokens = per_m(usage.input, rates.input)
        + per_m(usage.output, rates.output)
        + per_m(usage.cache_read, rates.cache_read)
        + per_m(usage.cache_write_5m, rates.cache_write_5m)
        + per_m(usage.cache_write_1h, rates.cache_write_1h);
    let geo = if service.us_geo { US_GEO_MULTIPLIER } else { 1.0 };
    tokens * geo + usage.web_search as f64 * price.web_search
}

/// Model prices by id, with aliases (dated first-party ids).
#[derive(Clone, Debug)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
    aliases: HashMap<String, String>,
}

/// (id, first-party alias, standard, long prompt (threshold, rates), fast)
type Entry = (&'static str, &'static str, Rates, Option<(u64, Rates)>, Option<Rates>);

const BUILT_IN: &[Entry] = &[
    ("claude-3-5-haiku", "claude-3-5-haiku-20241022", rates(0.8, 4.0, 1.0, 1.6, 0.08), None, None),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001", rates(1.0, 5.0, 1.25, 2.0, 0.1), None, None),
    (
        "claude-haiku-5-5",
        "",
        rates(0.1, 0.5, 0.125, 0.2, 0.01),
        Some((100000, rates(0.5, 2.5, 0.625, 1.0, 0.05))),
        None,
    ),
    ("claude-3-5-sonnet", "claude-3-5-sonnet-20241022", rates(3.0, 15.0, 3.75, 6.0, 0.3), None, None),
    ("claude-3-7-sonnet", "claude-3-7-sonnet-20250219", rates(3.0, 15.0, 3.75, 6.0, 0.3), None, None),
    ("claude-sonnet-4-0", "claude-sonnet-4-20250514", rates(3.0, 15.0, 3.75, 6.0, 0.3), None, None),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", rates(3.0, 15.0, 3.75, 6.0, 0.3), None, None),
    ("claude-sonnet-4-6", "", rates(3.0, 15.0, 3.75, 6.0, 0.3), None, None),
    ("claude-sonnet-5", "", rates(2.0, 10.0, 2.5, 4.0, 0.2), None, None),
    ("claude-sonnet-5-5", "", rates(2.0, 10.0, 2.5, 4.0, 0.1), None, None),
    ("claude-opus-4-0", "claude-opus-4-20250514", rates(15.0, 75.0, 18.75, 30.0, 1.5), None, None),
    ("claude-opus-4-1", "claude-opus-4-1-20250805", rates(15.0, 75.0, 18.75, 30.0, 1.5), None, None),
    ("claude-opus-4-5", "claude-opus-4-5-20251101", rates(5.0, 25.0, 6.25, 10.0, 0.5), None, None),
    ("claude-opus-4-6", "", rates(5.0, 25.0, 6.25, 10.0, 0.5), None, Some(rates(30.0, 150.0, 37.5, 60.0, 3.0))),
    ("claude-opus-4-7", "", rates(5.0, 25.0, 6.25, 10.0, 0.5), None, Some(rates(30.0, 150.0, 37.5, 60.0, 3.0))),
    ("claude-opus-4-8", "", rates(5.0, 25.0, 6.25, 10.0, 0.5), None, Some(rates(10.0, 50.0, 12.5, 20.0, 1.0))),
    ("claude-opus-5", "", rates(5.0, 25.0, 6.25, 10.0, 0.5), None, Some(rates(10.0, 50.0, 12.5, 20.0, 1.0))),
    ("claude-opus-5-5", "", rates(4.0, 20.0, 5.0, 8.0, 0.2), None, Some(rates(8.0, 40.0, 10.0, 16.0, 0.4))),
    ("claude-fable-5", "", rates(10.0, 50.0, 12.5, 20.0, 1.0), None, None),
    ("claude-fable-5-1", "", rates(10.0, 50.0, 12.5, 20.0, 0.25), None, None),
    ("claude-fable-5-2", "", rates(8.0, 40.0, 10.0, 16.0, 0.2), None, Some(rates(16.0, 80.0, 20.0, 32.0, 0.4))),
    ("claude-mythos-5", "", rates(10.0, 50.0, 12.5, 20.0, 1.0), None, None),
    ("claude-mythos-5-1", "", rates(10.0, 50.0, 12.5, 20.0, 0.25), None, None),
    ("claude-mythos-5-2", "", rates(8.0, 40.0, 10.0, 16.0, 0.2), None, Some(rates(16.0, 80.0, 20.0, 32.0, 0.4))),
    // OpenAI: input, output, cache write (one rate: written to both), cached input. Codex reports no
    // cache writes; the GPT-5.6 family prices them, the older ones do not.
    ("gpt-5-mini", "", openai(0.25, 2.0, 0.0, 0.025), None, None),
    ("gpt-5.3-codex", "", openai(1.75, 14.0, 0.0, 0.175), None, None),
    ("gpt-5.4", "", openai(2.5, 15.0, 0.0, 0.25), Some((272_000, openai(5.0, 22.5, 0.0, 0.5))), None),
    ("gpt-5.4-mini", "", openai(0.75, 4.5, 0.0, 0.075), None, None),
    ("gpt-5.4-nano", "", openai(0.2, 1.25, 0.0, 0.02), None, None),
    ("gpt-5.5", "", openai(5.0, 30.0, 0.0, 0.5), Some((272_000, openai(10.0, 45.0, 0.0, 1.0))), None),
    ("gpt-5.6-luna", "", openai(0.2, 1.2, 0.25, 0.02), Some((200_000, openai(0.4, 1.8, 0.5, 0.04))), None),
    ("gpt-5.6-sol", "", openai(5.0, 30.0, 6.25, 0.5), Some((272_000, openai(10.0, 45.0, 12.5, 1.0))), None),
    ("gpt-5.6-terra", "", openai(2.0, 12.0, 2.5, 0.2), Some((272_000, openai(4.0, 18.0, 5.0, 0.4))), None),
    // Google: input, output, cached input (Gemini's context caching bills storage by the hour, not
    // writes by the token: no cache-write rate). Gemini CLI names Gemini 3.1 Pro by its preview id.
    // Gemini 3.6 and 3.7 Flash are at a promotional price through 2026-12-31.
    ("gemini-3.1-pro", "gemini-3.1-pro-preview", google(2.0, 12.0, 0.2), Some((200_000, google(4.0, 18.0, 0.4))), None),
    ("gemini-3.5-flash", "", google(1.5, 9.0, 0.15), None, None),
    ("gemini-3.6-flash", "", google(0.75, 3.75, 0.075), None, None),
    ("gemini-3.7-flash", "", google(0.75, 3.75, 0.075), None, None),
];

/// Google's rates: no cache writes.
const fn google(input: f64, output: f64, cached_input: f64) -> Rates {
    rates(input, output, 0.0, 0.0, cached_input)
}

/// OpenAI's rates: one cache-write rate, whatever the cache's lifetime.
const fn openai(input: f64, output: f64, cache_write: f64, cached_input: f64) -> Rates {
    rates(input, output, cache_write, cache_write, cached_input)
}

/// The override file: `{"models": {"<id>": {"input": 3, "output": 15, "cache_write_5m": 3.75,
/// "cache_write_1h": 6, "cache_read": 0.3, "long_prompt": {...}, "fast": {...}, "web_search": 0.01}}}`.
#[derive(Deserialize)]
struct PriceFile {
    models: HashMap<String, ModelPrice>,
}

impl PriceTable {
    pub fn builtin() -> PriceTable {
        let mut table = PriceTable { models: HashMap::new(), aliases: HashMap::new() };
        for &(id, alias, standard, long, fast) in BUILT_IN {
            let long_prompt = long.map(|(above_prompt_tokens, rates)| LongPrompt { above_prompt_tokens, rates });
            table.models.insert(id.into(), ModelPrice { standard, long_prompt, fast, web_search: 0.01 });
            if !alias.is_empty() {
                table.aliases.insert(alias.into(), id.into());
            }
        }
        table
    }

    /// The built-in table with the models of `path` added or replaced.
    pub(crate) fn with_file(path: &Path) -> Result<PriceTable, PriceFileError> {
        let text = std::fs::read_to_string(path)?;
        let file: PriceFile = serde_json::from_str(&text)?;
        let mut table = PriceTable::builtin();
        table.models.extend(file.models);
        Ok(table)
    }

    /// The prices of a model as a transcript names it: its id, a dated first-party id
    /// (`claude-sonnet-4-5-20250929`), with a `[1m]` suffix, or a cloud provider's id
    /// (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`).
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        let find = |m: &str| self.models.get(m).or_else(|| self.aliases.get(m).and_then(|id| self.models.get(id)));
        if let Some(p) = find(model) {
            return Some(p);
        }
        let mut m = model.trim_end_matches("[1m]");
        if let Some(i) = m.find("claude-") {
            m = &m[i..];
        }
        if let Some(i) = m.find(['@', ':']) {
            m = &m[..i];
        }
        let m = m.strip_suffix("-v1").or_else(|| m.strip_suffix("-v2")).unwrap_or(m);
        // Gemini CLI's `gemini-3.1-pro-preview-customtools`: the model, prompted for its own tools
        let m = m.strip_suffix("-customtools").unwrap_or(m);
        find(m).or_else(|| find(undated(m)?))
    }
}

/// A dated id without its date: Anthropic's `-20250929`, OpenAI's `-2026-03-05`.
fn undated(model: &str) -> Option<&str> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let (base, date) = model.rsplit_once('-')?;
    if digits(date, 8) {
        return Some(base);
    }
    let (base, month) = base.rsplit_once('-')?;
    let (base, year) = base.rsplit_once('-')?;
    (digits(year, 4) && digits(month, 2) && digits(date, 2)).then_some(base)
}

impl PriceTable {
    /// Every model of the table and its prices (the built-in ones and the file's).
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.models.iter().map(|(id, p)| (id.as_str(), p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, cache_read: u64, w5: u64, w1: u64) -> TokenUsage {
        TokenUsage { input, output, cache_read, cache_write_5m: w5, cache_write_1h: w1, web_search: 0 }
    }

    #[test]
    fn matches_claude_codes_own_cost_state() {
        // captured 2.1.329 session: cost-state says claude-sonnet-5-5 cost $0.07625 for this usage
        let t = PriceTable::builtin();
        let c = cost(t.lookup("claude-sonnet-5-5").unwrap(), &usage(60, 445, 102_400, 0, 15_360), Service::default());
        assert!((c - 0.07625).abs() < 1e-12, "{c}");
    }

    #[test]
    fn finds_models_by_any_of_their_names() {
        let t = PriceTable::builtin();
        let sonnet45 = t.lookup("claude-sonnet-4-5").unwrap();
        assert_eq!(t.lookup("claude-sonnet-4-5-20250929"), Some(sonnet45));
        assert_eq!(t.lookup("claude-sonnet-4-5-20250929[1m]"), Some(sonnet45));
        assert_eq!(t.lookup("us.anthropic.claude-sonnet-4-5-20250929-v1:0"), Some(sonnet45));
        assert_eq!(t.lookup("claude-sonnet-4-20250514"), t.lookup("claude-sonnet-4-0"));
        assert_eq!(t.lookup("claude-opus-4-5-20251101").unwrap().standard.input, 5.0);
        assert!(t.lookup("<synthetic>").is_none());
        assert!(t.lookup("gpt-5").is_none());
        // OpenAI's dated snapshots, never a longer or shorter name
        let luna = t.lookup("gpt-5.6-luna").unwrap();
        assert_eq!(t.lookup("gpt-5.6-luna-2026-09-30"), Some(luna));
        assert!(t.lookup("gpt-5.6-luna-09-30").is_none());
        assert!(t.lookup("gpt-5.6").is_none());
        assert!(t.lookup("gpt-6-sol").is_none());
        assert_ne!(t.lookup("gpt-5.4-mini"), t.lookup("gpt-5.4"));
    }

    #[test]
    fn openai_responses_cost_their_list_price() {
        // a Codex response: 10,000 input of which 8,000 cached, 500 output (reasoning included)
        let t = PriceTable::builtin();
        let u = usage(2_000, 500, 8_000, 0, 0);
        let c = cost(t.lookup("gpt-5.5").unwrap(), &u, Service::default());
        assert!((c - (2_000.0 * 5.0 + 500.0 * 30.0 + 8_000.0 * 0.5) / 1e6).abs() < 1e-12, "{c}");
        // past 272K prompt tokens the whole response takes the long-context rates
        let long = usage(200_000, 1_000, 72_001, 0, 0);
        let c = cost(t.lookup("gpt-5.4").unwrap(), &long, Service::default());
        assert!((c - (200_000.0 * 5.0 + 1_000.0 * 22.5 + 72_001.0 * 0.5) / 1e6).abs() < 1e-12, "{c}");
        let edge = usage(200_000, 0, 72_000, 0, 0);
        let c = cost(t.lookup("gpt-5.4").unwrap(), &edge, Service::default());
        assert!((c - (200_000.0 * 2.5 + 72_000.0 * 0.25) / 1e6).abs() < 1e-12, "{c}");
    }

    /// A Gemini response (thinking in its output), under Gemini CLI's ids for the models.
    #[test]
    fn gemini_responses_cost_their_list_price() {
        let t = PriceTable::builtin();
        let u = usage(3_000, 700, 9_000, 0, 0);
        for id in ["gemini-3.1-pro-preview", "gemini-3.1-pro-preview-customtools", "gemini-3.1-pro"] {
            let c = cost(t.lookup(id).unwrap(), &u, Service::default());
            assert!((c - (3_000.0 * 2.0 + 700.0 * 12.0 + 9_000.0 * 0.2) / 1e6).abs() < 1e-12, "{id}: {c}");
        }
        // past 200K prompt tokens (cached ones count) the whole response takes the long-context rates
        let long = usage(150_000, 1_000, 50_001, 0, 0);
        let c = cost(t.lookup("gemini-3.1-pro-preview").unwrap(), &long, Service::default());
        assert!((c - (150_000.0 * 4.0 + 1_000.0 * 18.0 + 50_001.0 * 0.4) / 1e6).abs() < 1e-12, "{c}");
        assert!(t.lookup("gemini-3.8-flash").is_none(), "not in the source: unpriced, never guessed");
    }

    #[test]
    fn tiers_geo_fast_and_web_search() {
        let t = PriceTable::builtin();
        let haiku55 = t.lookup("claude-haiku-5-5").unwrap();
        // above 100k prompt tokens the long-prompt rates apply to the whole response
        let short = cost(haiku55, &usage(100_000, 0, 0, 0, 0), Service::default());
        let long = cost(haiku55, &usage(100_001, 0, 0, 0, 0), Service::default());
        assert!((short - 0.01).abs() < 1e-12 && (long - 0.0500005).abs() < 1e-12, "{short} {long}");
        let opus55 = t.lookup("claude-opus-5-5").unwrap();
        let u = usage(1_000_000, 0, 0, 0, 0);
        assert_eq!(cost(opus55, &u, Service { fast: true, us_geo: false }), 8.0);
        assert!((cost(opus55, &u, Service { fast: false, us_geo: true }) - 4.4).abs() < 1e-9);
        let web = TokenUsage { web_search: 3, ..TokenUsage::default() };
        assert!((cost(opus55, &web, Service { fast: false, us_geo: true }) - 0.03).abs() < 1e-12);
    }

    #[test]
    fn override_file_adds_and_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("prices.json");
        std::fs::write(
            &path,
            r#"{"models": {"my-model": {"input": 1, "output": 2, "cache_write_5m": 3, "cache_write_1h": 4, "cache_read": 5},
                           "claude-sonnet-5-5": {"input": 9, "output": 9, "cache_write_5m": 9, "cache_write_1h": 9, "cache_read": 9}}}"#,
        )
        .unwrap();
        let t = PriceTable::with_file(&path).unwrap();
        assert_eq!(t.lookup("my-model").unwrap().standard.cache_read, 5.0);
        assert_eq!(t.lookup("claude-sonnet-5-5").unwrap().standard.input, 9.0);
        assert_eq!(t.lookup("claude-haiku-4-5").unwrap().standard.input, 1.0);
        std::fs::write(&path, "{not json").unwrap();
        assert!(PriceTable::with_file(&path).is_err());
    }
}
