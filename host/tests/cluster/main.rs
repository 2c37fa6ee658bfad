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

/// One `auth-host serve` on `database` with its keys sealed there, the development login and
/// the sample provider as `example`; `extra` settings after (and over) these.
fn replica_on(
    database: &common::server::TestDatabase,
    plugins: &common::PluginDir,
    extra: &[(&str, &str)],
) -> common::ServerProcess {
    replica_started_by(
        std::process::Command::new(common::auth_host_bin()),
        database,
        plugins,
        extra,
    )
}

/// Like [`replica_on`], started by `command` (which runs `auth-host`).
fn replica_started_by(
    command: std::process::Command,
    database: &common::server::TestDatabase,
    plugins: &common::PluginDir,
    extra: &[(&str, &str)],
) -> common::ServerProcess {
    let mut envs: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", &database.url),
        ("AUTH_KEY_SECRETS", common::server::TEST_KEY_SECRETS),
        ("EXTERNAL_ADDRESS", "http://127.0.0.1:9"),
        ("AUTH_DEV_LOGIN", "true"),
        ("AUTH_PLUGIN_DIR", plugins.path().to_str().unwrap()),
        ("ALLOWED_SERVICES", "example:sample_permission_provider"),
    ];
    envs.extend_from_slice(extra);
    common::ServerProcess::start_command(command, &["serve"], &envs)
}

mod key_rows;
mod notifications;
mod replicas;
