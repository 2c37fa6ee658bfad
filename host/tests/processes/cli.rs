//! The `auth-host` binary: `plugins check`, plugin log lines, and `serve` refusing bad plugins.

use crate::common;

use std::process::{Command, Output};

use common::PluginDir;

fn auth_host(dir: &PluginDir, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let data_dir = tempfile::tempdir().unwrap();
    auth_host_in(data_dir.path(), dir, envs, args)
}

/// Runs the binary with its own data directory (keys, SQLite database).
fn auth_host_in(
    data_dir: &std::path::Path,
    dir: &PluginDir,
    envs: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut command = Command::new(common::auth_host_bin());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AUTH_PLUGIN_DIR", dir.path())
        .env("AUTH_DATA_DIR", data_dir)
        .env("RUST_LOG", "info");
    for (key, value) in envs {
        command.env(key, value);
    }
    common::output_within(&mut command, common::COMMAND_LIMIT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn plugins_check_reports_each_alias_and_succeeds_when_all_load() {
    let dir =
        PluginDir::with_workspace_plugins(&["sample_permission_provider", "sample_extension"]);
    let output = auth_host(
        &dir,
        &[
            (
                "ALLOWED_SERVICES",
                "example:sample_permission_provider;example2:sample_permission_provider",
            ),
            ("INSTALLED_EXTENSIONS", "sample_extension"),
        ],
        &["plugins", "check"],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let version = auth_host_plugin_api::API_VERSION;
    let provider = dir.file_of("sample_permission_provider");
    let extension = dir.file_of("sample_extension");
    let expected = format!(
        "plugin directory: {}\n\
         OK    service `example`: permission provider, sample_permission_provider 1.0.0, plugin-api {version}, {}\n\
         OK    service `example2`: permission provider, sample_permission_provider 1.0.0, plugin-api {version}, {}\n\
         OK    extension `sample_extension`: lifecycle extension, sample_extension 1.0.0, plugin-api {version}, {}\n",
        dir.path().display(),
        provider.display(),
        provider.display(),
        extension.display()
    );
    assert_eq!(stdout, expected);
}

#[test]
fn plugins_check_starts_isolated_aliases_as_they_will_run_and_says_so() {
    let dir = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let output = auth_host(
        &dir,
        &[
            (
                "ALLOWED_SERVICES",
                "example:sample_permission_provider;local:sample_permission_provider",
            ),
            ("AUTH_PLUGIN_ISOLATION", "process"),
            ("AUTH_PLUGINS__LOCAL__ISOLATION", "none"),
        ],
        &["plugins", "check"],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let file = dir.file_of("sample_permission_provider");
    let version = auth_host_plugin_api::API_VERSION;
    assert!(
        stdout.contains(&format!(
            "OK    service `example`: permission provider, sample_permission_provider 1.0.0, plugin-api {version}, isolated in a worker process (sandbox: landlock v6, seccomp on, no capabilities), {}",
            file.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "OK    service `local`: permission provider, sample_permission_provider 1.0.0, plugin-api {version}, {}",
            file.display()
        )),
        "{stdout}"
    );
}

#[test]
fn plugins_check_fails_when_one_alias_fails_and_says_why() {
    let dir = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let output = auth_host(
        &dir,
        &[(
            "ALLOWED_SERVICES",
            "good:sample_permission_provider;bad:absent",
        )],
        &["plugins", "check"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("OK    service `good`"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "FAIL  service `bad`: cannot load {}: no such file",
            dir.file_of("absent").display()
        )),
        "{stdout}"
    );
}

#[test]
fn plugins_check_checks_files_no_configuration_names() {
    let dir = PluginDir::with_workspace_plugins(&["sample_extension"]);
    let text_file = dir.add_bytes(b"not a library", "notes");
    let extension = dir.file_of("sample_extension");
    let output = auth_host(
        &dir,
        &[],
        &[
            "plugins",
            "check",
            extension.to_str().unwrap(),
            text_file.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let version = auth_host_plugin_api::API_VERSION;
    assert_eq!(
        stdout,
        format!(
            "OK    `libsample_extension.so`: lifecycle extension, sample_extension 1.0.0, plugin-api {version}, {}\n\
             FAIL  plugin `libnotes.so`: cannot load {}: not a plugin: not an ELF shared library\n",
            extension.display(),
            text_file.display()
        )
    );
}

#[test]
fn the_data_directory_and_database_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh").join("data");
    let output = common::output_within(
        Command::new("sh")
            .args(["-c", "umask 022 && exec \"$0\" migrate"])
            .arg(common::auth_host_bin())
            .env_clear()
            .env("AUTH_DATA_DIR", &data),
        common::COMMAND_LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 1, "the database is in the data directory");
    // A database left world-readable by an earlier release is narrowed at start.
    let db = data.join("auth-host.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = common::output_within(
        Command::new(common::auth_host_bin())
            .arg("migrate")
            .env_clear()
            .env("AUTH_DATA_DIR", &data),
        common::COMMAND_LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn a_device_or_fifo_named_as_a_plugin_is_refused_without_reading_it() {
    let dir = PluginDir::new();
    let device = dir.path().join("libzero.so");
    std::os::unix::fs::symlink("/dev/zero", &device).unwrap();
    let fifo = dir.path().join("libpipe.so");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Reading either would never end (or fill memory): the check must answer at once.
    // Run with a 4 GiB address-space limit, so that a regression fails this test rather
    // than the machine.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -v 4194304 && exec \"$0\" \"$@\""])
        .arg(common::auth_host_bin())
        .args(["plugins", "check"])
        .args([&device, &fifo])
        .env_clear()
        .env("AUTH_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("plugins check is still reading a device or FIFO after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    for file in [&device, &fifo] {
        assert!(
            stdout.contains(&format!(
                "cannot load {}: cannot read the file: not a regular file (a directory, device or FIFO)",
                file.display()
            )),
            "{stdout}"
        );
    }
}

#[test]
fn plugin_log_lines_reach_the_host_log_with_their_alias() {
    let dir =
        PluginDir::with_workspace_plugins(&["sample_permission_provider", "sample_extension"]);
    let envs = [
        (
            "ALLOWED_SERVICES",
            "example:sample_permission_provider;other:sample_permission_provider",
        ),
        ("INSTALLED_EXTENSIONS", "audit:sample_extension"),
    ];
    let output = auth_host(&dir, &envs, &["plugins", "check"]);
    assert!(output.status.success());
    let stderr = text(&output.stderr);
    for (alias, line) in [
        ("example", "sample provider ready as `example`"),
        ("other", "sample provider ready as `other`"),
        ("audit", "sample extension ready as `audit`"),
    ] {
        let found = stderr
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("no `{line}` in:\n{stderr}"));
        assert!(found.contains("INFO"), "{found}");
        assert!(found.contains(&format!("plugin=\"{alias}\"")), "{found}");
    }

    // The same lines as JSON, with the alias as a field.
    let json_envs = [envs[0], envs[1], ("AUTH_LOG_FORMAT", "json")];
    let output = auth_host(&dir, &json_envs, &["plugins", "check"]);
    assert!(output.status.success());
    let events: Vec<serde_json::Value> = text(&output.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ready = events
        .iter()
        .find(|e| e["message"] == "sample extension ready as `audit`")
        .unwrap();
    assert_eq!(ready["plugin"], "audit");
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["target"], "plugin");
}

#[test]
fn serve_refuses_to_start_when_a_plugin_fails_with_the_same_messages() {
    let dir = PluginDir::with_workspace_plugins(&["sample_extension"]);
    let output = auth_host(
        &dir,
        &[
            (
                "ALLOWED_SERVICES",
                "svc:sample_extension;gone:missing_plugin",
            ),
            ("AUTH_LISTEN", "127.0.0.1:0"),
        ],
        &["serve"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "service `svc`: cannot load {}: it is a lifecycle extension, but it is named as a permission provider",
            dir.file_of("sample_extension").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "service `gone`: cannot load {}: no such file",
            dir.file_of("missing_plugin").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("not starting"), "{stderr}");
}

#[test]
fn a_bad_configuration_stops_with_one_message_per_problem() {
    let dir = PluginDir::new();
    let output = auth_host(
        &dir,
        &[
            ("ALLOWED_SERVICES", "x:../../etc/passwd"),
            ("AUTH_PLUGIN_TIMEOUT_MS", "soon"),
        ],
        &["plugins", "check"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "configuration error: allowed_services (from ALLOWED_SERVICES): `x:../../etc/passwd`"
        )),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "configuration error: plugin_timeout_ms (from AUTH_PLUGIN_TIMEOUT_MS): invalid type"
        )),
        "{stderr}"
    );
}

#[test]
fn a_database_password_never_reaches_the_log_in_any_form() {
    let dir = PluginDir::new();
    // Port 1 refuses at once, so each start fails quickly and says which database.
    for (url, shown) in [
        (
            "postgres://auth:hunter2@127.0.0.1:1/auth",
            "postgres://auth:***@127.0.0.1:1/auth",
        ),
        (
            "postgres://auth@127.0.0.1:1/auth?sslmode=disable&password=hunter2",
            "postgres://auth@127.0.0.1:1/auth?sslmode=disable&password=***",
        ),
        (
            "host=127.0.0.1 port=1 password=hunter2 dbname=auth",
            "host=127.0.0.1 port=1 password=*** dbname=auth",
        ),
    ] {
        let output = auth_host(&dir, &[("DATABASE_URL", url)], &["migrate"]);
        assert!(!output.status.success(), "{url}");
        let log = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(!log.contains("hunter2"), "{log}");
        assert!(log.contains(shown), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_token_issue_and_users_commands() {
    let plugins = PluginDir::new();
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| auth_host_in(data.path(), &plugins, &[], args);

    let output = run(&["migrate"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "database is up to date\n");
    let output = run(&["migrate"]);
    assert!(output.status.success());

    // A user, stored as a login would.
    let store = auth_host::storage::Store::connect(
        &format!("sqlite://{}", data.path().join("auth-host.db").display()),
        4,
    )
    .await
    .unwrap();
    store
        .insert_user(auth_host::users::User {
            id: "0123abcd".into(),
            provider_id: Some("github:7".into()),
            username: Some("mona".into()),
            name: Some("Mona".into()),
            email: Some("mona@example.com".into()),
            avatar_url: None,
            join_date: None,
            username_set_at: None,
        })
        .await
        .unwrap();

    // `token issue` prints the token and nothing else.
    let output = run(&["token", "issue", "--userid", "0123abcd"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let token = stdout.strip_suffix('\n').unwrap();
    assert_eq!(token.split('.').count(), 3, "{stdout}");
    assert!(!token.contains(char::is_whitespace));
    let (keys, _) = auth_host::tokens::KeySet::from_data_dir(data.path(), &[]).unwrap();
    let tokens = auth_host::tokens::TokenService::new(
        keys,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(1),
    );
    let claims = tokens.verify_client_token(token).unwrap();
    assert_eq!(claims.userid, "0123abcd");
    assert_eq!(claims.exp - claims.iat, 14 * 24 * 3600);

    let output = run(&["token", "issue", "--userid", "nobody"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(text(&output.stderr).contains("no user with id `nobody`"));

    let output = run(&[
        "users",
        "add",
        "--email",
        "ann@example.com",
        "--name",
        "Ann",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let ann_id = text(&output.stdout).trim().to_owned();
    assert_eq!(
        ann_id,
        format!(
            "{:x}",
            <md5::Md5 as md5::Digest>::digest(b"ann@example.com")
        )
    );
    let output = run(&["users", "add", "--email", "ann@example.com"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("exists already"));
    let output = run(&["users", "add", "--email", "ann@other.example"]);
    assert!(output.status.success());
    let second = store
        .user(text(&output.stdout).trim())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.username.as_deref(), Some("ann1"));
    run(&["users", "delete", &ann_id]);
    run(&["users", "delete", &second.id]);

    let output = run(&["users", "list"]);
    assert!(output.status.success());
    let listing = text(&output.stdout);
    assert!(
        listing.lines().next().unwrap().starts_with("ID"),
        "{listing}"
    );
    assert!(
        listing.contains("0123abcd") && listing.contains("mona@example.com"),
        "{listing}"
    );
    assert!(text(&output.stderr).contains("1 of 1 users"));

    for key in ["0123abcd", "MONA"] {
        let output = run(&["users", "show", key]);
        assert!(output.status.success(), "{key}");
        let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(shown["id"], "0123abcd");
        assert_eq!(shown["username"], "mona");
    }
    let output = run(&["users", "delete", "0123abcd"]);
    assert!(output.status.success());
    assert_eq!(text(&output.stdout), "deleted user `0123abcd`\n");
    let output = run(&["users", "delete", "0123abcd"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(store.user("0123abcd").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_requests_with_their_id_and_never_a_token_or_key() {
    let plugins = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let plugin_dir = plugins.path().to_str().unwrap();
    let server = common::ServerProcess::start(&[
        ("AUTH_PLUGIN_DIR", plugin_dir),
        ("AUTH_DATA_DIR", data_dir),
        ("ALLOWED_SERVICES", "example:sample_permission_provider"),
        ("RUST_LOG", "debug"),
    ]);
    // A token of the server's own key, sent in the query and in the header.
    let (keys, _) = auth_host::tokens::KeySet::from_data_dir(data.path(), &[]).unwrap();
    let tokens = auth_host::tokens::TokenService::new(
        keys,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(60),
    );
    let (token, _) = tokens.issue_client_token("someone").unwrap();
    let http = common::server::client();
    http.get(format!("{}/auth/check?jwt={token}", server.base))
        .header("x-request-id", "req-for-the-log")
        .send()
        .await
        .unwrap();
    http.get(format!("{}/auth/authorize?service=example", server.base))
        .header("auth-token", &token)
        .send()
        .await
        .unwrap();
    let log = server.stop();
    assert!(
        log.contains("req-for-the-log"),
        "request ids are logged:\n{log}"
    );
    assert!(log.contains("\"route\":\"check\""), "{log}");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token reached the log:\n{log}");
    let private = std::fs::read_to_string(data.path().join("signing-key.pem")).unwrap();
    let key_line = private.lines().nth(1).unwrap();
    assert!(!log.contains(key_line), "the private key reached the log");
}

/// `--version` says the release and the commit; `health` (what a container's health check
/// runs, without curl) exits 0 for a healthy server and 1 for none or a draining one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_the_commit_and_health_answers_with_its_exit_status() {
    let run = |args: &[&str]| {
        common::output_within(
            Command::new(common::auth_host_bin()).args(args).env_clear(),
            common::COMMAND_LIMIT,
        )
    };
    let version = run(&["--version"]);
    let said = text(&version.stdout);
    assert!(version.status.success(), "{said}");
    let commit = said
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{said}"
    );
    assert!(
        said.starts_with(&format!("auth-host {} ", env!("CARGO_PKG_VERSION"))),
        "{said}"
    );

    let data = tempfile::tempdir().unwrap();
    let server = common::ServerProcess::start(&[
        ("AUTH_DATA_DIR", data.path().to_str().unwrap()),
        ("AUTH_SHUTDOWN_DELAY_MS", "3000"),
    ]);
    let healthy = run(&["health", "--url", &server.base]);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy.stderr));
    // Draining (SIGTERM received): 503, so not healthy.
    server.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let draining = run(&["health", "--url", &server.base]);
    assert_eq!(draining.status.code(), Some(1));
    assert!(
        text(&draining.stderr).contains("503"),
        "{}",
        text(&draining.stderr)
    );
    drop(server);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = run(&["health", "--url", &nowhere]);
    assert_eq!(down.status.code(), Some(1));
}

#[test]
fn plugins_call_makes_one_call_and_says_how_it_went() {
    let dir = PluginDir::with_workspace_plugins(&["test_provider", "test_extension"]);
    let envs = [
        ("ALLOWED_SERVICES", "p:test_provider;iso:test_provider"),
        ("INSTALLED_EXTENSIONS", "ext:test_extension"),
        ("AUTH_PLUGINS__ISO__ISOLATION", "process"),
        ("RUST_LOG", "warn"),
    ];
    let call = |args: &[&str]| {
        let mut all = vec!["plugins", "call"];
        all.extend_from_slice(args);
        let output = auth_host(&dir, &envs, &all);
        (
            output.status.code(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };

    // A provider answers, in-process and isolated, for the service given.
    for alias in ["p", "iso"] {
        let (code, stdout, stderr) = call(&[
            alias,
            "--service",
            "wiki",
            "--user",
            r#"{"id":"u1","email":"a@x.test"}"#,
        ]);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        let (first, answer) = stdout.split_once('\n').unwrap();
        assert!(
            first.starts_with(&format!("`{alias}` (test_provider 0.3.0, "))
                && first.contains("): permissions in `wiki` (")
                && first.ends_with(" ms)"),
            "{first}"
        );
        let answer: serde_json::Value = serde_json::from_str(answer).unwrap();
        assert_eq!(answer["user"], "u1", "{answer}");
        assert_eq!(answer["service"], "wiki", "{answer}");
    }
    let (_, stdout, _) = call(&["iso", "--user", r#"{"id":"u1"}"#]);
    assert!(stdout.contains("isolated, sandbox: "), "{stdout}");

    // Its failure and its panic: exit 1, saying so.
    let (code, stdout, _) = call(&["p", "--user", r#"{"id":"error"}"#]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("asked to fail"), "{stdout}");
    let (code, stdout, _) = call(&["iso", "--user", r#"{"id":"panic"}"#]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("asked to panic"), "{stdout}");

    // An extension's hook: continue, amend, refuse.
    let (code, stdout, _) = call(&[
        "ext",
        "--hook",
        "login",
        "--user",
        r#"{"id":"u1","email":"a@fine.test"}"#,
    ]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("): continue ("), "{stdout}");
    let (code, stdout, _) = call(&[
        "ext",
        "--hook",
        "new-user",
        "--user",
        r#"{"id":"u1","email":"a@amend.test"}"#,
    ]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("continue, amending the profile"),
        "{stdout}"
    );
    let (code, stdout, _) = call(&[
        "ext",
        "--hook",
        "login",
        "--user",
        r#"{"id":"u1","email":"a@refuse.test"}"#,
    ]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("refused: on_user_login: not welcome"),
        "{stdout}"
    );

    // What cannot be called: exit 2, saying why.
    for (args, expected) in [
        (
            vec!["nobody", "--user", r#"{"id":"u1"}"#],
            "named in neither ALLOWED_SERVICES nor INSTALLED_EXTENSIONS",
        ),
        (
            vec!["p", "--user", r#"{"email":"a@x.test"}"#],
            "--user: not a user (missing field `id`",
        ),
        (
            vec!["p", "--hook", "login", "--user", r#"{"id":"u1"}"#],
            "is a permission provider: it has no hooks",
        ),
        (
            vec!["ext", "--user", r#"{"id":"u1"}"#],
            "say which hook with --hook",
        ),
    ] {
        let (code, stdout, stderr) = call(&args);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_deletion_is_on_record_and_auth_host_audit_reads_the_trail() {
    let dir = PluginDir::new();
    let data = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let output = auth_host_in(data.path(), &dir, envs, args);
        (
            output.status.code(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    let (_, id, _) = run(&[], &["users", "add", "--email", "gone@example.com"]);
    let id = id.trim();
    let (code, stdout, stderr) = run(&[("AUTH_LOG_FORMAT", "json")], &["users", "delete", id]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // The JSON line log shippers and fail2ban read.
    let line: serde_json::Value = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["target"] == "auth_host::audit")
        .unwrap_or_else(|| panic!("no audit line in {stderr}"));
    let fields = line.get("fields").unwrap_or(&line);
    assert_eq!(fields["type"], "user.deleted", "{line}");
    assert_eq!(fields["user_id"], id, "{line}");
    assert_eq!(fields["client"], "cli", "{line}");

    let (code, stdout, _) = run(&[], &["audit", "--json", "--user", "gone@example.com"]);
    assert_eq!(code, Some(0));
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(events[0]["type"], "user.deleted");
    assert_eq!(events[0]["email"], "gone@example.com");
    let (code, table, _) = run(
        &[],
        &["audit", "--type", "user.deleted", "--since", "2020-01-01"],
    );
    assert_eq!(code, Some(0));
    assert!(
        table.contains("user.deleted") && table.contains(id),
        "{table}"
    );
    let (_, none, _) = run(&[], &["audit", "--until", "2020-01-01"]);
    assert_eq!(none, "");
    let (code, _, stderr) = run(&[], &["audit", "--type", "deleted"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not one of"), "{stderr}");
}

/// Emails are text from outside: `users list` and the `audit` table print a terminal's
/// escape sequences in them (a window title, a clear screen) as escapes, never raw.
#[test]
fn users_list_and_the_audit_table_never_print_a_terminals_escape_codes() {
    let dir = PluginDir::new();
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = auth_host_in(data.path(), &dir, &[], args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        text(&output.stdout)
    };
    let email = "evil\u{1b}]0;owned\u{7}\u{1b}[2J@example.com";
    let id = run(&["users", "add", "--email", email]);
    let listed = run(&["users", "list"]);
    assert!(
        listed.contains("evil\\u{1b}]0;owned\\u{7}\\u{1b}[2J@example.com"),
        "{listed:?}"
    );
    run(&["users", "delete", id.trim()]);
    let table = run(&["audit", "--type", "user.deleted"]);
    assert!(table.contains("user.deleted"), "{table:?}");
    for printed in [&listed, &table] {
        assert!(
            !printed.contains('\u{1b}') && !printed.contains('\u{7}'),
            "{printed:?}"
        );
    }
}

/// `read_paths = ["/"]` opens every file the worker's user can read to the plugin: allowed,
/// but said at every load.
#[test]
fn read_paths_of_the_whole_filesystem_are_warned_about() {
    let dir = PluginDir::with_workspace_plugins(&["sample_permission_provider"]);
    let output = auth_host(
        &dir,
        &[
            ("ALLOWED_SERVICES", "example:sample_permission_provider"),
            ("AUTH_PLUGIN_ISOLATION", "process"),
            ("AUTH_PLUGINS__EXAMPLE__READ_PATHS", "[\"/\"]"),
        ],
        &["plugins", "check"],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("read_paths names `/`"), "{stderr}");
    assert!(stderr.contains("example"), "{stderr}");
}
