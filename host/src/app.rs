//! Putting auth-host together from its configuration: keys, storage, plugins, the service
//! and its HTTP front end.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{AdminAccess, AdminToken};
use crate::config::{Config, KeySource, NO_KEY_SOURCE, normalize_origin};
use crate::http::{HttpApi, HttpSettings, login_endpoints};
use crate::keyring::{Keyring, KeyringError};
use crate::login::{LoginSettings, Logins};
use crate::metrics::Metrics;
use crate::plugins::{LoadOutcome, PluginRegistry, PluginSettings};
use crate::reload::{PluginReloader, failure_messages};
use crate::service::AuthService;
use crate::storage::{ChangeKeys, Store, StoreError, redact_url, resolve_database_url};
use crate::tokens::{KeyError, KeySet, TokenKind, TokenService};

/// Why auth-host cannot start; each problem is one message.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    #[error("signing keys: {0}")]
    Keyring(#[from] KeyringError),
    #[error("database {url}: {error}")]
    Storage { url: String, error: StoreError },
    #[error("{}", plugin_messages(.0))]
    Plugins(Vec<LoadOutcome>),
    #[error("{0}")]
    Io(String),
}

fn plugin_messages(outcomes: &[LoadOutcome]) -> String {
    failure_messages(outcomes).join("\n")
}

/// The signing keys: `PRIVATE_KEY`/`PUBLIC_KEY`, those kept in the database (then also the
/// keyring that keeps them current), or the pair kept in the data directory (made on first
/// start).
/// `gauges` are what the keyring measures (rows it refuses, the clock's skew).
pub async fn load_keys(
    config: &Config,
    store: &Store,
    gauges: crate::keyring::KeyringGauges,
    audit: Option<crate::audit::Audit>,
) -> Result<(KeySet, Option<Arc<Keyring>>), StartupError> {
    let finish = {
        let own_keys = [
            (
                TokenKind::Client,
                config.client_token_algorithm,
                &config.client_token_private_key,
            ),
            (
                TokenKind::Permission,
                config.permission_token_algorithm,
                &config.permission_token_private_key,
            ),
        ]
        .map(|(kind, algorithm, key)| {
            (kind, algorithm, key.as_ref().map(|k| k.expose().to_owned()))
        });
        let data_dir = config.data_dir.clone();
        move |keys: KeySet| {
            own_keys
                .iter()
                .try_fold(keys, |keys, (kind, algorithm, key)| {
                    keys.with_algorithm(*kind, *algorithm, key.as_deref(), &data_dir)
                })
        }
    };
    match config.key_source() {
        Some(KeySource::Environment { private, public }) => {
            let mut keys = finish(KeySet::from_pem(
                private.expose(),
                public,
                &config.previous_public_keys,
            )?)?;
            if let Some(private_key) = config.legacy_client_token_key() {
                keys = keys.with_legacy_client_tokens(private_key);
            }
            Ok((keys, None))
        }
        Some(KeySource::Database) => {
            let keyring = Keyring::new(config, store.clone(), finish, gauges, audit)?;
            let keys = keyring.current().await?.ok_or_else(|| {
                StartupError::Io("signing keys: none read from the database".into())
            })?;
            Ok((keys, Some(Arc::new(keyring))))
        }
        Some(KeySource::DataDirectory) => {
            let (keys, created) =
                KeySet::from_data_dir(&config.data_dir, &config.previous_public_keys)?;
            if created {
                tracing::warn!(
                    data_dir = %config.data_dir.display(),
                    kid = keys.kid(),
                    "generated a new signing key pair in the data directory; set key_secrets \
                     (keys in the database) or PRIVATE_KEY and PUBLIC_KEY to share keys between \
                     replicas"
                );
            }
            Ok((finish(keys)?, None))
        }
        None => Err(KeyError::Invalid(NO_KEY_SOURCE.into()).into()),
    }
}

pub fn token_service(config: &Config, keys: KeySet) -> TokenService {
    TokenService::new(
        keys,
        Duration::from_secs(config.client_token_lifetime_secs),
        Duration::from_secs(config.permission_token_lifetime_secs),
    )
    .with_permission_token_reuse(Duration::from_secs(config.permission_token_reuse_secs))
}

/// Connects to the database and applies pending migrations.
pub async fn open_store(config: &Config) -> Result<Store, StartupError> {
    let raw = config.database_url();
    let failed = |error| StartupError::Storage {
        url: redact_url(&raw),
        error,
    };
    // Before the URL is read: the default database's directory exists, so that its path is
    // read as the directory it is in.
    if raw.trim_start().starts_with("sqlite:") {
        crate::private_files::create_dir(&config.data_dir).map_err(|e| {
            StartupError::Io(format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
    }
    let cwd = std::env::current_dir()
        .map_err(|e| StartupError::Io(format!("cannot read the working directory: {e}")))?;
    let resolved = resolve_database_url(&raw, &cwd).map_err(|e| failed(StoreError::Config(e)))?;
    tracing::info!(database = resolved.meaning, "database");
    let url = resolved.url;
    let mut store = Store::connect(&url, config.database_max_connections)
        .await
        .map_err(failed)?;
    // The secret every replica shares authenticates what they announce to one another.
    let shared = match config.key_secrets() {
        secrets if !secrets.is_empty() => secrets,
        _ => config.private_key.iter().map(|k| k.expose()).collect(),
    };
    if let Some(keys) = ChangeKeys::new(shared) {
        store = store.with_change_keys(keys);
    }
    let applied = store.migrate().await.map_err(failed)?;
    if !applied.is_empty() {
        tracing::info!(?applied, "database migrated");
    }
    if !store
        .has_case_insensitive_username_index()
        .await
        .map_err(failed)?
    {
        tracing::warn!(
            "the users table holds usernames that differ only in case, so the database cannot \
             enforce case-insensitive uniqueness; auth-host still refuses new duplicates"
        );
    }
    Ok(store)
}

/// A ready service: everything loaded, nothing listening yet.
pub struct App {
    pub service: Arc<AuthService>,
    /// The keys kept in the database, when they are.
    pub keyring: Option<Arc<Keyring>>,
    pub reloader: Arc<PluginReloader>,
    pub http: Arc<HttpApi>,
}

impl App {
    /// `config_file` is the file `config` was read from, read again by each reload.
    pub async fn build(
        config: &Config,
        config_file: Option<&std::path::Path>,
    ) -> Result<App, StartupError> {
        let store = open_store(config).await?;
        let metrics = Arc::new(Metrics::new());
        // This replica's id: in its audit events, and the holder name of its leases.
        let replica = uuid::Uuid::new_v4().simple().to_string();
        let audit = crate::audit::Audit::new(store.clone(), replica)
            .counting_logins(metrics.logins.clone());
        metrics
            .signing_key_rotation
            .set(i64::try_from(config.key_rotation_secs).unwrap_or(i64::MAX));
        metrics
            .signing_key_in_use_since
            .set(crate::clock::unix_now_i64());
        let (keys, keyring) = load_keys(
            config,
            &store,
            crate::keyring::KeyringGauges {
                refused_rows: metrics.signing_key_rows_refused.clone(),
                clock_skew_ms: metrics.database_clock_skew_ms.clone(),
            },
            Some(audit.clone()),
        )
        .await?;
        let tokens = token_service(config, keys);
        let settings = PluginSettings {
            worker_metrics: metrics.workers.clone(),
            ..PluginSettings::from_config(config)
        };
        // Opening libraries and starting plugins blocks; keep it off the async workers.
        let plugins = tokio::task::spawn_blocking(move || PluginRegistry::load(&settings))
            .await
            .map_err(|e| StartupError::Io(format!("plugin loading stopped: {e}")))?
            .map_err(StartupError::Plugins)?;
        tracing::info!(
            services = ?plugins.services(),
            extensions = plugins.extensions().len(),
            "plugins loaded"
        );
        let logins = logins(config, store.clone())?;
        let service = Arc::new(AuthService::new(
            store,
            tokens,
            logins,
            Arc::new(plugins),
            metrics,
            Duration::from_millis(config.token_cache_ms),
            audit,
        ));
        let reloader = Arc::new(PluginReloader::new(
            Arc::clone(&service),
            config_file.map(std::path::Path::to_path_buf),
        ));
        let admin = config
            .admin_token
            .as_ref()
            .map(|token| AdminAccess::new(AdminToken::new(token.expose()), Arc::clone(&reloader)));
        let http = Arc::new(HttpApi::new(
            Arc::clone(&service),
            admin,
            HttpSettings {
                secure_cookies: config
                    .external_base()
                    .is_some_and(|b| b.starts_with("https://")),
                max_body_bytes: config.max_body_bytes,
                request_timeout: Duration::from_millis(config.request_timeout_ms),
                trusted_proxies: config.trusted_proxies(),
                client_ip_header: config.client_ip_header,
                shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
                cors_origins: config
                    .cors_origins
                    .0
                    .iter()
                    .filter_map(|o| normalize_origin(o).ok())
                    .collect::<HashSet<_>>(),
            },
        ));
        crate::background::start(
            &service,
            keyring.clone(),
            crate::background::Maintenance {
                every: Duration::from_secs(config.maintenance_interval_secs),
                audit_retention: Duration::from_secs(
                    config.audit_retention_days.saturating_mul(24 * 3600),
                ),
                audit_max_events: config.audit_max_events,
            },
        );
        Ok(App {
            service,
            keyring,
            reloader,
            http,
        })
    }
}

/// The login providers, their endpoints and the development login.
fn logins(config: &Config, store: Store) -> Result<Logins, StartupError> {
    let providers = config
        .login_providers()
        .map_err(|problems| StartupError::Io(problems.join("\n")))?;
    if config.dev_login {
        tracing::warn!(
            "the development login is enabled: anyone reaching this server can log in as \
             anyone (allowed only on a loopback external address)"
        );
    }
    Logins::new(
        LoginSettings {
            endpoints: config.external_base().as_deref().map(login_endpoints),
            redirect_origins: config.redirect_origins(),
            providers,
            dev_login: config.dev_login,
            max_unfinished_per_client: config.max_unfinished_logins_per_client,
            extra_ca_pem: match &config.ca_certificates {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                    StartupError::Io(format!("ca_certificates: {}: {e}", path.display()))
                })?),
                None => None,
            },
        },
        store,
    )
    .map_err(StartupError::Io)
}

/// Builds auth-host and serves until SIGINT or SIGTERM; SIGHUP reloads the plugins.
pub async fn serve(
    config: &Config,
    config_file: Option<&std::path::Path>,
) -> Result<(), StartupError> {
    let app = App::build(config, config_file).await?;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let reloader = Arc::clone(&app.reloader);
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        // The outcome is logged and counted by the reloader.
                        let _ = reloader.reload("SIGHUP").await;
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "cannot listen for SIGHUP; no reloads"),
        }
    }
    let mut stops = StopSignals::listen();
    match crate::listening::raise_open_files_limit() {
        Ok((soft, hard)) => tracing::info!(soft, hard, "open files limit"),
        Err(error) => tracing::warn!(%error, "cannot read or raise the open files limit"),
    }
    let (listener, backlog) = crate::listening::bind(config.listen)
        .map_err(|e| StartupError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| StartupError::Io(e.to_string()))?;
    tracing::info!(%address, backlog, "listening");
    let service = Arc::clone(&app.service);
    let delay = Duration::from_millis(config.shutdown_delay_ms);
    app.http
        .serve(listener, async move {
            if stops.stop().await == Stop::Terminate && !delay.is_zero() {
                // Load balancers see the health check fail and stop sending; what they
                // still send meanwhile is served.
                service.start_draining();
                tracing::info!(?delay, "SIGTERM: draining, then stopping");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stops.interrupted() => {
                        tracing::info!("SIGINT: stopping without waiting out the drain");
                    }
                }
            }
            tracing::info!("no longer accepting connections");
        })
        .await;
    // The refusals counted since their rows were stored go into them before the end.
    app.service.audit().flush_counted(true).await;
    // Calls still held by isolated plugins end with the host, and so does what they started.
    crate::plugins::isolation::lifetime::end_all();
    tracing::info!("stopped");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: what orchestrators and `kill` send; drain first.
    Terminate,
    /// Ctrl-C at a terminal: stop at once.
    Interrupt,
}

/// The stop signals, listened to from before the server says it listens: a SIGTERM that
/// arrives right after "listening" drains instead of killing the process outright.
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for {name}");
                    None
                }
            };
            StopSignals {
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The first stop signal.
    async fn stop(&mut self) -> Stop {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = Self::received(&mut self.interrupt) => Stop::Interrupt,
                _ = Self::received(&mut self.terminate) => Stop::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Stop::Interrupt
        }
    }

    /// A SIGINT (during the drain).
    async fn interrupted(&mut self) {
        #[cfg(unix)]
        Self::received(&mut self.interrupt).await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }

    /// Waits for `signal`; forever when it could not be listened to.
    #[cfg(unix)]
    async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
        match signal {
            Some(signal) => {
                // `None` only when the runtime shuts down.
                if signal.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}
