//! Logging in with a login provider: starting the login (state, PKCE, nonce, browser
//! binding), and finishing it at the callback (single-use state, code exchange, identity).
//! What becomes of the identity (user records, hooks, tokens) is the service's business
//! (`service::login`).
//!
//! Nothing here knows about HTTP requests: the service hands in parameters and the
//! browser-binding cookie, and gets back URLs and cookie values. The URLs of auth-host's own
//! endpoints come from the HTTP routes ([`Endpoints`]).

mod github;
mod oidc;
mod provider_http;
mod redirects;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use oauth2::{PkceCodeChallenge, RedirectUrl};

use crate::clock::unix_now_i64;
use crate::config::client_key;
use crate::config::{LoginProvider, LoginProviderKind};
use crate::crypto::{random_token, sha256_hex};
use crate::storage::{LoginState, Store, StoreError};

/// A login attempt lives this long.
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(600);

/// The cookie binding a login to the browser that started it.
pub const BROWSER_COOKIE: &str = "auth_host_browser";

pub use redirects::{MAX_NEXT_BYTES, landing_url, validate_next, with_param};

/// The development login's provider name.
pub const DEV_PROVIDER: &str = "dev";
/// What a login button of the development login says.
const DEV_DISPLAY_NAME: &str = "Development login";

/// Where a login with one provider starts, and what a login button calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderLink {
    /// `/auth/login/<provider>`, carrying `next`.
    pub url: String,
    /// The provider's `display_name` (Google, GitHub, the OIDC provider's own).
    pub display_name: String,
}

/// An identity a provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `<provider>:<subject>`
    pub provider_id: String,
    /// The account's email; for GitHub without a public one, the verified email chosen by
    /// the old service's rule (`github.rs`). `None`: the provider gave none.
    pub email: Option<String>,
    pub name: Option<String>,
    /// The provider's own user name (GitHub's login), the first choice of username.
    pub login: Option<String>,
    pub avatar_url: Option<String>,
}

/// Why a login cannot go on. `next` is where to send the browser with `error`, when the
/// login got far enough to know a safe one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailure {
    pub next: Option<String>,
    pub message: String,
}

impl LoginFailure {
    pub fn new(next: Option<&str>, message: impl Into<String>) -> Self {
        LoginFailure {
            next: next.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Where the browser goes: back to `next` with `error`, or to an error page.
    pub fn end(self) -> LoginEnd {
        match self.next {
            Some(next) => LoginEnd::Redirect(landing_url(&next, "error", &self.message)),
            None => LoginEnd::ErrorPage(self.message),
        }
    }
}

/// Where the browser goes when a login (or a step of it) ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginEnd {
    /// A complete URL: `next` with `jwt` or `error` added, or the provider's consent page.
    Redirect(String),
    /// No safe place to send the browser: a page says what went wrong.
    ErrorPage(String),
}

/// What the front end does to start a login: set the cookie, redirect to `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStart {
    pub redirect: String,
    pub browser_cookie: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown login provider `{0}`")]
    UnknownProvider(String),
    #[error("{0}")]
    BadNext(String),
    /// This client has too many logins started and not finished; one may start after
    /// `retry_after`.
    #[error("too many unfinished logins from this address; try again later")]
    TooManyLogins { retry_after: Duration },
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The provider cannot be reached (e.g. discovery failed); the browser goes back to
    /// `next` with the error.
    #[error("{}", .0.message)]
    Provider(LoginFailure),
}

/// The public URLs of auth-host's own login endpoints (the HTTP routes own their paths).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Where providers send the browser back.
    pub callback: String,
    /// `…/login/`: a provider's name appended starts a login with it.
    pub login_prefix: String,
    /// Where a login without `next` lands (it shows who logged in).
    pub check: String,
}

/// Login settings, from the configuration.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// `None` without `EXTERNAL_ADDRESS`: no login can start.
    pub endpoints: Option<Endpoints>,
    /// Origins `next` may be on.
    pub redirect_origins: Vec<String>,
    pub providers: Vec<LoginProvider>,
    pub dev_login: bool,
    /// Logins one client may have started and not finished.
    pub max_unfinished_per_client: usize,
    /// Certificate authorities trusted beyond the bundled web roots (PEM text), for
    /// providers behind a private CA.
    pub extra_ca_pem: Option<String>,
}

pub struct Logins {
    settings: LoginSettings,
    store: Store,
    http: provider_http::ProviderHttp,
    oidc: oidc::DiscoveryCache,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins").finish_non_exhaustive()
    }
}

impl Logins {
    pub fn new(settings: LoginSettings, store: Store) -> Result<Logins, String> {
        // Never follow redirects from a provider's endpoints (the oauth2 crate's advice
        // against SSRF), and never wait forever.
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("auth-host/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.extra_ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("ca_certificates: not PEM certificates ({e})"))?;
            if roots.is_empty() {
                return Err("ca_certificates: the file holds no certificate".into());
            }
            for root in roots {
                http = http.add_root_certificate(root);
            }
        }
        let http = provider_http::ProviderHttp::new(
            http.build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
        );
        Ok(Logins {
            settings,
            store,
            http,
            oidc: oidc::DiscoveryCache::default(),
        })
    }

    pub fn dev_login(&self) -> bool {
        self.settings.dev_login
    }

    fn provider(&self, name: &str) -> Option<&LoginProvider> {
        self.settings.providers.iter().find(|p| p.name == name)
    }

    fn callback_url(&self) -> Option<RedirectUrl> {
        let endpoints = self.settings.endpoints.as_ref()?;
        RedirectUrl::new(endpoints.callback.clone()).ok()
    }

    /// `/auth/check`'s `providers`: name → login URL on auth-host, carrying `next`.
    pub fn provider_links(&self, next: Option<&str>) -> BTreeMap<String, ProviderLink> {
        let Some(endpoints) = &self.settings.endpoints else {
            return BTreeMap::new();
        };
        let names = self
            .settings
            .providers
            .iter()
            .map(|p| (p.name.as_str(), p.display_name.as_str()))
            .chain(
                self.settings
                    .dev_login
                    .then_some((DEV_PROVIDER, DEV_DISPLAY_NAME)),
            );
        names
            .map(|(name, display_name)| {
                let mut url = format!("{}{name}", endpoints.login_prefix);
                if let Some(next) = next {
                    url = with_param(&url, "next", next);
                }
                let link = ProviderLink {
                    url,
                    display_name: display_name.to_owned(),
                };
                (name.to_owned(), link)
            })
            .collect()
    }

    /// `next` when it is valid ([`validate_next`]); when absent, auth-host's own
    /// `/auth/check`, which then shows who logged in.
    pub fn check_next(&self, next: Option<&str>) -> Result<String, String> {
        match (next.filter(|n| !n.is_empty()), &self.settings.endpoints) {
            (Some(next), _) => validate_next(next, &self.settings.redirect_origins),
            (None, Some(endpoints)) => {
                validate_next(&endpoints.check, &self.settings.redirect_origins)
            }
            (None, None) => Err("next is required".into()),
        }
    }

    /// Starts a login with `provider` for `client`: remembers it (state, PKCE verifier,
    /// nonce, browser) and gives the URL of the provider's consent page.
    pub async fn start(
        &self,
        provider_name: &str,
        next: Option<&str>,
        client: IpAddr,
    ) -> Result<LoginStart, StartError> {
        let is_dev = provider_name == DEV_PROVIDER && self.settings.dev_login;
        let provider = self.provider(provider_name);
        if provider.is_none() && !is_dev {
            return Err(StartError::UnknownProvider(provider_name.to_owned()));
        }
        // Refused before anything else: a token is never sent to an unlisted site.
        let next = self.check_next(next).map_err(StartError::BadNext)?;
        // Counted in the database, so that the limit holds across replicas. Logins started
        // at the same moment on several replicas may each see the count before the others'
        // rows: the limit may be passed by that many, never more.
        let client = client_key(client);
        let (unfinished, oldest) = self.store.unfinished_logins(&client).await?;
        if unfinished >= self.settings.max_unfinished_per_client as u64 {
            let now = unix_now_i64();
            let retry_after = oldest.map_or(LOGIN_LIFETIME, |oldest| {
                Duration::from_secs(
                    u64::try_from(oldest.saturating_sub(now))
                        .unwrap_or(0)
                        .max(1),
                )
            });
            return Err(StartError::TooManyLogins { retry_after });
        }
        self.remember(provider_name, provider, next, client).await
    }

    /// Stores a new login and gives where the browser goes first.
    async fn remember(
        &self,
        provider_name: &str,
        provider: Option<&LoginProvider>,
        next: String,
        client_key: String,
    ) -> Result<LoginStart, StartError> {
        let (Some(endpoints), Some(callback)) = (&self.settings.endpoints, self.callback_url())
        else {
            return Err(StartError::BadNext(
                "external_address is not configured".into(),
            ));
        };
        let state = random_token();
        let nonce = random_token();
        // A fresh binding for every login: a value planted in the browser is never adopted.
        let browser_cookie = random_token();
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let redirect = match provider {
            None => format!("{}{DEV_PROVIDER}?state={state}", endpoints.login_prefix),
            Some(provider) => {
                let started = match provider.kind {
                    LoginProviderKind::Github => {
                        github::authorize_url(provider, callback, &state, challenge)
                    }
                    LoginProviderKind::Google | LoginProviderKind::Oidc => {
                        oidc::authorize_url(
                            &self.oidc, &self.http, provider, callback, &state, &nonce, challenge,
                        )
                        .await
                    }
                };
                started.map_err(|message| {
                    tracing::warn!(provider = provider.name, %message, "cannot start a login");
                    StartError::Provider(LoginFailure::new(Some(&next), message))
                })?
            }
        };
        self.store
            .save_login_state(LoginState {
                state_hash: sha256_hex(state.as_bytes()),
                browser_hash: sha256_hex(browser_cookie.as_bytes()),
                provider: provider_name.to_owned(),
                next,
                pkce_verifier: verifier.secret().clone(),
                nonce,
                expires_at: unix_now_i64() + LOGIN_LIFETIME.as_secs() as i64,
                client_key: Some(client_key),
            })
            .await?;
        Ok(LoginStart {
            redirect,
            browser_cookie,
        })
    }

    /// Takes the login `state` names, checking it is alive and bound to this browser.
    async fn take_state(
        &self,
        state: Option<&str>,
        browser: Option<&str>,
    ) -> Result<LoginState, LoginFailure> {
        let state = state
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LoginFailure::new(None, "the login has no state"))?;
        let saved = self
            .store
            .take_login_state(&sha256_hex(state.as_bytes()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read a login state");
                LoginFailure::new(None, "the login cannot be checked right now")
            })?
            .ok_or_else(|| {
                LoginFailure::new(
                    None,
                    "this login is unknown or was already used; start again",
                )
            })?;
        let next = Some(saved.next.as_str());
        if saved.expires_at < unix_now_i64() {
            return Err(LoginFailure::new(next, "the login expired; start again"));
        }
        // Constant-time compare is not needed: both sides are digests of random values.
        if browser.map(|b| sha256_hex(b.as_bytes())).as_deref() != Some(saved.browser_hash.as_str())
        {
            return Err(LoginFailure::new(
                next,
                "the login was started in another browser; start again",
            ));
        }
        Ok(saved)
    }

    /// Finishes a provider login at the callback: the identity, and where to go next.
    pub async fn finish(
        &self,
        state: Option<&str>,
        code: Option<&str>,
        provider_error: Option<&str>,
        browser: Option<&str>,
    ) -> Result<(Identity, String), LoginFailure> {
        let saved = self.take_state(state, browser).await?;
        let next = Some(saved.next.as_str());
        if let Some(error) = provider_error {
            return Err(LoginFailure::new(
                next,
                format!("the provider refused: {error}"),
            ));
        }
        let code = code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| LoginFailure::new(next, "the provider sent no code"))?;
        let provider = self.provider(&saved.provider).ok_or_else(|| {
            LoginFailure::new(next, "this login provider is no longer configured")
        })?;
        let callback = self
            .callback_url()
            .ok_or_else(|| LoginFailure::new(next, "external_address is not configured"))?;
        let identity = match provider.kind {
            LoginProviderKind::Github => {
                github::identity(
                    &self.http,
                    &self.store,
                    provider,
                    callback,
                    code,
                    &saved.pkce_verifier,
                )
                .await
            }
            LoginProviderKind::Google | LoginProviderKind::Oidc => {
                oidc::identity(
                    &self.oidc,
                    &self.http,
                    provider,
                    callback,
                    code,
                    &saved.pkce_verifier,
                    &saved.nonce,
                )
                .await
            }
        };
        match identity {
            Ok(identity) => Ok((identity, saved.next)),
            Err(message) => {
                tracing::warn!(provider = provider.name, %message, "login failed");
                Err(LoginFailure::new(next, message))
            }
        }
    }

    /// Finishes a development login: whoever the form says.
    pub async fn finish_dev(
        &self,
        state: Option<&str>,
        email: Option<&str>,
        name: Option<&str>,
        browser: Option<&str>,
    ) -> Result<(Identity, String), LoginFailure> {
        if !self.settings.dev_login {
            return Err(LoginFailure::new(
                None,
                "the development login is not enabled",
            ));
        }
        let saved = self.take_state(state, browser).await?;
        let next = Some(saved.next.as_str());
        if saved.provider != DEV_PROVIDER {
            return Err(LoginFailure::new(
                next,
                "this login was not a development login",
            ));
        }
        let email = email
            .map(str::trim)
            .filter(|e| e.contains('@') && e.len() <= 128)
            .ok_or_else(|| LoginFailure::new(next, "an email address is required"))?;
        Ok((
            Identity {
                provider_id: format!("{DEV_PROVIDER}:{email}"),
                email: Some(email.to_owned()),
                name: name
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                login: None,
                avatar_url: None,
            },
            saved.next,
        ))
    }
}
