//! One alias' plugin instance, in this process: made with the alias' settings, called
//! through the stable ABI. Calls block: `loaded` runs them off the async workers, a worker
//! process on its own threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::std_types::{RResult, RStr};
use auth_host_plugin_api::{
    Permissions, PluginKind, UserInfo,
    abi::{CallError, HookVerdict, HostLogger, PluginInstance},
};
use tokio::sync::Semaphore;

use super::calls::{Answer, Call, HookDecision, Limits, PluginCallError, PluginSummary};
use super::host_log::plugin_log_sink;
use super::library::{Library, LoadError};

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

    /// The slots of this alias' calls in flight.
    pub(super) fn in_flight(&self) -> &Arc<Semaphore> {
        &self.in_flight
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

    /// Blocking: one call for the user given as JSON, answered the way a worker answers it
    /// over its pipe: the one shape a call has wherever the plugin runs.
    pub fn answer(&self, call: Call, service: &str, user: &str) -> (Answer, String) {
        let outcome = match call {
            Call::Permissions => self
                .permissions_json(service, user)
                .map(|text| (Answer::Permissions, text)),
            call => self.hook_json(call, user).map(|decision| match decision {
                HookDecision::Continue => (Answer::Continue, String::new()),
                HookDecision::Refuse(reason) => (Answer::Refuse, reason),
                HookDecision::Amend(amendment) => (
                    Answer::Amend,
                    serde_json::to_string(&amendment).unwrap_or_default(),
                ),
            }),
        };
        outcome.unwrap_or_else(|error| match error {
            PluginCallError::Panicked { message, .. } => (Answer::Panicked, message),
            PluginCallError::InvalidAnswer { message, .. } => (Answer::Invalid, message),
            PluginCallError::Failed { message, .. } => (Answer::Failed, message),
            other => (Answer::Failed, other.to_string()),
        })
    }

    /// Blocking: the permissions of `user` in `service`.
    pub fn get_permissions(
        &self,
        service: &str,
        user: &UserInfo,
    ) -> Result<Permissions, PluginCallError> {
        let text = self.permissions_json(service, &self.user_json(user)?)?;
        parse_permissions(&text).map_err(|message| self.invalid(message))
    }

    /// Blocking: the permissions of the user given as JSON, as the JSON text the plugin
    /// wrote (what a worker hands on unparsed).
    pub fn permissions_json(&self, service: &str, user: &str) -> Result<String, PluginCallError> {
        let module = self.library.module;
        let answer = match module.get_user_permissions() {
            Some(call) => call(
                &self.instance,
                RStr::from_str(service),
                RStr::from_str(user),
            ),
            // A plugin built against plugin-api 1.0 takes the id only.
            None => {
                #[derive(serde::Deserialize)]
                struct Id {
                    id: String,
                }
                let id: Id = serde_json::from_str(user).map_err(|e| self.invalid(e))?;
                (module.get_permissions())(
                    &self.instance,
                    RStr::from_str(service),
                    RStr::from_str(&id.id),
                )
            }
        };
        answer
            .into_result()
            .map(|text| text.into_string())
            .map_err(|e| self.call_error(e))
    }

    /// Blocking: `on_new_user`.
    pub fn on_new_user(&self, user: &UserInfo) -> Result<HookDecision, PluginCallError> {
        self.hook_json(Call::NewUser, &self.user_json(user)?)
    }

    /// Blocking: `on_user_login`.
    pub fn on_user_login(&self, user: &UserInfo) -> Result<HookDecision, PluginCallError> {
        self.hook_json(Call::Login, &self.user_json(user)?)
    }

    /// Blocking: `on_user_logout`.
    pub fn on_user_logout(&self, user: &UserInfo) -> Result<(), PluginCallError> {
        self.hook_json(Call::Logout, &self.user_json(user)?)
            .map(drop)
    }

    /// Blocking: a lifecycle hook for the user given as JSON (`on_user_logout` continues).
    pub fn hook_json(&self, call: Call, user: &str) -> Result<HookDecision, PluginCallError> {
        let module = self.library.module;
        let user = RStr::from_str(user);
        match call {
            Call::NewUser => self.decision((module.on_new_user())(&self.instance, user)),
            Call::Login => self.decision((module.on_user_login())(&self.instance, user)),
            Call::Logout | Call::Permissions => (module.on_user_logout())(&self.instance, user)
                .into_result()
                .map(|()| HookDecision::Continue)
                .map_err(|e| self.call_error(e)),
        }
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

/// Permissions as a plugin writes them: a JSON object.
pub fn parse_permissions(text: &str) -> Result<Permissions, String> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(permissions)) => Ok(permissions),
        Ok(other) => Err(format!(
            "permissions must be a JSON object, got {}",
            json_type(&other)
        )),
        Err(e) => Err(e.to_string()),
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

pub(super) fn summary_of(library: &Library) -> PluginSummary {
    PluginSummary {
        kind: library.kind,
        name: library.name.to_owned(),
        version: library.version.to_owned(),
        api_version: library.api_version.to_owned(),
        sandbox: String::new(),
    }
}

/// Creates the alias' instance with its settings, within the call time limit.
pub(super) fn instantiate(
    alias: &str,
    file: &Path,
    library: Library,
    plugin_settings: &serde_json::Value,
    limits: Limits,
) -> Result<Plugin, LoadError> {
    let config =
        serde_json::to_string(plugin_settings).map_err(|e| LoadError::Create(e.to_string()))?;
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
    let instance = match receiver.recv_timeout(limits.call_timeout) {
        Ok(Ok(instance)) => instance,
        Ok(Err(error)) if error.panicked => {
            return Err(LoadError::Create(format!("panicked: {}", error.message)));
        }
        Ok(Err(error)) => return Err(LoadError::Create(error.message.into_string())),
        Err(_) => {
            return Err(LoadError::Create(format!(
                "did not finish starting within {:?}",
                limits.call_timeout
            )));
        }
    };
    Ok(Plugin {
        alias: alias.to_owned(),
        file: file.to_owned(),
        library,
        instance,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
    })
}
