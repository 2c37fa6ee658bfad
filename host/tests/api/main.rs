//! Every HTTP use case of an in-process server over a real socket: the API, logins with the
//! stand-in identity provider, the old service's database, tokens as downstream services verify
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod dashboards;
mod downstream_verification;
mod hardening;
mod http_api;
mod legacy_database;
mod login_flow;
mod redirects;
mod token_kinds;
