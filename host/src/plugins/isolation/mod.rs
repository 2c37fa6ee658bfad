//! Running a plugin in a worker process of its own (`plugin_isolation = "process"`), so that
//! a plugin that crashes, hangs or runs out of memory costs its own calls, never the host.
//!
//! - [`protocol`]: the frames exchanged over the worker's stdin and stdout,
//! - [`worker`]: the worker process itself (`auth-host plugin-worker`),
//! - [`supervisor`]: the host's side of one isolated alias (calls, restarts, back-off),
//!   over `process`, the worker process as the host sees it, and `worker_log`, which
//!   forwards what the worker writes to its stderr (the plugin's prints included).

mod idle_cpu;
pub mod lifetime;
mod process;
pub mod protocol;
pub mod sandbox;
pub mod supervisor;
pub mod worker;
mod worker_log;

/// The binary workers run from, when not this executable: set once by a program that embeds
/// auth-host's library (its tests do), since its own executable is no `auth-host`.
static WORKER_PROGRAM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Runs workers from `program` (an `auth-host` binary) instead of this executable.
pub fn set_worker_program(program: std::path::PathBuf) {
    let _ = WORKER_PROGRAM.set(program);
}

fn worker_program() -> Result<std::path::PathBuf, crate::plugins::LoadError> {
    match WORKER_PROGRAM.get() {
        Some(program) => Ok(program.clone()),
        None => std::env::current_exe().map_err(|e| {
            crate::plugins::LoadError::Create(format!("cannot find the auth-host binary: {e}"))
        }),
    }
}
