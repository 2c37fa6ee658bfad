//! Signed tokens: client tokens (what a client app holds after login) and permission
//! tokens (what a downstream service verifies offline with our public key).
//!
//! - [`claims`]: what each kind of token says,
//! - [`keys`]: key pairs, key files, verification with pinned algorithms, the JWKS,
//! - [`signing`]: signing with a key parsed once,
//! - [`schedule`]: which key kept in the database signs when (rotation),
//! - [`sealing`]: private keys sealed at rest under `key_secrets`.
//!
//! [`TokenService::verify_client_token`] is the one place that decides whether a token is a
//! valid client token.

mod claims;
mod keys;
mod reuse;
mod schedule;
mod sealing;
mod signing;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use auth_host_plugin_api::Permissions;

pub use claims::{
    CLIENT_TOKEN_TYPE, ClientClaims, PERMISSION_TOKEN_TYPE, PermissionClaims, TokenKind,
};
pub use keys::{
    KeyError, KeySet, LEEWAY_SECS, TokenAlgorithm, new_rsa_key_pair, rsa_kid, rsa_kid_of_private,
};
pub use schedule::{KeyWindow, Plan, Schedule};
pub use sealing::{KeySecrets, MIN_SECRET_CHARS, Opened, RowBinding};

use crate::clock::unix_now;

/// Why a token was refused. Only logged at debug: a bad token is an ordinary event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("expired")]
    Expired,
    /// A token of another kind (a permission token offered as a client token, or the
    /// reverse).
    #[error("not a token of this kind")]
    WrongKind,
}

/// The longest the old service's client tokens lived (its fixed 14 days): one of its tokens
/// whose `exp` lies further ahead was not made by it, whatever its signature, and would
/// keep a revocation row alive for as long.
pub const LEGACY_CLIENT_TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// Issues and verifies tokens.
#[derive(Debug)]
pub struct TokenService {
    /// Swapped whole when the keys kept in the database change (rotation).
    keys: RwLock<Arc<KeySet>>,
    client_lifetime: Duration,
    permission_lifetime: Duration,
    /// Permission tokens handed out again (off unless asked for).
    reuse: reuse::Reuse,
}

impl TokenService {
    pub fn new(keys: KeySet, client_lifetime: Duration, permission_lifetime: Duration) -> Self {
        TokenService {
            keys: RwLock::new(Arc::new(keys)),
            client_lifetime,
            permission_lifetime,
            reuse: reuse::Reuse::default(),
        }
    }

    /// Hands a permission token out again for up to `window` (never past half its
    /// lifetime) to the same user, service and permissions.
    pub fn with_permission_token_reuse(mut self, window: Duration) -> Self {
        self.reuse = reuse::Reuse::new(window, self.permission_lifetime);
        self
    }

    /// The keys in use now.
    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts new keys in use: tokens signed from now on use its signing key.
    pub fn replace_keys(&self, keys: KeySet) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    /// The longest a token lives: how long a retired key's tokens may still need it.
    pub fn longest_lifetime(&self) -> Duration {
        self.client_lifetime.max(self.permission_lifetime)
    }

    pub fn issue_client_token(&self, userid: &str) -> Result<(String, ClientClaims), TokenError> {
        let iat = unix_now();
        let claims = ClientClaims {
            userid: userid.to_owned(),
            iat,
            exp: iat.saturating_add(self.client_lifetime.as_secs()),
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
            legacy: false,
        };
        let token = self
            .keys()
            .sign(TokenKind::Client, &claims)
            .map_err(TokenError::Invalid)?;
        Ok((token, claims))
    }

    /// Whether `token` is a valid client token, and what it says. Revocation is the
    /// service's business (it needs the database).
    pub fn verify_client_token(&self, token: &str) -> Result<ClientClaims, TokenError> {
        let (signed_by, verified) = self.keys().verify(token, true)?;
        let claims =
            claims::client_claims(signed_by, verified.header.typ.as_deref(), verified.claims)?;
        let latest = unix_now()
            .saturating_add(LEGACY_CLIENT_TOKEN_LIFETIME.as_secs())
            .saturating_add(LEEWAY_SECS);
        if claims.legacy && claims.exp > latest {
            return Err(TokenError::Invalid(
                "an old-service token expiring later than that service's tokens lived".into(),
            ));
        }
        Ok(claims)
    }

    /// A permission token for `userid` in `service` saying `permissions`: one signed now,
    /// or, within the reuse window, the one signed for exactly these before.
    pub fn issue_permission_token(
        &self,
        userid: &str,
        service: &str,
        permissions: &Permissions,
    ) -> Result<String, TokenError> {
        let keys = self.keys();
        let iat = unix_now();
        if let Some(token) = self.reuse.get(
            userid,
            service,
            permissions,
            keys.signing_kid(TokenKind::Permission),
            iat,
        ) {
            return Ok(token);
        }
        let claims = PermissionClaims {
            userid: userid.to_owned(),
            permissions: permissions.clone(),
            service: service.to_owned(),
            iat,
            exp: iat.saturating_add(self.permission_lifetime.as_secs()),
        };
        let token = keys
            .sign(TokenKind::Permission, &claims)
            .map_err(TokenError::Invalid)?;
        self.reuse.put(
            userid,
            service,
            permissions,
            keys.signing_kid(TokenKind::Permission),
            iat,
            &token,
        );
        Ok(token)
    }

    /// For tests and tools: verifies a permission token as downstream services do, and
    /// refuses a client token.
    pub fn verify_permission_token(&self, token: &str) -> Result<PermissionClaims, TokenError> {
        let (_, verified) = self.keys().verify::<serde_json::Value>(token, false)?;
        if verified.header.typ.as_deref() == Some(CLIENT_TOKEN_TYPE) {
            return Err(TokenError::WrongKind);
        }
        serde_json::from_value(verified.claims).map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
