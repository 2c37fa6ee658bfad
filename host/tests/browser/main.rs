//! The example client app (`examples/client-app`) in a real browser, headless Chromium,
//! against a real auth-host: the development login, a login through the stand-in OpenID
//! Connect provider, and a login a plugin refuses. A binary of its own: each test drives a
//! browser, which is heavy on a small machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod client_app;
