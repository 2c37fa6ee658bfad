//! # auth-host plugin API
//!
//! Write a permission provider or a lifecycle extension as ordinary safe Rust, export it with
//! one macro, build the crate as a `cdylib`, and drop `lib<name>.so` into auth-host's plugin
//! directory:
//!
//! ```no_run
//! use auth_host_plugin_api::{
//!     PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
//! };
//!
//! struct Everyone;
//!
//! impl PermissionProvider for Everyone {
//!     fn new(_context: PluginContext) -> Result<Self, PluginError> {
//!         Ok(Everyone)
//!     }
//!     fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
//!         let mut permissions = Permissions::new();
//!         permissions.insert("service".into(), service.into());
//!         permissions.insert("user".into(), user.id.clone().into());
//!         Ok(permissions)
//!     }
//! }
//!
//! export_plugin!(permission_provider: Everyone);
//! ```
//!
//! The guarantees and the rules of the ABI are in this crate's README.

pub mod abi;
mod author;
#[doc(hidden)]
pub mod glue;
#[cfg(feature = "testing")]
pub mod testing;

pub use abi::HostLogger as Logger;
pub use abi::{API_VERSION, LogLevel, PluginKind};
pub use author::{
    Amendment, LifecycleExtension, PermissionProvider, Permissions, PluginContext, PluginError,
    UserInfo, Verdict,
};

#[doc(hidden)]
pub use abi_stable;
pub use serde_json;

/// Exports a type as this library's plugin. Use it once per plugin crate:
///
/// - `export_plugin!(permission_provider: MyProvider);` for a [`PermissionProvider`]
/// - `export_plugin!(lifecycle_extension: MyExtension);` for a [`LifecycleExtension`]
///
/// The plugin's name and version are the crate's, and its panic strategy is recorded so that
/// the host can refuse a plugin built with `panic = "abort"`.
#[macro_export]
macro_rules! export_plugin {
    (permission_provider: $plugin:ty) => {
        $crate::__export_root_module!($crate::glue::provider_module::<$plugin>);
    };
    (lifecycle_extension: $plugin:ty) => {
        $crate::__export_root_module!($crate::glue::extension_module::<$plugin>);
    };
}

/// Emits the symbol abi_stable looks for, as `#[export_root_module]` would, but with paths
/// through this crate so that plugin crates need no direct abi_stable dependency.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_root_module {
    ($build:expr) => {
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static __AUTH_HOST_PLUGIN_HEADER: $crate::abi_stable::library::LibHeader = {
            fn root_module() -> $crate::abi::PluginModuleRef {
                $build($crate::glue::PluginIdentity {
                    name: env!("CARGO_PKG_NAME"),
                    version: env!("CARGO_PKG_VERSION"),
                    unwinds: cfg!(panic = "unwind"),
                })
            }
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(root_module)
            }
            // SAFETY: the same construction `#[export_root_module]` performs, for our root
            // module type, with its layout checked by the host at load.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<
                    $crate::abi::PluginModuleRef,
                >(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_symbol_is_the_one_abi_stable_loads() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
