//! A provider built for the test suite. Its answer echoes what it was given, and special
//! user ids make it misbehave on purpose: `panic`, `error`, `sleep`, `print` (to stdout).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_host_plugin_api::{
    Logger, PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
    serde_json::json,
};
use serde::Deserialize;

/// Instances made by this copy of the library: a second alias of the same file sees 2 when
/// the host loaded the file once.
static INSTANCES: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    greeting: Option<String>,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    refuse_to_start: bool,
}

struct TestProvider {
    settings: Settings,
    instance: usize,
    log: Logger,
}

impl PermissionProvider for TestProvider {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        if settings.refuse_to_start {
            return Err(PluginError::new("refuse_to_start is set"));
        }
        let instance = INSTANCES.fetch_add(1, Ordering::SeqCst) + 1;
        context
            .logger()
            .info(format_args!("test provider instance {instance} ready"));
        Ok(TestProvider {
            settings,
            instance,
            log: context.logger().clone(),
        })
    }

    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        match user.id.as_str() {
            #[allow(clippy::panic)] // on purpose: the test suite checks the host survives it
            "panic" => panic!("asked to panic"),
            "error" => return Err(PluginError::new("asked to fail")),
            "sleep" => std::thread::sleep(Duration::from_millis(self.settings.sleep_ms)),
            // Plugins print; isolated, that must not garble the worker's pipe.
            "print" => println!("printed by the test provider"),
            _ => {}
        }
        self.log
            .info(format_args!("answering {} in {service}", user.id));
        let answer = json!({
            "service": service,
            "user": user.id,
            "username": user.username,
            "greeting": self.settings.greeting,
            "instance": self.instance,
            "instances": INSTANCES.load(Ordering::SeqCst),
        });
        match answer {
            auth_host_plugin_api::serde_json::Value::Object(map) => Ok(map),
            _ => Err(PluginError::new("unreachable: json! object")),
        }
    }
}

export_plugin!(permission_provider: TestProvider);
