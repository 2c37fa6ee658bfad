//! Who a client token belongs to (`/auth/check`, and every use case that takes a token),
//! and logout.

use crate::audit::{AuditEvent, AuditKind, Outcome};
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::login::ProviderLink;
use crate::tokens::ClientClaims;
use crate::users::User;

use super::AuthService;
use super::hooks::Hook;

/// The answer of `/auth/check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckAnswer {
    Authenticated(User),
    /// With the login link of each provider, by name.
    NotAuthenticated {
        providers: BTreeMap<String, ProviderLink>,
    },
}

impl AuthService {
    /// The claims of `token` when it is a valid client token (revocation aside); `None` for
    /// no token or any other. Every use case reads client tokens through here.
    pub(super) fn client_claims(&self, token: Option<&str>) -> Option<ClientClaims> {
        let token = token.filter(|t| !t.is_empty())?;
        match self.tokens.verify_client_token(token) {
            Ok(claims) => {
                if claims.legacy {
                    self.metrics.legacy_client_tokens.inc();
                }
                Some(claims)
            }
            Err(reason) => {
                tracing::debug!(%reason, "client token refused");
                None
            }
        }
    }

    /// The user a client token belongs to; `None` for no token, a bad, expired or revoked
    /// one, or a user that no longer exists. Only a storage failure is an error.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Option<(User, ClientClaims)>> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if let Some(known) = self.cache.get(token) {
            self.metrics.token_cache_hits.inc();
            return Ok(Some(known));
        }
        self.metrics.token_cache_misses.inc();
        let Some(claims) = self.client_claims(Some(token)) else {
            return Ok(None);
        };
        let changes_seen = self.cache.changes_seen();
        let revocation_id = claims.revocation_id(token);
        let user = self
            .store
            .user_unless_revoked(&claims.userid, &revocation_id)
            .await?;
        if let Some(user) = &user {
            self.cache
                .put(token, user, &claims, revocation_id, changes_seen);
        }
        Ok(user.map(|user| (user, claims)))
    }

    /// `/auth/check`: the token's user, or where to log in (carrying `next`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn check(&self, token: Option<&str>, next: Option<&str>) -> Result<CheckAnswer> {
        Ok(match self.authenticate(token).await? {
            Some((user, _)) => CheckAnswer::Authenticated(user),
            None => CheckAnswer::NotAuthenticated {
                providers: self.logins.provider_links(next),
            },
        })
    }

    /// Revokes a client token everywhere (until it would have expired), tells the
    /// extensions, and says where the browser goes: `next` (which must be on an allowed
    /// origin: otherwise nothing is revoked) or nowhere. A token that does not verify has
    /// nothing to revoke.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn logout(
        &self,
        token: Option<&str>,
        next: Option<&str>,
        caller: &crate::audit::Caller,
    ) -> Result<Option<String>> {
        let next = match next.filter(|n| !n.is_empty()) {
            Some(next) => Some(
                self.logins
                    .check_next(Some(next))
                    .map_err(Error::BadRequest)?,
            ),
            None => None,
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(next);
        };
        self.cache.forget_token(token);
        let Some(claims) = self.client_claims(Some(token)) else {
            return Ok(next);
        };
        self.store
            .revoke_token(
                &claims.revocation_id(token),
                i64::try_from(claims.exp).unwrap_or(i64::MAX),
            )
            .await?;
        let user = self.store.user(&claims.userid).await?;
        let event = AuditEvent::new(AuditKind::Logout, Outcome::Success)
            .user_or_id(user.as_ref(), &claims.userid);
        self.audit.record(event, caller).await?;
        if let Some(mut user) = user {
            // Logout cannot be refused.
            let _ = self.run_hook(Hook::Logout, &mut user).await;
        }
        Ok(next)
    }
}
