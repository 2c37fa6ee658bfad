//! What the bundled HTTP plugins (`webhook`, `http_permissions`) share: signing requests the
//! Standard Webhooks way (<https://www.standardwebhooks.com/>), so receivers verify them
//! with any of its libraries; the rules a URL must follow; and the HTTP client settings.
//!
//! A signed request carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_host_plugin_api::PluginError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use ureq::http::Uri;

/// Shorter keys are refused; Standard Webhooks asks for 24 to 64 bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The key requests are signed with. No `Debug`: it is a secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    /// From the `secret` setting: `whsec_<base64>` is decoded, as Standard Webhooks
    /// libraries do; any other secret is used as its UTF-8 bytes.
    pub fn new(secret: &str) -> Result<Signer, PluginError> {
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
        Ok(Signer { key })
    }

    /// `webhook-signature` of `body` sent as message `id` at `timestamp`.
    pub fn signature(&self, id: &str, timestamp: u64, body: &[u8]) -> Result<String, PluginError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .map_err(|e| PluginError::new(format!("signing key refused: {e}")))?;
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        Ok(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ))
    }

    /// A POST of `body` (JSON) to `url`, with the three signature headers.
    pub fn post(
        &self,
        agent: &ureq::Agent,
        url: &str,
        id: &str,
        body: &[u8],
    ) -> Result<ureq::RequestBuilder<ureq::typestate::WithBody>, PluginError> {
        let timestamp = unix_now();
        Ok(agent
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", self.signature(id, timestamp, body)?))
    }
}

type Sha256 = sha2::Sha256;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A new message id, `<prefix>_<32 hex digits>`.
pub fn message_id(prefix: &str) -> Result<String, PluginError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random)
        .map_err(|e| PluginError::new(format!("no randomness for a message id: {e}")))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}_{hex}"))
}

/// The client: one time limit for the whole exchange, no redirects followed (a redirect is
/// a wrong URL, not somewhere to send the user's data), statuses as answers, not errors.
pub fn agent(timeout: Duration, user_agent: &str) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .user_agent(user_agent)
        .build()
        .into()
}

/// https anywhere; plain http only to this machine unless `allow_http` says otherwise.
/// `url` may hold `{placeholders}`, checked as if they were plain text.
pub fn check_url(url: &str, allow_http: bool) -> Result<(), PluginError> {
    let uri: Uri = url
        .replace(['{', '}'], "")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_unless_local_or_allowed() {
        assert!(check_url("https://hooks.example/x", false).is_ok());
        assert!(check_url("https://perms.example/{service}/check", false).is_ok());
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
            Signer::new("whsec_AAECAwQFBgcICQoLDA0ODw==")
                .unwrap()
                .key
                .len(),
            16
        );
        assert_eq!(
            Signer::new("a-long-enough-secret").unwrap().key,
            b"a-long-enough-secret"
        );
        assert!(Signer::new("short").is_err());
        assert!(Signer::new("whsec_not*base64").is_err());
    }

    #[test]
    fn the_signature_is_standard_webhooks_v1() {
        // Standard Webhooks' own test vector (its libraries' README).
        let signer = Signer::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = signer
            .signature(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#,
            )
            .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(message_id("req").unwrap().starts_with("req_"));
        assert_eq!(message_id("req").unwrap().len(), 4 + 32);
    }
}
