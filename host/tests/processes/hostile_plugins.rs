//! Isolated plugins that mean harm to the host: what crosses from the worker to the host
//! (its output) is read as hostile.

use crate::common;

use common::{PluginDir, ServerProcess};

/// The host's peak resident memory (VmHWM), in MiB.
fn peak_memory_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

/// A plugin writing 2 × 64 MiB without a newline, three calls in a row, then a line that is
/// not UTF-8: the host's memory stays bounded (lines are cut), its log forwarding goes on,
/// and the plugin's next prints still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_plugins_output_cannot_exhaust_the_hosts_memory_nor_stop_its_log() {
    const FLOOD_MIB: u64 = 64;
    let plugins = PluginDir::with_workspace_plugins(&["test_hostile_provider"]);
    let data = tempfile::tempdir().unwrap();
    let token = common::user_token(data.path(), "ada@example.com");
    let bytes = (FLOOD_MIB << 20).to_string();
    let server = ServerProcess::start(&[
        ("AUTH_DATA_DIR", data.path().to_str().unwrap()),
        ("AUTH_PLUGIN_DIR", plugins.path().to_str().unwrap()),
        ("ALLOWED_SERVICES", "noisy:test_hostile_provider"),
        ("AUTH_PLUGIN_ISOLATION", "process"),
        ("AUTH_PLUGINS__NOISY__MODE", "flood_output"),
        ("AUTH_PLUGINS__NOISY__BYTES", &bytes),
        ("AUTH_PLUGIN_TIMEOUT_MS", "20000"),
    ]);
    let before = peak_memory_mib(server.pid());
    for call in 0..3 {
        let (status, body) = common::server::get_json(&format!(
            "{}/auth/authorize?service=noisy&jwt={token}",
            server.base
        ))
        .await;
        let peak = peak_memory_mib(server.pid());
        eprintln!(
            "host peak memory: {before} MiB before, {peak} MiB after call {call} \
             (2 × {FLOOD_MIB} MiB of output each)"
        );
        assert!(
            peak < before + FLOOD_MIB / 2,
            "call {call}: {peak} MiB after, {before} MiB before"
        );
        assert_eq!(status, 200, "call {call}: {body}");
        assert_eq!(body["permissions"]["printed"], true, "call {call}: {body}");
    }
    // Give the forwarder time to log the last line.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = server.stop();
    assert_eq!(
        log.matches("an ordinary line after the flood").count(),
        3,
        "every print reached the log"
    );
    assert!(
        log.contains("\\ufffd\\ufffd not UTF-8") || log.contains("\u{fffd}\u{fffd} not UTF-8"),
        "{}",
        &log[log.len().saturating_sub(3000)..]
    );
    assert!(
        log.contains("the rest of it was dropped"),
        "long lines are said to be cut"
    );
}
