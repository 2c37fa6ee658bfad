//! A permission provider: admins (listed in its settings) get `{"admin": true}`, everyone
//! else `{"admin": false}`, in every service it is named for.
//!
//! Settings, in auth-host's configuration:
//!
//! ```toml
//! [plugins.<alias>]
//! admins = ["ada@example.com"]
//! ```

use auth_host_plugin_api::{
    Logger, PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    admins: Vec<String>,
}

struct MyProvider {
    admins: Vec<String>,
    log: Logger,
}

impl PermissionProvider for MyProvider {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        // A bad settings table stops auth-host's start-up with this error.
        let settings: Settings = context.parse_settings()?;
        let log = context.logger().clone();
        log.info(format_args!("{} admins", settings.admins.len()));
        Ok(MyProvider {
            admins: settings.admins,
            log,
        })
    }

    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        let admin = user
            .email
            .as_ref()
            .is_some_and(|email| self.admins.iter().any(|a| a.eq_ignore_ascii_case(email)));
        self.log
            .debug(format_args!("{} in {service}: admin={admin}", user.id));
        let mut permissions = Permissions::new();
        permissions.insert("admin".into(), admin.into());
        Ok(permissions)
    }
}

export_plugin!(permission_provider: MyProvider);
