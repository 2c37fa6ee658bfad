//! OpenID Connect providers (Google and any other): discovery, authorization with PKCE and
//! nonce, and ID-token validation (signature, `iss`, `aud`, `exp`, `nonce`) by the
//! openidconnect crate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use super::Identity;
use super::provider_http::ProviderHttp;
use crate::config::LoginProvider;

/// How long a provider's discovery document is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Discovery documents, fetched when first needed.
#[derive(Default)]
pub struct DiscoveryCache {
    documents: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
}

impl DiscoveryCache {
    async fn metadata(
        &self,
        http: &ProviderHttp,
        provider: &LoginProvider,
    ) -> Result<CoreProviderMetadata, String> {
        let issuer = provider.issuer.clone().unwrap_or_default();
        if let Ok(documents) = self.documents.lock()
            && let Some((fetched, metadata)) = documents.get(&issuer)
            && fetched.elapsed() < DISCOVERY_TTL
        {
            return Ok(metadata.clone());
        }
        let issuer_url = IssuerUrl::new(issuer.clone()).map_err(|e| format!("issuer: {e}"))?;
        // Not cached on failure: the next login tries again.
        let metadata = CoreProviderMetadata::discover_async(issuer_url, http)
            .await
            .map_err(|e| {
                format!(
                    "{} is unreachable (discovery failed: {e})",
                    provider.display_name
                )
            })?;
        if let Ok(mut documents) = self.documents.lock() {
            documents.insert(issuer, (Instant::now(), metadata.clone()));
        }
        Ok(metadata)
    }
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

async fn client(
    cache: &DiscoveryCache,
    http: &ProviderHttp,
    provider: &LoginProvider,
    redirect: RedirectUrl,
) -> Result<Client, String> {
    let metadata = cache.metadata(http, provider).await?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(
            provider.client_secret.expose().to_owned(),
        )),
    )
    .set_redirect_uri(redirect))
}

pub async fn authorize_url(
    cache: &DiscoveryCache,
    http: &ProviderHttp,
    provider: &LoginProvider,
    redirect: RedirectUrl,
    state: &str,
    nonce: &str,
    challenge: PkceCodeChallenge,
) -> Result<String, String> {
    let client = client(cache, http, provider, redirect).await?;
    let (state, nonce) = (state.to_owned(), nonce.to_owned());
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        )
        // `openid` is always asked for by the crate.
        .add_scopes(
            provider
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned()
                .map(Scope::new),
        )
        .set_pkce_challenge(challenge)
        .url();
    Ok(url.to_string())
}

#[allow(clippy::too_many_arguments)]
pub async fn identity(
    cache: &DiscoveryCache,
    http: &ProviderHttp,
    provider: &LoginProvider,
    redirect: RedirectUrl,
    code: &str,
    verifier: &str,
    nonce: &str,
) -> Result<Identity, String> {
    let client = client(cache, http, provider, redirect).await?;
    let name = &provider.display_name;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| format!("{name}: {e}"))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| format!("{name} refused the code: {e}"))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| format!("{name} sent no ID token"))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
        .map_err(|e| format!("{name} sent an invalid ID token: {e}"))?;
    let subject = claims.subject().as_str().to_owned();
    let mut email = claims.email().map(|e| e.as_str().to_owned());
    let mut verified = claims.email_verified();
    let mut full_name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    let mut picture = claims
        .picture()
        .and_then(|p| p.get(None))
        .map(|p| p.as_str().to_owned());
    // Some providers put the profile in the userinfo endpoint only.
    if email.is_none()
        && let Ok(request) = client.user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
    {
        let info: CoreUserInfoClaims = request
            .request_async(http)
            .await
            .map_err(|e| format!("{name}: userinfo failed: {e}"))?;
        email = info.email().map(|e| e.as_str().to_owned());
        verified = info.email_verified();
        full_name = full_name.or_else(|| {
            info.name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned())
        });
        picture = picture.or_else(|| {
            info.picture()
                .and_then(|p| p.get(None))
                .map(|p| p.as_str().to_owned())
        });
    }
    // The user id is derived from the email: an unverified one would let anybody claim
    // somebody else's account.
    if verified == Some(false) {
        return Err(format!("{name} has not verified this account's email"));
    }
    Ok(Identity {
        provider_id: format!("{}:{subject}", provider.name),
        email,
        name: full_name,
        login: None,
        avatar_url: picture,
    })
}
