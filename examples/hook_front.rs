//! Prototype: only the hook path, to measure a small front binary's start-up.
use std::process::ExitCode;
fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "hook") {
        return hooktel::cli::hook::run();
    }
    ExitCode::FAILURE
}
