//! Shared by the benches: the launcher of the release-built `hooktel serve` (its `/metrics`, its
//! memory) and the random generator, both the integration tests' own (`tests/it/support/process.rs`
//! and `rng.rs`, included here), and small statistics helpers. Every wait has a timeout.
#![allow(dead_code)]

#[path = "../../tests/it/support/process.rs"]
mod process;
#[path = "../../tests/it/support/rng.rs"]
mod rng;

// each bench uses a part of this module, as of the rest (dead_code above)
#[allow(unused_imports)]
pub use process::{metric_sum, metric_value, poll_until, proc_status_kb, Memory, Sidecar, BIN};
#[allow(unused_imports)]
pub use rng::Rng;

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    assert!(!sorted.is_empty());
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A positive integer from the environment, else `default`.
pub fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}
