//! The commands, the only place that talks to a person (anyhow errors, printed views): the sidecar
//! (`serve`), the hook command and `emit`, the status line, `install` / `uninstall`, `doctor`, the local views
//! (`sessions`, `show`), `import`, and the settings they share. Nothing imports this module.

pub(crate) mod codex_app_server;
pub mod config;
pub mod doctor;
pub mod hook;
pub(crate) mod http1;
pub mod import;
pub mod install;
pub mod install_codex;
pub mod install_gemini;
pub(crate) mod layout;
pub(crate) mod native_telemetry;
pub mod serve;
pub(crate) mod settings_file;
pub mod statusline;
pub mod view;
