//! auth-host as a real process: the commands, reloads of a running server, crashing
//! plugins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod connections;
mod crashing_plugins;
mod full_disk;
mod hostile_plugins;
mod hot_reload;
mod plugin_worker;
mod traces;
