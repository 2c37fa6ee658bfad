use auth_host_plugin_api::{
    PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
};

struct OldProvider;

impl PermissionProvider for OldProvider {
    fn new(_context: PluginContext) -> Result<Self, PluginError> {
        Ok(OldProvider)
    }

    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        let mut permissions = Permissions::new();
        permissions.insert("old".into(), format!("{service}-{}", user.id).into());
        // Under plugin-api 1.0 the host hands providers the user id alone.
        permissions.insert("has_username".into(), user.username.is_some().into());
        Ok(permissions)
    }
}

export_plugin!(permission_provider: OldProvider);
