//! Login providers (`[providers.<name>]`): Google, GitHub or any OpenID Connect provider,
//! with their defaults filled in. Not to be confused with permission-provider plugins.

use serde::Deserialize;

use super::{List, Secret, urls::is_loopback_url};

/// The old service's names for the Google and GitHub OAuth clients.
pub(super) const COMPAT_ENV: &[(&str, &str)] = &[
    ("GOOGLE_KEY", "providers.google.client_id"),
    ("GOOGLE_SECRET", "providers.google.client_secret"),
    ("GITHUB_KEY", "providers.github.client_id"),
    ("GITHUB_SECRET", "providers.github.client_secret"),
];

/// What kind of login provider a `[providers.<name>]` table describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginProviderKind {
    /// OpenID Connect with issuer `https://accounts.google.com`.
    Google,
    /// OAuth2 plus GitHub's REST API (`/user`, `/user/emails`).
    Github,
    /// Any OpenID Connect provider, found by discovery from its issuer.
    Oidc,
}

/// A `[providers.<name>]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderTable {
    pub kind: Option<LoginProviderKind>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// OpenID Connect issuer (google: default `https://accounts.google.com`; oidc: required).
    pub issuer: Option<String>,
    /// GitHub endpoints, for GitHub Enterprise.
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
    pub scopes: Option<List>,
    pub display_name: Option<String>,
}

/// A login provider, checked and with every default filled in.
#[derive(Debug, Clone)]
pub struct LoginProvider {
    pub name: String,
    pub kind: LoginProviderKind,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    /// OpenID Connect issuer (google, oidc).
    pub issuer: Option<String>,
    /// GitHub endpoints.
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
}

/// Checks one provider table and fills in its defaults.
pub(super) fn resolve(name: &str, table: &ProviderTable) -> Result<LoginProvider, String> {
    if name == "dev" {
        return Err("`dev` is the name of the development login (dev_login)".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("names are letters, digits, `_` and `-`".into());
    }
    let kind = match (table.kind, name) {
        (Some(kind), _) => kind,
        (None, "google") => LoginProviderKind::Google,
        (None, "github") => LoginProviderKind::Github,
        (None, _) => return Err("kind: expected `google`, `github` or `oidc`".into()),
    };
    let (client_id, client_secret) = match (&table.client_id, &table.client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.expose().is_empty() => {
            (id.clone(), secret.clone())
        }
        _ => {
            let names = match name {
                "google" => " (GOOGLE_KEY and GOOGLE_SECRET)",
                "github" => " (GITHUB_KEY and GITHUB_SECRET)",
                _ => "",
            };
            return Err(format!(
                "client_id and client_secret are both required{names}"
            ));
        }
    };
    let url_setting =
        |key: &str, value: &Option<String>, default: &str| -> Result<String, String> {
            let url = value.clone().unwrap_or_else(|| default.to_owned());
            check_provider_url(&url).map_err(|problem| format!("{key}: {problem}"))?;
            Ok(url.trim_end_matches('/').to_owned())
        };
    let mut provider = LoginProvider {
        name: name.to_owned(),
        kind,
        display_name: table.display_name.clone().unwrap_or_else(|| match kind {
            LoginProviderKind::Google => "Google".into(),
            LoginProviderKind::Github => "GitHub".into(),
            LoginProviderKind::Oidc => name.to_owned(),
        }),
        client_id,
        client_secret,
        scopes: Vec::new(),
        issuer: None,
        auth_url: None,
        token_url: None,
        api_url: None,
    };
    match kind {
        LoginProviderKind::Google | LoginProviderKind::Oidc => {
            let issuer = match (kind, &table.issuer) {
                (LoginProviderKind::Oidc, None) => {
                    return Err("issuer: required for kind oidc".into());
                }
                (_, issuer) => url_setting("issuer", issuer, "https://accounts.google.com")?,
            };
            provider.issuer = Some(issuer);
            provider.scopes = table
                .scopes
                .clone()
                .map(|l| l.0)
                .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
            if !provider.scopes.iter().any(|s| s == "openid") {
                provider.scopes.insert(0, "openid".into());
            }
        }
        LoginProviderKind::Github => {
            provider.auth_url = Some(url_setting(
                "auth_url",
                &table.auth_url,
                "https://github.com/login/oauth/authorize",
            )?);
            provider.token_url = Some(url_setting(
                "token_url",
                &table.token_url,
                "https://github.com/login/oauth/access_token",
            )?);
            provider.api_url = Some(url_setting(
                "api_url",
                &table.api_url,
                "https://api.github.com",
            )?);
            provider.scopes = table
                .scopes
                .clone()
                .map(|l| l.0)
                .unwrap_or_else(|| vec!["read:user".into(), "user:email".into()]);
        }
    }
    Ok(provider)
}

/// Provider endpoints are https; plain http only on a loopback address.
fn check_provider_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if is_loopback_url(url) => Ok(()),
        "http" => Err(format!(
            "`{url}`: plain http is only allowed on a loopback address"
        )),
        _ => Err(format!("`{url}` must be an https URL")),
    }
}
