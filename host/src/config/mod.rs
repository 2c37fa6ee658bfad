//! Configuration: built-in defaults, then an optional TOML file (`--config` or
//! `AUTH_CONFIG`), then the environment — the old service's names (`ALLOWED_SERVICES`, ...)
//! and `AUTH_`-prefixed names with `__` for nesting (`AUTH_PLUGINS__EXAMPLE__KEY`).
//!
//! - [`lists`]: `;`-separated lists, `[alias:]name` plugin lists,
//! - [`providers`]: `[providers.<name>]` login providers and their defaults,
//! - [`urls`]: external address, origins, loopback.

mod checks;
mod keys;
mod lists;
mod networks;
mod placement;
mod providers;
mod reader;
mod traces;
mod urls;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::Deserialize;

pub use keys::{KeySource, NO_KEY_SOURCE};
pub use lists::{EntryList, List, PluginEntry};
pub use networks::{ClientIpHeader, IpRange, client_key};
pub use placement::{
    ISOLATION_KEY, Isolation, NETWORK_KEY, READ_PATHS_KEY, SANDBOX_KEY, SandboxMode,
};
pub use providers::{LoginProvider, LoginProviderKind, ProviderTable};
pub use traces::{SamplerKind, TracingSettings};
pub use urls::{is_loopback_url, normalize_external_address, normalize_origin, origin_of};

use crate::tokens::TokenAlgorithm;
use reader::KeyReader;

/// Environment names kept from the old service, mapped to their keys here.
const COMPAT_ENV: &[&str] = &[
    "ALLOWED_SERVICES",
    "INSTALLED_EXTENSIONS",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "DATABASE_URL",
    "EXTERNAL_ADDRESS",
];

/// Every default, in one place.
pub mod defaults {
    use super::*;

    pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8000));
    pub const DATA_DIR: &str = "data";
    pub const DATABASE_MAX_CONNECTIONS: u32 = 16;
    /// 14 days, as the old service.
    pub const CLIENT_TOKEN_LIFETIME_SECS: u64 = 14 * 24 * 60 * 60;
    pub const PERMISSION_TOKEN_LIFETIME_SECS: u64 = 3600;
    pub const TOKEN_CACHE_MS: u64 = 1000;
    pub const MAX_BODY_BYTES: usize = 64 * 1024;
    pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
    pub const PLUGIN_TIMEOUT_MS: u64 = 5_000;
    pub const PLUGIN_MAX_IN_FLIGHT: usize = 256;
    pub const MAX_UNFINISHED_LOGINS_PER_CLIENT: usize = 30;
    pub const PLUGIN_MEMORY_LIMIT_MB: u64 = 2048;
    pub const MAINTENANCE_INTERVAL_SECS: u64 = 60;
    pub const AUDIT_RETENTION_DAYS: u64 = 90;
    /// About 250 MB of rows with their indexes.
    pub const AUDIT_MAX_EVENTS: u64 = 1_000_000;
    /// Long enough for a load balancer checking every second or two to see it.
    pub const SHUTDOWN_DELAY_MS: u64 = 5_000;
    pub const SHUTDOWN_GRACE_MS: u64 = 10_000;
}

/// A guessable admin token would hand out control of the plugins.
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// A value that must never reach a log: `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// A user named by name or id: `nobody`, `65534` (a number when read from the environment)
/// or `65534:65534`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum NameOrId {
    Id(u64),
    Text(String),
}

impl NameOrId {
    fn into_text(self) -> String {
        match self {
            NameOrId::Id(id) => id.to_string(),
            NameOrId::Text(text) => text,
        }
    }
}

/// Every setting. Secrets may live in here (plugin settings, keys): never log it whole.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// Where the generated key pair and the default SQLite database live.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`; default: a SQLite file in `data_dir`.
    pub database_url: Option<Secret>,
    /// Connections in the database pool.
    pub database_max_connections: u32,
    /// `PRIVATE_KEY` / `PUBLIC_KEY`: the RSA key pair, PEM. Both or neither.
    pub private_key: Option<Secret>,
    pub public_key: Option<String>,
    /// Client tokens' signing algorithm.
    pub client_token_algorithm: TokenAlgorithm,
    /// Its private key (PKCS#8 PEM) when not RS256; default: one kept in the data directory.
    pub client_token_private_key: Option<Secret>,
    /// Permission tokens' signing algorithm: RS256 (the default, which services pinning
    /// `/auth/public-key` verify), or ES256/EdDSA for services that read the JWKS.
    pub permission_token_algorithm: TokenAlgorithm,
    /// Its private key (PKCS#8 PEM) when not RS256; default: one kept in the data directory.
    pub permission_token_private_key: Option<Secret>,
    /// Secrets sealing the private keys kept in the database, `;`-separated: the first
    /// seals, all open. Setting them keeps the keys in the database (unless `PRIVATE_KEY`).
    pub key_secrets: Option<Secret>,
    /// How often the keys kept in the database are replaced (0: never).
    pub key_rotation_secs: u64,
    /// Public keys of earlier key pairs, still accepted during a rotation (PEM).
    pub previous_public_keys: Vec<String>,
    /// Whether the old service's client tokens (HS256 under the SHA-256 of `PRIVATE_KEY`)
    /// are accepted; unset: yes when `PRIVATE_KEY` is set.
    pub legacy_client_tokens: Option<bool>,
    /// `EXTERNAL_ADDRESS`: this service's public base address; a bare host name means
    /// `https://HOST`.
    pub external_address: Option<String>,
    /// Origins `next` may point to (default: the origin of `external_address`).
    pub allowed_redirects: List,
    /// Login providers, by name (the name in login URLs and `/auth/check`).
    pub providers: BTreeMap<String, ProviderTable>,
    /// A PEM file of certificate authorities trusted for login providers beyond the bundled
    /// web roots (a corporate identity provider behind a private CA).
    pub ca_certificates: Option<PathBuf>,
    /// The `dev` login provider: log in as anyone with a form. Loopback `external_address`
    /// only.
    pub dev_login: bool,
    /// Lifetime of client tokens and permission tokens.
    pub client_token_lifetime_secs: u64,
    pub permission_token_lifetime_secs: u64,
    /// Within this many seconds, the same user, service and permissions get the permission
    /// token already signed (0: always sign anew); at most half the permission lifetime.
    pub permission_token_reuse_secs: u64,
    /// How long a verified client token is trusted without checking it again (0: never).
    pub token_cache_ms: u64,
    /// Origins allowed to call the API from a browser (CORS).
    pub cors_origins: List,
    /// Proxies (addresses or CIDR blocks) whose `client_ip_header` says who the client is;
    /// any other peer is the client itself.
    pub trusted_proxies: List,
    /// The one header trusted proxies name the client in: `x-forwarded-for` or `forwarded`
    /// (default `none`: no header is read).
    pub client_ip_header: ClientIpHeader,
    /// Logins one client may have started and not finished (429 beyond).
    pub max_unfinished_logins_per_client: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may take end to end.
    pub request_timeout_ms: u64,
    /// Where `lib<name>.so` files are looked up: one directory, or several separated by
    /// `:` and searched in order (an operator's directory before the bundled plugins').
    /// Default: the directory of the `auth-host` executable.
    pub plugin_dir: Option<PathBuf>,
    /// `ALLOWED_SERVICES`: `[alias:]provider;...`
    pub allowed_services: EntryList,
    /// `INSTALLED_EXTENSIONS`: `[alias:]extension;...`, run in this order.
    pub installed_extensions: EntryList,
    /// Time limit of one plugin call, in milliseconds.
    pub plugin_timeout_ms: u64,
    /// Calls one plugin alias may have in flight at once.
    pub plugin_max_in_flight: usize,
    /// Where plugin aliases run: in auth-host's process, or each in a worker process.
    pub plugin_isolation: Isolation,
    /// Address-space limit of each plugin worker process, in MiB (0: none).
    pub plugin_memory_limit_mb: u64,
    /// How isolated plugins are confined (`strict`, `available` or `off`), unless their
    /// `[plugins.<alias>] sandbox` says otherwise.
    pub plugin_sandbox: SandboxMode,
    /// The user isolated workers run as when auth-host runs as root: a name, `uid` or
    /// `uid:gid`.
    pub plugin_user: Option<String>,
    /// `[plugins.<alias>]`: settings handed to that alias' plugin at load.
    pub plugins: BTreeMap<String, serde_json::Value>,
    /// Bearer token of `POST /admin/reload`; without it there is no admin endpoint.
    pub admin_token: Option<Secret>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// How often expired rows are purged (by one replica at a time).
    pub maintenance_interval_secs: u64,
    /// How long audit events are kept (purged with the expired rows).
    pub audit_retention_days: u64,
    /// The most audit events kept (the oldest deleted beyond it); 0: no bound.
    pub audit_max_events: u64,
    /// On SIGTERM: how long `/auth/health` says "draining" while requests are still
    /// served, so that load balancers take the replica out first.
    pub shutdown_delay_ms: u64,
    /// Then: how long requests in flight may take to finish.
    pub shutdown_grace_ms: u64,
    /// `[tracing]`: OpenTelemetry traces (off unless an endpoint is set).
    pub tracing: TracingSettings,
}

/// Problems found in the configuration, one message each (key, what is wrong, what is
/// expected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "configuration error: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Variables outside `AUTH_` that set a nested key, with that key: the old service's names of
/// its OAuth clients, and OpenTelemetry's standard names.
fn named_env() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    [providers::COMPAT_ENV, traces::OTEL_ENV]
        .into_iter()
        .flatten()
}

/// The key such a variable sets, if `variable` is one.
fn key_of_env(variable: &str) -> Option<&'static str> {
    named_env()
        .find(|(name, _)| variable.eq_ignore_ascii_case(name))
        .map(|(_, key)| *key)
}

/// The variable outside `AUTH_` that sets `key`, if one does.
fn env_name_of(key: &str) -> Option<&'static str> {
    named_env().find(|(_, k)| *k == key).map(|(name, _)| *name)
}

impl Config {
    /// Reads the configuration from `file` (or `AUTH_CONFIG`) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigErrors> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("AUTH_CONFIG").map(PathBuf::from));
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigErrors(vec![format!(
                    "configuration file {} does not exist or is not a file",
                    file.display()
                )]));
            }
            // Read alone first, so that a file that does not parse is named in the message.
            if let Err(error) = figment::Provider::data(&Toml::file(&file)) {
                return Err(ConfigErrors(vec![format!(
                    "configuration file {}: {}",
                    file.display(),
                    error.kind
                )]));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::raw().only(COMPAT_ENV))
            .merge(
                Env::raw()
                    .filter_map(|key| key_of_env(key.as_str()).map(Into::into))
                    .split("."),
            )
            .merge(Env::prefixed("AUTH_").split("__").ignore(&["CONFIG"]));
        let mut config = Self::from_figment(figment)?;
        // figment trims environment values; the old service derived its client-token key
        // from the private key's exact text, trailing newline included.
        if let Some(exact) = ["AUTH_PRIVATE_KEY", "PRIVATE_KEY"]
            .iter()
            .find_map(|name| std::env::var(name).ok())
        {
            config.private_key = Some(Secret(exact));
        }
        Ok(config)
    }

    /// Extracts and validates a configuration. Each key is read on its own, so that every
    /// bad key is reported, not only the first.
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigErrors> {
        // A file that does not parse fails every key alike: say it once.
        if let Err(error) = figment::Provider::data(&figment) {
            return Err(ConfigErrors(
                error.into_iter().map(reader::describe).collect(),
            ));
        }
        let mut keys = KeyReader::new(&figment);
        let config = Config {
            listen: keys.get("listen").unwrap_or(defaults::LISTEN),
            data_dir: keys
                .get("data_dir")
                .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR)),
            database_url: keys.get("database_url"),
            database_max_connections: keys
                .get("database_max_connections")
                .unwrap_or(defaults::DATABASE_MAX_CONNECTIONS),
            private_key: keys.get("private_key"),
            public_key: keys.get("public_key"),
            key_secrets: keys.get("key_secrets"),
            key_rotation_secs: keys.get("key_rotation_secs").unwrap_or(0),
            previous_public_keys: keys.get("previous_public_keys").unwrap_or_default(),
            legacy_client_tokens: keys.get("legacy_client_tokens"),
            client_token_algorithm: keys.get("client_token_algorithm").unwrap_or_default(),
            client_token_private_key: keys.get("client_token_private_key"),
            permission_token_algorithm: keys.get("permission_token_algorithm").unwrap_or_default(),
            permission_token_private_key: keys.get("permission_token_private_key"),
            external_address: keys.get("external_address"),
            allowed_redirects: keys.get("allowed_redirects").unwrap_or_default(),
            providers: keys.get("providers").unwrap_or_default(),
            ca_certificates: keys.get("ca_certificates"),
            dev_login: keys.get("dev_login").unwrap_or(false),
            client_token_lifetime_secs: keys
                .get("client_token_lifetime_secs")
                .unwrap_or(defaults::CLIENT_TOKEN_LIFETIME_SECS),
            permission_token_lifetime_secs: keys
                .get("permission_token_lifetime_secs")
                .unwrap_or(defaults::PERMISSION_TOKEN_LIFETIME_SECS),
            permission_token_reuse_secs: keys.get("permission_token_reuse_secs").unwrap_or(0),
            token_cache_ms: keys
                .get("token_cache_ms")
                .unwrap_or(defaults::TOKEN_CACHE_MS),
            cors_origins: keys.get("cors_origins").unwrap_or_default(),
            trusted_proxies: keys.get("trusted_proxies").unwrap_or_default(),
            client_ip_header: keys.get("client_ip_header").unwrap_or_default(),
            max_unfinished_logins_per_client: keys
                .get("max_unfinished_logins_per_client")
                .unwrap_or(defaults::MAX_UNFINISHED_LOGINS_PER_CLIENT),
            max_body_bytes: keys
                .get("max_body_bytes")
                .unwrap_or(defaults::MAX_BODY_BYTES),
            request_timeout_ms: keys
                .get("request_timeout_ms")
                .unwrap_or(defaults::REQUEST_TIMEOUT_MS),
            plugin_dir: keys.get("plugin_dir"),
            allowed_services: keys.get("allowed_services").unwrap_or_default(),
            installed_extensions: keys.get("installed_extensions").unwrap_or_default(),
            plugin_timeout_ms: keys
                .get("plugin_timeout_ms")
                .unwrap_or(defaults::PLUGIN_TIMEOUT_MS),
            plugin_max_in_flight: keys
                .get("plugin_max_in_flight")
                .unwrap_or(defaults::PLUGIN_MAX_IN_FLIGHT),
            plugin_isolation: keys.get("plugin_isolation").unwrap_or_default(),
            plugin_memory_limit_mb: keys
                .get("plugin_memory_limit_mb")
                .unwrap_or(defaults::PLUGIN_MEMORY_LIMIT_MB),
            plugin_sandbox: keys.get("plugin_sandbox").unwrap_or_default(),
            // A bare uid from the environment arrives as a number.
            plugin_user: keys.get::<NameOrId>("plugin_user").map(NameOrId::into_text),
            plugins: keys.get("plugins").unwrap_or_default(),
            admin_token: keys.get("admin_token"),
            log_format: keys.get("log_format").unwrap_or_default(),
            maintenance_interval_secs: keys
                .get("maintenance_interval_secs")
                .unwrap_or(defaults::MAINTENANCE_INTERVAL_SECS),
            audit_retention_days: keys
                .get("audit_retention_days")
                .unwrap_or(defaults::AUDIT_RETENTION_DAYS),
            audit_max_events: keys
                .get("audit_max_events")
                .unwrap_or(defaults::AUDIT_MAX_EVENTS),
            shutdown_delay_ms: keys
                .get("shutdown_delay_ms")
                .unwrap_or(defaults::SHUTDOWN_DELAY_MS),
            shutdown_grace_ms: keys
                .get("shutdown_grace_ms")
                .unwrap_or(defaults::SHUTDOWN_GRACE_MS),
            tracing: keys.get("tracing").unwrap_or_default(),
        };
        let mut problems = keys.into_problems();
        problems.extend(config.problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// The `PRIVATE_KEY` text that keys the old service's client tokens, when they are
    /// accepted.
    pub fn legacy_client_token_key(&self) -> Option<&str> {
        match self.legacy_client_tokens {
            Some(false) => None,
            _ => self.private_key.as_ref().map(Secret::expose),
        }
    }

    /// The database in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            // SQLAlchemy's form, which no reading mistakes: `sqlite:///rel` or
            // `sqlite:////abs`.
            None => format!("sqlite:///{}", self.data_dir.join("auth-host.db").display()),
        }
    }

    /// `EXTERNAL_ADDRESS` as a base URL without a trailing `/`.
    pub fn external_base(&self) -> Option<String> {
        self.external_address
            .as_deref()
            .and_then(|a| normalize_external_address(a).ok())
    }

    /// The login providers, checked; every problem found otherwise.
    pub fn login_providers(&self) -> Result<Vec<LoginProvider>, Vec<String>> {
        let mut resolved = Vec::new();
        let mut problems = Vec::new();
        for (name, table) in &self.providers {
            match providers::resolve(name, table) {
                Ok(provider) => resolved.push(provider),
                Err(problem) => problems.push(format!("providers.{name}: {problem}")),
            }
        }
        if !self.providers.is_empty() && self.external_base().is_none() {
            problems.push(
                "external_address (EXTERNAL_ADDRESS): required when login providers are \
                 configured, to build their callback URL"
                    .to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(problems)
        }
    }

    /// Origins `next` may point to.
    pub fn redirect_origins(&self) -> Vec<String> {
        if self.allowed_redirects.0.is_empty() {
            self.external_base()
                .and_then(|base| origin_of(&base))
                .into_iter()
                .collect()
        } else {
            self.allowed_redirects
                .0
                .iter()
                .filter_map(|o| normalize_origin(o).ok())
                .collect()
        }
    }

    /// The proxies whose forwarding headers are believed.
    pub fn trusted_proxies(&self) -> Vec<IpRange> {
        self.trusted_proxies
            .0
            .iter()
            .filter_map(|p| IpRange::parse(p).ok())
            .collect()
    }

    /// The plugin directories in effect, in search order.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        let listed: Vec<PathBuf> = self
            .plugin_dir
            .iter()
            .flat_map(std::env::split_paths)
            .filter(|dir| !dir.as_os_str().is_empty())
            .collect();
        if !listed.is_empty() {
            return listed;
        }
        vec![
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from(".")),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's `Jail` closures return its large error type
mod tests;
