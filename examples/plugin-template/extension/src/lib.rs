//! A lifecycle extension: refuses logins from one email domain (from its settings), and
//! logs every event.
//!
//! ```toml
//! [plugins.<alias>]
//! blocked_domain = "spam.example"
//! ```

use auth_host_plugin_api::{
    LifecycleExtension, Logger, PluginContext, PluginError, UserInfo, Verdict, export_plugin,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    blocked_domain: Option<String>,
}

struct MyExtension {
    blocked_domain: Option<String>,
    log: Logger,
}

impl MyExtension {
    fn decide(&self, user: &UserInfo) -> Verdict {
        let domain = user
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        match (&self.blocked_domain, domain) {
            (Some(blocked), Some(domain)) if blocked.eq_ignore_ascii_case(domain) => {
                Verdict::Refuse(format!("accounts from {domain} are not accepted"))
            }
            _ => Verdict::Continue,
        }
    }
}

impl LifecycleExtension for MyExtension {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        Ok(MyExtension {
            blocked_domain: settings.blocked_domain,
            log: context.logger().clone(),
        })
    }

    fn on_new_user(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.log.info(format_args!("new user {}", user.id));
        Ok(self.decide(user))
    }

    fn on_user_login(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.log.info(format_args!("login {}", user.id));
        Ok(self.decide(user))
    }

    fn on_user_logout(&self, user: &UserInfo) -> Result<(), PluginError> {
        self.log.info(format_args!("logout {}", user.id));
        Ok(())
    }
}

export_plugin!(lifecycle_extension: MyExtension);
