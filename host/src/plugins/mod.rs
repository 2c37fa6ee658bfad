//! Native plugins: permission providers and lifecycle extensions, loaded at run time.
//!
//! - [`library`] opens one plugin file safely and checks its ABI,
//! - [`calls`]: the types every part speaks (summaries, call errors, hook decisions, limits),
//! - `instance`: one alias' plugin in this process, called through the ABI,
//! - `loaded`: one alias wherever it runs, and the one seam callers use
//!   (`get_permissions`, `hook`),
//! - [`isolation`]: an alias in a sandboxed worker process,
//! - [`registry`] holds the loaded aliases: services and extensions.

pub mod calls;
mod host_log;
mod instance;
pub mod isolation;
pub mod library;
mod loaded;
pub mod registry;

pub use crate::config::{ISOLATION_KEY, Isolation, SandboxMode};
pub use calls::{HookDecision, Limits, PluginCallError, PluginSummary};
pub use instance::Plugin;
pub use isolation::sandbox::SandboxSpec;
pub use library::LoadError;
pub use registry::{LoadOutcome, LoadedPlugin, PluginRegistry, PluginSettings, check_files};
