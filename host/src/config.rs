//! Configuration: built-in defaults, then an optional TOML file (`--config` or
//! `AUTH_CONFIG`), then the environment — the old service's names (`ALLOWED_SERVICES`, ...)
//! and `AUTH_`-prefixed names with `__` for nesting (`AUTH_PLUGINS__EXAMPLE__KEY`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::plugins::{EntryList, PluginSettings};

/// Environment names kept from the old service, mapped to their keys here.
const COMPAT_ENV: &[&str] = &[
    "ALLOWED_SERVICES",
    "INSTALLED_EXTENSIONS",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "DATABASE_URL",
    "EXTERNAL_ADDRESS",
];

/// The old service's names for the Google and GitHub OAuth clients.
const COMPAT_PROVIDER_ENV: &[(&str, &str)] = &[
    ("GOOGLE_KEY", "providers.google.client_id"),
    ("GOOGLE_SECRET", "providers.google.client_secret"),
    ("GITHUB_KEY", "providers.github.client_id"),
    ("GITHUB_SECRET", "providers.github.client_secret"),
];

/// What kind of login provider a `[providers.<name>]` table describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect with issuer `https://accounts.google.com`.
    Google,
    /// OAuth2 plus GitHub's REST API (`/user`, `/user/emails`).
    Github,
    /// Any OpenID Connect provider, found by discovery from its issuer.
    Oidc,
}

/// A `[providers.<name>]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderTable {
    pub kind: Option<ProviderKind>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// OpenID Connect issuer (google: default `https://accounts.google.com`; oidc: required).
    pub issuer: Option<String>,
    /// GitHub endpoints, for GitHub Enterprise.
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
    pub scopes: Option<List>,
    pub display_name: Option<String>,
}

/// A login provider, checked and with every default filled in.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    /// OpenID Connect issuer (google, oidc).
    pub issuer: Option<String>,
    /// GitHub endpoints.
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
}

/// A value that must never reach a log: `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `;`-separated text or a TOML list, as a list of trimmed, non-empty items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Items(Vec<String>),
        }
        let items = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text.split(';').map(str::to_owned).collect(),
            Raw::Items(items) => items,
        };
        Ok(List(
            items
                .into_iter()
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect(),
        ))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
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
    /// Client tokens' signing algorithm (permission tokens are always RS256).
    pub client_token_algorithm: crate::tokens::ClientAlgorithm,
    /// Its private key (PKCS#8 PEM) when not RS256; default: one kept in the data directory.
    pub client_token_private_key: Option<Secret>,
    /// Public keys of earlier key pairs, still accepted during a rotation (PEM).
    pub previous_public_keys: Vec<String>,
    /// `EXTERNAL_ADDRESS`: this service's public base address; a bare host name means
    /// `https://HOST`.
    pub external_address: Option<String>,
    /// Origins `next` may point to (default: the origin of `external_address`).
    pub allowed_redirects: List,
    /// Login providers, by name (the name in login URLs and `/auth/check`).
    pub providers: BTreeMap<String, ProviderTable>,
    /// The `dev` provider: log in as anyone with a form. Loopback `external_address` only.
    pub dev_login: bool,
    /// Lifetime of client tokens (default 14 days) and permission tokens (default 1 hour).
    pub client_token_lifetime_secs: u64,
    pub permission_token_lifetime_secs: u64,
    /// How long a verified client token is trusted without checking it again (0: never).
    pub token_cache_ms: u64,
    /// Origins allowed to call the API from a browser (CORS).
    pub cors_origins: List,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may take end to end.
    pub request_timeout_ms: u64,
    /// Where `lib<name>.so` files are looked up. Default: the directory of the
    /// `auth-host` executable.
    pub plugin_dir: Option<PathBuf>,
    /// `ALLOWED_SERVICES`: `[alias:]provider;...`
    pub allowed_services: EntryList,
    /// `INSTALLED_EXTENSIONS`: `[alias:]extension;...`, run in this order.
    pub installed_extensions: EntryList,
    /// Time limit of one plugin call, in milliseconds.
    pub plugin_timeout_ms: u64,
    /// Calls one plugin alias may have in flight at once.
    pub plugin_max_in_flight: usize,
    /// `[plugins.<alias>]`: settings handed to that alias' plugin at load.
    pub plugins: BTreeMap<String, serde_json::Value>,
    /// Bearer token of `POST /admin/reload`; without it there is no admin endpoint.
    pub admin_token: Option<Secret>,
    /// `human` or `json`.
    pub log_format: LogFormat,
}

const DAY: u64 = 24 * 60 * 60;

/// A guessable admin token would hand out control of the plugins.
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000))
}

fn default_plugin_timeout_ms() -> u64 {
    5_000
}

fn default_plugin_max_in_flight() -> usize {
    256
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

/// `https://HOST` for a bare host name (as the old service read it); otherwise the URL
/// itself, which must be http(s) with a host, without a trailing `/`.
pub fn normalize_external_address(address: &str) -> Result<String, String> {
    let address = address.trim().trim_end_matches('/');
    if address.is_empty() {
        return Err("is empty".into());
    }
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("https://{address}")
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{address}` must be a host name or an http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{address}` has no host"));
    }
    Ok(url)
}

/// Checks one provider table and fills in its defaults.
fn resolve_provider(name: &str, table: &ProviderTable) -> Result<Provider, String> {
    if name == "dev" {
        return Err("`dev` is the name of the development login (dev_login)".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("names are letters, digits, `_` and `-`".into());
    }
    let kind = match (table.kind, name) {
        (Some(kind), _) => kind,
        (None, "google") => ProviderKind::Google,
        (None, "github") => ProviderKind::Github,
        (None, _) => return Err("kind: expected `google`, `github` or `oidc`".into()),
    };
    let (client_id, client_secret) = match (&table.client_id, &table.client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.expose().is_empty() => {
            (id.clone(), secret.clone())
        }
        _ => {
            let names = match name {
                "google" => " (GOOGLE_KEY and GOOGLE_SECRET)",
                "github" => " (GITHUB_KEY and GITHUB_SECRET)",
                _ => "",
            };
            return Err(format!(
                "client_id and client_secret are both required{names}"
            ));
        }
    };
    let url_setting =
        |key: &str, value: &Option<String>, default: &str| -> Result<String, String> {
            let url = value.clone().unwrap_or_else(|| default.to_owned());
            check_provider_url(&url).map_err(|problem| format!("{key}: {problem}"))?;
            Ok(url.trim_end_matches('/').to_owned())
        };
    let mut provider = Provider {
        name: name.to_owned(),
        kind,
        display_name: table.display_name.clone().unwrap_or_else(|| match kind {
            ProviderKind::Google => "Google".into(),
            ProviderKind::Github => "GitHub".into(),
            ProviderKind::Oidc => name.to_owned(),
        }),
        client_id,
        client_secret,
        scopes: Vec::new(),
        issuer: None,
        auth_url: None,
        token_url: None,
        api_url: None,
    };
    match kind {
        ProviderKind::Google | ProviderKind::Oidc => {
            let issuer = match (kind, &table.issuer) {
                (ProviderKind::Oidc, None) => return Err("issuer: required for kind oidc".into()),
                (_, issuer) => url_setting("issuer", issuer, "https://accounts.google.com")?,
            };
            provider.issuer = Some(issuer);
            provider.scopes = table
                .scopes
                .clone()
                .map(|l| l.0)
                .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
            if !provider.scopes.iter().any(|s| s == "openid") {
                provider.scopes.insert(0, "openid".into());
            }
        }
        ProviderKind::Github => {
            provider.auth_url = Some(url_setting(
                "auth_url",
                &table.auth_url,
                "https://github.com/login/oauth/authorize",
            )?);
            provider.token_url = Some(url_setting(
                "token_url",
                &table.token_url,
                "https://github.com/login/oauth/access_token",
            )?);
            provider.api_url = Some(url_setting(
                "api_url",
                &table.api_url,
                "https://api.github.com",
            )?);
            provider.scopes = table
                .scopes
                .clone()
                .map(|l| l.0)
                .unwrap_or_else(|| vec!["read:user".into(), "user:email".into()]);
        }
    }
    Ok(provider)
}

/// Provider endpoints are https; plain http only on a loopback address.
fn check_provider_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if is_loopback_url(url) => Ok(()),
        "http" => Err(format!(
            "`{url}`: plain http is only allowed on a loopback address"
        )),
        _ => Err(format!("`{url}` must be an https URL")),
    }
}

/// Whether the URL's host is a loopback address (or `localhost`).
pub fn is_loopback_url(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `scheme://host[:port]` of a URL, lower-case.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// An origin is `scheme://host[:port]`, with nothing after it; returned as browsers
/// serialize it (lower-case host, no default port), the form `origin_of` gives.
pub fn normalize_origin(origin: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected scheme://host[:port], with no path";
    let parsed = url::Url::parse(origin.trim()).map_err(|_| EXPECTED.to_owned())?;
    let bare = parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none();
    if !matches!(parsed.scheme(), "http" | "https") || !bare || !parsed.username().is_empty() {
        return Err(EXPECTED.into());
    }
    origin_of(origin.trim()).ok_or_else(|| EXPECTED.to_owned())
}

/// Reads one key at a time, collecting problems.
struct Keys<'a> {
    figment: &'a Figment,
    problems: Vec<String>,
}

impl Keys<'_> {
    /// The key's value; `None` when it is not set or (with a problem noted) invalid.
    fn get<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        match self.figment.extract_inner::<T>(key) {
            Ok(value) => Some(value),
            Err(error) if error.missing() => None,
            Err(error) => {
                for mut problem in error {
                    // Errors raised by our own parsing (e.g. `[alias:]name` lists) come
                    // without their key and source: add them.
                    if problem.path.is_empty() {
                        problem.path = key.split('.').map(str::to_owned).collect();
                    }
                    if problem.metadata.is_none() {
                        problem.metadata = self.figment.find_metadata(key).cloned();
                    }
                    self.problems.push(describe(problem));
                }
                None
            }
        }
    }
}

/// "key (where it was set): what is wrong, what was expected".
fn describe(error: figment::Error) -> String {
    let key = error.path.join(".");
    let variable = error.path.join("__").to_uppercase();
    let place = match &error.metadata {
        Some(metadata) => match &metadata.source {
            Some(figment::Source::File(file)) => format!(" (in {})", file.display()),
            _ if metadata.name.starts_with("`AUTH_`") => format!(" (from AUTH_{variable})"),
            _ if metadata.name.contains("environment") => format!(" (from {variable})"),
            _ => format!(" ({})", metadata.name),
        },
        None => String::new(),
    };
    format!("{key}{place}: {}", error.kind)
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
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::raw().only(COMPAT_ENV))
            .merge(
                Env::raw()
                    .filter_map(|key| {
                        COMPAT_PROVIDER_ENV
                            .iter()
                            .find(|(name, _)| key.as_str().eq_ignore_ascii_case(name))
                            .map(|(_, path)| (*path).into())
                    })
                    .split("."),
            )
            .merge(Env::prefixed("AUTH_").split("__").ignore(&["CONFIG"]));
        Self::from_figment(figment)
    }

    /// Extracts and validates a configuration. Each key is read on its own, so that every
    /// bad key is reported, not only the first.
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigErrors> {
        let mut keys = Keys {
            figment: &figment,
            problems: Vec::new(),
        };
        let config = Config {
            listen: keys.get("listen").unwrap_or_else(default_listen),
            data_dir: keys
                .get("data_dir")
                .unwrap_or_else(|| PathBuf::from("data")),
            database_url: keys.get("database_url"),
            database_max_connections: keys.get("database_max_connections").unwrap_or(16),
            private_key: keys.get("private_key"),
            public_key: keys.get("public_key"),
            previous_public_keys: keys.get("previous_public_keys").unwrap_or_default(),
            client_token_algorithm: keys.get("client_token_algorithm").unwrap_or_default(),
            client_token_private_key: keys.get("client_token_private_key"),
            external_address: keys.get("external_address"),
            allowed_redirects: keys.get("allowed_redirects").unwrap_or_default(),
            providers: keys.get("providers").unwrap_or_default(),
            dev_login: keys.get("dev_login").unwrap_or(false),
            client_token_lifetime_secs: keys.get("client_token_lifetime_secs").unwrap_or(14 * DAY),
            permission_token_lifetime_secs: keys
                .get("permission_token_lifetime_secs")
                .unwrap_or(3600),
            token_cache_ms: keys.get("token_cache_ms").unwrap_or(1000),
            cors_origins: keys.get("cors_origins").unwrap_or_default(),
            max_body_bytes: keys.get("max_body_bytes").unwrap_or(64 * 1024),
            request_timeout_ms: keys.get("request_timeout_ms").unwrap_or(30_000),
            plugin_dir: keys.get("plugin_dir"),
            allowed_services: keys.get("allowed_services").unwrap_or_default(),
            installed_extensions: keys.get("installed_extensions").unwrap_or_default(),
            plugin_timeout_ms: keys
                .get("plugin_timeout_ms")
                .unwrap_or_else(default_plugin_timeout_ms),
            plugin_max_in_flight: keys
                .get("plugin_max_in_flight")
                .unwrap_or_else(default_plugin_max_in_flight),
            plugins: keys.get("plugins").unwrap_or_default(),
            admin_token: keys.get("admin_token"),
            log_format: keys.get("log_format").unwrap_or_default(),
        };
        let mut problems = keys.problems;
        if config.private_key.is_some() != config.public_key.is_some() {
            problems.push(
                "private_key / public_key (PRIVATE_KEY, PUBLIC_KEY): set both, or neither to \
                 use a key pair generated in the data directory"
                    .to_owned(),
            );
        }
        for (key, value) in [
            (
                "client_token_lifetime_secs",
                config.client_token_lifetime_secs,
            ),
            (
                "permission_token_lifetime_secs",
                config.permission_token_lifetime_secs,
            ),
            ("request_timeout_ms", config.request_timeout_ms),
            ("max_body_bytes", config.max_body_bytes as u64),
            (
                "database_max_connections",
                u64::from(config.database_max_connections),
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        if let Some(address) = &config.external_address
            && let Err(problem) = normalize_external_address(address)
        {
            problems.push(format!("external_address (EXTERNAL_ADDRESS): {problem}"));
        }
        if let Some(token) = &config.admin_token
            && token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            problems.push(format!(
                "admin_token (AUTH_ADMIN_TOKEN): must be at least {MIN_ADMIN_TOKEN_CHARS} \
                 characters (e.g. `openssl rand -hex 32`)"
            ));
        }
        for origin in &config.cors_origins.0 {
            if let Err(problem) = normalize_origin(origin) {
                problems.push(format!("cors_origins: `{origin}`: {problem}"));
            }
        }
        for origin in &config.allowed_redirects.0 {
            if let Err(problem) = normalize_origin(origin) {
                problems.push(format!("allowed_redirects: `{origin}`: {problem}"));
            }
        }
        if let Err(mut provider_problems) = config.login_providers() {
            problems.append(&mut provider_problems);
        }
        if config.dev_login {
            match config.external_base() {
                Some(base) if is_loopback_url(&base) => {}
                _ => problems.push(
                    "dev_login (AUTH_DEV_LOGIN): only allowed when external_address \
                     (EXTERNAL_ADDRESS) is a loopback address such as http://127.0.0.1:8000"
                        .to_owned(),
                ),
            }
        }
        if config.plugin_timeout_ms == 0 {
            problems.push("plugin_timeout_ms: must be at least 1 (milliseconds)".to_owned());
        }
        if config.plugin_max_in_flight == 0 {
            problems.push("plugin_max_in_flight: must be at least 1".to_owned());
        }
        for (alias, settings) in &config.plugins {
            if !settings.is_object() {
                problems.push(format!(
                    "plugins.{alias}: must be a table of settings, found {settings}"
                ));
            }
        }
        for extension in config.installed_extensions.iter() {
            if config
                .allowed_services
                .iter()
                .any(|s| s.alias == extension.alias)
            {
                problems.push(format!(
                    "alias `{}` is named both in ALLOWED_SERVICES and INSTALLED_EXTENSIONS; \
                     give one of them another alias, so that each has its own [plugins.<alias>] settings",
                    extension.alias
                ));
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// The database in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("auth-host.db").display()),
        }
    }

    /// `EXTERNAL_ADDRESS` as a base URL without a trailing `/`.
    pub fn external_base(&self) -> Option<String> {
        self.external_address
            .as_deref()
            .and_then(|a| normalize_external_address(a).ok())
    }

    /// The login providers, checked; every problem found otherwise.
    pub fn login_providers(&self) -> Result<Vec<Provider>, Vec<String>> {
        let mut providers = Vec::new();
        let mut problems = Vec::new();
        for (name, table) in &self.providers {
            match resolve_provider(name, table) {
                Ok(provider) => providers.push(provider),
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
            Ok(providers)
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

    /// The plugin directory in effect.
    pub fn plugin_dir(&self) -> PathBuf {
        if let Some(dir) = &self.plugin_dir {
            return dir.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn plugin_settings(&self) -> PluginSettings {
        PluginSettings {
            dir: self.plugin_dir(),
            allowed_services: self.allowed_services.clone(),
            installed_extensions: self.installed_extensions.clone(),
            settings: self.plugins.clone(),
            call_timeout: Duration::from_millis(self.plugin_timeout_ms),
            max_in_flight: self.plugin_max_in_flight,
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's `Jail` closures return its large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn old_and_new_environment_names_and_toml_layer_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "auth.toml",
                r#"
                    allowed_services = "a:one;b:two"
                    plugin_timeout_ms = 100
                    [plugins.a]
                    greeting = "from toml"
                    level = 1
                "#,
            )?;
            jail.set_env("AUTH_CONFIG", "auth.toml");
            jail.set_env("INSTALLED_EXTENSIONS", "ext:sample_extension;");
            jail.set_env("AUTH_PLUGINS__A__GREETING", "from env");
            jail.set_env("AUTH_PLUGIN_DIR", "/opt/plugins");
            jail.set_env("EXTERNAL_ADDRESS", "auth.example.com");
            jail.set_env("DATABASE_URL", "postgres://auth:pw@db/auth");
            jail.set_env(
                "AUTH_CORS_ORIGINS",
                "https://app.example.com;http://localhost:3000",
            );
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.allowed_services.to_string(), "a:one;b:two");
            assert_eq!(
                config.installed_extensions.to_string(),
                "ext:sample_extension"
            );
            assert_eq!(config.plugin_timeout_ms, 100);
            assert_eq!(config.plugin_dir(), PathBuf::from("/opt/plugins"));
            assert_eq!(
                config.external_base().as_deref(),
                Some("https://auth.example.com")
            );
            assert_eq!(config.database_url(), "postgres://auth:pw@db/auth");
            assert!(
                !format!("{config:?}").contains("pw@"),
                "secrets stay out of Debug"
            );
            assert_eq!(config.cors_origins.0.len(), 2);
            assert_eq!(config.listen, default_listen());
            assert_eq!(
                config.plugins["a"],
                serde_json::json!({"greeting": "from env", "level": 1})
            );
            Ok(())
        });
    }

    #[test]
    fn the_example_configuration_loads() {
        Jail::expect_with(|_| {
            let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/auth-host.toml");
            let config = Config::load(Some(&example)).map_err(|e| e.to_string())?;
            assert_eq!(config.installed_extensions.iter().count(), 1);
            assert!(config.admin_token.is_none());
            Ok(())
        });
    }

    #[test]
    fn allowed_services_from_the_old_environment_name() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "ALLOWED_SERVICES",
                "example:sample_permission_provider;example2:sample_permission_provider",
            );
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let aliases: Vec<_> = config
                .allowed_services
                .iter()
                .map(|e| e.alias.as_str())
                .collect();
            assert_eq!(aliases, ["example", "example2"]);
            Ok(())
        });
    }

    #[test]
    fn every_problem_is_named_with_its_key() {
        Jail::expect_with(|jail| {
            jail.set_env("AUTH_PLUGIN_TIMEOUT_MS", "soon");
            let errors = Config::load(None).unwrap_err();
            assert_eq!(errors.0.len(), 1, "{errors}");
            assert!(errors.0[0].contains("plugin_timeout_ms"), "{errors}");
            assert!(errors.0[0].contains("AUTH_PLUGIN_TIMEOUT_MS"), "{errors}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ALLOWED_SERVICES", "x:../../etc/evil");
            let errors = Config::load(None).unwrap_err();
            assert!(errors.to_string().contains("must be 1 to 64"), "{errors}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AUTH_ADMIN_TOKEN", "hunter2");
            let errors = Config::load(None).unwrap_err();
            assert!(
                errors
                    .to_string()
                    .contains("admin_token (AUTH_ADMIN_TOKEN): must be at least 32"),
                "{errors}"
            );
            assert!(!errors.to_string().contains("hunter2"), "{errors}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("AUTH_CONFIG", "missing.toml");
            let errors = Config::load(None).unwrap_err();
            assert!(
                errors.to_string().contains("missing.toml does not exist"),
                "{errors}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("ALLOWED_SERVICES", "same:sample_permission_provider");
            jail.set_env("INSTALLED_EXTENSIONS", "same:sample_extension");
            let errors = Config::load(None).unwrap_err();
            assert!(
                errors.to_string().contains("alias `same` is named both"),
                "{errors}"
            );
            Ok(())
        });
    }

    #[test]
    fn providers_from_the_old_names_and_from_auth_variables() {
        Jail::expect_with(|jail| {
            jail.set_env("GOOGLE_KEY", "g-id");
            jail.set_env("GOOGLE_SECRET", "g-secret");
            jail.set_env("GITHUB_KEY", "h-id");
            jail.set_env("GITHUB_SECRET", "h-secret");
            jail.set_env(
                "AUTH_PROVIDERS__GITHUB__API_URL",
                "https://github.corp.example/api/v3",
            );
            jail.set_env("AUTH_PROVIDERS__MYIDP__KIND", "oidc");
            jail.set_env(
                "AUTH_PROVIDERS__MYIDP__ISSUER",
                "https://sso.corp.example/realms/main",
            );
            jail.set_env("AUTH_PROVIDERS__MYIDP__CLIENT_ID", "m-id");
            jail.set_env("AUTH_PROVIDERS__MYIDP__CLIENT_SECRET", "m-secret");
            jail.set_env("AUTH_PROVIDERS__MYIDP__DISPLAY_NAME", "Corp SSO");
            jail.set_env("EXTERNAL_ADDRESS", "auth.corp.example");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let providers = config.login_providers().map_err(|e| e.join("; "))?;
            let by_name = |name: &str| providers.iter().find(|p| p.name == name).cloned();
            let google = by_name("google").ok_or("no google")?;
            assert_eq!(google.kind, ProviderKind::Google);
            assert_eq!(google.client_id, "g-id");
            assert_eq!(
                google.issuer.as_deref(),
                Some("https://accounts.google.com")
            );
            let github = by_name("github").ok_or("no github")?;
            assert_eq!(
                github.api_url.as_deref(),
                Some("https://github.corp.example/api/v3")
            );
            assert_eq!(
                github.auth_url.as_deref(),
                Some("https://github.com/login/oauth/authorize")
            );
            let corp = by_name("myidp").ok_or("no myidp")?;
            assert_eq!(corp.kind, ProviderKind::Oidc);
            assert_eq!(corp.display_name, "Corp SSO");
            assert_eq!(corp.scopes, ["openid", "email", "profile"]);
            assert!(
                !format!("{config:?}").contains("secret\""),
                "secrets stay out of Debug"
            );
            assert_eq!(config.redirect_origins(), ["https://auth.corp.example"]);
            Ok(())
        });
    }

    #[test]
    fn provider_problems_are_named() {
        Jail::expect_with(|jail| {
            jail.set_env("GOOGLE_KEY", "only-the-key");
            jail.set_env("AUTH_PROVIDERS__CORP__KIND", "oidc");
            jail.set_env("AUTH_PROVIDERS__CORP__CLIENT_ID", "c");
            jail.set_env("AUTH_PROVIDERS__CORP__CLIENT_SECRET", "s");
            jail.set_env("AUTH_PROVIDERS__CORP__ISSUER", "http://sso.corp.example");
            let errors = Config::load(None).unwrap_err().to_string();
            assert!(
                errors.contains("providers.google: client_id and client_secret are both required (GOOGLE_KEY and GOOGLE_SECRET)"),
                "{errors}"
            );
            assert!(
                errors.contains("providers.corp: issuer: `http://sso.corp.example`: plain http is only allowed on a loopback address"),
                "{errors}"
            );
            assert!(
                errors.contains("external_address (EXTERNAL_ADDRESS): required"),
                "{errors}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_development_login_needs_a_loopback_external_address() {
        Jail::expect_with(|jail| {
            jail.set_env("AUTH_DEV_LOGIN", "true");
            jail.set_env("EXTERNAL_ADDRESS", "https://auth.example.com");
            let errors = Config::load(None).unwrap_err().to_string();
            assert!(
                errors.contains("dev_login (AUTH_DEV_LOGIN): only allowed"),
                "{errors}"
            );
            jail.set_env("EXTERNAL_ADDRESS", "http://127.0.0.1:8000");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert!(config.dev_login);
            Ok(())
        });
    }
}
