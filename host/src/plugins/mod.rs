//! Native plugins: permission providers and lifecycle extensions, loaded at run time.
//!
//! - [`library`] opens one plugin file safely and checks its ABI,
//! - [`registry`] holds one instance per alias and runs calls with a time limit.

mod host_log;
mod instance;
pub mod isolation;
pub mod library;
mod loaded;
pub mod registry;

pub use instance::Plugin;
pub use isolation::sandbox::{NETWORK_KEY, READ_PATHS_KEY, SANDBOX_KEY, SandboxMode, SandboxSpec};
pub use library::LoadError;
pub use registry::{
    HookDecision, ISOLATION_KEY, Isolation, LoadOutcome, LoadedPlugin, PluginCallError,
    PluginRegistry, PluginSettings, PluginSummary, check_files,
};
