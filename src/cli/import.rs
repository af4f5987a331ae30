//! `hooktel import`: backfill history into the sink `serve` would use, with `serve`'s own output
//! settings (`OutputArgs`), then print what was done.

use std::path::PathBuf;

use crate::backfill::{self, Summary};
use crate::cli::config::{self, OutputArgs};
use crate::store::data_dir;

/// Import transcripts and rollouts under `paths` (default `~/.claude/projects` and
/// `~/.codex/sessions`) and, with `events`, a JSONL event log whose events get the given name.
pub fn run(mut paths: Vec<PathBuf>, events: Option<(PathBuf, String)>, output: &OutputArgs) -> anyhow::Result<Summary> {
    data_dir::private_files();
    if paths.is_empty() && events.is_none() {
        paths.extend(backfill::default_log_dirs());
    }
    let outbound = config::outbound()?;
    let data_dir = output.data_dir();
    let resource = crate::export::resource::resource(
        &output.service_name,
        &data_dir,
        &outbound.resource,
        outbound.service_name.as_deref(),
    );
    Ok(backfill::run(backfill::Request {
        paths,
        events,
        data_dir,
        export: outbound.traces,
        resource,
        capture: output.capture,
        endpoint: output.endpoint(),
        user_id: output.user_id.clone(),
        prices: output.prices()?,
        retention: output.retention(),
    })?)
}
