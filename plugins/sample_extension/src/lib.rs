//! The sample lifecycle extension, as the old service shipped it: it logs each event and
//! lets every login through.

use auth_host_plugin_api::{
    LifecycleExtension, Logger, PluginContext, PluginError, UserInfo, Verdict, export_plugin,
};

struct SampleExtension {
    log: Logger,
}

fn describe(user: &UserInfo) -> String {
    match &user.username {
        Some(username) => format!("{} ({username})", user.id),
        None => user.id.clone(),
    }
}

impl LifecycleExtension for SampleExtension {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let log = context.logger().clone();
        log.info(format_args!(
            "sample extension ready as `{}`",
            context.alias()
        ));
        Ok(SampleExtension { log })
    }

    fn on_new_user(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.log.info(format_args!("new user {}", describe(user)));
        Ok(Verdict::Continue)
    }

    fn on_user_login(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.log
            .info(format_args!("user {} logged in", describe(user)));
        Ok(Verdict::Continue)
    }

    fn on_user_logout(&self, user: &UserInfo) -> Result<(), PluginError> {
        self.log
            .info(format_args!("user {} logged out", describe(user)));
        Ok(())
    }
}

export_plugin!(lifecycle_extension: SampleExtension);
