//! The binary interface shared by auth-host and its plugins.
//!
//! Everything here crosses the boundary between two separately compiled binaries, so every
//! type is `#[repr(C)]` and checked by abi_stable when a plugin is loaded. Data that may grow
//! (user records, permissions, hook amendments) crosses as JSON text, so adding a field to it
//! never changes the layout.
//!
//! Compatibility rule: the layout of 1.0 ends at `on_user_logout` (`last_prefix_field`).

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    marker_type::ErasedObject,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr, RString},
};

/// What a plugin is for.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// Answers `get_permissions(service, user)`; named in `ALLOWED_SERVICES`.
    PermissionProvider = 1,
    /// Told about new users, logins and logouts; named in `INSTALLED_EXTENSIONS`.
    LifecycleExtension = 2,
}

impl PluginKind {
    /// The name operators see in messages and in `auth-host plugins check`.
    pub fn label(self) -> &'static str {
        match self {
            PluginKind::PermissionProvider => "permission provider",
            PluginKind::LifecycleExtension => "lifecycle extension",
        }
    }
}

/// Severity of a plugin's log line.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// The host's log sink for one plugin instance.
///
/// A plugin carries its own copy of every global (including `tracing`'s and `log`'s), so a
/// subscriber installed in a plugin would write nowhere. Lines go through this callback
/// instead, and the host tags them with the alias the instance was loaded under.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct HostLogger {
    alias: RString,
    sink: extern "C" fn(alias: RStr<'_>, level: LogLevel, message: RStr<'_>),
}

impl HostLogger {
    /// Built by the host for each alias.
    pub fn new(
        alias: &str,
        sink: extern "C" fn(alias: RStr<'_>, level: LogLevel, message: RStr<'_>),
    ) -> Self {
        HostLogger {
            alias: alias.into(),
            sink,
        }
    }

    /// The alias this instance was loaded under.
    pub fn alias(&self) -> &str {
        self.alias.as_str()
    }

    pub fn log(&self, level: LogLevel, message: impl std::fmt::Display) {
        let text = message.to_string();
        (self.sink)(self.alias.as_rstr(), level, RStr::from_str(&text));
    }

    pub fn error(&self, message: impl std::fmt::Display) {
        self.log(LogLevel::Error, message);
    }

    pub fn warn(&self, message: impl std::fmt::Display) {
        self.log(LogLevel::Warn, message);
    }

    pub fn info(&self, message: impl std::fmt::Display) {
        self.log(LogLevel::Info, message);
    }

    pub fn debug(&self, message: impl std::fmt::Display) {
        self.log(LogLevel::Debug, message);
    }
}

impl std::fmt::Debug for HostLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLogger")
            .field("alias", &self.alias)
            .finish()
    }
}

/// Why a plugin call did not produce a value.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct CallError {
    /// `true` when the plugin panicked (the panic was caught inside the plugin).
    pub panicked: bool,
    pub message: RString,
}

/// What a lifecycle hook decided.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
pub enum HookVerdict {
    /// Let the login go on unchanged.
    Continue,
    /// Let it go on with amended display fields: a JSON object with any of
    /// `name`, `username`, `avatar_url`.
    Amend(RString),
    /// Refuse the login; the text is the reason shown to the user.
    Refuse(RString),
}

/// One plugin instance, created by `PluginModule::create` with its alias' settings.
/// Opaque to the host; only the plugin's own functions look inside.
pub type PluginInstance = RBox<ErasedObject>;

/// The root module every plugin exports (through [`export_plugin!`](crate::export_plugin)).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    pub kind: PluginKind,
    /// `false` when the plugin was built with `panic = "abort"`: the host refuses it, since a
    /// panic in it would end the host's process.
    pub unwinds: bool,
    /// The plugin crate's name and version.
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    /// Makes an instance from the alias' settings (JSON text) and its log sink.
    pub create:
        extern "C" fn(settings: RStr<'_>, logger: HostLogger) -> RResult<PluginInstance, CallError>,
    /// Providers: the permissions object (JSON text) of `userid` in `service`.
    pub get_permissions: extern "C" fn(
        instance: &PluginInstance,
        service: RStr<'_>,
        userid: RStr<'_>,
    ) -> RResult<RString, CallError>,
    /// Extensions: each hook gets the user record as JSON text.
    pub on_new_user:
        extern "C" fn(instance: &PluginInstance, user: RStr<'_>) -> RResult<HookVerdict, CallError>,
    pub on_user_login:
        extern "C" fn(instance: &PluginInstance, user: RStr<'_>) -> RResult<HookVerdict, CallError>,
    #[sabi(last_prefix_field)]
    pub on_user_logout:
        extern "C" fn(instance: &PluginInstance, user: RStr<'_>) -> RResult<(), CallError>,

}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "auth_host_plugin";
    const NAME: &'static str = "auth-host plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of this crate, which a plugin records when it is built against it.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
