//! What a plugin author writes against: plain Rust types and two traits.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::abi::HostLogger;

/// The permissions a provider grants: any JSON object.
pub type Permissions = serde_json::Map<String, serde_json::Value>;

/// An error a plugin reports for one call. The host logs it with the plugin's alias and
/// answers that request with an error; the plugin stays loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    message: String,
}

impl PluginError {
    pub fn new(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Lets `?` turn any error (I/O, serde, ...) into a `PluginError`.
impl<E: std::error::Error> From<E> for PluginError {
    fn from(error: E) -> Self {
        PluginError::new(error.to_string())
    }
}

/// A user as auth-host stores it. Only `id` is always present: a host built against
/// plugin-api 1.0 hands providers the id alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: String,
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// ISO 8601.
    #[serde(default)]
    pub join_date: Option<String>,
}

/// Display fields a hook may change. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amendment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// What `on_new_user` / `on_user_login` decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Amend(Amendment),
    /// Refuse the login, with a reason the user will see.
    Refuse(String),
}

/// What a plugin gets when the host creates it: its settings and its logger.
#[derive(Debug)]
pub struct PluginContext {
    settings: serde_json::Value,
    logger: HostLogger,
}

impl PluginContext {
    #[doc(hidden)]
    pub fn new(settings: serde_json::Value, logger: HostLogger) -> Self {
        PluginContext { settings, logger }
    }

    /// The alias this instance was loaded under (one file may serve several aliases).
    pub fn alias(&self) -> &str {
        self.logger.alias()
    }

    /// The `[plugins.<alias>]` table from the host's configuration, as JSON
    /// (an empty object when there is none).
    pub fn settings(&self) -> &serde_json::Value {
        &self.settings
    }

    /// The settings, deserialized into the plugin's own type.
    pub fn parse_settings<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_value(self.settings.clone())
            .map_err(|e| PluginError::new(format!("invalid settings: {e}")))
    }

    /// A log sink tagged with this instance's alias; keep a clone to log later.
    pub fn logger(&self) -> &HostLogger {
        &self.logger
    }
}

/// A permission provider: named in `ALLOWED_SERVICES`.
///
/// Calls arrive concurrently from many threads, hence `Send + Sync`. A call that blocks
/// (file or network I/O) is fine, but the host cuts it off after its time limit.
pub trait PermissionProvider: Sized + Send + Sync + 'static {
    /// Called once per alias at load, with that alias' settings.
    fn new(context: PluginContext) -> Result<Self, PluginError>;

    /// The permissions of `user` in `service`.
    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError>;
}

/// A lifecycle extension: named in `INSTALLED_EXTENSIONS`. Every hook is optional.
pub trait LifecycleExtension: Sized + Send + Sync + 'static {
    /// Called once per alias at load, with that alias' settings.
    fn new(context: PluginContext) -> Result<Self, PluginError>;

    /// A user logs in for the first time; nothing is stored if this refuses or fails.
    fn on_new_user(&self, _user: &UserInfo) -> Result<Verdict, PluginError> {
        Ok(Verdict::Continue)
    }

    /// Any login, new user or not. An error or panic refuses the login.
    fn on_user_login(&self, _user: &UserInfo) -> Result<Verdict, PluginError> {
        Ok(Verdict::Continue)
    }

    /// A user logged out. It cannot refuse anything.
    fn on_user_logout(&self, _user: &UserInfo) -> Result<(), PluginError> {
        Ok(())
    }
}
