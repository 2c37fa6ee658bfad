//! auth-host: OAuth2 login service and user-permission manager with native plugins.

pub mod admin;
pub mod app;
pub mod audit;
pub mod background;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod keyring;
pub mod listening;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod plugins;
pub mod private_files;
pub mod reload;
pub mod service;
pub mod storage;
pub mod tokens;
pub mod traces;
pub mod users;
