//! One loaded alias, wherever it runs: in this process, or in a worker process of its own.

use std::sync::Arc;

use auth_host_plugin_api::PluginKind;

use super::PluginSummary;
use super::instance::Plugin;
use super::isolation::supervisor::IsolatedPlugin;

/// One loaded alias: in this process, or in a worker process of its own.
#[derive(Debug)]
pub enum LoadedPlugin {
    InProcess(Plugin),
    Isolated {
        plugin: Box<IsolatedPlugin>,
        kind: PluginKind,
        in_flight: Arc<tokio::sync::Semaphore>,
    },
}

impl LoadedPlugin {
    pub fn alias(&self) -> &str {
        match self {
            LoadedPlugin::InProcess(plugin) => plugin.alias(),
            LoadedPlugin::Isolated { plugin, .. } => plugin.alias(),
        }
    }

    pub fn kind(&self) -> PluginKind {
        match self {
            LoadedPlugin::InProcess(plugin) => plugin.kind(),
            LoadedPlugin::Isolated { kind, .. } => *kind,
        }
    }

    pub fn summary(&self) -> PluginSummary {
        match self {
            LoadedPlugin::InProcess(plugin) => plugin.summary(),
            LoadedPlugin::Isolated { plugin, .. } => plugin.summary(),
        }
    }

    /// The isolated alias' worker, if it runs isolated.
    pub fn isolated(&self) -> Option<&IsolatedPlugin> {
        match self {
            LoadedPlugin::InProcess(_) => None,
            LoadedPlugin::Isolated { plugin, .. } => Some(plugin),
        }
    }
}
