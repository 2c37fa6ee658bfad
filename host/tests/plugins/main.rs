//! Plugins from real built files: the ABI and its refusals, loading, the template, the bundled
//! plugins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod bundled_plugins;
mod cedar_permissions;
mod http_permissions;
mod plugin_abi;
mod plugin_loading;
mod plugin_template;
