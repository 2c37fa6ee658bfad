//! The `extern "C"` functions behind [`export_plugin!`](crate::export_plugin). They are
//! instantiated inside the plugin, for the plugin's own type, and never let a panic cross the
//! boundary: each call runs under `catch_unwind` and a panic becomes a `CallError`.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use abi_stable::{
    marker_type::ErasedObject,
    pointer_trait::TransmuteElement,
    prefix_type::PrefixTypeTrait,
    std_types::{RBox, RErr, ROk, RResult, RStr, RString},
};

use crate::abi::{
    CallError, HookVerdict, HostLogger, PluginInstance, PluginKind, PluginModule, PluginModuleRef,
};
use crate::author::{
    LifecycleExtension, PermissionProvider, PluginContext, PluginError, UserInfo, Verdict,
};

/// Facts about the plugin crate, taken where the macro expands (inside the plugin).
pub struct PluginIdentity {
    pub name: &'static str,
    pub version: &'static str,
    pub unwinds: bool,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

thread_local! {
    /// Where the last panic on this thread happened, for the error that reports it.
    static PANIC_PLACE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The plugin has its own copy of std, so this hook sees only panics raised inside the
/// plugin. Instead of printing them to stderr, unstructured and without the alias, it keeps
/// their place; the message and place become the call's error, which the host logs.
fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            PANIC_PLACE.with(|cell| *cell.borrow_mut() = place);
        }));
    });
}

/// Runs one plugin call, turning an error or a panic into a `CallError`.
fn guard<T>(call: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, CallError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(error)) => RErr(CallError {
            panicked: false,
            message: error.message().into(),
        }),
        Err(payload) => {
            let mut message = panic_message(payload.as_ref());
            if let Some(place) = PANIC_PLACE.with(|cell| cell.borrow_mut().take()) {
                message = format!("{message} (at {place})");
            }
            // The payload's own destructor may panic too; never let that unwind further.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            RErr(CallError {
                panicked: true,
                message: message.into(),
            })
        }
    }
}

fn erase<T: Send + Sync + 'static>(value: T) -> PluginInstance {
    // SAFETY: the erased box is only ever read back as `T` by `instance::<T>`, through the
    // function table built for `T` alongside it; its destructor is `T`'s.
    unsafe { RBox::new(value).transmute_element::<ErasedObject>() }
}

/// # Safety
/// `instance` must have been made by `erase::<T>`.
unsafe fn instance<T>(instance: &PluginInstance) -> &T {
    let erased: &ErasedObject = instance;
    // SAFETY: guaranteed by the caller.
    unsafe { &*(erased as *const ErasedObject).cast::<T>() }
}

fn context(settings: RStr<'_>, logger: HostLogger) -> Result<PluginContext, PluginError> {
    let settings = match settings.as_str() {
        "" => serde_json::Value::Object(Default::default()),
        text => serde_json::from_str(text)
            .map_err(|e| PluginError::new(format!("settings are not valid JSON: {e}")))?,
    };
    Ok(PluginContext::new(settings, logger))
}

fn parse_user(user: RStr<'_>) -> Result<UserInfo, PluginError> {
    serde_json::from_str(user.as_str())
        .map_err(|e| PluginError::new(format!("host sent an unreadable user record: {e}")))
}

fn wrong_kind(kind: PluginKind) -> CallError {
    CallError {
        panicked: false,
        message: format!("this plugin is a {}", kind.label()).into(),
    }
}

// ---- permission providers ----

extern "C" fn create_provider<T: PermissionProvider>(
    settings: RStr<'_>,
    logger: HostLogger,
) -> RResult<PluginInstance, CallError> {
    install_panic_hook();
    guard(|| Ok(erase(T::new(context(settings, logger)?)?)))
}

fn permissions_of<T: PermissionProvider>(
    this: &PluginInstance,
    service: RStr<'_>,
    user: &UserInfo,
) -> Result<RString, PluginError> {
    // SAFETY: this function table is only built with instances from `create_provider::<T>`.
    let this = unsafe { instance::<T>(this) };
    let permissions = this.get_permissions(service.as_str(), user)?;
    Ok(serde_json::to_string(&permissions)?.into())
}

extern "C" fn provider_get_permissions<T: PermissionProvider>(
    this: &PluginInstance,
    service: RStr<'_>,
    userid: RStr<'_>,
) -> RResult<RString, CallError> {
    guard(|| {
        let user = UserInfo {
            id: userid.as_str().to_owned(),
            ..UserInfo::default()
        };
        permissions_of::<T>(this, service, &user)
    })
}

extern "C" fn provider_get_user_permissions<T: PermissionProvider>(
    this: &PluginInstance,
    service: RStr<'_>,
    user: RStr<'_>,
) -> RResult<RString, CallError> {
    guard(|| permissions_of::<T>(this, service, &parse_user(user)?))
}

extern "C" fn provider_hook(_: &PluginInstance, _: RStr<'_>) -> RResult<HookVerdict, CallError> {
    RErr(wrong_kind(PluginKind::PermissionProvider))
}

extern "C" fn provider_logout_hook(_: &PluginInstance, _: RStr<'_>) -> RResult<(), CallError> {
    RErr(wrong_kind(PluginKind::PermissionProvider))
}

pub fn provider_module<T: PermissionProvider>(identity: PluginIdentity) -> PluginModuleRef {
    PluginModule {
        kind: PluginKind::PermissionProvider,
        unwinds: identity.unwinds,
        name: RStr::from_str(identity.name),
        version: RStr::from_str(identity.version),
        create: create_provider::<T>,
        get_permissions: provider_get_permissions::<T>,
        on_new_user: provider_hook,
        on_user_login: provider_hook,
        on_user_logout: provider_logout_hook,
        get_user_permissions: provider_get_user_permissions::<T>,
    }
    .leak_into_prefix()
}

// ---- lifecycle extensions ----

extern "C" fn create_extension<T: LifecycleExtension>(
    settings: RStr<'_>,
    logger: HostLogger,
) -> RResult<PluginInstance, CallError> {
    install_panic_hook();
    guard(|| Ok(erase(T::new(context(settings, logger)?)?)))
}

fn verdict_to_abi(verdict: Verdict) -> Result<HookVerdict, PluginError> {
    Ok(match verdict {
        Verdict::Continue => HookVerdict::Continue,
        Verdict::Amend(amendment) => HookVerdict::Amend(serde_json::to_string(&amendment)?.into()),
        Verdict::Refuse(reason) => HookVerdict::Refuse(reason.into()),
    })
}

extern "C" fn extension_on_new_user<T: LifecycleExtension>(
    this: &PluginInstance,
    user: RStr<'_>,
) -> RResult<HookVerdict, CallError> {
    guard(|| {
        // SAFETY: this function table is only built with instances from `create_extension::<T>`.
        let this = unsafe { instance::<T>(this) };
        verdict_to_abi(this.on_new_user(&parse_user(user)?)?)
    })
}

extern "C" fn extension_on_user_login<T: LifecycleExtension>(
    this: &PluginInstance,
    user: RStr<'_>,
) -> RResult<HookVerdict, CallError> {
    guard(|| {
        // SAFETY: as above.
        let this = unsafe { instance::<T>(this) };
        verdict_to_abi(this.on_user_login(&parse_user(user)?)?)
    })
}

extern "C" fn extension_on_user_logout<T: LifecycleExtension>(
    this: &PluginInstance,
    user: RStr<'_>,
) -> RResult<(), CallError> {
    guard(|| {
        // SAFETY: as above.
        let this = unsafe { instance::<T>(this) };
        this.on_user_logout(&parse_user(user)?)
    })
}

extern "C" fn extension_permissions(
    _: &PluginInstance,
    _: RStr<'_>,
    _: RStr<'_>,
) -> RResult<RString, CallError> {
    RErr(wrong_kind(PluginKind::LifecycleExtension))
}

pub fn extension_module<T: LifecycleExtension>(identity: PluginIdentity) -> PluginModuleRef {
    PluginModule {
        kind: PluginKind::LifecycleExtension,
        unwinds: identity.unwinds,
        name: RStr::from_str(identity.name),
        version: RStr::from_str(identity.version),
        create: create_extension::<T>,
        get_permissions: extension_permissions,
        on_new_user: extension_on_new_user::<T>,
        on_user_login: extension_on_user_login::<T>,
        on_user_logout: extension_on_user_logout::<T>,
        get_user_permissions: extension_permissions,
    }
    .leak_into_prefix()
}
