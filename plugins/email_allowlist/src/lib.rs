//! `email_allowlist`: refuses every login (new user or not) unless the user's email, or its
//! domain, is listed. Comparison ignores case.
//!
//! ```toml
//! INSTALLED_EXTENSIONS = "email_allowlist"
//!
//! [plugins.email_allowlist]
//! emails = ["contractor@gmail.com"]
//! domains = ["corp.example", "corp-labs.example"]
//! ```
//!
//! With both lists empty nobody can log in; the plugin says so in the log at start.

use auth_host_plugin_api::{
    LifecycleExtension, PluginContext, PluginError, UserInfo, Verdict, export_plugin,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    domains: Vec<String>,
}

struct EmailAllowlist {
    emails: Vec<String>,
    domains: Vec<String>,
}

impl EmailAllowlist {
    fn allows(&self, email: &str) -> bool {
        let email = email.trim().to_lowercase();
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        self.emails.contains(&email) || self.domains.iter().any(|d| d == domain)
    }

    fn decide(&self, user: &UserInfo) -> Verdict {
        match user.email.as_deref() {
            Some(email) if self.allows(email) => Verdict::Continue,
            Some(email) => Verdict::Refuse(format!("{email} is not allowed to log in here")),
            None => Verdict::Refuse("an email address is required to log in here".into()),
        }
    }
}

impl LifecycleExtension for EmailAllowlist {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        let normalize = |list: Vec<String>| -> Vec<String> {
            list.into_iter()
                .map(|item| item.trim().trim_start_matches('@').to_lowercase())
                .filter(|item| !item.is_empty())
                .collect()
        };
        let allowlist = EmailAllowlist {
            emails: normalize(settings.emails),
            domains: normalize(settings.domains),
        };
        if allowlist.emails.is_empty() && allowlist.domains.is_empty() {
            context
                .logger()
                .warn("no emails and no domains are listed: every login will be refused");
        }
        Ok(allowlist)
    }

    fn on_new_user(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        Ok(self.decide(user))
    }

    fn on_user_login(&self, user: &UserInfo) -> Result<Verdict, PluginError> {
        Ok(self.decide(user))
    }
}

export_plugin!(lifecycle_extension: EmailAllowlist);
