//! One signed POST of one event.
//!
//! Signing follows Standard Webhooks: headers `webhook-id`, `webhook-timestamp` (Unix
//! seconds of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">`. The id stays the same across retries, so a receiver can drop
//! duplicates.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_host_plugin_api::{PluginError, UserInfo};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use ureq::http::Uri;

/// Refusal reasons are shown to the user: keep them short.
const MAX_REASON_CHARS: usize = 200;
/// How much of an answer is read, looking for a refusal reason.
const MAX_ANSWER_BYTES: u64 = 16 * 1024;
/// Shorter keys are refused; Standard Webhooks asks for 24 to 64 bytes.
const MIN_SECRET_BYTES: usize = 16;

/// An event, serialized once; every attempt posts the same bytes.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: &'static str,
    pub body: Arc<[u8]>,
}

impl Event {
    pub fn new(event_type: &'static str, user: &UserInfo) -> Result<Event, PluginError> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|e| PluginError::new(format!("no randomness for an event id: {e}")))?;
        let id = format!(
            "evt_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let body = serde_json::to_vec(&serde_json::json!({
            "type": event_type,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "data": { "user": user },
        }))
        .map_err(|e| PluginError::new(format!("event not serializable: {e}")))?;
        Ok(Event {
            id,
            event_type,
            body: body.into(),
        })
    }
}

/// Why an attempt did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The receiver answered something other than a 2xx. `reason` is its JSON `reason`.
    Answered { status: u16, reason: Option<String> },
    /// No answer: connection refused, TLS, time limit…
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Answered { status, .. } => write!(f, "the receiver answered {status}"),
            Failure::Unreachable(why) => write!(f, "the receiver could not be reached: {why}"),
        }
    }
}

/// Where events go, and the key they are signed with. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    key: Arc<[u8]>,
    agent: ureq::Agent,
}

impl Endpoint {
    pub fn new(
        url: &str,
        secret: &str,
        allow_http: bool,
        timeout: Duration,
    ) -> Result<Endpoint, PluginError> {
        check_url(url, allow_http)?;
        let key = signing_key(secret)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // A redirect is a wrong URL, not something to follow with the user's data.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .http_status_as_error(false)
            .user_agent(concat!("auth-host-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Endpoint {
            url: url.to_owned(),
            key: key.into(),
            agent,
        })
    }

    /// `webhook-signature` for `event` sent at `timestamp`.
    fn signature(&self, event: &Event, timestamp: u64) -> Result<String, Failure> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .map_err(|e| Failure::Unreachable(format!("signing key refused: {e}")))?;
        mac.update(format!("{}.{timestamp}.", event.id).as_bytes());
        mac.update(&event.body);
        Ok(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ))
    }

    /// One attempt.
    pub fn deliver(&self, event: &Event) -> Result<(), Failure> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let signature = self.signature(event, timestamp)?;
        let mut answer = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .send(&event.body[..])
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let reason = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .ok()
            .and_then(|bytes| refusal_reason(&bytes));
        Err(Failure::Answered {
            status: status.as_u16(),
            reason,
        })
    }
}

/// `{"reason": "…"}` from a refusing receiver, cleaned for showing to the user.
fn refusal_reason(answer: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Refusal {
        reason: String,
    }
    let refusal: Refusal = serde_json::from_slice(answer).ok()?;
    let reason: String = refusal
        .reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect();
    let reason = reason.trim();
    (!reason.is_empty()).then(|| reason.to_owned())
}

/// https anywhere; plain http only to this machine unless `allow_http` says otherwise.
fn check_url(url: &str, allow_http: bool) -> Result<(), PluginError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| PluginError::new(format!("url: not a URL ({e})")))?;
    let host = uri
        .host()
        .ok_or_else(|| PluginError::new("url: has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if allow_http || is_loopback(host) => Ok(()),
        Some("http") => Err(PluginError::new(format!(
            "url: plain http to {host} would send user data unencrypted; use https, \
             or set allow_http = true for a trusted network"
        ))),
        _ => Err(PluginError::new("url: must start with https:// or http://")),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The HMAC key: `whsec_<base64>` is decoded, as Standard Webhooks libraries do; any other
/// secret is used as its UTF-8 bytes.
fn signing_key(secret: &str) -> Result<Vec<u8>, PluginError> {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).map_err(|e| {
            PluginError::new(format!(
                "secret: whsec_ is followed by invalid base64 ({e})"
            ))
        })?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < MIN_SECRET_BYTES {
        return Err(PluginError::new(format!(
            "secret: must be at least {MIN_SECRET_BYTES} bytes, found {}",
            key.len()
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_unless_local_or_allowed() {
        assert!(check_url("https://hooks.example/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/x", false).is_ok());
        assert!(check_url("http://[::1]:9000/x", false).is_ok());
        assert!(check_url("http://localhost/x", false).is_ok());
        assert!(check_url("http://hooks.internal/x", true).is_ok());
        let refused = check_url("http://hooks.internal/x", false).unwrap_err();
        assert!(refused.message().contains("allow_http"), "{refused:?}");
        assert!(check_url("ftp://hooks.example/", false).is_err());
        assert!(check_url("hooks.example", false).is_err());
    }

    #[test]
    fn secrets_are_decoded_and_must_be_long_enough() {
        assert_eq!(
            signing_key("whsec_AAECAwQFBgcICQoLDA0ODw==").unwrap().len(),
            16
        );
        assert_eq!(
            signing_key("a-long-enough-secret").unwrap(),
            b"a-long-enough-secret"
        );
        assert!(signing_key("short").is_err());
        assert!(signing_key("whsec_not*base64").is_err());
    }

    #[test]
    fn refusal_reasons_are_cleaned_and_bounded() {
        assert_eq!(
            refusal_reason(br#"{"reason":" closed\naccount "}"#).as_deref(),
            Some("closed account")
        );
        assert_eq!(refusal_reason(b"<html>nope</html>"), None);
        assert_eq!(refusal_reason(br#"{"reason":""}"#), None);
        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(500));
        assert_eq!(
            refusal_reason(long.as_bytes()).map(|r| r.len()),
            Some(MAX_REASON_CHARS)
        );
    }
}
