//! What a plugin that crashes its process does to a server that runs it in-process: a panic
//! is contained, an abort is not. This is the failure plugin isolation exists for.

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::{PluginDir, ServerProcess};

/// Runs an `auth-host` command with this data directory; its stdout, trimmed.
fn command(data: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(common::auth_host_bin())
        .args(args)
        .env_clear()
        .env("AUTH_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborting_plugin_in_process_takes_the_whole_server_down() {
    let plugins =
        PluginDir::with_workspace_plugins(&["test_crash_provider", "sample_permission_provider"]);
    let data = tempfile::tempdir().unwrap();
    let userid = command(data.path(), &["users", "add", "--email", "ada@example.com"]);
    let token = command(data.path(), &["token", "issue", "--userid", &userid]);
    let data_dir = data.path().to_str().unwrap();
    let mut server = ServerProcess::start(&[
        ("AUTH_DATA_DIR", data_dir),
        ("AUTH_PLUGIN_DIR", plugins.path().to_str().unwrap()),
        (
            "ALLOWED_SERVICES",
            "crash:test_crash_provider;example:sample_permission_provider",
        ),
        ("AUTH_PLUGINS__CRASH__MODE", "abort"),
    ]);
    let client = common::server::client();
    let base = server.base.clone();
    let authorize = |service: &str| {
        client
            .get(format!(
                "{base}/auth/authorize?service={service}&jwt={token}"
            ))
            .send()
    };
    let fine = authorize("example").await.unwrap();
    assert_eq!(fine.status(), 200);
    // The aborting call never gets an answer: the process is gone, and every other service
    // and login with it.
    assert!(authorize("crash").await.is_err());
    let status = server
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("the server died");
    assert_eq!(status.signal(), Some(6), "SIGABRT: {status:?}");
    assert!(authorize("example").await.is_err());
}
