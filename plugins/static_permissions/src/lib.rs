//! `static_permissions`: permissions from a TOML rules file named in its settings.
//!
//! ```toml
//! ALLOWED_SERVICES = "wiki:static_permissions"
//!
//! [plugins.wiki]
//! file = "/etc/auth-host/wiki-permissions.toml"
//! ```
//!
//! The rules file: `defaults` apply to everyone; every matching rule is merged over them,
//! in file order (a later rule's key wins). A rule matches when every condition it gives
//! holds (`userid`, `username`, `email`, `email_domain`; case-insensitive except the id),
//! and, if it lists `services`, the service asked for is one of them.
//!
//! ```toml
//! [defaults]
//! role = "reader"
//!
//! [[rules]]
//! email_domain = "corp.example"
//! permissions = { role = "editor" }
//!
//! [[rules]]
//! username = "ada"
//! services = ["wiki"]
//! permissions = { admin = true }
//! ```
//!
//! The file is read again when it changes (checked at most once a second). A file that does
//! not parse keeps the last good rules in force and says why in the log; at start, it stops
//! the plugin from loading.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use auth_host_plugin_api::{
    Logger, PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
};
use serde::Deserialize;

const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    #[serde(default)]
    defaults: Permissions,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    services: Option<Vec<String>>,
    #[serde(default)]
    userid: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_domain: Option<String>,
    permissions: Permissions,
}

impl Rule {
    fn matches(&self, service: &str, user: &UserInfo) -> bool {
        let same = |wanted: &Option<String>, actual: Option<&str>| match wanted {
            None => true,
            Some(wanted) => actual.is_some_and(|a| a.eq_ignore_ascii_case(wanted)),
        };
        let domain = user
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        self.services
            .as_ref()
            .is_none_or(|services| services.iter().any(|s| s == service))
            && self.userid.as_ref().is_none_or(|id| *id == user.id)
            && same(&self.username, user.username.as_deref())
            && same(&self.email, user.email.as_deref())
            && same(&self.email_domain, domain)
    }
}

fn read_rules(path: &PathBuf) -> Result<(Rules, Option<SystemTime>), String> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let rules: Rules = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for (i, rule) in rules.rules.iter().enumerate() {
        let conditions = [
            &rule.userid,
            &rule.username,
            &rule.email,
            &rule.email_domain,
        ];
        if conditions.iter().all(|c| c.is_none()) {
            return Err(format!(
                "{}: rules[{i}] needs at least one of userid, username, email, email_domain \
                 (use [defaults] for everyone)",
                path.display()
            ));
        }
    }
    Ok((rules, modified))
}

struct Loaded {
    rules: Arc<Rules>,
    modified: Option<SystemTime>,
    checked: Instant,
    /// The modification time of a file that did not parse, so that it is reported once.
    refused: Option<SystemTime>,
}

struct StaticPermissions {
    file: PathBuf,
    loaded: Mutex<Loaded>,
    log: Logger,
}

impl StaticPermissions {
    /// The rules in force, re-reading the file when it changed.
    fn rules(&self) -> Result<Arc<Rules>, PluginError> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| PluginError::new("rules lock poisoned"))?;
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let modified = std::fs::metadata(&self.file)
                .and_then(|m| m.modified())
                .ok();
            if modified != loaded.modified && modified != loaded.refused {
                match read_rules(&self.file) {
                    Ok((rules, modified)) => {
                        self.log.info(format_args!(
                            "{} reloaded: {} rules",
                            self.file.display(),
                            rules.rules.len()
                        ));
                        loaded.rules = Arc::new(rules);
                        loaded.modified = modified;
                        loaded.refused = None;
                    }
                    Err(error) => {
                        self.log
                            .error(format_args!("{error}; keeping the last good rules"));
                        loaded.refused = modified;
                    }
                }
            }
        }
        Ok(Arc::clone(&loaded.rules))
    }
}

impl PermissionProvider for StaticPermissions {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        let (rules, modified) = read_rules(&settings.file).map_err(PluginError::new)?;
        context.logger().info(format_args!(
            "{}: {} rules",
            settings.file.display(),
            rules.rules.len()
        ));
        Ok(StaticPermissions {
            file: settings.file,
            loaded: Mutex::new(Loaded {
                rules: Arc::new(rules),
                modified,
                checked: Instant::now(),
                refused: None,
            }),
            log: context.logger().clone(),
        })
    }

    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        let rules = self.rules()?;
        let mut permissions = rules.defaults.clone();
        for rule in rules.rules.iter().filter(|r| r.matches(service, user)) {
            for (key, value) in &rule.permissions {
                permissions.insert(key.clone(), value.clone());
            }
        }
        Ok(permissions)
    }
}

export_plugin!(permission_provider: StaticPermissions);
