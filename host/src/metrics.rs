//! Prometheus metrics, served at `/auth/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's name (`check`, `authorize`, …), never the raw path.
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    pub alias: String,
    /// `ok`, `error`, `panic`, `timeout`, `busy`, `invalid`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `client` or `permission`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AliasLabels {
    pub alias: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerStartLabels {
    pub alias: String,
    /// `load` (start-up, reload) or `restart` (after the last one ended).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerExitLabels {
    pub alias: String,
    /// `signal`, `exit`, `timeout` (killed at the call time limit) or `other`.
    pub cause: &'static str,
}

/// What isolated plugins' supervisors count; a cheap handle (the families are shared).
#[derive(Clone, Debug, Default)]
pub struct WorkerMetrics {
    pub starts: Family<WorkerStartLabels, Counter>,
    pub exits: Family<WorkerExitLabels, Counter>,
    /// 1 while the alias' worker is in a crash loop.
    pub crash_loop: Family<AliasLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `failed`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    /// The login provider (`unknown` when the state named none that is known).
    pub provider: String,
    /// `success`, `refused` or `failure`, as in the audit trail.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Logins ended, by provider and outcome.
    pub logins: Family<LoginLabels, Counter>,
    /// Client-token lookups answered from the token cache, and not: the two series of
    /// `token_cache_lookups`, looked up once (every authenticated request counts one).
    pub token_cache_hits: Counter,
    pub token_cache_misses: Counter,
    /// Requests that failed because the database did.
    pub database_errors: Counter,
    /// Unix time this replica put its current signing key in use.
    pub signing_key_in_use_since: Gauge,
    /// `key_rotation_secs` (0: no rotation), for the "rotation stalled" alert.
    pub signing_key_rotation: Gauge,
    pub plugin_reloads: Family<ReloadLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    /// Requests cut at `request_timeout` (also counted as 503s of their route).
    pub request_timeouts: Family<RouteLabels, Counter>,
    pub plugin_calls: Family<PluginCallLabels, Counter>,
    pub plugin_call_seconds: Family<AliasLabels, Histogram>,
    pub workers: WorkerMetrics,
    pub tokens_issued: Family<TokenLabels, Counter>,
    pub plugins_loaded: Gauge,
    /// Client tokens of the old service accepted: when it stays at zero, they are all gone.
    pub legacy_client_tokens: Counter,
    /// Purges of expired rows this replica ran (while holding the maintenance lease).
    pub maintenance_runs: Counter,
    /// Times this replica put a new set of signing keys in use (rotation).
    pub signing_key_changes: Counter,
    /// `signing_keys` rows not authenticated under `key_secrets` at the last look.
    pub signing_key_rows_refused: Gauge,
    /// Milliseconds this machine's clock is ahead of the database's (PostgreSQL).
    pub database_clock_skew_ms: Gauge,
    /// Notifications heard that were not authenticated (ignored).
    pub notifications_refused: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("auth_host");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 100 µs … ~3.3 s
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            request_seconds.clone(),
        );
        let request_timeouts = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_request_timeouts",
            "Requests cut at request_timeout (answered 503, and counted under their route)",
            request_timeouts.clone(),
        );
        let plugin_calls = Family::<PluginCallLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls by outcome",
            plugin_calls.clone(),
        );
        let plugin_call_seconds = Family::<AliasLabels, Histogram>::new_with_constructor(|| {
            // 10 µs … ~5 s
            Histogram::new(exponential_buckets(0.00001, 2.5, 15))
        });
        registry.register(
            "plugin_call_duration_seconds",
            "Time of a plugin call, as the caller waited for it",
            plugin_call_seconds.clone(),
        );
        let workers = WorkerMetrics::default();
        registry.register(
            "plugin_worker_starts",
            "Isolated plugin worker processes started",
            workers.starts.clone(),
        );
        registry.register(
            "plugin_worker_exits",
            "Isolated plugin worker processes that ended while in use, by cause",
            workers.exits.clone(),
        );
        registry.register(
            "plugin_worker_crash_loop",
            "1 while an isolated plugin's worker keeps crashing",
            workers.crash_loop.clone(),
        );
        let tokens_issued = Family::<TokenLabels, Counter>::default();
        registry.register("tokens_issued", "Tokens signed", tokens_issued.clone());
        let plugins_loaded = Gauge::default();
        registry.register(
            "plugins_loaded",
            "Plugin aliases loaded",
            plugins_loaded.clone(),
        );
        let plugin_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "plugin_reloads",
            "Plugin reloads (SIGHUP or /admin/reload) by result",
            plugin_reloads.clone(),
        );
        let legacy_client_tokens = Counter::default();
        registry.register(
            "legacy_client_tokens_accepted",
            "Client tokens of the old service accepted",
            legacy_client_tokens.clone(),
        );
        let maintenance_runs = Counter::default();
        registry.register(
            "maintenance_runs",
            "Purges of expired rows run by this replica (one replica at a time holds the lease)",
            maintenance_runs.clone(),
        );
        let signing_key_changes = Counter::default();
        registry.register(
            "signing_key_changes",
            "New sets of signing keys put in use (rotation, keys made by another replica)",
            signing_key_changes.clone(),
        );
        let signing_key_rows_refused = Gauge::default();
        registry.register(
            "signing_key_rows_refused",
            "signing_keys rows not authenticated under key_secrets at the last look (never \
             published, never used)",
            signing_key_rows_refused.clone(),
        );
        let database_clock_skew_ms = Gauge::default();
        registry.register(
            "database_clock_skew_milliseconds",
            "How far this machine's clock is ahead of the database's (negative: behind), at \
             the last look at the signing keys; keys are scheduled by the database's clock",
            database_clock_skew_ms.clone(),
        );
        let notifications_refused = Counter::default();
        registry.register(
            "notifications_refused",
            "Notifications from the database that were not authenticated under the shared \
             secret (ignored)",
            notifications_refused.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Logins ended, by provider and outcome",
            logins.clone(),
        );
        let token_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "token_cache_lookups",
            "Client-token lookups, answered from the token cache (hit) or not (miss)",
            token_cache.clone(),
        );
        let database_errors = Counter::default();
        registry.register(
            "database_errors",
            "Requests that failed because the database did",
            database_errors.clone(),
        );
        let signing_key_in_use_since = Gauge::default();
        registry.register(
            "signing_key_in_use_since_seconds",
            "Unix time this replica put its current signing key in use",
            signing_key_in_use_since.clone(),
        );
        let signing_key_rotation = Gauge::default();
        registry.register(
            "signing_key_rotation_seconds",
            "key_rotation_secs: how often the signing key is replaced (0: never)",
            signing_key_rotation.clone(),
        );
        let token_cache_hits = token_cache
            .get_or_create(&CacheLabels { result: "hit" })
            .clone();
        let token_cache_misses = token_cache
            .get_or_create(&CacheLabels { result: "miss" })
            .clone();
        Metrics {
            registry,
            logins,
            token_cache_hits,
            token_cache_misses,
            database_errors,
            signing_key_in_use_since,
            signing_key_rotation,
            signing_key_rows_refused,
            database_clock_skew_ms,
            notifications_refused,
            maintenance_runs,
            signing_key_changes,
            legacy_client_tokens,
            plugin_reloads,
            requests,
            request_seconds,
            request_timeouts,
            plugin_calls,
            plugin_call_seconds,
            workers,
            tokens_issued,
            plugins_loaded,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
