//! The loaded plugins: service alias → permission provider, and the ordered extensions.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth_host_plugin_api::{Amendment, PluginKind};

use super::instance::{Plugin, instantiate, summary_of};
use super::library::{self, Library, LoadError};
use crate::config::{Config, EntryList};

/// What the registry needs from the configuration.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    pub dir: PathBuf,
    pub allowed_services: EntryList,
    pub installed_extensions: EntryList,
    /// `[plugins.<alias>]` tables.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Longest a plugin call (including its start-up) may take.
    pub call_timeout: Duration,
    /// Calls one alias may have in flight; more fail at once instead of piling up threads
    /// behind a plugin that hangs.
    pub max_in_flight: usize,
}

impl PluginSettings {
    /// The plugin settings in `config`.
    pub fn from_config(config: &Config) -> PluginSettings {
        PluginSettings {
            dir: config.plugin_dir(),
            allowed_services: config.allowed_services.clone(),
            installed_extensions: config.installed_extensions.clone(),
            settings: config.plugins.clone(),
            call_timeout: Duration::from_millis(config.plugin_timeout_ms),
            max_in_flight: config.plugin_max_in_flight,
        }
    }
}

/// How one alias fared at load.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    pub alias: String,
    pub expected_kind: Option<PluginKind>,
    pub file: PathBuf,
    pub result: Result<PluginSummary, LoadError>,
}

impl LoadOutcome {
    /// The long diagnostics of a failure (abi_stable's layout comparison), at debug level.
    fn log_detail(&self) {
        if let Err(error) = &self.result
            && let Some(detail) = error.detail()
        {
            tracing::debug!(alias = %self.alias, file = %self.file.display(), "{detail}");
        }
    }

    /// One paragraph naming alias, file and reason.
    pub fn failure_message(&self) -> Option<String> {
        let error = self.result.as_ref().err()?;
        let role = match self.expected_kind {
            Some(PluginKind::PermissionProvider) => "service",
            Some(PluginKind::LifecycleExtension) => "extension",
            None => "plugin",
        };
        Some(format!(
            "{role} `{}`: cannot load {}: {error}",
            self.alias,
            self.file.display()
        ))
    }
}

/// What `auth-host plugins check` prints for a loaded plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSummary {
    pub kind: PluginKind,
    pub name: String,
    pub version: String,
    pub api_version: String,
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

/// The plugins in force: each service alias with its permission provider, and the
/// extensions in order. A reload builds a new registry and swaps it in whole.
#[derive(Debug)]
pub struct PluginRegistry {
    providers: HashMap<String, Arc<Plugin>>,
    extensions: Vec<Arc<Plugin>>,
    call_timeout: Duration,
}

impl PluginRegistry {
    /// Loads every configured plugin. Fails (with every outcome, for the messages) when any
    /// alias cannot be loaded.
    pub fn load(settings: &PluginSettings) -> Result<PluginRegistry, Vec<LoadOutcome>> {
        let (outcomes, plugins) = load_all(settings);
        if outcomes.iter().any(|o| o.result.is_err()) {
            return Err(outcomes);
        }
        let mut providers = HashMap::new();
        let mut extensions = Vec::new();
        for plugin in plugins {
            match plugin.kind() {
                PluginKind::PermissionProvider => {
                    providers.insert(plugin.alias().to_owned(), plugin);
                }
                PluginKind::LifecycleExtension => extensions.push(plugin),
            }
        }
        Ok(PluginRegistry {
            providers,
            extensions,
            call_timeout: settings.call_timeout,
        })
    }

    /// Loads every configured plugin and reports each, without failing on the first.
    pub fn check(settings: &PluginSettings) -> Vec<LoadOutcome> {
        load_all(settings).0
    }

    /// The permission provider serving `service`, if that service is allowed.
    pub fn permission_provider(&self, service: &str) -> Option<&Arc<Plugin>> {
        self.providers.get(service)
    }

    /// Service aliases, sorted.
    pub fn services(&self) -> Vec<&str> {
        let mut services: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        services.sort_unstable();
        services
    }

    /// Extensions in `INSTALLED_EXTENSIONS` order.
    pub fn extensions(&self) -> &[Arc<Plugin>] {
        &self.extensions
    }

    /// Runs a blocking plugin call on the blocking thread pool, cut off after the call time
    /// limit. A call that is cut off keeps its thread until it returns, and its slot in the
    /// plugin's in-flight limit, so a plugin that hangs cannot exhaust the pool.
    pub async fn run<T, F>(&self, plugin: &Arc<Plugin>, call: F) -> Result<T, PluginCallError>
    where
        T: Send + 'static,
        F: FnOnce(&Plugin) -> Result<T, PluginCallError> + Send + 'static,
    {
        let permit = Arc::clone(plugin.in_flight())
            .try_acquire_owned()
            .map_err(|_| PluginCallError::Busy {
                alias: plugin.alias().to_owned(),
            })?;
        let task_plugin = Arc::clone(plugin);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call(&task_plugin)
        });
        match tokio::time::timeout(self.call_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(PluginCallError::Panicked {
                alias: plugin.alias().to_owned(),
                message: join_error.to_string(),
            }),
            Err(_) => Err(PluginCallError::TimedOut {
                alias: plugin.alias().to_owned(),
                timeout: self.call_timeout,
            }),
        }
    }
}

/// Loads every entry; one file named by several aliases is opened once.
fn load_all(settings: &PluginSettings) -> (Vec<LoadOutcome>, Vec<Arc<Plugin>>) {
    let mut libraries: HashMap<PathBuf, Result<Library, LoadError>> = HashMap::new();
    let mut outcomes = Vec::new();
    let mut plugins = Vec::new();
    let wanted = [
        (&settings.allowed_services, PluginKind::PermissionProvider),
        (
            &settings.installed_extensions,
            PluginKind::LifecycleExtension,
        ),
    ];
    for (list, kind) in wanted {
        for entry in list.iter() {
            let file = settings.dir.join(library::file_name(&entry.name));
            let opened = libraries
                .entry(file.clone())
                .or_insert_with(|| library::open(&file))
                .clone();
            let result = opened.and_then(|library| {
                if library.kind != kind {
                    return Err(LoadError::WrongKind {
                        expected: kind,
                        found: library.kind,
                    });
                }
                let plugin = instantiate(&entry.alias, &file, library, settings)?;
                Ok(plugin)
            });
            let result = result.map(|plugin| {
                let summary = plugin.summary();
                plugins.push(Arc::new(plugin));
                summary
            });
            outcomes.push(LoadOutcome {
                alias: entry.alias.clone(),
                expected_kind: Some(kind),
                file,
                result,
            });
        }
    }
    outcomes.iter().for_each(LoadOutcome::log_detail);
    (outcomes, plugins)
}

/// Checks plugin files that no configuration names yet: each is opened and reported with
/// its own kind (nothing is instantiated, since there are no settings for it).
pub fn check_files(files: &[PathBuf]) -> Vec<LoadOutcome> {
    files
        .iter()
        .map(|file| {
            let result = library::open(file).map(|library| summary_of(&library));
            let outcome = LoadOutcome {
                alias: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                expected_kind: None,
                file: file.clone(),
                result,
            };
            outcome.log_detail();
            outcome
        })
        .collect()
}
