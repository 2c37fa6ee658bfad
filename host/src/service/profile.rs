//! Choosing a username (`/auth/update`) and looking users up (`/auth/resolve`,
//! `/auth/get_profile`).

use crate::error::Result;
use crate::storage::UsernameChoice;
use crate::users::{User, validate_username};

use super::AuthService;

/// The answer of `/auth/update`: `{"success": true}` or `{"success": false, "error": …}`.
pub type UpdateOutcome = std::result::Result<(), UpdateRefusal>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefusal {
    NoToken,
    NotAuthenticated,
    UnknownUser,
    AlreadySet,
    Taken,
    Invalid(String),
}

impl UpdateRefusal {
    /// The texts of the old service, which client apps match on.
    pub fn message(&self) -> String {
        match self {
            UpdateRefusal::NoToken => "No token".into(),
            UpdateRefusal::NotAuthenticated => "Not authenticated".into(),
            UpdateRefusal::UnknownUser => "Unknown User".into(),
            UpdateRefusal::AlreadySet => "Cannot modify username, already set".into(),
            UpdateRefusal::Taken => "Username already taken".into(),
            UpdateRefusal::Invalid(reason) => format!("Invalid username: {reason}"),
        }
    }
}

impl AuthService {
    /// Replaces the derived username with one the user chose; once.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn choose_username(
        &self,
        token: Option<&str>,
        username: Option<&str>,
        caller: &crate::audit::Caller,
    ) -> Result<UpdateOutcome> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(Err(UpdateRefusal::NoToken));
        };
        let Some(claims) = self.client_claims(Some(token)) else {
            return Ok(Err(UpdateRefusal::NotAuthenticated));
        };
        if self.store.is_revoked(&claims.revocation_id(token)).await? {
            return Ok(Err(UpdateRefusal::NotAuthenticated));
        }
        let Some(user) = self.store.user(&claims.userid).await? else {
            return Ok(Err(UpdateRefusal::UnknownUser));
        };
        // Other profile fields are ignored, as the old service did.
        let Some(username) = username else {
            return Ok(Ok(()));
        };
        if user.username_set_at.is_some() {
            return Ok(Err(UpdateRefusal::AlreadySet));
        }
        if user.username.as_deref() == Some(username) {
            return Ok(Ok(()));
        }
        if let Err(reason) = validate_username(username) {
            return Ok(Err(UpdateRefusal::Invalid(reason)));
        }
        let choice = self.store.choose_username(&user.id, username).await?;
        // Cached logins of this user carry the old username.
        self.cache.forget_user(&user.id);
        Ok(match choice {
            UsernameChoice::Changed => {
                let event = crate::audit::AuditEvent::new(
                    crate::audit::AuditKind::UsernameChanged,
                    crate::audit::Outcome::Success,
                )
                .user(&user)
                .reason(format!(
                    "{} -> {username}",
                    user.username.as_deref().unwrap_or("(none)")
                ));
                self.audit.record(event, caller).await?;
                Ok(())
            }
            UsernameChoice::AlreadySet => Err(UpdateRefusal::AlreadySet),
            UsernameChoice::Taken => Err(UpdateRefusal::Taken),
            UsernameChoice::UnknownUser => Err(UpdateRefusal::UnknownUser),
        })
    }

    /// The id of the user with this username (case-insensitive).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn resolve(&self, username: Option<&str>) -> Result<Option<String>> {
        Ok(self.profile(username).await?.map(|user| user.id))
    }

    /// The user with this username (case-insensitive).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn profile(&self, username: Option<&str>) -> Result<Option<User>> {
        match username {
            Some(username) => Ok(self.store.user_by_username(username).await?),
            None => Ok(None),
        }
    }
}
