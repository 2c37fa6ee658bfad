//! `http_permissions`: permissions asked of the deployer's own HTTP service.
//!
//! ```toml
//! ALLOWED_SERVICES = "wiki:http_permissions"
//!
//! [plugins.wiki]
//! url = "https://permissions.internal.example/{service}"  # {service}: the service asked for
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # or AUTH_PLUGINS__WIKI__SECRET
//! timeout_ms = 1000
//! cache_secs = 30          # an answer serves the same user and service this long (0: off)
//! on_error = "stale"       # or "deny" (the default)
//! max_stale_secs = 300     # with "stale": the last good answer, up to this old
//! headers = { "x-tenant" = "acme" }
//! network = true           # isolated and sandboxed: the worker needs the network
//! ```
//!
//! Each call POSTs `{"service": "<service>", "user": {"id", "username", "email", …}}`,
//! signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), so the service checks it with any of its libraries. The answer is
//! a 2xx whose body is the permissions: one JSON object, at most `max_answer_bytes`.
//! Anything else — another status, a body that is not an object or is too large, no answer
//! within `timeout_ms`, a refused connection — is an error naming what happened, or, with
//! `on_error = "stale"`, the last good answer for that user and service while it is younger
//! than `max_stale_secs` (logged as a warning). Never an empty or guessed answer.

mod cache;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auth_host_plugin_api::{
    Logger, PermissionProvider, Permissions, PluginContext, PluginError, UserInfo, export_plugin,
};
use serde::Deserialize;
use standard_webhooks::{Signer, agent, check_url, message_id};

use cache::Cache;

/// Headers the plugin sets itself; `headers` may not replace them.
const OWN_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

// No `Debug`: the secret is in here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    secret: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    cache_secs: u64,
    #[serde(default = "default_cache_entries")]
    cache_entries: usize,
    #[serde(default)]
    on_error: OnError,
    #[serde(default = "default_max_stale_secs")]
    max_stale_secs: u64,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default = "default_max_answer_bytes")]
    max_answer_bytes: u64,
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_cache_entries() -> usize {
    10_000
}

fn default_max_stale_secs() -> u64 {
    300
}

fn default_max_answer_bytes() -> u64 {
    64 * 1024
}

/// What a failed ask gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OnError {
    /// The error: the client gets no permissions and the error.
    #[default]
    Deny,
    /// The last good answer, while younger than `max_stale_secs`; else the error.
    Stale,
}

struct HttpPermissions {
    url: String,
    signer: Signer,
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
    max_answer_bytes: u64,
    fresh_for: Duration,
    on_error: OnError,
    stale_for: Duration,
    cache: Mutex<Cache>,
    log: Logger,
}

impl PermissionProvider for HttpPermissions {
    fn new(context: PluginContext) -> Result<Self, PluginError> {
        let settings: Settings = context.parse_settings()?;
        check_url(&settings.url, settings.allow_http)?;
        if settings.timeout_ms == 0 {
            return Err(PluginError::new("timeout_ms: must be at least 1"));
        }
        if settings.max_answer_bytes == 0 {
            return Err(PluginError::new("max_answer_bytes: must be at least 1"));
        }
        let mut headers = Vec::new();
        for (name, value) in settings.headers {
            let lower = name.to_ascii_lowercase();
            if OWN_HEADERS.contains(&lower.as_str()) {
                return Err(PluginError::new(format!(
                    "headers: `{name}` is set by the plugin itself"
                )));
            }
            ureq::http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PluginError::new(format!("headers: `{name}` is not a header name")))?;
            ureq::http::HeaderValue::from_str(&value).map_err(|_| {
                PluginError::new(format!(
                    "headers: the value of `{name}` is not a header value"
                ))
            })?;
            headers.push((lower, value));
        }
        let fresh_for = Duration::from_secs(settings.cache_secs);
        let stale_for = match settings.on_error {
            OnError::Deny => Duration::ZERO,
            OnError::Stale => Duration::from_secs(settings.max_stale_secs),
        };
        context.logger().info(format_args!(
            "asking {} (cache {} s, on error {:?})",
            redacted(&settings.url),
            settings.cache_secs,
            settings.on_error
        ));
        Ok(HttpPermissions {
            url: settings.url,
            signer: Signer::new(&settings.secret)?,
            agent: agent(
                Duration::from_millis(settings.timeout_ms),
                concat!("auth-host-http-permissions/", env!("CARGO_PKG_VERSION")),
            ),
            headers,
            max_answer_bytes: settings.max_answer_bytes,
            fresh_for,
            on_error: settings.on_error,
            stale_for,
            cache: Mutex::new(Cache::new(settings.cache_entries, fresh_for.max(stale_for))),
            log: context.logger().clone(),
        })
    }

    fn get_permissions(&self, service: &str, user: &UserInfo) -> Result<Permissions, PluginError> {
        let body = serde_json::to_vec(&serde_json::json!({"service": service, "user": user}))
            .map_err(|e| PluginError::new(format!("request not serializable: {e}")))?;
        let key = (service.to_owned(), user.id.clone());
        let now = Instant::now();
        if !self.fresh_for.is_zero()
            && let Some(permissions) = self.cached(&key, &body, now, self.fresh_for)
        {
            return Ok(permissions);
        }
        match self.ask(service, &body) {
            Ok(permissions) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.put(key, body, permissions.clone(), now);
                }
                Ok(permissions)
            }
            Err(error) => {
                if self.on_error == OnError::Stale
                    && let Some(permissions) = self.cached(&key, &body, now, self.stale_for)
                {
                    self.log.warn(format_args!(
                        "{service}: {}; answering user {} with the last good answer",
                        error.message(),
                        user.id
                    ));
                    return Ok(permissions);
                }
                Err(error)
            }
        }
    }
}

impl HttpPermissions {
    /// The answer kept for `key`, asked with the same request, younger than `within`.
    fn cached(
        &self,
        key: &(String, String),
        request: &[u8],
        now: Instant,
        within: Duration,
    ) -> Option<Permissions> {
        self.cache.lock().ok()?.get(key, request, now, within)
    }

    /// One signed request, and its answer checked.
    fn ask(&self, service: &str, body: &[u8]) -> Result<Permissions, PluginError> {
        let url = self.url.replace("{service}", &percent_encoded(service));
        let id = message_id("req")?;
        let mut request = self.signer.post(&self.agent, &url, &id, body)?;
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut answer = request.send(body).map_err(|e| {
            PluginError::new(format!("the permission service could not be reached: {e}"))
        })?;
        let status = answer.status();
        if !status.is_success() {
            return Err(PluginError::new(format!(
                "the permission service answered {}",
                status.as_u16()
            )));
        }
        // One byte past the limit tells "too large" from "exactly the limit".
        let mut bytes = Vec::new();
        answer
            .body_mut()
            .as_reader()
            .take(self.max_answer_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                PluginError::new(format!("the permission service's answer broke off: {e}"))
            })?;
        if bytes.len() as u64 > self.max_answer_bytes {
            return Err(PluginError::new(format!(
                "the permission service's answer is larger than {} bytes",
                self.max_answer_bytes
            )));
        }
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(permissions)) => Ok(permissions),
            Ok(_) => Err(PluginError::new(
                "the permission service's answer is not a JSON object",
            )),
            Err(e) => Err(PluginError::new(format!(
                "the permission service's answer is not JSON ({e})"
            ))),
        }
    }
}

/// `text` with everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The URL without what may be a credential: user information and the query.
fn redacted(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = without_query.split_once("://") else {
        return without_query.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://…@{host}{path}"),
        None => without_query.to_owned(),
    }
}

export_plugin!(permission_provider: HttpPermissions);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_percent_encoded_into_the_url() {
        assert_eq!(percent_encoded("wiki"), "wiki");
        assert_eq!(percent_encoded("a b/../c?d"), "a%20b%2F..%2Fc%3Fd");
        assert_eq!(percent_encoded("é"), "%C3%A9");
    }

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(
            redacted("https://u:p@perms.example/x?token=1"),
            "https://…@perms.example/x"
        );
        assert_eq!(
            redacted("https://perms.example/{service}"),
            "https://perms.example/{service}"
        );
    }
}
