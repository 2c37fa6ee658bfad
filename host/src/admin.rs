//! The admin API (`POST /admin/reload`, `GET /admin/audit`): who may call it, and what it
//! does. It exists only when `admin_token` is set.

use std::sync::Arc;

use crate::crypto::{constant_time_eq, sha256};
use crate::reload::{PluginReloader, ReloadError, Reloaded};

/// The admin endpoint's bearer token, kept only as its SHA-256 digest.
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &str) -> Self {
        AdminToken(sha256(token.as_bytes()))
    }

    /// Compares digests in constant time, so the answer's timing says nothing of the token.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(&self.0, &sha256(presented.as_bytes()))
    }
}

/// What the admin endpoint needs: who may call it, and what it does.
pub struct AdminAccess {
    token: AdminToken,
    reloader: Arc<PluginReloader>,
}

impl AdminAccess {
    pub fn new(token: AdminToken, reloader: Arc<PluginReloader>) -> Self {
        AdminAccess { token, reloader }
    }

    /// Whether `bearer` is the admin token (a miss is logged).
    pub fn authorized(&self, bearer: Option<&str>) -> bool {
        let granted = bearer.is_some_and(|token| self.token.matches(token));
        if !granted {
            tracing::warn!("admin endpoint: missing or wrong bearer token");
        }
        granted
    }

    /// Reloads the plugins as SIGHUP does, for a caller holding the admin token; answers
    /// when the reload is done, with its outcome.
    pub async fn reload(&self, bearer: Option<&str>) -> Result<Reloaded, ReloadError> {
        if !self.authorized(bearer) {
            return Err(ReloadError::Unauthorized);
        }
        // A task of its own: a caller that goes away must not cut a reload in half.
        let reloader = Arc::clone(&self.reloader);
        tokio::spawn(async move { reloader.reload("admin endpoint").await })
            .await
            .unwrap_or_else(|error| Err(ReloadError::Stopped(error.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::AdminToken;

    #[test]
    fn only_the_same_token_matches() {
        let token = AdminToken::new("an admin token of some length, 0123456789");
        assert!(token.matches("an admin token of some length, 0123456789"));
        assert!(!token.matches("an admin token of some length, 012345678"));
        assert!(!token.matches(""));
    }
}
