//! The hook path alone in a binary of its own: how fast `hooktel hook` would start if it were not
//! in the 14 MB binary with everything else (docs/development.md, "The hook's start-up"). Build it
//! with `cargo build --release --example hook_front` and time `hook_front hook < payload.json`
//! beside `hooktel hook`; it is not shipped.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "hook") {
        return hooktel::cli::hook::run(None);
    }
    eprintln!("usage: hook_front hook < payload.json");
    ExitCode::FAILURE
}
