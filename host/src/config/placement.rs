//! Where plugin aliases run and how they are confined: the settings' vocabulary
//! (`plugin_isolation`, `plugin_sandbox`, and the host's own keys in `[plugins.<alias>]`,
//! which the plugin never sees). `plugins` acts on them.

/// Where a plugin alias runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// In auth-host's own process: fastest; a crash of the plugin is a crash of auth-host.
    #[default]
    None,
    /// In a worker process of its own: a crash costs the calls it held.
    Process,
}

/// The host's own key in `[plugins.<alias>]`, never handed to the plugin.
pub const ISOLATION_KEY: &str = "isolation";

/// How an isolated alias is confined (`[plugins.<alias>] sandbox`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Every layer, or the worker does not start.
    #[default]
    Strict,
    /// Every layer the kernel offers; what it lacks is logged. The operator's explicit
    /// acceptance of a weaker sandbox.
    Available,
    /// None: the worker runs with auth-host's rights.
    Off,
}

/// The per-alias keys of the sandbox, the host's own: never handed to the plugin.
pub const SANDBOX_KEY: &str = "sandbox";
pub const READ_PATHS_KEY: &str = "read_paths";
pub const NETWORK_KEY: &str = "network";
