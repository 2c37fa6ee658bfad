//! The Grafana dashboard and the Prometheus alert rules in `examples/` use only metrics a
//! running server exports (nothing left dangling after a rename), and the rules pass
//! `promtool check rules`.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::server::{Backend, TestServer, get_text};

/// Every `auth_host_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("auth_host_") {
        let start = at + found;
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(text.len(), |n| start + n);
        names.insert(text[start..end].to_owned());
        at = end;
    }
    names
}

/// The families a server's OpenMetrics text declares (`# TYPE <family> <type>`), with the
/// sample names each family has.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (Some(family), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(family.to_owned());
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[],
        };
        for suffix in suffixes {
            names.insert(format!("{family}{suffix}"));
        }
    }
    names
}

const ADMIN_TOKEN: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alert_rules_use_only_exported_metrics() {
    // A family shows in the metrics once it has a sample: what a server in use has done —
    // logins, checks, authorizations, a worker that exits, a reload.
    let plugins = common::PluginDir::with_workspace_plugins(&[
        "test_crash_provider",
        "sample_permission_provider",
    ]);
    let server = TestServer::start_with(
        Backend::Sqlite,
        serde_json::json!({
            "dev_login": true,
            "admin_token": ADMIN_TOKEN,
            "plugin_dir": plugins.path(),
            "allowed_services": "example:sample_permission_provider;crash:test_crash_provider",
            "plugins": {"crash": {"isolation": "process", "mode": "exit"}},
        }),
    )
    .await;
    let landing =
        common::server::dev_login_landing(&server, &server.url("/app"), "m@example.org").await;
    let token = common::server::params_of(&landing)["jwt"].clone();
    for service in ["example", "crash"] {
        server
            .get_json(&format!("/auth/authorize?jwt={token}&service={service}"))
            .await;
    }
    let reload = common::server::client()
        .post(server.url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    let metrics = get_text(&server.url("/auth/metrics")).await;
    let exported = exported(&metrics);
    let root = common::workspace_root();
    for file in [
        "examples/grafana/auth-host.json",
        "examples/prometheus/alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 5, "{file}: {used:?}");
        let dangling: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            dangling.is_empty(),
            "{file} uses metrics no server exports: {dangling:?}\nexported: {exported:?}"
        );
    }
    // The dashboard covers what operators look at.
    let dashboard = std::fs::read_to_string(root.join("examples/grafana/auth-host.json")).unwrap();
    for wanted in [
        "auth_host_http_request_duration_seconds_bucket",
        "auth_host_logins_total",
        "auth_host_plugin_calls_total",
        "auth_host_plugin_worker_crash_loop",
        "auth_host_token_cache_lookups_total",
        "auth_host_database_errors_total",
        "auth_host_signing_key_in_use_since_seconds",
    ] {
        assert!(dashboard.contains(wanted), "the dashboard lacks {wanted}");
    }
    // A rename is caught: a name the server does not export is found dangling.
    let renamed = metric_names("rate(auth_host_login_total[5m])");
    assert!(renamed.iter().any(|n| !exported.contains(n)));
    let _ = server.stop().await;
}

#[test]
fn promtool_accepts_the_alert_rules_and_refuses_a_broken_copy() {
    let rules = common::workspace_root().join("examples/prometheus/alerts.yml");
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool (make test-tools installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("SUCCESS: 5 rules found"), "{said}");

    let broken = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(broken.path(), text.replacen("== 1", "== ", 1)).unwrap();
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(broken.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
}
