//! The loaded plugins: service alias → permission provider, and the ordered extensions.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth_host_plugin_api::PluginKind;

use super::calls::{Limits, PluginSummary};
use super::instance::{instantiate, summary_of};
use super::isolation::sandbox::SandboxSpec;
use super::isolation::supervisor::{IsolatedPlugin, WorkerSpec};
use super::library::{self, Library, LoadError};
pub use super::loaded::LoadedPlugin;
use crate::config::{Config, EntryList};
use crate::config::{
    ISOLATION_KEY, Isolation, NETWORK_KEY, READ_PATHS_KEY, SANDBOX_KEY, SandboxMode,
};

/// What the registry needs from the configuration.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Where `lib<name>.so` files are looked for, in order.
    pub dirs: Vec<PathBuf>,
    pub allowed_services: EntryList,
    pub installed_extensions: EntryList,
    /// `[plugins.<alias>]` tables.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Longest a plugin call (including its start-up) may take.
    pub call_timeout: Duration,
    /// Calls one alias may have in flight; more fail at once instead of piling up threads
    /// behind a plugin that hangs.
    pub max_in_flight: usize,
    /// Where aliases run unless their `[plugins.<alias>] isolation` says otherwise.
    pub isolation: Isolation,
    /// Address-space limit of each worker process, in bytes (0: none).
    pub worker_memory_limit: u64,
    /// How isolated aliases are confined unless their `[plugins.<alias>] sandbox` says
    /// otherwise.
    pub sandbox: SandboxMode,
    /// The user and group isolated workers switch to (auth-host running as root).
    pub plugin_user: Option<(u32, u32)>,
    /// Where isolated plugins' supervisors count starts, exits and crash loops.
    pub worker_metrics: crate::metrics::WorkerMetrics,
}

/// Where an alias runs, how it is confined there, and the settings its plugin is given.
struct Placement {
    isolation: Isolation,
    sandbox: SandboxSpec,
    settings: serde_json::Value,
}

impl PluginSettings {
    /// Where `alias` runs; the host's own keys (`isolation`, `sandbox`, `read_paths`,
    /// `network`) are taken out of the settings its plugin is given.
    fn placement(&self, alias: &str) -> Placement {
        let mut settings = self
            .settings
            .get(alias)
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        let mut take = |key: &str| settings.as_object_mut().and_then(|table| table.remove(key));
        let isolation = take(ISOLATION_KEY).and_then(|v| serde_json::from_value(v).ok());
        let mode = take(SANDBOX_KEY).and_then(|v| serde_json::from_value(v).ok());
        let read_paths = take(READ_PATHS_KEY).and_then(|v| serde_json::from_value(v).ok());
        let network = take(NETWORK_KEY).and_then(|v| v.as_bool());
        Placement {
            isolation: isolation.unwrap_or(self.isolation),
            sandbox: SandboxSpec {
                mode: mode.unwrap_or(self.sandbox),
                read_paths: read_paths.unwrap_or_default(),
                network: network.unwrap_or(false),
                user: self.plugin_user,
            },
            settings,
        }
    }
}

impl PluginSettings {
    /// The file of plugin `name`: in the first directory that has it (so an operator's
    /// directory listed first can replace a bundled plugin), else where the first directory
    /// would have it, for the "no such file" report.
    pub fn plugin_file(&self, name: &str) -> PathBuf {
        let file_name = library::file_name(name);
        let files: Vec<PathBuf> = self.dirs.iter().map(|dir| dir.join(&file_name)).collect();
        files
            .iter()
            .find(|file| file.is_file())
            .or(files.first())
            .cloned()
            .unwrap_or_else(|| PathBuf::from(file_name))
    }

    /// These settings with only `alias` named (in whichever list names it), and what kind
    /// of plugin it must be; `None` when neither list names it.
    pub fn only(&self, alias: &str) -> Option<(PluginSettings, PluginKind)> {
        let keep = |list: &EntryList| {
            EntryList(
                list.iter()
                    .filter(|entry| entry.alias == alias)
                    .cloned()
                    .collect(),
            )
        };
        let services = keep(&self.allowed_services);
        let extensions = keep(&self.installed_extensions);
        let kind = if !services.is_empty() {
            PluginKind::PermissionProvider
        } else if !extensions.is_empty() {
            PluginKind::LifecycleExtension
        } else {
            return None;
        };
        Some((
            PluginSettings {
                allowed_services: services,
                installed_extensions: extensions,
                ..self.clone()
            },
            kind,
        ))
    }

    /// The plugin settings in `config`.
    pub fn from_config(config: &Config) -> PluginSettings {
        PluginSettings {
            dirs: config.plugin_dirs(),
            allowed_services: config.allowed_services.clone(),
            installed_extensions: config.installed_extensions.clone(),
            settings: config.plugins.clone(),
            call_timeout: Duration::from_millis(config.plugin_timeout_ms),
            max_in_flight: config.plugin_max_in_flight,
            isolation: config.plugin_isolation,
            worker_memory_limit: config.plugin_memory_limit_mb * 1024 * 1024,
            sandbox: config.plugin_sandbox,
            plugin_user: config.plugin_user_ids(),
            worker_metrics: Default::default(),
        }
    }
}

/// How one alias fared at load.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    pub alias: String,
    pub expected_kind: Option<PluginKind>,
    pub file: PathBuf,
    /// Where it runs (or would have).
    pub isolation: Isolation,
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

/// The plugins in force: each service alias with its permission provider, and the
/// extensions in order. A reload builds a new registry and swaps it in whole.
#[derive(Debug)]
pub struct PluginRegistry {
    providers: HashMap<String, Arc<LoadedPlugin>>,
    extensions: Vec<Arc<LoadedPlugin>>,
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
        })
    }

    /// Loads every configured plugin and reports each, without failing on the first.
    pub fn check(settings: &PluginSettings) -> Vec<LoadOutcome> {
        load_all(settings).0
    }

    /// The permission provider serving `service`, if that service is allowed.
    pub fn permission_provider(&self, service: &str) -> Option<&Arc<LoadedPlugin>> {
        self.providers.get(service)
    }

    /// Service aliases, sorted.
    pub fn services(&self) -> Vec<&str> {
        let mut services: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        services.sort_unstable();
        services
    }

    /// Isolated aliases whose worker keeps crashing.
    pub fn crash_loops(&self) -> Vec<&str> {
        let mut looping: Vec<&str> = self
            .providers
            .values()
            .chain(self.extensions.iter())
            .filter(|plugin| plugin.in_crash_loop())
            .map(|plugin| plugin.alias())
            .collect();
        looping.sort_unstable();
        looping
    }

    /// Extensions in `INSTALLED_EXTENSIONS` order.
    pub fn extensions(&self) -> &[Arc<LoadedPlugin>] {
        &self.extensions
    }
}

/// Loads every entry; one file named by several aliases is opened once. An isolated alias
/// is started in its worker, and its file is never opened here.
fn load_all(settings: &PluginSettings) -> (Vec<LoadOutcome>, Vec<Arc<LoadedPlugin>>) {
    let mut libraries: HashMap<PathBuf, Result<Library, LoadError>> = HashMap::new();
    let limits = Limits {
        call_timeout: settings.call_timeout,
        max_in_flight: settings.max_in_flight,
    };
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
            let file = settings.plugin_file(&entry.name);
            let Placement {
                isolation,
                sandbox,
                settings: plugin_settings,
            } = settings.placement(&entry.alias);
            let loaded = match isolation {
                Isolation::Process => {
                    // Said at every load, as a weaker sandbox is.
                    for weakness in sandbox.weaknesses() {
                        tracing::warn!(plugin = entry.alias, "{weakness}");
                    }
                    IsolatedPlugin::start(WorkerSpec {
                        alias: entry.alias.clone(),
                        file: file.clone(),
                        kind,
                        settings: plugin_settings.to_string(),
                        sandbox,
                        call_timeout: settings.call_timeout,
                        threads: worker_threads(settings.max_in_flight),
                        memory_limit: settings.worker_memory_limit,
                        metrics: settings.worker_metrics.clone(),
                    })
                    .map(|plugin| LoadedPlugin::isolated(plugin, kind, settings.max_in_flight))
                }
                Isolation::None => libraries
                    .entry(file.clone())
                    .or_insert_with(|| library::open(&file))
                    .clone()
                    .and_then(|library| {
                        if library.kind != kind {
                            return Err(LoadError::WrongKind {
                                expected: kind,
                                found: library.kind,
                            });
                        }
                        instantiate(&entry.alias, &file, library, &plugin_settings, limits)
                            .map(|plugin| LoadedPlugin::in_process(plugin, settings.call_timeout))
                    }),
            };
            let result = loaded.map(|plugin| {
                let summary = plugin.summary();
                plugins.push(Arc::new(plugin));
                summary
            });
            outcomes.push(LoadOutcome {
                alias: entry.alias.clone(),
                expected_kind: Some(kind),
                file,
                isolation,
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
                isolation: Isolation::None,
                result,
            };
            outcome.log_detail();
            outcome
        })
        .collect()
}

/// Threads a worker answers calls on: as many as calls may be in flight, up to
/// [`MAX_WORKER_THREADS`]; further calls wait in the pipe. Each thread costs address space
/// (its stack), which counts against `plugin_memory_limit_mb`.
fn worker_threads(max_in_flight: usize) -> u32 {
    u32::try_from(max_in_flight.clamp(1, MAX_WORKER_THREADS)).unwrap_or(1)
}

const MAX_WORKER_THREADS: usize = 16;
