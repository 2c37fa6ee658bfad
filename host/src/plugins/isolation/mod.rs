//! Running a plugin in a worker process of its own (`plugin_isolation = "process"`), so that
//! a plugin that crashes, hangs or runs out of memory costs its own calls, never the host.
//!
//! - [`protocol`]: the frames exchanged over the worker's stdin and stdout,
//! - [`worker`]: the worker process itself (`auth-host plugin-worker`),
//! - [`supervisor`]: the host's side of one isolated alias (calls, restarts, back-off),
//!   over `process`, the worker process as the host sees it, and `worker_log`, which
//!   forwards what the worker writes to its stderr (the plugin's prints included).

pub mod lifetime;
mod process;
pub mod protocol;
pub mod supervisor;
pub mod worker;
mod worker_log;
