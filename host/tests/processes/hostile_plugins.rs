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

/// `test_hostile_provider` in a plugin directory, a data directory, and a token of a user of
/// it: what the servers of these tests start from.
struct HostileSetUp {
    plugins: PluginDir,
    data: tempfile::TempDir,
    token: String,
}

impl HostileSetUp {
    fn new() -> HostileSetUp {
        let plugins = PluginDir::with_workspace_plugins(&["test_hostile_provider"]);
        let data = tempfile::tempdir().unwrap();
        let token = common::user_token(data.path(), "ada@example.com");
        HostileSetUp {
            plugins,
            data,
            token,
        }
    }

    /// A server with `services` as `ALLOWED_SERVICES` and `settings` after the directories.
    fn start(&self, services: &str, settings: &[(&str, &str)]) -> ServerProcess {
        let mut envs = vec![
            ("AUTH_DATA_DIR", self.data.path().to_str().unwrap()),
            ("AUTH_PLUGIN_DIR", self.plugins.path().to_str().unwrap()),
            ("ALLOWED_SERVICES", services),
        ];
        envs.extend_from_slice(settings);
        ServerProcess::start(&envs)
    }

    /// `/auth/authorize` of `service` on `server`, as the set-up's user.
    fn authorize_url(&self, server: &ServerProcess, service: &str) -> String {
        format!(
            "{}/auth/authorize?service={service}&jwt={}",
            server.base, self.token
        )
    }
}

/// A plugin writing 2 × 64 MiB without a newline, three calls in a row, then a line that is
/// not UTF-8: the host's memory stays bounded (lines are cut), its log forwarding goes on,
/// and the plugin's next prints still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_plugins_output_cannot_exhaust_the_hosts_memory_nor_stop_its_log() {
    const FLOOD_MIB: u64 = 64;
    let set_up = HostileSetUp::new();
    let bytes = (FLOOD_MIB << 20).to_string();
    let server = set_up.start(
        "noisy:test_hostile_provider",
        &[
            ("AUTH_PLUGIN_ISOLATION", "process"),
            ("AUTH_PLUGINS__NOISY__MODE", "flood_output"),
            ("AUTH_PLUGINS__NOISY__BYTES", &bytes),
            ("AUTH_PLUGIN_TIMEOUT_MS", "20000"),
        ],
    );
    let before = peak_memory_mib(server.pid());
    for call in 0..3 {
        let (status, body) =
            common::server::get_json(&set_up.authorize_url(&server, "noisy")).await;
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
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(
            log.contains("runs as root without plugin_user"),
            "a root host's workers stay root: said at start"
        );
    }
}

/// A plugin's log message holding a newline, from an isolated worker's stderr and through
/// the host's logger in-process and isolated: in the human format (the one the README offers
/// to fail2ban) the text after the newline never starts a line of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_forge_a_line_of_the_hosts_log() {
    let set_up = HostileSetUp::new();
    let server = set_up.start(
        "isolated:test_hostile_provider;inside:test_hostile_provider",
        &[
            ("AUTH_PLUGINS__ISOLATED__MODE", "forge_log"),
            ("AUTH_PLUGINS__ISOLATED__ISOLATION", "process"),
            ("AUTH_PLUGINS__INSIDE__MODE", "forge_log"),
            ("AUTH_LOG_FORMAT", "human"),
        ],
    );
    for service in ["isolated", "inside"] {
        let (status, body) =
            common::server::get_json(&set_up.authorize_url(&server, service)).await;
        assert_eq!(status, 200, "{service}: {body}");
        assert_eq!(body["permissions"]["forged"], true, "{service}: {body}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = server.stop();
    // The host's lines about the plugin (the in-process alias' own print to stderr is the
    // plugin's, in the host's process: nothing stands between them).
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin=\""))
        .filter(|l| l.contains("from stderr") || l.contains("from the logger"))
        .collect();
    // Once from the worker's stderr; from the logger in-process and in the worker.
    assert_eq!(said.len(), 3, "{log}");
    assert!(
        said.iter().all(|l| l.contains("\\nFORGED INFO")),
        "the newline is written as an escape: {said:#?}"
    );
    assert!(
        !said.iter().any(|l| l.contains('\u{1b}')),
        "no terminal escape reaches the log: {said:#?}"
    );
    let forged: Vec<&str> = log.lines().filter(|l| l.starts_with("FORGED")).collect();
    assert!(forged.is_empty(), "forged lines: {forged:#?}\n{log}");
}

/// Whether a process runs (exists and is not a zombie).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// Waits up to 3 s for every process of `pids` to be gone.
async fn all_gone(pids: &[u64]) -> Vec<u64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let alive: Vec<u64> = pids.iter().copied().filter(|p| running(*p)).collect();
        if alive.is_empty() || std::time::Instant::now() > deadline {
            return alive;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A server with two isolated aliases: `spawner` leaves a child process running, `stuck`
/// never answers.
fn server_with_workers(
    data: &std::path::Path,
    plugins: &PluginDir,
    delay_ms: &str,
) -> ServerProcess {
    ServerProcess::start(&[
        ("AUTH_DATA_DIR", data.to_str().unwrap()),
        ("AUTH_PLUGIN_DIR", plugins.path().to_str().unwrap()),
        (
            "ALLOWED_SERVICES",
            "spawner:test_hostile_provider;stuck:test_crash_provider",
        ),
        ("AUTH_PLUGIN_ISOLATION", "process"),
        ("AUTH_PLUGINS__SPAWNER__MODE", "spawn_child"),
        // The sandbox refuses new processes: this test is about what happens to them when a
        // plugin may start some.
        ("AUTH_PLUGINS__SPAWNER__SANDBOX", "off"),
        ("AUTH_PLUGINS__STUCK__MODE", "hang"),
        ("AUTH_PLUGIN_TIMEOUT_MS", "30000"),
        ("AUTH_SHUTDOWN_DELAY_MS", delay_ms),
        ("AUTH_SHUTDOWN_GRACE_MS", "500"),
    ])
}

/// Calls `spawner` and starts a call to `stuck` that stays in flight; the pids of the
/// spawner's worker, its child, and the stuck worker.
async fn workers_in_use(server: &ServerProcess, token: &str) -> Vec<u64> {
    let (status, body) = common::server::get_json(&format!(
        "{}/auth/authorize?service=spawner&jwt={token}",
        server.base
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let child = body["permissions"]["child"].as_u64().unwrap();
    let worker = body["permissions"]["worker"].as_u64().unwrap();
    let stuck = format!("{}/auth/authorize?service=stuck&jwt={token}", server.base);
    tokio::spawn(async move { common::server::client().get(stuck).send().await });
    // The stuck worker's pid, from the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let stuck_worker = loop {
        let found = server.log().lines().find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            (event["message"] == "plugin worker started" && event["plugin"] == "stuck")
                .then(|| event["pid"].as_u64())
                .flatten()
        });
        if let Some(pid) = found {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let pids = vec![worker, child, stuck_worker];
    assert!(pids.iter().all(|p| running(*p)), "{pids:?}");
    pids
}

/// SIGTERM with a call in flight: the host drains, exits 0, and its workers end with it,
/// the child a plugin started included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_what_their_plugins_start_end_with_the_host() {
    let plugins =
        PluginDir::with_workspace_plugins(&["test_hostile_provider", "test_crash_provider"]);
    let data = tempfile::tempdir().unwrap();
    let token = common::user_token(data.path(), "ada@example.com");
    let mut server = server_with_workers(data.path(), &plugins, "200");
    let pids = workers_in_use(&server, &token).await;
    server.terminate();
    let status = server
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("the host stops after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        all_gone(&pids).await,
        Vec::<u64>::new(),
        "left behind after SIGTERM"
    );

    // Killed outright, the host has no say: each worker hears of it from the kernel and
    // ends its own group.
    let mut server = server_with_workers(data.path(), &plugins, "200");
    let pids = workers_in_use(&server, &token).await;
    std::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    server.wait_exit(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(
        all_gone(&pids).await,
        Vec::<u64>::new(),
        "left behind after SIGKILL"
    );
}

/// A sandboxed plugin that ignores SIGTERM, clears its parent-death signal and blocks in an
/// exit handler: killed outright while a call of it hangs, the host still takes its worker
/// with it (the signal is SIGKILL and cannot be cleared); stopped normally, the closed pipe
/// ends the worker past its exit handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_outlive_the_host() {
    let set_up = HostileSetUp::new();
    let start = || {
        set_up.start(
            "stay:test_hostile_provider",
            &[
                ("AUTH_PLUGIN_ISOLATION", "process"),
                ("AUTH_PLUGINS__STAY__MODE", "outlive"),
                ("AUTH_SHUTDOWN_DELAY_MS", "0"),
            ],
        )
    };
    let prepared = |server: &ServerProcess| {
        let url = set_up.authorize_url(server, "stay");
        async move {
            let (status, body) = common::server::get_json(&url).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["permissions"]["death_signal_cleared"], false, "{body}");
            body["permissions"]["worker"].as_u64().unwrap()
        }
    };

    let mut server = start();
    let worker = prepared(&server).await;
    // A call that never returns: the worker does not read the end of its pipe.
    let stuck = common::server::client().get(set_up.authorize_url(&server, "stay"));
    tokio::spawn(async move { stuck.send().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    std::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    server.wait_exit(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(
        all_gone(&[worker]).await,
        Vec::<u64>::new(),
        "after SIGKILL"
    );

    let mut server = start();
    let worker = prepared(&server).await;
    server.terminate();
    let status = server
        .wait_exit(std::time::Duration::from_secs(10))
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        all_gone(&[worker]).await,
        Vec::<u64>::new(),
        "after SIGTERM"
    );
}

/// A plugin that answers and leaves a thread spinning: its worker, holding no call, is ended
/// within a few seconds (it spun on for 30 s), said so in the log, and the next call is
/// answered by a new worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_burning_cpu_between_calls_is_ended() {
    let set_up = HostileSetUp::new();
    let server = set_up.start(
        "spin:test_hostile_provider",
        &[
            ("AUTH_PLUGIN_ISOLATION", "process"),
            ("AUTH_PLUGINS__SPIN__MODE", "spin_after_answer"),
            ("AUTH_SHUTDOWN_DELAY_MS", "0"),
        ],
    );
    let url = set_up.authorize_url(&server, "spin");
    let (status, body) = common::server::get_json(&url).await;
    assert_eq!(status, 200, "{body}");
    let first = body["permissions"]["worker"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    while running(first) {
        assert!(
            std::time::Instant::now() < deadline,
            "the spinning worker still runs\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        server.log().contains("with no call in flight"),
        "{}",
        server.log()
    );
    // The next call starts a new worker (after the crash back-off).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let second = loop {
        let (status, body) = common::server::get_json(&url).await;
        if status == 200 {
            break body["permissions"]["worker"].as_u64().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_ne!(first, second);
    let _ = server.stop();
}

/// Ctrl-C during the drain stops at once, as the README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_the_drain_stops_at_once() {
    let plugins =
        PluginDir::with_workspace_plugins(&["test_hostile_provider", "test_crash_provider"]);
    let data = tempfile::tempdir().unwrap();
    let mut server = server_with_workers(data.path(), &plugins, "20000");
    server.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(server.is_running(), "draining for 20 s");
    let interrupted = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &server.pid().to_string()])
        .status()
        .unwrap();
    let status = server
        .wait_exit(std::time::Duration::from_secs(5))
        .expect("SIGINT ends the drain");
    assert!(status.success(), "{status:?}");
    assert!(interrupted.elapsed() < std::time::Duration::from_secs(3));
}

/// What the probing plugins reported, from `get_permissions` and from a login hook.
struct Probed {
    provider: serde_json::Map<String, serde_json::Value>,
    hook: serde_json::Map<String, serde_json::Value>,
}

/// Runs a server whose isolated plugins probe it (`sandbox` for both), as `user` when given
/// (a uid, through `setpriv`), and returns their reports.
async fn probe_a_server(user: Option<&str>, sandbox: &str) -> Probed {
    probe_a_server_with(user, sandbox, &[]).await
}

/// Like [`probe_a_server`], with more environment.
async fn probe_a_server_with(user: Option<&str>, sandbox: &str, more: &[(&str, &str)]) -> Probed {
    use std::os::unix::fs::PermissionsExt;
    let plugins =
        PluginDir::with_workspace_plugins(&["test_hostile_provider", "test_hostile_extension"]);
    let data = tempfile::tempdir().unwrap();
    let token = common::user_token(data.path(), "ada@example.com");
    let secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap().to_string();
    // A descriptor the server inherits without close-on-exec (dup does not set it): its
    // workers must not.
    let leaked = {
        use std::os::fd::AsRawFd;
        // SAFETY: dup of a descriptor this test owns; closed below.
        unsafe { libc::dup(listener.as_raw_fd()) }
    };
    let dir = data.path().display().to_string();
    let config = data.path().join("auth-host.toml");
    // A path socket anyone may connect to (as PostgreSQL's is), and PostgreSQL's own when
    // this machine has one.
    let sockets = tempfile::tempdir().unwrap();
    std::fs::set_permissions(sockets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let unix_path = sockets.path().join("open.sock");
    let unix_listener = std::os::unix::net::UnixListener::bind(&unix_path).unwrap();
    std::fs::set_permissions(&unix_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut unix = vec![unix_path.display().to_string()];
    if std::path::Path::new(POSTGRES_SOCKET).exists() {
        unix.push(POSTGRES_SOCKET.to_owned());
    }
    let targets = format!(
        "secret = \"{secret}\"\nfiles = [\"{dir}/signing-key.pem\", \"{dir}/auth-host.db\", \
         \"{}\"]\ntcp = \"{tcp}\"\nwrite = \"{dir}/written-by-a-plugin\"\nunix = {unix:?}\n",
        config.display()
    );
    std::fs::write(
        &config,
        format!(
            "[plugins.probe]\nmode = \"probe\"\nsandbox = \"{sandbox}\"\n\
             [plugins.probe.probe]\n{targets}\
             [plugins.hook]\nsandbox = \"{sandbox}\"\n[plugins.hook.probe]\n{targets}"
        ),
    )
    .unwrap();
    if let Some(uid) = user {
        // The server's own files belong to the user it runs as; the plugins are readable.
        let status = std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(data.path())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::set_permissions(plugins.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config_arg = config.display().to_string();
    let mut envs: Vec<(&str, &str)> = vec![
        ("AUTH_DATA_DIR", dir.as_str()),
        ("AUTH_PLUGIN_DIR", plugins.path().to_str().unwrap()),
        ("ALLOWED_SERVICES", "probe:test_hostile_provider"),
        ("INSTALLED_EXTENSIONS", "hook:test_hostile_extension"),
        ("AUTH_PLUGIN_ISOLATION", "process"),
        ("AUTH_ADMIN_TOKEN", secret.as_str()),
        ("AUTH_DEV_LOGIN", "true"),
        ("EXTERNAL_ADDRESS", "http://127.0.0.1:9"),
    ];
    // Later settings win.
    envs.extend_from_slice(more);
    let server = ServerProcess::start_as(user, &["--config", &config_arg, "serve"], &envs);
    let (status, body) = common::server::get_json(&format!(
        "{}/auth/authorize?service=probe&jwt={token}",
        server.base
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let provider = body["permissions"].as_object().unwrap().clone();
    let landing =
        common::server::dev_login_at(&server.base, "http://127.0.0.1:9/app", "bob@example.com")
            .await;
    let error = common::server::params_of(&landing)
        .remove("error")
        .unwrap_or_else(|| panic!("the hook refused the login with its report: {landing}"));
    let report = &error[error.find('{').unwrap_or(0)..];
    let hook: serde_json::Value =
        serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {error}\n{}", server.log()));
    drop(listener);
    drop(unix_listener);
    // SAFETY: closes the duplicate made above, which nothing else uses.
    unsafe { libc::close(leaked) };
    // Nothing the plugins started outlives the server.
    let _ = server.stop();
    Probed {
        provider,
        hook: hook.as_object().unwrap().clone(),
    }
}

/// PostgreSQL's socket on Debian, which trusts local connections on this kind of machine.
const POSTGRES_SOCKET: &str = "/var/run/postgresql/.s.PGSQL.5432";

/// What a plugin may do to the host's process without reading anything: change its limits
/// (`RLIMIT_CPU` of one second ends it), priority, scheduling, CPUs or I/O priority. Each
/// probe sets the host's own value again, so that an allowed attempt harms nothing.
const ON_THE_HOSTS_PROCESS: &[&str] = &[
    "host_rlimit",
    "host_priority",
    "host_affinity",
    "host_scheduler",
    "host_ioprio",
];

/// Ways around the filter or the limits: io_uring's own sockets, memory in a memfd.
const PAST_THE_FILTER: &[&str] = &["io_uring", "memfd"];

fn refused(who: &str, report: &serde_json::Map<String, serde_json::Value>, attempts: &[&str]) {
    for attempt in attempts {
        let outcome = report[*attempt].as_str().unwrap_or_default();
        assert!(
            outcome.starts_with("refused"),
            "{who}: {attempt} was {outcome}\n{report:#?}"
        );
    }
}

fn allowed(who: &str, report: &serde_json::Map<String, serde_json::Value>, attempts: &[&str]) {
    for attempt in attempts {
        let outcome = report[*attempt].as_str().unwrap_or_default();
        assert!(
            outcome.starts_with("allowed"),
            "{who}: {attempt} was {outcome}\n{report:#?}"
        );
    }
}

/// The path sockets the probe was given: the test's own, and PostgreSQL's when present.
fn unix_sockets(report: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    (0..2)
        .map(|i| format!("unix_{i}"))
        .filter(|name| report.contains_key(name))
        .collect()
}

fn refused_everything(who: &str, report: &serde_json::Map<String, serde_json::Value>) {
    // Only the worker's own answer pipe, nothing of the host's.
    assert_eq!(
        report["descriptors"], "allowed: 1 open beyond 0-2: [3]",
        "{who}: {report:#?}"
    );
    for attempt in [
        "host_environ",
        "host_cmdline",
        "host_mem",
        "file_0",
        "file_1",
        "file_2",
        "other_worker",
        "ptrace",
        "tcp",
        "write",
        "child",
    ] {
        let outcome = report[attempt].as_str().unwrap_or_default();
        assert!(
            outcome.starts_with("refused"),
            "{who}: {attempt} was {outcome}\n{report:#?}"
        );
    }
    let sockets = unix_sockets(report);
    assert!(!sockets.is_empty(), "{who}: no path socket probed");
    let sockets: Vec<&str> = sockets.iter().map(String::as_str).collect();
    refused(who, report, &sockets);
    refused(who, report, ON_THE_HOSTS_PROCESS);
    refused(who, report, PAST_THE_FILTER);
}

/// Sandboxed (the default for isolated plugins), a plugin's every attempt on the host is
/// refused, from `get_permissions` and from a login hook, whether the server runs as root
/// (as CI does) or as an unprivileged user. With `sandbox = "off"`, the same plugin reads the
/// host's secrets: the test can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_plugin_reaches_none_of_the_hosts_secrets_files_network_or_processes() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut users = vec![None];
    if root {
        users.push(Some("65534"));
    } else {
        eprintln!("not root: the server runs as this user only");
    }
    for user in users {
        let who = user.unwrap_or("the test's user");
        let probed = probe_a_server(user, "strict").await;
        eprintln!("sandboxed, as {who}: {:#?}", probed.provider);
        refused_everything(&format!("provider as {who}"), &probed.provider);
        refused_everything(&format!("hook as {who}"), &probed.hook);
    }

    let open = probe_a_server(None, "off").await;
    eprintln!("sandbox off: {:#?}", open.provider);
    for report in [&open.provider, &open.hook] {
        let sockets = unix_sockets(report);
        let sockets: Vec<&str> = sockets.iter().map(String::as_str).collect();
        allowed("sandbox off", report, &sockets);
        allowed("sandbox off", report, ON_THE_HOSTS_PROCESS);
        allowed("sandbox off", report, PAST_THE_FILTER);
        assert!(
            report["file_0"].as_str().unwrap().starts_with("allowed"),
            "the key file is read without the sandbox: {report:#?}"
        );
        assert!(
            report["write"].as_str().unwrap().starts_with("allowed"),
            "{report:#?}"
        );
        assert!(
            report["tcp"].as_str().unwrap().starts_with("allowed"),
            "{report:#?}"
        );
        if root {
            assert!(
                report["host_environ"]
                    .as_str()
                    .unwrap()
                    .contains("secret found: true"),
                "{report:#?}"
            );
            assert!(
                report["host_mem"]
                    .as_str()
                    .unwrap()
                    .contains("secret found after"),
                "{report:#?}"
            );
        }
    }
}

/// With `network = true`, a sandboxed plugin connects over TCP, and still reaches no path
/// socket (PostgreSQL's among them) and nothing of the host's process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_with_the_network_reaches_tcp_but_no_local_socket() {
    let probed = probe_a_server_with(
        None,
        "strict",
        &[
            ("AUTH_PLUGINS__PROBE__NETWORK", "true"),
            ("AUTH_PLUGINS__HOOK__NETWORK", "true"),
        ],
    )
    .await;
    for (who, report) in [("provider", &probed.provider), ("hook", &probed.hook)] {
        eprintln!("{who} with the network: {report:#?}");
        allowed(who, report, &["tcp"]);
        let sockets = unix_sockets(report);
        assert!(!sockets.is_empty(), "{who}: no path socket probed");
        let sockets: Vec<&str> = sockets.iter().map(String::as_str).collect();
        refused(who, report, &sockets);
        refused(who, report, ON_THE_HOSTS_PROCESS);
        refused(who, report, PAST_THE_FILTER);
    }
}

/// Run as root with `plugin_user`, the workers run as that user, sandboxed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_plugin_user_a_root_server_runs_its_workers_as_that_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: plugin_user needs a server running as root");
        return;
    }
    let probed = probe_a_server_with(None, "strict", &[("AUTH_PLUGIN_USER", "nobody")]).await;
    for report in [&probed.provider, &probed.hook] {
        assert_eq!(report["uid"], "allowed: uid 65534", "{report:#?}");
    }
    refused_everything("provider as plugin_user", &probed.provider);
    refused_everything("hook as plugin_user", &probed.hook);
}

/// `auth-host` on a system without Landlock, as far as it can tell: a seccomp filter of the
/// test's makes the Landlock calls answer "not implemented" for the server and its workers.
fn without_landlock() -> std::process::Command {
    use seccompiler::{SeccompAction, SeccompFilter};
    use std::os::unix::process::CommandExt;
    let landlock_calls = [
        libc::SYS_landlock_create_ruleset,
        libc::SYS_landlock_add_rule,
        libc::SYS_landlock_restrict_self,
    ];
    let filter = SeccompFilter::new(
        landlock_calls
            .iter()
            .map(|call| (*call, Vec::new()))
            .collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    let program: seccompiler::BpfProgram = filter.try_into().unwrap();
    let mut command = std::process::Command::new(common::auth_host_bin());
    // SAFETY: runs in the forked child before exec; prctl and the seccomp system call are
    // async-signal-safe, and the filter was built before the fork.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            seccompiler::apply_filter(&program).map_err(std::io::Error::other)
        });
    }
    command
}

/// Without Landlock, `strict` refuses to start, naming the missing layer; `available` starts
/// with the layers there are and says which one is missing, at start and in `plugins check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_sandbox_layer_is_named_and_strict_refuses_to_run_without_it() {
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let data = tempfile::tempdir().unwrap();
    let envs = |mode: &'static str| {
        vec![
            ("AUTH_DATA_DIR", data.path().to_str().unwrap().to_owned()),
            (
                "AUTH_PLUGIN_DIR",
                plugins.path().to_str().unwrap().to_owned(),
            ),
            (
                "ALLOWED_SERVICES",
                "example:sample_permission_provider".to_owned(),
            ),
            ("AUTH_PLUGIN_ISOLATION", "process".to_owned()),
            ("AUTH_PLUGIN_SANDBOX", mode.to_owned()),
        ]
    };
    let strict = common::output_within(
        without_landlock()
            .arg("serve")
            .env_clear()
            .envs(envs("strict")),
        common::COMMAND_LIMIT,
    );
    assert_eq!(strict.status.code(), Some(2), "{strict:?}");
    let said = String::from_utf8_lossy(&strict.stderr);
    assert!(said.contains("but this system lacks Landlock"), "{said}");

    let check = common::output_within(
        without_landlock()
            .args(["plugins", "check"])
            .env_clear()
            .envs(envs("available")),
        common::COMMAND_LIMIT,
    );
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        printed.contains(
            "sandbox: landlock unavailable, seccomp on, no capabilities; missing: Landlock"
        ),
        "{printed}"
    );
    let owned = envs("available");
    let borrowed: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = ServerProcess::start_command(without_landlock(), &["serve"], &borrowed);
    let token = common::user_token(data.path(), "ada@example.com");
    let (status, _) = common::server::get_json(&format!(
        "{}/auth/authorize?service=example&jwt={token}",
        server.base
    ))
    .await;
    assert_eq!(status, 200);
    let log = server.stop();
    assert!(
        log.contains("plugin worker runs with a weaker sandbox than auth-host can build"),
        "{log}"
    );
}
