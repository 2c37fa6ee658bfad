//! An extension built for the test suite. What it decides depends on the user's email
//! domain: `refuse.test` refuses, `panic.test` panics, `amend.test` renames the user;
//! anything else continues.

use auth_host_plugin_api::{
    Amendment, LifecycleExtension, Logger, PluginContext, PluginError, UserInfo, Verdict,
    export_plugin,
};

struct TestExtension {
    log: Logger,
}

fn decide(hook: &str, user: &UserInfo) -> Result<Verdict, PluginError> {
    let domain = user
        .email
        .as_deref()
        .and_then(|email| email.rsplit_once('@'))
        .map(|(_, domain)| domain)
        .unwrap_or_default();
    match domain {
        "refuse.test" => Ok(Verdict::Refuse(format!("{hook}: not welcome"))),
        // Panicking on purpose is what this plugin is for.
        #[allow(clippy::panic)]
        "panic.test" => panic!("{hook} asked to panic"),
        "amend.test" => Ok(Verdict::Amend(Amendment {
            name: Some(format!("Amended by {hook}")),
            ..Amendment::default()
        })),
        _ => Ok(Verdict::Continue),
    }
}

impl LifecycleExtension for TestExtension {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        Ok(TestExtension {
            log: context.logger().clone(),
        })
    }

    fn on_new_user(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.log.info(format_args!("on_new_user {}", user.id));
        decide("on_new_user", user)
    }

    fn on_user_login(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.log.info(format_args!("on_user_login {}", user.id));
        decide("on_user_login", user)
    }

    fn on_user_logout(&self, user: &UserInfo) -> Result<(), PluginError> {
        self.log.info(format_args!("on_user_logout {}", user.id));
        Ok(())
    }
}

export_plugin!(lifecycle_extension: TestExtension);
