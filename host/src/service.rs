//! What auth-host does, independent of HTTP: who a token belongs to, what a user may do in
//! a service, choosing a username, looking users up.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use auth_host_plugin_api::{Permissions, UserInfo};

use md5::Digest as _;

use crate::error::{Error, Result};
use crate::login::{EmailChoice, Identity};
use crate::metrics::{Metrics, PluginCallLabels, TokenLabels};
use crate::plugins::{HookDecision, PluginCallError, PluginRegistry};
use crate::storage::{Store, User, UsernameChoice};
use crate::tokens::{ClientClaims, TokenService};

/// The answer of `/auth/authorize`.
#[derive(Debug, Clone, PartialEq)]
pub enum Authorization {
    /// No token, a bad one, no service or one not allowed: `{"permissions": {}}`.
    Nothing,
    Granted {
        userid: String,
        service: String,
        permissions: Permissions,
        token: String,
    },
}

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

/// Usernames: 2 to 39 characters, ASCII letters, digits, `-`, `_`, `.`, starting and ending
/// with a letter or digit.
pub fn validate_username(username: &str) -> std::result::Result<(), String> {
    const RULE: &str = "use 2 to 39 characters: letters, digits, '-', '_' or '.', \
                        starting and ending with a letter or digit";
    let length = username.chars().count();
    if !(2..=39).contains(&length) {
        return Err(RULE.into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let edges_ok = username.starts_with(|c: char| c.is_ascii_alphanumeric())
        && username.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !username.chars().all(allowed) || !edges_ok {
        return Err(RULE.into());
    }
    Ok(())
}

/// The first choice of username for an email: its local part, lower-cased (suffixes are
/// added when it is taken).
pub fn username_base(email: &str) -> String {
    email.split('@').next().unwrap_or_default().to_lowercase()
}

/// A user's id: md5 hex of the email, as the old service made it.
pub fn user_id_of(email: &str) -> String {
    format!("{:x}", md5::Md5::digest(email.as_bytes()))
}

/// The two login hooks that may refuse.
#[derive(Debug, Clone, Copy)]
enum Hook {
    NewUser,
    Login,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::NewUser => "on_new_user",
            Hook::Login => "on_user_login",
        }
    }
}

/// The plugin-facing record of a user.
pub fn user_info(user: &User) -> UserInfo {
    UserInfo {
        id: user.id.clone(),
        provider_id: user.provider_id.clone(),
        username: user.username.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        avatar_url: user.avatar_url.clone(),
        join_date: user.join_date.map(|d| iso8601(&d)),
    }
}

/// ISO 8601 as the old service wrote it (Python's `isoformat()`).
pub fn iso8601(date: &chrono::NaiveDateTime) -> String {
    use chrono::Timelike;
    if date.nanosecond() == 0 {
        date.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        date.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// Client tokens verified recently, with their user: every authenticated request would
/// otherwise verify an RSA signature and read the database. An entry is trusted for at
/// most `ttl` (and never past the token's expiry), so a logout on another replica or a
/// user deleted by another process takes effect within `ttl`; changes made through this
/// replica drop the entries they concern at once.
struct AuthCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, CachedLogin>>,
}

#[derive(Clone)]
struct CachedLogin {
    until: Instant,
    user: User,
    claims: ClientClaims,
}

/// Beyond this many entries, expired ones are dropped, then all if still too many.
const AUTH_CACHE_MAX_ENTRIES: usize = 100_000;

impl AuthCache {
    fn get(&self, token: &str) -> Option<(User, ClientClaims)> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(token)?;
        (entry.until > Instant::now()).then(|| (entry.user.clone(), entry.claims.clone()))
    }

    fn put(&self, token: &str, user: &User, claims: &ClientClaims) {
        if self.ttl.is_zero() {
            return;
        }
        let left = Duration::from_secs(claims.exp.saturating_sub(unix_now()));
        let until = Instant::now() + self.ttl.min(left);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= AUTH_CACHE_MAX_ENTRIES {
                let now = Instant::now();
                entries.retain(|_, e| e.until > now);
                if entries.len() >= AUTH_CACHE_MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(
                token.to_owned(),
                CachedLogin {
                    until,
                    user: user.clone(),
                    claims: claims.clone(),
                },
            );
        }
    }

    fn forget_token(&self, token: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(token);
        }
    }

    fn forget_user(&self, userid: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, e| e.user.id != userid);
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct AuthService {
    store: Store,
    tokens: TokenService,
    /// Swapped whole on a reload; a request keeps the registry it started with, so calls
    /// in flight finish on the plugins they began on.
    plugins: RwLock<Arc<PluginRegistry>>,
    metrics: Arc<Metrics>,
    cache: AuthCache,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl AuthService {
    /// `auth_cache` bounds how long a verified client token is trusted without checking
    /// it again (zero: never).
    pub fn new(
        store: Store,
        tokens: TokenService,
        plugins: Arc<PluginRegistry>,
        metrics: Arc<Metrics>,
        auth_cache: Duration,
    ) -> Self {
        AuthService {
            store,
            tokens,
            plugins: RwLock::new(plugins),
            metrics,
            cache: AuthCache {
                ttl: auth_cache,
                entries: RwLock::new(HashMap::new()),
            },
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// The plugins in force now.
    pub fn plugins(&self) -> Arc<PluginRegistry> {
        match self.plugins.read() {
            Ok(plugins) => Arc::clone(&plugins),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a newly loaded set of plugins in force.
    pub fn replace_plugins(&self, plugins: Arc<PluginRegistry>) {
        match self.plugins.write() {
            Ok(mut current) => *current = plugins,
            Err(poisoned) => *poisoned.into_inner() = plugins,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The user a client token belongs to; `None` for no token, a bad, expired or revoked
    /// one, or a user that no longer exists. Only a storage failure is an error.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Option<(User, ClientClaims)>> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if let Some(known) = self.cache.get(token) {
            return Ok(Some(known));
        }
        let claims = match self.tokens.verify_client_token(token) {
            Ok(claims) => claims,
            Err(reason) => {
                tracing::debug!(%reason, "client token refused");
                return Ok(None);
            }
        };
        let user = self
            .store
            .user_unless_revoked(&claims.userid, &claims.revocation_id(token))
            .await?;
        if let Some(user) = &user {
            self.cache.put(token, user, &claims);
        }
        Ok(user.map(|user| (user, claims)))
    }

    /// Issues a client token for a user (login, or `auth-host token issue`).
    pub fn issue_client_token(&self, userid: &str) -> Result<String> {
        let (token, _) = self
            .tokens
            .issue_client_token(userid)
            .map_err(Error::Signing)?;
        self.metrics
            .tokens_issued
            .get_or_create(&TokenLabels { kind: "client" })
            .inc();
        Ok(token)
    }

    /// What the user of `token` may do in `service`, asked of the service's provider plugin.
    pub async fn authorize(
        &self,
        token: Option<&str>,
        service: Option<&str>,
    ) -> Result<Authorization> {
        let Some(service) = service.filter(|s| !s.is_empty()) else {
            return Ok(Authorization::Nothing);
        };
        let plugins = self.plugins();
        let Some(provider) = plugins.provider(service).cloned() else {
            return Ok(Authorization::Nothing);
        };
        let Some((user, _)) = self.authenticate(token).await? else {
            return Ok(Authorization::Nothing);
        };
        let info = user_info(&user);
        let asked = service.to_owned();
        let answer = plugins
            .run(&provider, move |plugin| {
                plugin.get_permissions(&asked, &info)
            })
            .await;
        self.count_plugin_call(provider.alias(), &answer);
        let permissions = match answer {
            Ok(permissions) => permissions,
            Err(error) => {
                tracing::warn!(service, %error, "permission provider failed");
                return Err(error.into());
            }
        };
        let token = self
            .tokens
            .issue_permission_token(&user.id, service, &permissions)
            .map_err(Error::Signing)?;
        self.metrics
            .tokens_issued
            .get_or_create(&TokenLabels { kind: "permission" })
            .inc();
        Ok(Authorization::Granted {
            userid: user.id,
            service: service.to_owned(),
            permissions,
            token,
        })
    }

    /// Replaces the derived username with one the user chose; once.
    pub async fn choose_username(
        &self,
        token: Option<&str>,
        username: Option<&str>,
    ) -> Result<UpdateOutcome> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(Err(UpdateRefusal::NoToken));
        };
        let claims = match self.tokens.verify_client_token(token) {
            Ok(claims) => claims,
            Err(_) => return Ok(Err(UpdateRefusal::NotAuthenticated)),
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
            UsernameChoice::Changed => Ok(()),
            UsernameChoice::AlreadySet => Err(UpdateRefusal::AlreadySet),
            UsernameChoice::Taken => Err(UpdateRefusal::Taken),
            UsernameChoice::UnknownUser => Err(UpdateRefusal::UnknownUser),
        })
    }

    fn count_plugin_call<T>(&self, alias: &str, answer: &std::result::Result<T, PluginCallError>) {
        self.metrics
            .plugin_calls
            .get_or_create(&PluginCallLabels {
                alias: alias.to_owned(),
                outcome: outcome_label(answer),
            })
            .inc();
    }

    /// Picks the identity's email: its own, or among GitHub's verified emails one that
    /// already belongs to a user, else the primary one.
    async fn choose_email(&self, choice: &EmailChoice) -> Result<Option<String>> {
        Ok(match choice {
            EmailChoice::Known(email) => Some(email.clone()),
            EmailChoice::None => None,
            EmailChoice::Candidates(emails) => {
                let mut chosen = None;
                for (email, _) in emails {
                    if self.store.user(&user_id_of(email)).await?.is_some() {
                        chosen = Some(email.clone());
                        break;
                    }
                }
                chosen.or_else(|| {
                    emails
                        .iter()
                        .find(|(_, primary)| *primary)
                        .map(|(email, _)| email.clone())
                })
            }
        })
    }

    /// Runs one login hook of every extension in order; the first refusal (or failure:
    /// fail closed) ends it. Amendments apply to `user` as they come.
    async fn run_login_hook(&self, hook: Hook, user: &mut User) -> Result<Result<(), String>> {
        let plugins = self.plugins();
        for extension in plugins.extensions() {
            let info = user_info(user);
            let answer = plugins
                .run(extension, move |plugin| match hook {
                    Hook::NewUser => plugin.on_new_user(&info),
                    Hook::Login => plugin.on_user_login(&info),
                })
                .await;
            self.count_plugin_call(extension.alias(), &answer);
            match answer {
                Ok(HookDecision::Continue) => {}
                Ok(HookDecision::Amend(amendment)) => {
                    if let Some(name) = amendment.name {
                        user.name = Some(name);
                    }
                    if let Some(avatar) = amendment.avatar_url {
                        user.avatar_url = Some(avatar);
                    }
                    if let Some(username) = amendment.username {
                        match validate_username(&username) {
                            Ok(()) => user.username = Some(username),
                            Err(reason) => tracing::warn!(
                                extension = extension.alias(),
                                "ignored an amended username: {reason}"
                            ),
                        }
                    }
                }
                Ok(HookDecision::Refuse(reason)) => {
                    tracing::info!(extension = extension.alias(), hook = hook.name(), %reason, "login refused");
                    return Ok(Err(format!("Login refused: {reason}")));
                }
                Err(error) => {
                    tracing::warn!(hook = hook.name(), %error, "login hook failed; refusing the login");
                    return Ok(Err("Login refused: an extension failed".into()));
                }
            }
        }
        Ok(Ok(()))
    }

    /// Completes a login the provider vouched for: creates or refreshes the user (after
    /// the hooks agree) and issues a client token. `Ok(Err(message))` when refused.
    pub async fn complete_login(&self, identity: Identity) -> Result<Result<String, String>> {
        let Some(email) = self.choose_email(&identity.email).await? else {
            return Ok(Err(
                "The provider gave no email address for this account".into()
            ));
        };
        let id = user_id_of(&email);
        let user = match self.store.user(&id).await? {
            None => {
                let base = identity
                    .login
                    .as_deref()
                    .map(str::to_lowercase)
                    .unwrap_or_else(|| username_base(&email));
                let mut user = User {
                    id,
                    provider_id: Some(identity.provider_id),
                    username: Some(base),
                    name: identity.name,
                    email: Some(email),
                    avatar_url: identity.avatar_url,
                    join_date: Some(chrono::Utc::now().naive_utc()),
                    username_set_at: None,
                };
                // Nothing is stored unless both hooks agree.
                if let Err(refusal) = self.run_login_hook(Hook::NewUser, &mut user).await? {
                    return Ok(Err(refusal));
                }
                if let Err(refusal) = self.run_login_hook(Hook::Login, &mut user).await? {
                    return Ok(Err(refusal));
                }
                let base = user.username.clone().unwrap_or_default();
                let stored = self
                    .store
                    .insert_user_with_free_username(user, &base)
                    .await?;
                tracing::info!(user = stored.id, "new user");
                stored
            }
            Some(mut user) => {
                user.provider_id = Some(identity.provider_id);
                user.name = identity.name.or(user.name);
                user.avatar_url = identity.avatar_url.or(user.avatar_url);
                let before = user.username.clone();
                if let Err(refusal) = self.run_login_hook(Hook::Login, &mut user).await? {
                    return Ok(Err(refusal));
                }
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
                user
            }
        };
        self.issue_client_token(&user.id).map(Ok)
    }

    /// Revokes a client token everywhere (until it would have expired) and tells the
    /// extensions. A token that does not verify has nothing to revoke.
    pub async fn logout(&self, token: Option<&str>) -> Result<()> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        self.cache.forget_token(token);
        let Ok(claims) = self.tokens.verify_client_token(token) else {
            return Ok(());
        };
        self.store
            .revoke_token(
                &claims.revocation_id(token),
                i64::try_from(claims.exp).unwrap_or(i64::MAX),
            )
            .await?;
        let Some(user) = self.store.user(&claims.userid).await? else {
            return Ok(());
        };
        let plugins = self.plugins();
        for extension in plugins.extensions() {
            let info = user_info(&user);
            let answer = plugins
                .run(extension, move |plugin| plugin.on_user_logout(&info))
                .await;
            if let Err(error) = answer {
                // Logout cannot be refused: the failure is only reported.
                tracing::warn!(%error, "on_user_logout failed");
            }
        }
        Ok(())
    }

    /// The id of the user with this username (case-insensitive).
    pub async fn resolve(&self, username: &str) -> Result<Option<String>> {
        Ok(self.store.user_by_username(username).await?.map(|u| u.id))
    }

    /// The user with this username (case-insensitive).
    pub async fn profile(&self, username: &str) -> Result<Option<User>> {
        Ok(self.store.user_by_username(username).await?)
    }
}

fn outcome_label<T>(answer: &std::result::Result<T, PluginCallError>) -> &'static str {
    match answer {
        Ok(_) => "ok",
        Err(PluginCallError::Failed { .. }) => "error",
        Err(PluginCallError::Panicked { .. }) => "panic",
        Err(PluginCallError::TimedOut { .. }) => "timeout",
        Err(PluginCallError::Busy { .. }) => "busy",
        Err(PluginCallError::InvalidAnswer { .. }) => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        for good in ["ab", "alice", "a.b-c_d", "User42", &"x".repeat(39)] {
            assert_eq!(validate_username(good), Ok(()), "{good}");
        }
        for bad in [
            "a",
            "",
            "-alice",
            "alice.",
            "al ice",
            "ali/ce",
            "élise",
            &"x".repeat(40),
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_written_as_python_isoformat_did() {
        let whole = chrono::NaiveDate::from_ymd_opt(2019, 5, 1)
            .unwrap()
            .and_hms_opt(12, 34, 56)
            .unwrap();
        assert_eq!(iso8601(&whole), "2019-05-01T12:34:56");
        let fraction = whole + chrono::Duration::microseconds(1500);
        assert_eq!(iso8601(&fraction), "2019-05-01T12:34:56.001500");
    }
}
