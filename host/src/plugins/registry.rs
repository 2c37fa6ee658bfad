//! The loaded plugins: service alias → permission provider, and the ordered extensions.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth_host_plugin_api::{Amendment, PluginKind, UserInfo};

use super::instance::{Plugin, instantiate, summary_of};
use super::isolation::protocol::{Answer, Call};
use super::isolation::sandbox::{
    NETWORK_KEY, READ_PATHS_KEY, SANDBOX_KEY, SandboxMode, SandboxSpec,
};
use super::isolation::supervisor::{IsolatedPlugin, WorkerSpec};
use super::library::{self, Library, LoadError};
pub use super::loaded::LoadedPlugin;
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
    /// The plugin settings in `config`.
    pub fn from_config(config: &Config) -> PluginSettings {
        PluginSettings {
            dir: config.plugin_dir(),
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

/// The plugins in force: each service alias with its permission provider, and the
/// extensions in order. A reload builds a new registry and swaps it in whole.
#[derive(Debug)]
pub struct PluginRegistry {
    providers: HashMap<String, Arc<LoadedPlugin>>,
    extensions: Vec<Arc<LoadedPlugin>>,
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
            .filter(|plugin| plugin.isolated().is_some_and(|p| p.in_crash_loop()))
            .map(|plugin| plugin.alias())
            .collect();
        looping.sort_unstable();
        looping
    }

    /// Extensions in `INSTALLED_EXTENSIONS` order.
    pub fn extensions(&self) -> &[Arc<LoadedPlugin>] {
        &self.extensions
    }

    /// The permissions of `user` in `service`, asked of `plugin` where it runs.
    pub async fn get_permissions(
        &self,
        plugin: &Arc<LoadedPlugin>,
        service: &str,
        user: &UserInfo,
    ) -> Result<auth_host_plugin_api::Permissions, PluginCallError> {
        let answer = match &**plugin {
            LoadedPlugin::InProcess(_) => {
                let (asked, user) = (service.to_owned(), user.clone());
                return self
                    .run(plugin, move |p| p.get_permissions(&asked, &user))
                    .await;
            }
            LoadedPlugin::Isolated { .. } => {
                self.call_isolated(plugin, Call::Permissions, service, user)
                    .await?
            }
        };
        match answer {
            (Answer::Permissions, text) => {
                super::instance::parse_permissions(&text).map_err(|e| invalid(plugin, e))
            }
            other => Err(failure(plugin, other)),
        }
    }

    /// A lifecycle hook of `plugin` (`on_user_logout` always continues).
    pub async fn hook(
        &self,
        plugin: &Arc<LoadedPlugin>,
        call: Call,
        user: &UserInfo,
    ) -> Result<HookDecision, PluginCallError> {
        let answer = match &**plugin {
            LoadedPlugin::InProcess(_) => {
                let user = user.clone();
                return self
                    .run(plugin, move |p| match call {
                        Call::NewUser => p.on_new_user(&user),
                        Call::Login => p.on_user_login(&user),
                        Call::Logout | Call::Permissions => {
                            p.on_user_logout(&user).map(|()| HookDecision::Continue)
                        }
                    })
                    .await;
            }
            LoadedPlugin::Isolated { .. } => self.call_isolated(plugin, call, "", user).await?,
        };
        match answer {
            (Answer::Continue, _) => Ok(HookDecision::Continue),
            (Answer::Refuse, reason) => Ok(HookDecision::Refuse(reason)),
            (Answer::Amend, text) => serde_json::from_str(&text)
                .map(HookDecision::Amend)
                .map_err(|e| invalid(plugin, e)),
            other => Err(failure(plugin, other)),
        }
    }

    /// One call to an isolated plugin's worker, within the alias' in-flight limit.
    async fn call_isolated(
        &self,
        plugin: &Arc<LoadedPlugin>,
        call: Call,
        service: &str,
        user: &UserInfo,
    ) -> Result<(Answer, String), PluginCallError> {
        let LoadedPlugin::Isolated {
            plugin: isolated,
            in_flight,
            ..
        } = &**plugin
        else {
            return Err(invalid(plugin, "not an isolated plugin"));
        };
        let _permit =
            Arc::clone(in_flight)
                .try_acquire_owned()
                .map_err(|_| PluginCallError::Busy {
                    alias: plugin.alias().to_owned(),
                })?;
        let user = serde_json::to_string(user).map_err(|e| invalid(plugin, e))?;
        let response = isolated.call(call, service, user).await?;
        Ok((response.answer, response.text))
    }

    /// Runs a blocking call of an in-process plugin on the blocking thread pool, cut off
    /// after the call time limit. A call that is cut off keeps its thread until it returns,
    /// and its slot in the plugin's in-flight limit, so a plugin that hangs cannot exhaust
    /// the pool (isolating it is what really stops it).
    pub async fn run<T, F>(&self, plugin: &Arc<LoadedPlugin>, call: F) -> Result<T, PluginCallError>
    where
        T: Send + 'static,
        F: FnOnce(&Plugin) -> Result<T, PluginCallError> + Send + 'static,
    {
        let LoadedPlugin::InProcess(in_process) = &**plugin else {
            return Err(invalid(plugin, "an isolated plugin runs in its worker"));
        };
        let permit = Arc::clone(in_process.in_flight())
            .try_acquire_owned()
            .map_err(|_| PluginCallError::Busy {
                alias: plugin.alias().to_owned(),
            })?;
        let task_plugin = Arc::clone(plugin);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match &*task_plugin {
                LoadedPlugin::InProcess(plugin) => call(plugin),
                LoadedPlugin::Isolated { .. } => Err(invalid(&task_plugin, "isolated")),
            }
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

fn invalid(plugin: &LoadedPlugin, message: impl std::fmt::Display) -> PluginCallError {
    PluginCallError::InvalidAnswer {
        alias: plugin.alias().to_owned(),
        message: message.to_string(),
    }
}

/// The error an isolated plugin's worker answered with (or an answer of the wrong kind).
fn failure(plugin: &LoadedPlugin, (answer, message): (Answer, String)) -> PluginCallError {
    let alias = plugin.alias().to_owned();
    match answer {
        Answer::Panicked => PluginCallError::Panicked { alias, message },
        Answer::Failed => PluginCallError::Failed { alias, message },
        other => PluginCallError::InvalidAnswer {
            alias,
            message: format!("unexpected answer {other:?} {message}"),
        },
    }
}

/// Loads every entry; one file named by several aliases is opened once. An isolated alias
/// is started in its worker, and its file is never opened here.
fn load_all(settings: &PluginSettings) -> (Vec<LoadOutcome>, Vec<Arc<LoadedPlugin>>) {
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
            let Placement {
                isolation,
                sandbox,
                settings: plugin_settings,
            } = settings.placement(&entry.alias);
            let loaded = match isolation {
                Isolation::Process => IsolatedPlugin::start(WorkerSpec {
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
                .map(|plugin| LoadedPlugin::Isolated {
                    plugin: Box::new(plugin),
                    kind,
                    in_flight: Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight)),
                }),
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
                        instantiate(&entry.alias, &file, library, &plugin_settings, settings)
                            .map(LoadedPlugin::InProcess)
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
