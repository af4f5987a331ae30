//! Usage: what the model calls cost. Reading transcripts (each response counted once), the accountant
//! thread that follows live sessions' transcripts, and the price table.

pub(crate) mod accountant;
pub(crate) mod files;
pub mod pricing;
pub mod transcript;
