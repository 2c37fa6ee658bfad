//! For a plugin's own tests (feature `testing`): load the built plugin file and call it
//! through the ABI, as auth-host does — the layout check, the instance made from settings,
//! the calls with the user as JSON — with no server, token or HTTP.
//!
//! ```no_run
//! use auth_host_plugin_api::UserInfo;
//! use auth_host_plugin_api::testing::{TestPlugin, built_plugin};
//!
//! let plugin = TestPlugin::load(&built_plugin("my_provider").unwrap(), serde_json::json!({})).unwrap();
//! let user = UserInfo { id: "u1".into(), ..UserInfo::default() };
//! let permissions = plugin.get_permissions("wiki", &user).unwrap();
//! ```
//!
//! Nothing here is part of the ABI: it only uses what auth-host uses.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use abi_stable::library::lib_header_from_path;
use abi_stable::std_types::{RResult, RStr};

use crate::abi::{CallError, HookVerdict, HostLogger, LogLevel, PluginInstance, PluginModuleRef};
use crate::{Amendment, Permissions, PluginKind, UserInfo, Verdict};

/// Where cargo put the plugin `name` built for the running test: `lib<name>.so` beside the
/// test executable (`target/<profile>/deps`, where `cargo test` builds a `cdylib` that is
/// also an `rlib`) or one directory up (`cargo build`).
pub fn built_plugin(name: &str) -> Result<PathBuf, String> {
    let file = format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe().map_err(|e| format!("no test executable: {e}"))?;
    let deps = exe.parent().ok_or("the test executable has no directory")?;
    [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .map(|dir| dir.join(&file))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "{file} is not beside {}: give the plugin crate crate-type = [\"cdylib\", \"rlib\"]",
                deps.display()
            )
        })
}

/// One instance of a built plugin, loaded as auth-host loads it.
pub struct TestPlugin {
    module: PluginModuleRef,
    instance: PluginInstance,
}

impl TestPlugin {
    /// Loads `file` and makes an instance with `settings` (what `[plugins.<alias>]` would
    /// hold), under the alias `test`.
    pub fn load(file: &Path, settings: serde_json::Value) -> Result<TestPlugin, String> {
        let header = lib_header_from_path(file).map_err(|e| e.to_string())?;
        let module = header
            .init_root_module::<PluginModuleRef>()
            .map_err(|e| e.to_string())?;
        let settings = settings.to_string();
        let logger = HostLogger::new("test", log_sink);
        let instance = result((module.create())(RStr::from_str(&settings), logger))?;
        Ok(TestPlugin { module, instance })
    }

    pub fn kind(&self) -> PluginKind {
        self.module.kind()
    }

    /// A provider's answer for `user` in `service`.
    pub fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, String> {
        let user = serde_json::to_string(user).map_err(|e| e.to_string())?;
        let call = self
            .module
            .get_user_permissions()
            .ok_or("not a plugin-api 1.1 provider")?;
        let text = result(call(
            &self.instance,
            RStr::from_str(service),
            RStr::from_str(&user),
        ))?;
        serde_json::from_str(text.as_str())
            .map_err(|e| format!("the answer is not a JSON object: {e}"))
    }

    pub fn on_new_user(&self, user: &UserInfo) -> Result<Verdict, String> {
        self.hook(self.module.on_new_user(), user)
    }

    pub fn on_user_login(&self, user: &UserInfo) -> Result<Verdict, String> {
        self.hook(self.module.on_user_login(), user)
    }

    pub fn on_user_logout(&self, user: &UserInfo) -> Result<(), String> {
        let user = serde_json::to_string(user).map_err(|e| e.to_string())?;
        result((self.module.on_user_logout())(
            &self.instance,
            RStr::from_str(&user),
        ))
    }

    fn hook(
        &self,
        call: extern "C" fn(&PluginInstance, RStr<'_>) -> RResult<HookVerdict, CallError>,
        user: &UserInfo,
    ) -> Result<Verdict, String> {
        let user = serde_json::to_string(user).map_err(|e| e.to_string())?;
        Ok(match result(call(&self.instance, RStr::from_str(&user)))? {
            HookVerdict::Continue => Verdict::Continue,
            HookVerdict::Refuse(reason) => Verdict::Refuse(reason.into_string()),
            HookVerdict::Amend(text) => Verdict::Amend(
                serde_json::from_str::<Amendment>(text.as_str())
                    .map_err(|e| format!("the amendment is not valid: {e}"))?,
            ),
        })
    }
}

/// Every line the plugins logged so far in this test process, as `<level> <message>`.
pub fn logged() -> Vec<String> {
    LOGGED.lock().map(|lines| lines.clone()).unwrap_or_default()
}

static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn log_sink(_alias: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    let line = format!("{level:?} {message}");
    eprintln!("plugin: {line}");
    if let Ok(mut lines) = LOGGED.lock() {
        lines.push(line);
    }
}

fn result<T>(answer: RResult<T, CallError>) -> Result<T, String> {
    answer.into_result().map_err(|error| {
        if error.panicked {
            format!("panicked: {}", error.message)
        } else {
            error.message.into_string()
        }
    })
}
