//! A provider the test suite builds with `-C panic=abort`: the host must refuse it.

use auth_host_plugin_api::{
    PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
};

struct AbortProvider;

impl PermissionProvider for AbortProvider {
    fn new(_context: PluginContext) -> Result<Self, PluginError> {
        Ok(AbortProvider)
    }

    fn get_permissions(
        &self,
        _service: &str,
        _user: &UserInfo,
    ) -> Result<Permissions, PluginError> {
        Ok(Permissions::new())
    }
}

export_plugin!(permission_provider: AbortProvider);
