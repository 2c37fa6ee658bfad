//! The sample permission provider, as the old service shipped it: every user gets one
//! permission, `provider-token`, whose value is `<service>-<userid>`.

use auth_host_plugin_api::{
    Logger, PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
};

struct SampleProvider {
    log: Logger,
}

impl PermissionProvider for SampleProvider {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let log = context.logger().clone();
        log.info(format_args!(
            "sample provider ready as `{}`",
            context.alias()
        ));
        Ok(SampleProvider { log })
    }

    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        self.log
            .debug(format_args!("permissions of {} in {service}", user.id));
        let mut permissions = Permissions::new();
        permissions.insert(
            "provider-token".into(),
            format!("{service}-{}", user.id).into(),
        );
        Ok(permissions)
    }
}

export_plugin!(permission_provider: SampleProvider);
