//! Replicas behind HAProxy on one PostgreSQL database. A binary of its own, so that its
//! timings (a logout heard within 100 ms) are not measured while other suites load the
//! machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod key_rows;
mod notifications;
mod replicas;
