//! What every part of `plugins` speaks: a plugin's summary, how a call failed, what a hook
//! decided, and the limits a call runs under. Imports nothing else of `plugins`.

use std::time::Duration;

use auth_host_plugin_api::{Amendment, PluginKind};

/// What is asked of a plugin (also the byte a worker request carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Permissions = 1,
    NewUser = 2,
    Login = 3,
    Logout = 4,
}

/// How the plugin answered, wherever it runs; the text with it is JSON (permissions,
/// amendment) or a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Permissions = 0,
    Continue = 1,
    Amend = 2,
    Refuse = 3,
    Failed = 4,
    Panicked = 5,
    Invalid = 6,
}

/// The limits an alias' calls run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a call (including the plugin's start-up) may take.
    pub call_timeout: Duration,
    /// Calls the alias may have in flight at once.
    pub max_in_flight: usize,
}

/// What `auth-host plugins check` prints for a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSummary {
    pub kind: PluginKind,
    pub name: String,
    pub version: String,
    pub api_version: String,
    /// An isolated alias' sandbox as its worker entered it (layers, or `off`); empty
    /// in-process.
    pub sandbox: String,
}

/// A failed plugin call; it concerns that one call only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginCallError {
    #[error("plugin `{alias}` failed: {message}")]
    Failed { alias: String, message: String },
    #[error("plugin `{alias}` panicked: {message}")]
    Panicked { alias: String, message: String },
    #[error("plugin `{alias}` did not answer within {timeout:?}")]
    TimedOut { alias: String, timeout: Duration },
    #[error("plugin `{alias}` has too many calls in flight")]
    Busy { alias: String },
    #[error("plugin `{alias}` answered with invalid data: {message}")]
    InvalidAnswer { alias: String, message: String },
    /// The isolated plugin's worker process died during the call.
    #[error("plugin `{alias}` crashed: its worker {cause}")]
    Crashed { alias: String, cause: String },
    /// The isolated plugin's worker keeps crashing; it is started again after a delay.
    #[error(
        "plugin `{alias}` is restarting after a crash (its worker {cause}); retry in {retry_in:?}"
    )]
    Restarting {
        alias: String,
        cause: String,
        retry_in: Duration,
    },
}

/// What a login hook decided, read back from the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    Continue,
    Amend(Amendment),
    Refuse(String),
}
