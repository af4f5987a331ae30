//! Token counts: what one response (or a sum of them) used, by type, as the transcripts report it.
//!
//! Counts come from outside (transcripts, imports): every sum saturates rather than wrapping.

/// Token counts of one response (or a sum of them), as the transcript reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub web_search: u64,
}

impl TokenUsage {
    /// Every cache write, whatever its lifetime (`cache_creation_input_tokens`).
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m.saturating_add(self.cache_write_1h)
    }

    /// Field by field maximum: lines of one response repeat its usage, older builds with growing
    /// placeholder counts; the largest is the final one.
    pub fn max(self, o: TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input.max(o.input),
            output: self.output.max(o.output),
            cache_read: self.cache_read.max(o.cache_read),
            cache_write_5m: self.cache_write_5m.max(o.cache_write_5m),
            cache_write_1h: self.cache_write_1h.max(o.cache_write_1h),
            web_search: self.web_search.max(o.web_search),
        }
    }

    /// What `self` adds to `before` (`self` is never smaller field by field).
    pub fn minus(self, before: TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input.saturating_sub(before.input),
            output: self.output.saturating_sub(before.output),
            cache_read: self.cache_read.saturating_sub(before.cache_read),
            cache_write_5m: self.cache_write_5m.saturating_sub(before.cache_write_5m),
            cache_write_1h: self.cache_write_1h.saturating_sub(before.cache_write_1h),
            web_search: self.web_search.saturating_sub(before.web_search),
        }
    }

    /// Add `o`, field by field; a count past `u64::MAX` stays at the maximum instead of wrapping.
    pub fn add(&mut self, o: TokenUsage) {
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(o.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(o.cache_write_1h);
        self.web_search = self.web_search.saturating_add(o.web_search);
    }

    /// Every input token: uncached, cache reads and cache writes (the GenAI `input_tokens`).
    pub(crate) fn all_input(&self) -> u64 {
        self.input.saturating_add(self.cache_read).saturating_add(self.cache_write())
    }

    /// Every token of every type.
    pub(crate) fn total(&self) -> u64 {
        self.all_input().saturating_add(self.output)
    }

    pub fn is_zero(&self) -> bool {
        *self == TokenUsage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let huge = TokenUsage { input: u64::MAX, output: u64::MAX - 1, cache_read: 5, ..TokenUsage::default() };
        let mut sum = huge;
        sum.add(TokenUsage { input: 7, output: 9, cache_write_5m: u64::MAX, cache_write_1h: 3, ..huge });
        assert_eq!((sum.input, sum.output, sum.cache_write()), (u64::MAX, u64::MAX, u64::MAX));
        assert_eq!(sum.all_input(), u64::MAX);
        assert_eq!(sum.total(), u64::MAX);
    }
}
