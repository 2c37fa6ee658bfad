//! An extension built for the test suite that probes the host from a login hook: on
//! `on_user_login` it tries what `test_hostile_provider`'s `probe` mode tries, and refuses
//! the login with the report (JSON), so that the test reads it from the login's `error`.
//! Settings: `probe` (the targets).

use auth_host_plugin_api::{
    LifecycleExtension, PluginContext, PluginError, UserInfo, Verdict, export_plugin,
};

#[path = "../../test_hostile_provider/src/probes.rs"]
mod probes;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    probe: probes::Targets,
}

struct HostileExtension {
    targets: probes::Targets,
}

impl LifecycleExtension for HostileExtension {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        Ok(HostileExtension {
            targets: settings.probe,
        })
    }

    fn on_user_login(&self, _user: &UserInfo) -> Result<Verdict, PluginError> {
        let report = probes::run(&self.targets);
        let text = auth_host_plugin_api::serde_json::to_string(&report)
            .map_err(|e| PluginError::new(e.to_string()))?;
        Ok(Verdict::Refuse(text))
    }
}

export_plugin!(lifecycle_extension: HostileExtension);
