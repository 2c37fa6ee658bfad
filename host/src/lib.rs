//! auth-host: OAuth2 login service and user-permission manager with native plugins.

pub mod config;
pub mod logging;
pub mod plugins;
pub mod storage;
pub mod tokens;
