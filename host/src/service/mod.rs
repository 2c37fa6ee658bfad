//! What auth-host does, independent of HTTP: one call per use case.
//!
//! - [`session`]: who a client token belongs to (`/auth/check`), logout, the token cache,
//! - [`login`]: starting and finishing logins, creating or refreshing the user,
//! - [`hooks`]: running the extensions' lifecycle hooks,
//! - [`permissions`]: what a user may do in a service (`/auth/authorize`),
//! - [`profile`]: choosing a username, looking users up.

mod cache;
mod hooks;
mod login;
mod permissions;
mod profile;
mod session;

use crate::audit::Audit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use permissions::Authorization;
pub use profile::{UpdateOutcome, UpdateRefusal};
pub use session::CheckAnswer;

use crate::error::{Error, Result};
use crate::login::Logins;
use crate::metrics::{Metrics, PluginCallLabels, TokenLabels};
use crate::plugins::{PluginCallError, PluginRegistry};
use crate::storage::{Change, Store};
use crate::tokens::TokenService;
use cache::AuthCache;

/// What `/auth/health` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Shutting down: still answering, but no new work should come.
    pub draining: bool,
    pub database: bool,
    /// Why the audit trail cannot be written, while its last write failed: logins fail
    /// (nothing is reported done unless on record), tokens still verify.
    pub audit: Option<&'static str>,
    /// Isolated plugin aliases in a crash loop.
    pub crash_loops: Vec<String>,
}

pub struct AuthService {
    store: Store,
    /// Shared with the blocking threads that sign permission tokens.
    tokens: Arc<TokenService>,
    logins: Logins,
    /// Swapped whole on a reload; a request keeps the registry it started with, so calls
    /// in flight finish on the plugins they began on.
    plugins: RwLock<Arc<PluginRegistry>>,
    metrics: Arc<Metrics>,
    cache: AuthCache,
    /// Set on SIGTERM: `/auth/health` says not ready, so load balancers stop sending.
    draining: AtomicBool,
    audit: Audit,
    /// When the database was last looked at, and whether it answered. Held across a look,
    /// so that callers arriving meanwhile (health checks, timed-out requests) wait for its
    /// answer instead of each pinging the database.
    database_look: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

/// How long a look at the database stands (for `/auth/health`, and for telling a time-out
/// the database caused from another).
const DATABASE_LOOK_STANDS: Duration = Duration::from_secs(1);

/// How long a look may take: during an outage the pool's own wait is 5 s, longer than many
/// balancers' health-check time-out, which then saw no answer at all instead of a 503.
const DATABASE_LOOK_LIMIT: Duration = Duration::from_secs(1);

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl AuthService {
    /// `auth_cache` bounds how long a verified client token is trusted without checking
    /// it again (zero: never).
    pub fn new(
        store: Store,
        tokens: TokenService,
        logins: Logins,
        plugins: Arc<PluginRegistry>,
        metrics: Arc<Metrics>,
        auth_cache: Duration,
        audit: Audit,
    ) -> Self {
        let service = AuthService {
            cache: AuthCache::new(auth_cache, !store.announces_changes()),
            store,
            tokens: Arc::new(tokens),
            logins,
            plugins: RwLock::new(plugins),
            metrics,
            draining: AtomicBool::new(false),
            audit,
            database_look: tokio::sync::Mutex::new(None),
        };
        service.count_loaded_plugins();
        service
    }

    /// The audit trail (and this replica's id).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The plugins in force now.
    pub fn plugins(&self) -> Arc<PluginRegistry> {
        match self.plugins.read() {
            Ok(plugins) => Arc::clone(&plugins),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a set of plugins in force (at start, and on each reload).
    pub fn replace_plugins(&self, plugins: Arc<PluginRegistry>) {
        match self.plugins.write() {
            Ok(mut current) => *current = plugins,
            Err(poisoned) => *poisoned.into_inner() = plugins,
        }
        self.count_loaded_plugins();
    }

    fn count_loaded_plugins(&self) {
        let plugins = self.plugins();
        let loaded = plugins.services().len() + plugins.extensions().len();
        self.metrics.plugins_loaded.set(loaded as i64);
    }

    /// The current public key, PEM (`/auth/public-key`).
    pub fn public_key(&self) -> String {
        self.tokens.keys().public_pem().to_owned()
    }

    /// Every public key tokens verify with, as a JWK set (`jwks.json`).
    pub fn jwks(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self.tokens.keys().jwks())
            .map_err(|e| Error::Internal(format!("cannot serialize the JWKS: {e}")))
    }

    /// `/auth/health`: whether the database answers, and which isolated plugins keep
    /// crashing (auth-host itself is fine then: their calls fail, nothing else).
    pub async fn health(&self) -> Health {
        let database = self.database_answers().await;
        let plugins = self.plugins();
        Health {
            draining: self.is_draining(),
            database,
            audit: self.audit.unwritable(),
            crash_loops: plugins
                .crash_loops()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Whether the database answers: a look at most [`DATABASE_LOOK_STANDS`] old, or a new
    /// one that waits at most [`DATABASE_LOOK_LIMIT`].
    pub async fn database_answers(&self) -> bool {
        let mut look = self.database_look.lock().await;
        if let Some((at, answers)) = *look
            && at.elapsed() < DATABASE_LOOK_STANDS
        {
            return answers;
        }
        let answers = match tokio::time::timeout(DATABASE_LOOK_LIMIT, self.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "database unreachable");
                false
            }
            Err(_) => {
                tracing::warn!(limit = ?DATABASE_LOOK_LIMIT, "database did not answer in time");
                false
            }
        };
        *look = Some((std::time::Instant::now(), answers));
        answers
    }

    /// A change another replica made (or the state of the listener hearing them).
    pub fn heard(&self, change: Change) {
        if change == Change::Refused {
            // Counted, and nothing else: a forged notification changes nothing here.
            self.metrics.notifications_refused.inc();
            return;
        }
        self.cache.heard(&change);
    }

    /// From now on `/auth/health` reports this replica as shutting down.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Issues a client token for a user (login, or `auth-host token issue`).
    pub fn issue_client_token(&self, userid: &str) -> Result<String> {
        let (token, _) = self
            .tokens
            .issue_client_token(userid)
            .map_err(Error::Signing)?;
        self.count_token("client");
        Ok(token)
    }

    fn count_token(&self, kind: &'static str) {
        self.metrics
            .tokens_issued
            .get_or_create(&TokenLabels { kind })
            .inc();
    }

    /// A plugin call that took `took` (from the call's start to its answer).
    fn count_plugin_call<T>(
        &self,
        alias: &str,
        took: std::time::Duration,
        answer: &std::result::Result<T, PluginCallError>,
    ) {
        self.metrics
            .plugin_call_seconds
            .get_or_create(&crate::metrics::AliasLabels {
                alias: alias.to_owned(),
            })
            .observe(took.as_secs_f64());
        let outcome = match answer {
            Ok(_) => "ok",
            Err(PluginCallError::Failed { .. }) => "error",
            Err(PluginCallError::Panicked { .. }) => "panic",
            Err(PluginCallError::TimedOut { .. }) => "timeout",
            Err(PluginCallError::Busy { .. }) => "busy",
            Err(PluginCallError::InvalidAnswer { .. }) => "invalid",
            Err(PluginCallError::Crashed { .. }) => "crashed",
            Err(PluginCallError::Restarting { .. }) => "restarting",
        };
        self.metrics
            .plugin_calls
            .get_or_create(&PluginCallLabels {
                alias: alias.to_owned(),
                outcome,
            })
            .inc();
    }
}
