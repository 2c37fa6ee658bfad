//! The loaded plugins: service alias → permission provider, and the ordered extensions.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::{RResult, RStr};
use auth_host_plugin_api::{
    Amendment, Permissions, PluginKind, UserInfo,
    abi::{CallError, HookVerdict, HostLogger, PluginInstance},
};
use tokio::sync::Semaphore;

use super::host_log::plugin_log_sink;
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
}

/// What a login hook decided, read back from the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    Continue,
    Amend(Amendment),
    Refuse(String),
}

/// One alias: a plugin instance made with that alias' settings.
pub struct Plugin {
    alias: String,
    file: PathBuf,
    library: Library,
    instance: PluginInstance,
    in_flight: Arc<Semaphore>,
}

// SAFETY: the instance is the plugin's own type, which `export_plugin!` requires to be
// `Send + Sync`; the plugin's functions are thread-safe by that same bound.
unsafe impl Send for Plugin {}
// SAFETY: as above.
unsafe impl Sync for Plugin {}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("alias", &self.alias)
            .field("file", &self.file)
            .field("kind", &self.library.kind)
            .field("name", &self.library.name)
            .field("version", &self.library.version)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub fn alias(&self) -> &str {
        &self.alias
    }

    pub fn kind(&self) -> PluginKind {
        self.library.kind
    }

    pub fn summary(&self) -> PluginSummary {
        summary_of(&self.library)
    }

    fn call_error(&self, error: CallError) -> PluginCallError {
        let alias = self.alias.clone();
        let message = error.message.into_string();
        if error.panicked {
            PluginCallError::Panicked { alias, message }
        } else {
            PluginCallError::Failed { alias, message }
        }
    }

    fn invalid(&self, message: impl std::fmt::Display) -> PluginCallError {
        PluginCallError::InvalidAnswer {
            alias: self.alias.clone(),
            message: message.to_string(),
        }
    }

    fn user_json(&self, user: &UserInfo) -> Result<String, PluginCallError> {
        serde_json::to_string(user).map_err(|e| self.invalid(e))
    }

    /// Blocking: the permissions of `user` in `service`. Run it off the async workers
    /// ([`PluginRegistry::run`]).
    pub fn get_permissions(
        &self,
        service: &str,
        user: &UserInfo,
    ) -> Result<Permissions, PluginCallError> {
        let module = self.library.module;
        let answer = match module.get_user_permissions() {
            Some(call) => {
                let user = self.user_json(user)?;
                call(
                    &self.instance,
                    RStr::from_str(service),
                    RStr::from_str(&user),
                )
            }
            // A plugin built against plugin-api 1.0.
            None => (module.get_permissions())(
                &self.instance,
                RStr::from_str(service),
                RStr::from_str(&user.id),
            ),
        };
        let text = answer.into_result().map_err(|e| self.call_error(e))?;
        match serde_json::from_str(text.as_str()) {
            Ok(serde_json::Value::Object(permissions)) => Ok(permissions),
            Ok(other) => Err(self.invalid(format_args!(
                "permissions must be a JSON object, got {}",
                json_type(&other)
            ))),
            Err(e) => Err(self.invalid(e)),
        }
    }

    /// Blocking: `on_new_user`.
    pub fn on_new_user(&self, user: &UserInfo) -> Result<HookDecision, PluginCallError> {
        let user = self.user_json(user)?;
        self.decision((self.library.module.on_new_user())(
            &self.instance,
            RStr::from_str(&user),
        ))
    }

    /// Blocking: `on_user_login`.
    pub fn on_user_login(&self, user: &UserInfo) -> Result<HookDecision, PluginCallError> {
        let user = self.user_json(user)?;
        self.decision((self.library.module.on_user_login())(
            &self.instance,
            RStr::from_str(&user),
        ))
    }

    /// Blocking: `on_user_logout`.
    pub fn on_user_logout(&self, user: &UserInfo) -> Result<(), PluginCallError> {
        let user = self.user_json(user)?;
        (self.library.module.on_user_logout())(&self.instance, RStr::from_str(&user))
            .into_result()
            .map_err(|e| self.call_error(e))
    }

    fn decision(
        &self,
        answer: RResult<HookVerdict, CallError>,
    ) -> Result<HookDecision, PluginCallError> {
        match answer.into_result().map_err(|e| self.call_error(e))? {
            HookVerdict::Continue => Ok(HookDecision::Continue),
            HookVerdict::Refuse(reason) => Ok(HookDecision::Refuse(reason.into_string())),
            HookVerdict::Amend(json) => serde_json::from_str(json.as_str())
                .map(HookDecision::Amend)
                .map_err(|e| self.invalid(e)),
        }
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn summary_of(library: &Library) -> PluginSummary {
    PluginSummary {
        kind: library.kind,
        name: library.name.to_owned(),
        version: library.version.to_owned(),
        api_version: library.api_version.to_owned(),
    }
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
                    providers.insert(plugin.alias.clone(), plugin);
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
        let permit = Arc::clone(&plugin.in_flight)
            .try_acquire_owned()
            .map_err(|_| PluginCallError::Busy {
                alias: plugin.alias.clone(),
            })?;
        let task_plugin = Arc::clone(plugin);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call(&task_plugin)
        });
        match tokio::time::timeout(self.call_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(PluginCallError::Panicked {
                alias: plugin.alias.clone(),
                message: join_error.to_string(),
            }),
            Err(_) => Err(PluginCallError::TimedOut {
                alias: plugin.alias.clone(),
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

/// Creates the alias' instance with its settings, within the call time limit.
fn instantiate(
    alias: &str,
    file: &Path,
    library: Library,
    settings: &PluginSettings,
) -> Result<Plugin, LoadError> {
    let config = settings
        .settings
        .get(alias)
        .cloned()
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    let config = serde_json::to_string(&config).map_err(|e| LoadError::Create(e.to_string()))?;
    let logger = HostLogger::new(alias, plugin_log_sink);
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let create = library.module.create();
    // On its own thread, so that a plugin hanging in its constructor cannot hang start-up.
    std::thread::Builder::new()
        .name(format!("plugin-init-{alias}"))
        .spawn(move || {
            let created = create(RStr::from_str(&config), logger);
            // The receiver is gone only when start-up gave up waiting.
            let _ = sender.send(created.into_result());
        })
        .map_err(|e| LoadError::Create(format!("cannot start a thread: {e}")))?;
    let instance = match receiver.recv_timeout(settings.call_timeout) {
        Ok(Ok(instance)) => instance,
        Ok(Err(error)) if error.panicked => {
            return Err(LoadError::Create(format!("panicked: {}", error.message)));
        }
        Ok(Err(error)) => return Err(LoadError::Create(error.message.into_string())),
        Err(_) => {
            return Err(LoadError::Create(format!(
                "did not finish starting within {:?}",
                settings.call_timeout
            )));
        }
    };
    Ok(Plugin {
        alias: alias.to_owned(),
        file: file.to_owned(),
        library,
        instance,
        in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
    })
}
