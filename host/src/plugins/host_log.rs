//! Where plugin log lines go: the host's tracing output, tagged with the alias.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::std_types::RStr;
use auth_host_plugin_api::LogLevel;

/// The sink handed to every plugin instance. It must never unwind into the plugin.
pub extern "C" fn plugin_log_sink(alias: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let alias = alias.as_str();
        // The plugin's text, never a line of its own in the log.
        let message = crate::logging::one_line(message.as_str());
        match level {
            LogLevel::Error => tracing::error!(target: "plugin", plugin = alias, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin = alias, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin = alias, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "plugin", plugin = alias, "{message}"),
            LogLevel::Trace => tracing::trace!(target: "plugin", plugin = alias, "{message}"),
        }
    }));
}
