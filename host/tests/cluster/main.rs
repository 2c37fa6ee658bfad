//! Replicas behind HAProxy on one PostgreSQL database. A binary of its own, so that its
//! timings (a logout heard within 100 ms) are not measured while other suites load the
//! machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

/// The cluster tests measure times (a logout heard within 100 ms, a drain within 500 ms):
/// each holds this while it runs, so that none runs beside another.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    ALONE.lock().await
}

mod key_rows;
mod notifications;
mod replicas;
