//! An extension built for the test suite. What it decides depends on the user's email
//! domain: `refuse.test` refuses, `panic.test` panics, `amend.test` renames the user;
//! anything else continues. With `record_to = "<file>"` in its settings, it appends one
//! line per call (`<hook> <user id> <email>`), so that tests can see which hooks ran.

use auth_host_plugin_api::{
    Amendment, LifecycleExtension, Logger, PluginContext, PluginError, UserInfo, Verdict,
    export_plugin,
};

struct TestExtension {
    log: Logger,
    record_to: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    record_to: Option<std::path::PathBuf>,
}

impl TestExtension {
    fn record(&self, hook: &str, user: &UserInfo) -> Result<(), PluginError> {
        self.log.info(format_args!("{hook} {}", user.id));
        if let Some(path) = &self.record_to {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(
                file,
                "{hook} {} {}",
                user.id,
                user.email.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
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
        // Ends the whole process: only survivable when the extension runs isolated.
        "abort.test" => std::process::abort(),
        "amend.test" => Ok(Verdict::Amend(Amendment {
            name: Some(format!("Amended by {hook}")),
            ..Amendment::default()
        })),
        _ => Ok(Verdict::Continue),
    }
}

impl LifecycleExtension for TestExtension {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        Ok(TestExtension {
            log: context.logger().clone(),
            record_to: settings.record_to,
        })
    }

    fn on_new_user(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.record("on_new_user", user)?;
        decide("on_new_user", user)
    }

    fn on_user_login(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        self.record("on_user_login", user)?;
        decide("on_user_login", user)
    }

    fn on_user_logout(&self, user: &UserInfo) -> Result<(), PluginError> {
        self.record("on_user_logout", user)?;
        decide("on_user_logout", user).map(drop)
    }
}

export_plugin!(lifecycle_extension: TestExtension);
