//! Logins from start to token: the login module speaks with the provider and vouches for an
//! identity; here the user is created or refreshed (after the hooks agree) and a client
//! token is sent to `next`.

use std::net::IpAddr;

use crate::audit::{AuditEvent, AuditKind, Caller, Outcome};
use crate::error::Error;
use crate::login::{Identity, LoginEnd, LoginFailure, LoginStart, StartError, landing_url};
use crate::users::{User, new_user, username_candidates};

use super::AuthService;
use super::hooks::{Hook, Refusal};

/// Why a vouched identity gets no token.
enum Unfinished {
    /// Refused (no email, a hook): the message is shown to the user.
    Refused(String),
    /// auth-host failed (database, signing): logged, not shown.
    Failed(Error),
}

impl From<Refusal> for Unfinished {
    fn from(refusal: Refusal) -> Self {
        Unfinished::Refused(refusal.0)
    }
}

impl From<Error> for Unfinished {
    fn from(error: Error) -> Self {
        Unfinished::Failed(error)
    }
}

impl From<crate::storage::StoreError> for Unfinished {
    fn from(error: crate::storage::StoreError) -> Self {
        Unfinished::Failed(error.into())
    }
}

impl AuthService {
    /// Whether the development login (`dev`) is on.
    pub fn dev_login_enabled(&self) -> bool {
        self.logins.dev_login()
    }

    /// Starts a login with `provider`: the browser is sent to the provider's consent page
    /// (or the development form), bound to it by a new cookie.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn start_login(
        &self,
        provider: &str,
        next: Option<&str>,
        client: IpAddr,
        caller: &Caller,
    ) -> Result<LoginStart, StartError> {
        let started = self.logins.start(provider, next, client).await;
        if let Err(limited @ StartError::TooManyLogins { .. }) = &started {
            let event = AuditEvent::new(AuditKind::LoginRefused, Outcome::Refused)
                .provider(Some(provider))
                .reason(format!("limited: {limited}"));
            self.audit.record_anonymous_refusal(event, caller).await;
        }
        started
    }

    /// Finishes a provider login at the callback.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn finish_login(
        &self,
        state: Option<&str>,
        code: Option<&str>,
        provider_error: Option<&str>,
        browser: Option<&str>,
        caller: &Caller,
    ) -> LoginEnd {
        let finished = self
            .logins
            .finish(state, code, provider_error, browser)
            .await;
        self.complete(finished, caller).await
    }

    /// Finishes a development login: whoever the form names.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn finish_dev_login(
        &self,
        state: Option<&str>,
        email: Option<&str>,
        name: Option<&str>,
        browser: Option<&str>,
        caller: &Caller,
    ) -> LoginEnd {
        let finished = self.logins.finish_dev(state, email, name, browser).await;
        self.complete(finished, caller).await
    }

    /// Turns a vouched identity into a token at `next`, or an error there; either way
    /// recorded in the audit trail before the browser is told.
    async fn complete(
        &self,
        finished: Result<(Identity, String), LoginFailure>,
        caller: &Caller,
    ) -> LoginEnd {
        let (identity, next) = match finished {
            Ok(finished) => finished,
            Err(failure) => {
                // An unknown, expired or replayed state, or the provider's refusal: nobody
                // vouched for the caller yet, so repeats are counted, not stored each.
                let event = AuditEvent::new(AuditKind::LoginRefused, Outcome::Refused)
                    .reason(failure.message.clone());
                self.audit.record_anonymous_refusal(event, caller).await;
                return failure.end();
            }
        };
        let provider = identity
            .provider_id
            .split_once(':')
            .map(|(provider, _)| provider.to_owned());
        let email = identity.email.clone();
        let refused = |outcome, reason: &str| {
            AuditEvent::new(AuditKind::LoginRefused, outcome)
                .email(email.as_deref())
                .provider(provider.as_deref())
                .reason(reason)
        };
        match self.complete_login(identity).await {
            Ok((token, user, new)) => {
                let mut event = AuditEvent::new(AuditKind::LoginSucceeded, Outcome::Success)
                    .provider(provider.as_deref())
                    .user(&user);
                if new {
                    event = event.reason("new user");
                }
                // Not reported as logged in unless it is on record.
                if let Err(error) = self.audit.record(event, caller).await {
                    let error = Error::from(error);
                    tracing::error!(%error, "login not recorded in the audit trail");
                    return LoginFailure::new(Some(&next), failed_because(&error)).end();
                }
                LoginEnd::Redirect(landing_url(&next, "jwt", &token))
            }
            Err(Unfinished::Refused(message)) => {
                self.audit
                    .record_best_effort(refused(Outcome::Refused, &message), caller)
                    .await;
                LoginFailure::new(Some(&next), message).end()
            }
            Err(Unfinished::Failed(error)) => {
                tracing::error!(%error, "login failed");
                let message = failed_because(&error);
                self.audit
                    .record_best_effort(refused(Outcome::Failure, &message), caller)
                    .await;
                LoginFailure::new(Some(&next), message).end()
            }
        }
    }

    /// Creates or refreshes the user of a vouched identity (after the hooks agree) and
    /// issues a client token; also the user, and whether it is new.
    async fn complete_login(&self, identity: Identity) -> Result<(String, User, bool), Unfinished> {
        let Some(email) = identity.email.as_deref() else {
            return Err(Unfinished::Refused(
                "The provider gave no email address for this account".into(),
            ));
        };
        let (user, new) = match self.store.user(&crate::users::user_id_of(email)).await? {
            None => (self.first_login(&identity, email).await?, true),
            Some(user) => (self.later_login(identity, user).await?, false),
        };
        let token = self.issue_client_token(&user.id)?;
        Ok((token, user, new))
    }

    /// A new user: stored only if both hooks agree, under the first free username.
    async fn first_login(&self, identity: &Identity, email: &str) -> Result<User, Unfinished> {
        let mut user = new_user(
            email,
            Some(identity.provider_id.clone()),
            identity.login.as_deref(),
            identity.name.clone(),
            identity.avatar_url.clone(),
        );
        self.run_hook(Hook::NewUser, &mut user).await?;
        self.run_hook(Hook::Login, &mut user).await?;
        let base = user.username.clone().unwrap_or_default();
        let stored = self
            .store
            .insert_user_with_free_username(user, username_candidates(&base))
            .await?;
        tracing::info!(user = stored.id, "new user");
        Ok(stored)
    }

    /// A known user: what the provider says now is refreshed, after the login hooks agree.
    async fn later_login(&self, identity: Identity, mut user: User) -> Result<User, Unfinished> {
        user.provider_id = Some(identity.provider_id);
        user.name = identity.name.or(user.name);
        user.avatar_url = identity.avatar_url.or(user.avatar_url);
        let before = user.username.clone();
        self.run_hook(Hook::Login, &mut user).await?;
        if user.username != before
            && let Some(wanted) = &user.username
            && let Some(holder) = self.store.user_by_username(wanted).await?
            && holder.id != user.id
        {
            tracing::warn!(user = user.id, "ignored an amended username that is taken");
            user.username = before;
        }
        self.store.refresh_user(&user).await?;
        self.cache.forget_user(&user.id);
        Ok(user)
    }
}

/// What a user is told of a login auth-host failed: that its storage is full (worth trying
/// again later), or an internal error (the details are logged, never shown).
fn failed_because(error: &Error) -> String {
    match error {
        Error::Storage(store) if store.is_full() => {
            format!("Login failed: {}", crate::storage::STORAGE_FULL)
        }
        _ => "Login failed: internal error".into(),
    }
}
