//! Test kit: builds real plugin files with cargo and lays out plugin directories.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python of the verifiers environment (`make verifiers`): PyJWT and Standard Webhooks,
/// to check and mint tokens and signatures as the other side does.
pub fn verifiers_python() -> PathBuf {
    let python = workspace_root().join("target/verifiers-venv/bin/python");
    assert!(
        python.exists(),
        "the verifiers are not installed at {}: run `make verifiers` (`make test` does it)",
        python.display()
    );
    python
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.env("CARGO_TARGET_DIR", target_dir());
    command
}

/// JSON messages, from which `cargo_cdylibs` reads the files built.
const MESSAGE_FORMAT: &str = "--message-format=json-render-diagnostics";

/// Runs a cargo build command (which must ask for [`MESSAGE_FORMAT`]) and returns the cdylib
/// files it produced, by crate name.
pub fn cargo_cdylibs(mut command: Command) -> HashMap<String, PathBuf> {
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut files = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        let name = message["target"]["name"].as_str().unwrap().to_owned();
        for file in message["filenames"].as_array().unwrap() {
            let file = PathBuf::from(file.as_str().unwrap());
            if file.extension().is_some_and(|e| e == "so") {
                files.insert(name.clone(), file);
            }
        }
    }
    files
}

/// The workspace's plugins (samples and test plugins), built once per test process.
/// The workspace's plugin crates the tests load.
const WORKSPACE_PLUGINS: &[&str] = &[
    "sample_permission_provider",
    "sample_extension",
    "test_provider",
    "test_extension",
    "test_crash_provider",
    "test_hostile_provider",
    "test_hostile_extension",
    "email_allowlist",
    "static_permissions",
    "webhook",
    "http_permissions",
    "cedar_permissions",
];

pub fn workspace_plugins() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut command = cargo();
        command
            .current_dir(workspace_root())
            .args(["build", MESSAGE_FORMAT]);
        for package in WORKSPACE_PLUGINS {
            command.args(["-p", package]);
        }
        cargo_cdylibs(command)
    })
}

/// `test_abort_provider` built with `-C panic=abort`, copied out of the target directory so
/// that a later normal build of the same crate cannot replace it under the test.
pub fn abort_plugin() -> &'static Path {
    static BUILT: OnceLock<tempfile::TempPath> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut command = cargo();
        command.current_dir(workspace_root()).args([
            "rustc",
            MESSAGE_FORMAT,
            "-p",
            "test_abort_provider",
            "--lib",
        ]);
        // `-C panic=abort` applies to the plugin crate itself, which is what its
        // `export_plugin!` records; its dependencies may stay unwind-capable.
        command.args(["--", "-C", "panic=abort"]);
        let built = cargo_cdylibs(command)
            .remove("test_abort_provider")
            .unwrap();
        let copy = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::copy(built, &copy).unwrap();
        copy
    })
}

/// Copies `source` to a temporary directory outside the workspace, lets `patch` edit the
/// copy, and builds the crate (or workspace) at `build_in` inside it, offline, with the
/// workspace's lock file (same dependency versions, so artifacts are reused). Returns the
/// cdylib files built, by crate name.
pub fn build_copy(
    source: &Path,
    build_in: &str,
    patch: impl FnOnce(&Path),
) -> HashMap<String, PathBuf> {
    let copy = copy_with_lock(source, build_in, patch);
    let mut command = cargo();
    command
        .current_dir(copy.path().join(build_in))
        .args(["build", "--offline", MESSAGE_FORMAT]);
    cargo_cdylibs(command)
}

/// A copy of `source` (outside the workspace) holding the workspace's Cargo.lock in
/// `build_in`, after `patch` edits it.
fn copy_with_lock(source: &Path, build_in: &str, patch: impl FnOnce(&Path)) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(source, copy.path());
    let root = copy.path().join(build_in);
    std::fs::copy(workspace_root().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    patch(copy.path());
    copy
}

/// `cargo test` of a copy of examples/plugin-template outside the workspace, as its README
/// says (the `plugin-api` dependency pointed at this checkout).
pub fn test_plugin_template() -> std::process::Output {
    let copy = copy_with_lock(
        &workspace_root().join("examples/plugin-template"),
        ".",
        point_at_plugin_api,
    );
    let mut command = cargo();
    command
        .current_dir(copy.path())
        .args(["test", "--offline", "--color", "never"]);
    output_within(&mut command, std::time::Duration::from_secs(600))
}

fn point_at_plugin_api(root: &Path) {
    replace_in(
        &root.join("Cargo.toml"),
        "path = \"../../plugin-api\"",
        &format!(
            "path = \"{}\"",
            workspace_root().join("plugin-api").display()
        ),
    );
}

/// Builds examples/plugin-template outside the workspace as its README says (the
/// `plugin-api` dependency pointed at this checkout), after `patch` edits the copy; returns
/// the cdylib files by crate name.
pub fn build_plugin_template(patch: impl FnOnce(&Path)) -> HashMap<String, PathBuf> {
    build_copy(
        &workspace_root().join("examples/plugin-template"),
        ".",
        |root| {
            point_at_plugin_api(root);
            patch(root);
        },
    )
}

/// Builds the ABI fixtures (tools/abi-fixtures) after `patch` edits the copy, and returns
/// the provider file. `package` names the provider so that variants do not overwrite each
/// other in the shared target directory.
pub fn build_abi_fixture(package: &str, patch: impl FnOnce(&Path)) -> PathBuf {
    let mut files = build_copy(
        &workspace_root().join("tools/abi-fixtures"),
        "old_provider",
        |root| {
            replace_in(
                &root.join("old_provider/Cargo.toml"),
                "name = \"old_provider\"",
                &format!("name = \"{package}\""),
            );
            patch(root);
        },
    );
    files.remove(package).unwrap()
}

pub fn replace_in(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        file.display()
    );
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A fresh plugin directory holding copies of the given files, under their file names.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    pub fn new() -> Self {
        PluginDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Copies workspace plugins in, as `lib<name>.so`.
    pub fn with_workspace_plugins(names: &[&str]) -> Self {
        let dir = Self::new();
        for name in names {
            dir.add_file(&workspace_plugins()[*name], name);
        }
        dir
    }

    /// Copies `file` in as plugin `name` (`lib<name>.so`).
    pub fn add_file(&self, file: &Path, name: &str) -> PathBuf {
        let target = self.file_of(name);
        std::fs::copy(file, &target).unwrap();
        target
    }

    /// Writes `bytes` as plugin `name`.
    pub fn add_bytes(&self, bytes: &[u8], name: &str) -> PathBuf {
        let target = self.file_of(name);
        std::fs::write(&target, bytes).unwrap();
        target
    }

    pub fn file_of(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("lib{name}.so"))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The in-process plugin of a loaded alias, to call its blocking functions directly.
pub fn in_process(
    plugin: &std::sync::Arc<auth_host::plugins::LoadedPlugin>,
) -> &auth_host::plugins::Plugin {
    plugin
        .instance()
        .unwrap_or_else(|| panic!("{} is not loaded in-process", plugin.alias()))
}

/// Plugin settings for `dir` with the given lists, a 5 s time limit and 16 calls in flight.
pub fn plugin_settings(
    dir: &Path,
    services: &str,
    extensions: &str,
) -> auth_host::plugins::PluginSettings {
    auth_host::plugins::PluginSettings {
        dirs: vec![dir.to_path_buf()],
        allowed_services: services.parse().unwrap(),
        installed_extensions: extensions.parse().unwrap(),
        settings: Default::default(),
        call_timeout: std::time::Duration::from_secs(5),
        max_in_flight: 16,
        isolation: Default::default(),
        worker_memory_limit: 0,
        sandbox: Default::default(),
        plugin_user: None,
        worker_metrics: Default::default(),
    }
}

pub mod browser;
pub mod collector;
pub mod idp;
pub mod receiver;
pub mod server;

/// Reads with `read` every `every` until `done` holds for what it read, and returns that;
/// panics after `limit`, naming `what` and showing the last read.
pub async fn poll_until<T: std::fmt::Debug>(
    limit: std::time::Duration,
    every: std::time::Duration,
    what: &str,
    mut read: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let value = read();
        if done(&value) {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}; got {value:#?}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Serves `handle` over HTTP/1 on a free 127.0.0.1 port, for as long as the test runs;
/// returns `http://127.0.0.1:<port>`. The stand-in services of the test kit run on it.
pub async fn serve_local<H, F>(handle: H) -> String
where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<http_body_util::Full<hyper::body::Bytes>>>
        + Send
        + 'static,
{
    serve_local_with(handle, None).await
}

/// Like [`serve_local`], over TLS with `tls`'s certificate; `https://127.0.0.1:<port>`.
pub async fn serve_local_tls<H, F>(handle: H, tls: tokio_rustls::TlsAcceptor) -> String
where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<http_body_util::Full<hyper::body::Bytes>>>
        + Send
        + 'static,
{
    serve_local_with(handle, Some(tls)).await
}

async fn serve_local_with<H, F>(handle: H, tls: Option<tokio_rustls::TlsAcceptor>) -> String
where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<http_body_util::Full<hyper::body::Bytes>>>
        + Send
        + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (handle, tls) = (handle.clone(), tls.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let answer = handle(request);
                    async move { Ok::<_, std::convert::Infallible>(answer.await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    // A client that does not trust the certificate ends here.
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(stream).await {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    base
}

/// A private certificate authority made with `openssl` for one test, and a certificate it
/// signed for `localhost` and 127.0.0.1.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let output = output_within(
                Command::new("openssl").args(args).current_dir(dir.path()),
                COMMAND_LIMIT,
            );
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=auth-host test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        let mut request = vec!["req"];
        request.extend(ec);
        request.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&request);
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        TestCa { dir }
    }

    /// The authority's certificate, PEM.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A TLS server configuration presenting the signed certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.path().join("server.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(self.dir.path().join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
    }

    /// A browser (no redirects followed, cookies kept) that trusts this authority.
    pub fn browser(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca_file()).unwrap()).unwrap();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .add_root_certificate(ca)
            .build()
            .unwrap()
    }
}

/// A real `auth-host serve` process, killed when dropped. Its log (stderr, JSON) is read
/// all along on a thread of its own, so that a chatty server never blocks on a full pipe.
pub struct ServerProcess {
    child: std::process::Child,
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `auth-host serve` with only these environment variables (plus `PATH`), JSON
    /// logs and a free port, and waits until it listens.
    pub fn start(envs: &[(&str, &str)]) -> ServerProcess {
        Self::start_with_args(&["serve"], envs)
    }

    /// Like `start`, with other arguments (e.g. `--config FILE serve`).
    pub fn start_with_args(args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        Self::start_as(None, args, envs)
    }

    /// Like `start_with_args`, as `user` (a name; with `setpriv`, from root) when given.
    pub fn start_as(user: Option<&str>, args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        let command = match user {
            Some(user) => {
                let mut setpriv = Command::new("setpriv");
                setpriv
                    .args(["--reuid", user, "--regid", user, "--clear-groups", "--"])
                    .arg(auth_host_bin());
                setpriv
            }
            None => Command::new(auth_host_bin()),
        };
        Self::start_command(command, args, envs)
    }

    /// Starts `command` (which runs `auth-host`) with `args` and `envs` as `start` does (the
    /// log in JSON unless `envs` asks for the human format).
    pub fn start_command(
        mut command: Command,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> ServerProcess {
        use std::io::BufRead;
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AUTH_LISTEN", "127.0.0.1:0")
            .env("AUTH_LOG_FORMAT", "json")
            .stderr(std::process::Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        // A group of its own, so that a failed test ends it and whatever it started.
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command.spawn().unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let reader = {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                for line in stderr.lines() {
                    let Ok(line) = line else { break };
                    if let Some(address) = listening_at(&line) {
                        let _ = address_tx.send(address);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        let Ok(address) = address_rx.recv_timeout(std::time::Duration::from_secs(30)) else {
            end_group(&mut child);
            panic!("never listened:\n{}", log.lock().unwrap());
        };
        ServerProcess {
            child,
            base: format!("http://{address}"),
            log,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it never restarted).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to end by itself; how it ended.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    /// Sends SIGTERM (graceful stop).
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops the process and returns its whole log.
    pub fn stop(mut self) -> String {
        end_group(&mut self.child);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        end_group(&mut self.child);
    }
}

/// Kills a server and its process group (its plugin workers end with it: they are told by
/// the kernel), and reaps it.
fn end_group(child: &mut std::process::Child) {
    if let Ok(None) = child.try_wait()
        && let Ok(pid) = i32::try_from(child.id())
    {
        // SAFETY: kill has no memory-safety preconditions; -pid names the group the server
        // leads, which exists while it is not reaped.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// Runs `command` to its end, for at most `limit`: a command that should refuse (or finish)
/// at once but hangs fails the test, killed, instead of hanging the suite.
pub fn output_within(command: &mut Command, limit: std::time::Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish within {limit:?}; it printed:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// How long an `auth-host` command that should end by itself (a refusal, `migrate`, `users
/// add`) may take.
pub const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs an `auth-host` command (`users add`, `token issue`…) on the data directory `data`;
/// its stdout, trimmed. Fails the test when the command fails.
pub fn auth_host_command(data: &Path, args: &[&str]) -> String {
    let output = output_within(
        Command::new(auth_host_bin())
            .args(args)
            .env_clear()
            .env("AUTH_DATA_DIR", data),
        COMMAND_LIMIT,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Adds a user with `email` (`users add`) to the data directory `data` and issues them a
/// client token (`token issue`); the token.
pub fn user_token(data: &Path, email: &str) -> String {
    let userid = auth_host_command(data, &["users", "add", "--email", email]);
    auth_host_command(data, &["token", "issue", "--userid", &userid])
}

/// The path of the `auth-host` binary built for these tests.
pub fn auth_host_bin() -> &'static str {
    env!("CARGO_BIN_EXE_auth-host")
}

/// A real shared library that is not a plugin: the system's zlib.
pub fn system_zlib() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/aarch64-linux-gnu/libz.so.1",
        "/usr/lib64/libz.so.1",
        "/usr/lib/libz.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("zlib (a system library every Debian machine has) is installed")
}

/// The address of a server's "listening" line, in either log format.
fn listening_at(line: &str) -> Option<String> {
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(line) {
        return (event["message"] == "listening")
            .then(|| event["address"].as_str().unwrap_or("").to_owned());
    }
    // Human: `<time>  INFO auth_host::…: listening address=127.0.0.1:1234 …`
    let (_, after) = line.split_once(": listening address=")?;
    Some(after.split_whitespace().next()?.to_owned())
}
