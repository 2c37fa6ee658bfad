//! A real auth-host per test: its own database (SQLite file, or a fresh PostgreSQL database),
//! its own data and plugin directories, listening on a free port of 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use auth_host::app::App;
use auth_host::config::Config;
use auth_host::service::AuthService;
use auth_host::users::User;
use figment::Figment;
use figment::providers::Serialized;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::PluginDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What seals the signing keys kept in a test's PostgreSQL database.
pub const TEST_KEY_SECRETS: &str = "test-key-secret-0123456789abcdef0123456789abcdef";

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("AUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// PostgreSQL tests run unless a developer explicitly opts out with
/// `AUTH_TEST_POSTGRES=skip`; under CI they always run.
pub fn postgres_skipped() -> bool {
    let skip = std::env::var("AUTH_TEST_POSTGRES").is_ok_and(|v| v == "skip");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if skip && !ci {
        eprintln!("PostgreSQL tests skipped (AUTH_TEST_POSTGRES=skip)");
    }
    skip && !ci
}

/// A database for one test, removed when dropped.
pub struct TestDatabase {
    pub url: String,
    postgres_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.path().join("auth.db").display()),
                postgres_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for these tests and is not reachable at \
                         {admin_url} ({e}). Start it (pg_ctlcluster ... main start) or set \
                         AUTH_TEST_POSTGRES_URL."
                    )
                });
                let name = format!("auth_host_test_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                let base = admin_url.rsplit_once('/').unwrap().0;
                TestDatabase {
                    url: format!("{base}/{name}"),
                    postgres_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }

    /// The PostgreSQL database's name (`None` on SQLite).
    pub fn postgres_name(&self) -> Option<&str> {
        self.postgres_name.as_deref()
    }

    /// A direct connection, for plain SQL.
    pub async fn connect(&self) -> sea_orm::DatabaseConnection {
        let url = if self.url.starts_with("sqlite:") {
            format!("{}?mode=rwc", self.url)
        } else {
            self.url.clone()
        };
        Database::connect(&url).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee (maybe while panicking): use a thread of
        // its own with a small runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&postgres_admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A running auth-host.
pub struct TestServer {
    pub base: String,
    pub service: Arc<AuthService>,
    database: Option<TestDatabase>,
    pub plugins: PluginDir,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The settings every test server starts with; `extra` is merged over them.
pub fn test_config(
    database: &TestDatabase,
    plugins: &PluginDir,
    data_dir: &std::path::Path,
    extra: Value,
) -> Config {
    let mut settings = json!({
        "listen": "127.0.0.1:0",
        "data_dir": data_dir,
        "database_url": database.url,
        "database_max_connections": 8,
        "plugin_dir": plugins.path(),
        "allowed_services": "example:sample_permission_provider;example2:sample_permission_provider;test:test_provider",
        "installed_extensions": "",
        "plugin_timeout_ms": 2000,
    });
    if database.url.starts_with("postgres") {
        // The keys live in the database there, as replicas share them.
        settings["key_secrets"] = json!(TEST_KEY_SECRETS);
    }
    if let (Value::Object(base), Value::Object(extra)) = (&mut settings, extra) {
        base.extend(extra);
    }
    Config::from_figment(Figment::from(Serialized::defaults(settings))).unwrap()
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, json!({})).await
    }

    /// Starts with `extra` settings over the test defaults.
    pub async fn start_with(backend: Backend, extra: Value) -> TestServer {
        let database = TestDatabase::new(backend).await;
        Self::start_on(database, extra).await
    }

    /// Starts on an existing database.
    pub async fn start_on(database: TestDatabase, extra: Value) -> TestServer {
        let plugins = PluginDir::with_workspace_plugins(&[
            "sample_permission_provider",
            "test_provider",
            "sample_extension",
            "test_extension",
            "email_allowlist",
            "static_permissions",
            "webhook",
            "http_permissions",
        ]);
        let data_dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut extra = extra;
        if extra.get("external_address").is_none() {
            extra["external_address"] = json!(base);
        }
        let config = test_config(&database, &plugins, data_dir.path(), extra);
        // Isolated plugins run in workers of the real binary, not of this test program.
        auth_host::plugins::isolation::set_worker_program(crate::common::auth_host_bin().into());
        let app = App::build(&config, None).await.unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let http = Arc::clone(&app.http);
        let task = tokio::spawn(async move {
            http.serve(listener, async {
                let _ = stopped.await;
            })
            .await;
        });
        TestServer {
            base,
            service: app.service,
            database: Some(database),
            plugins,
            data_dir,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path`, checks the answer is JSON, returns status and body.
    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        json_answer(client().get(self.url(path)).send().await.unwrap()).await
    }

    /// POSTs to `path` (parameters in the path's query), returns status and JSON body.
    pub async fn post_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        json_answer(client().post(self.url(path)).send().await.unwrap()).await
    }

    /// Stores a user the way a first login would (id = md5 of the email).
    pub async fn add_user(&self, email: &str, username: &str) -> User {
        let id = format!("{:x}", <md5::Md5 as md5::Digest>::digest(email.as_bytes()));
        self.add_user_with_id(&id, email, username).await
    }

    pub async fn add_user_with_id(&self, id: &str, email: &str, username: &str) -> User {
        let user = User {
            id: id.to_owned(),
            provider_id: Some(format!("github:{username}")),
            username: Some(username.to_owned()),
            name: Some(format!("{username} name")),
            email: Some(email.to_owned()),
            avatar_url: Some(format!("https://avatars.example/{username}.png")),
            join_date: Some(
                chrono::NaiveDate::from_ymd_opt(2024, 2, 29)
                    .unwrap()
                    .and_hms_micro_opt(10, 20, 30, 123_456)
                    .unwrap(),
            ),
            username_set_at: None,
        };
        self.service
            .store()
            .insert_user(user.clone())
            .await
            .unwrap();
        user
    }

    /// A client token for `userid`, as a login would hand out.
    pub fn token_for(&self, userid: &str) -> String {
        self.service.issue_client_token(userid).unwrap()
    }

    /// The private key signing now (PEM): kept in the data directory on SQLite, sealed in
    /// the database on PostgreSQL.
    pub async fn signing_key_pem(&self) -> String {
        if !self.database().url.starts_with("postgres") {
            return std::fs::read_to_string(self.data_dir.path().join("signing-key.pem")).unwrap();
        }
        let kid = self.service.tokens().keys().kid().to_owned();
        let stored = self.service.store().signing_keys().await.unwrap();
        let key = stored.iter().find(|k| k.kid == kid).unwrap();
        let secrets = auth_host::tokens::KeySecrets::new([TEST_KEY_SECRETS]).unwrap();
        let opened = secrets
            .open(&auth_host::keyring::binding(key), &key.sealed_private_key)
            .unwrap();
        String::from_utf8(opened.private_key).unwrap()
    }

    pub fn database(&self) -> &TestDatabase {
        self.database.as_ref().unwrap()
    }

    /// Stops serving (requests in flight finish) and hands back the database.
    pub async fn stop(mut self) -> TestDatabase {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.database.take().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Status and JSON body of an answer that must be JSON.
pub async fn json_answer(response: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json", "{}", response.url());
    (status, response.json().await.unwrap())
}

/// A browser: keeps cookies, follows no redirect by itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Follows redirects from `url` until one leads to `stop_prefix` (not fetched); returns that
/// final location, or the answer that ended the chain when it was not a redirect.
pub async fn follow(
    browser: &reqwest::Client,
    url: &str,
    stop_prefix: &str,
) -> Result<String, (reqwest::StatusCode, String)> {
    let mut url = url.to_owned();
    for _ in 0..10 {
        let response = browser.get(&url).send().await.unwrap();
        if !response.status().is_redirection() {
            let status = response.status();
            return Err((status, response.text().await.unwrap()));
        }
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        if location.starts_with(stop_prefix) {
            return Ok(location);
        }
        url = location;
    }
    panic!("too many redirects from {url}");
}

/// Logs `email` in through the development login; the query `next` received.
pub async fn dev_login(
    server: &TestServer,
    email: &str,
) -> std::collections::HashMap<String, String> {
    params_of(&dev_login_landing(server, &server.url("/app"), email).await)
}

/// Logs `email` in through the development login from `next`; where the browser lands.
pub async fn dev_login_landing(server: &TestServer, next: &str, email: &str) -> String {
    dev_login_at(&server.base, next, email).await
}

/// The development login of the auth-host at `base`, from `next`, for `email`; where the
/// browser lands.
pub async fn dev_login_at(base: &str, next: &str, email: &str) -> String {
    dev_login_across([base, base, base], next, email).await
}

/// The development login with each step on another auth-host sharing one database
/// (replicas): started on `bases[0]`, form shown by `bases[1]`, finished on `bases[2]`.
pub async fn dev_login_across(bases: [&str; 3], next: &str, email: &str) -> String {
    let browser = browser();
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let started = browser
        .get(format!("{}/auth/login/dev?next={next}", bases[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 302);
    let form = started.headers()["location"].to_str().unwrap().to_owned();
    let state = params_of(&form)["state"].clone();
    let shown = browser
        .get(format!("{}/auth/login/dev?state={state}", bases[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200, "{}", shown.text().await.unwrap());
    let finished = browser
        .post(format!("{}/auth/login/dev", bases[2]))
        .form(&[("state", state.as_str()), ("email", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(finished.status(), 302);
    finished.headers()["location"].to_str().unwrap().to_owned()
}

/// The query parameters of a URL.
pub fn params_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Status and JSON body of a GET that must answer JSON.
pub async fn get_json(url: &str) -> (reqwest::StatusCode, Value) {
    json_answer(client().get(url).send().await.unwrap()).await
}

/// Whether the auth-host at `base` takes `token` for a logged-in user (`/auth/check`).
pub async fn authenticated_at(base: &str, token: &str) -> bool {
    get_json(&format!("{base}/auth/check?jwt={token}")).await.1["authenticated"] == true
}

/// The body of a GET, as text (whatever its status).
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the metric line starting with `name` (labels included) in OpenMetrics text;
/// 0 when absent.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs each listed test against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::server::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::server::postgres_skipped() {
                        return;
                    }
                    super::$name($crate::common::server::Backend::Postgres).await;
                }
            )*
        }
    };
}
