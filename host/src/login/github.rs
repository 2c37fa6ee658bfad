//! GitHub: OAuth2 (with PKCE) and the REST API (`/user`, `/user/emails`). Every endpoint is
//! configurable, for GitHub Enterprise.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use super::Identity;
use super::provider_http::ProviderHttp;
use crate::config::LoginProvider;
use crate::storage::Store;
use crate::users::user_id_of;
use oauth2::AsyncHttpClient;

fn client(
    provider: &LoginProvider,
    redirect: RedirectUrl,
) -> Result<
    BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    String,
> {
    let auth_url = AuthUrl::new(provider.auth_url.clone().unwrap_or_default())
        .map_err(|e| format!("auth_url: {e}"))?;
    let token_url = TokenUrl::new(provider.token_url.clone().unwrap_or_default())
        .map_err(|e| format!("token_url: {e}"))?;
    Ok(BasicClient::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            provider.client_secret.expose().to_owned(),
        ))
        .set_auth_uri(auth_url)
        .set_token_uri(token_url)
        .set_redirect_uri(redirect))
}

pub fn authorize_url(
    provider: &LoginProvider,
    redirect: RedirectUrl,
    state: &str,
    challenge: PkceCodeChallenge,
) -> Result<String, String> {
    let state = state.to_owned();
    let (url, _) = client(provider, redirect)?
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(provider.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .url();
    Ok(url.to_string())
}

#[derive(Debug, Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

async fn api<T: serde::de::DeserializeOwned>(
    http: &ProviderHttp,
    provider: &LoginProvider,
    path: &str,
    token: &str,
) -> Result<T, String> {
    let url = format!("{}{path}", provider.api_url.as_deref().unwrap_or_default());
    let request = http::Request::get(&url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::ACCEPT, "application/vnd.github+json")
        .body(Vec::new())
        .map_err(|e| format!("GitHub API {path}: {e}"))?;
    let response = http.call(request).await.map_err(|error| match error {
        // The reqwest error itself says why; its wrapper only says "client error".
        oauth2::HttpClientError::Reqwest(error) => {
            format!("GitHub API {path} unreachable: {error}")
        }
        other => format!("GitHub API {path} unreachable: {other}"),
    })?;
    if !response.status().is_success() {
        return Err(format!("GitHub API {path} answered {}", response.status()));
    }
    serde_json::from_slice(response.body())
        .map_err(|e| format!("GitHub API {path} answered unreadable JSON: {e}"))
}

pub async fn identity(
    http: &ProviderHttp,
    store: &Store,
    provider: &LoginProvider,
    redirect: RedirectUrl,
    code: &str,
    verifier: &str,
) -> Result<Identity, String> {
    let token = client(provider, redirect)?
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| format!("GitHub refused the code: {e}"))?;
    let access = token.access_token().secret();
    let user: GithubUser = api(http, provider, "/user", access).await?;
    // A public email on GitHub is a verified one; without it, the verified emails decide.
    let email = match user.email.filter(|e| !e.is_empty()) {
        Some(email) => Some(email),
        None => {
            let emails: Vec<GithubEmail> = api(http, provider, "/user/emails", access).await?;
            let verified: Vec<GithubEmail> = emails.into_iter().filter(|e| e.verified).collect();
            choose_email(store, verified).await?
        }
    };
    Ok(Identity {
        provider_id: format!("{}:{}", provider.name, user.id),
        email,
        name: user.name,
        login: Some(user.login),
        avatar_url: user.avatar_url,
    })
}

/// Among verified emails, the old service's choice: one that already belongs to a user (in
/// GitHub's order), else the primary one.
async fn choose_email(store: &Store, verified: Vec<GithubEmail>) -> Result<Option<String>, String> {
    for candidate in &verified {
        let known = store
            .user(&user_id_of(&candidate.email))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot look up a GitHub email's user");
                "the login cannot be checked right now".to_owned()
            })?;
        if known.is_some() {
            return Ok(Some(candidate.email.clone()));
        }
    }
    Ok(verified.into_iter().find(|e| e.primary).map(|e| e.email))
}
