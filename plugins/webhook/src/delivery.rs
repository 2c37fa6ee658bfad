//! One signed POST of one event (signed as Standard Webhooks does, `standard_webhooks`).
//! The id stays the same across retries, so a receiver can drop duplicates.

use std::sync::Arc;
use std::time::Duration;

use auth_host_plugin_api::{PluginError, UserInfo};
use serde::Deserialize;
use standard_webhooks::{Signer, agent, check_url, message_id};

/// Refusal reasons are shown to the user: keep them short.
const MAX_REASON_CHARS: usize = 200;
/// How much of an answer is read, looking for a refusal reason.
const MAX_ANSWER_BYTES: u64 = 16 * 1024;

/// An event, serialized once; every attempt posts the same bytes.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: &'static str,
    pub body: Arc<[u8]>,
}

impl Event {
    pub fn new(event_type: &'static str, user: &UserInfo) -> Result<Event, PluginError> {
        let id = message_id("evt")?;
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
    signer: Arc<Signer>,
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
        Ok(Endpoint {
            url: url.to_owned(),
            signer: Arc::new(Signer::new(secret)?),
            agent: agent(
                timeout,
                concat!("auth-host-webhook/", env!("CARGO_PKG_VERSION")),
            ),
        })
    }

    /// One attempt.
    pub fn deliver(&self, event: &Event) -> Result<(), Failure> {
        let mut answer = self
            .signer
            .post(&self.agent, &self.url, &event.id, &event.body)
            .map_err(|e| Failure::Unreachable(e.message().to_owned()))?
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

#[cfg(test)]
mod tests {
    use super::*;

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
