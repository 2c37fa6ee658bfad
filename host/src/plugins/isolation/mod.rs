//! Running a plugin in a worker process of its own (`plugin_isolation = "process"`), so that
//! a plugin that crashes, hangs or runs out of memory costs its own calls, never the host.
//!
//! - [`protocol`]: the frames exchanged over the worker's stdin and stdout,
//! - [`worker`]: the worker process itself (`auth-host plugin-worker`).

pub mod protocol;
pub mod supervisor;
pub mod worker;
