//! The routes: which path and method reach which handler. Handlers only read parameters,
//! call the service and shape the JSON the old service answered.

use hyper::StatusCode;
use md5::Digest as _;
use serde_json::{Value, json};

use super::AdminAccess;
use super::login;
use super::request::Params;
use super::response::{Reply, plugin_status};
use crate::error::{Error, Result};
use crate::login::Logins;
use crate::reload::ReloadError;
use crate::service::{AuthService, Authorization, iso8601};
use crate::storage::User;

/// Every route, served under `/auth/` and (for compatibility) `/user/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Check,
    Authorize,
    Update,
    PublicKey,
    Resolve,
    GetProfile,
    Jwks,
    Health,
    Metrics,
    /// `login/<provider>`
    Login,
    /// `login/dev`
    DevLogin,
    OAuthCallback,
    Logout,
    /// `/admin/reload`, outside the old service's prefixes.
    AdminReload,
}

const GET: &[&str] = &["GET"];
const GET_POST: &[&str] = &["GET", "POST"];
const POST: &[&str] = &["POST"];

impl Route {
    pub fn from_path(path: &str) -> Option<Route> {
        if path == "/admin/reload" {
            return Some(Route::AdminReload);
        }
        let rest = path
            .strip_prefix("/auth/")
            .or_else(|| path.strip_prefix("/user/"))?;
        Some(match rest {
            "check" => Route::Check,
            "authorize" => Route::Authorize,
            "update" => Route::Update,
            "public-key" => Route::PublicKey,
            "resolve" => Route::Resolve,
            "get_profile" => Route::GetProfile,
            ".well-known/jwks.json" => Route::Jwks,
            "health" => Route::Health,
            "metrics" => Route::Metrics,
            "oauth_callback" => Route::OAuthCallback,
            "logout" => Route::Logout,
            "login/dev" => Route::DevLogin,
            other => match other.strip_prefix("login/") {
                Some(name)
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    Route::Login
                }
                _ => return None,
            },
        })
    }

    /// The route's name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Route::Check => "check",
            Route::Authorize => "authorize",
            Route::Update => "update",
            Route::PublicKey => "public-key",
            Route::Resolve => "resolve",
            Route::GetProfile => "get_profile",
            Route::Jwks => "jwks",
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Login => "login",
            Route::DevLogin => "login_dev",
            Route::OAuthCallback => "oauth_callback",
            Route::Logout => "logout",
            Route::AdminReload => "admin_reload",
        }
    }

    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Route::Authorize | Route::DevLogin | Route::Logout => GET_POST,
            Route::Update | Route::AdminReload => POST,
            _ => GET,
        }
    }
}

/// What handlers work with.
pub struct Context<'a> {
    pub service: &'a AuthService,
    pub logins: &'a Logins,
    pub admin: Option<&'a AdminAccess>,
    /// The request path (login routes read the provider from it).
    pub path: &'a str,
    pub post: bool,
    /// Whether cookies must be `Secure` (the external address is https).
    pub secure_cookies: bool,
}

pub async fn handle(route: Route, context: &Context<'_>, params: &Params) -> Result<Reply> {
    let service = context.service;
    match route {
        Route::Check => check(service, context.logins, params).await,
        Route::Login => {
            let provider = context.path.rsplit('/').next().unwrap_or_default();
            login::start(context.logins, provider, params, context.secure_cookies).await
        }
        Route::DevLogin => {
            login::dev(
                service,
                context.logins,
                params,
                context.post,
                context.secure_cookies,
            )
            .await
        }
        Route::OAuthCallback => Ok(login::callback(service, context.logins, params).await),
        Route::Logout => login::logout(service, context.logins, params).await,
        Route::Authorize => authorize(service, params).await,
        Route::Update => update(service, params).await,
        Route::AdminReload => admin_reload(context.admin, params).await,
        Route::PublicKey => Ok(Reply::text(
            "text/plain; charset=utf-8",
            service.tokens().keys().public_pem().to_owned(),
        )),
        Route::Resolve => {
            let userid = match params.get("username") {
                Some(username) => service.resolve(username).await?,
                None => None,
            };
            Ok(Reply::json(json!({ "userid": userid })))
        }
        Route::GetProfile => get_profile(service, params).await,
        Route::Jwks => Ok(Reply::json(
            serde_json::to_value(service.tokens().keys().jwks())
                .map_err(|e| Error::BadRequest(e.to_string()))?,
        )),
        Route::Health => Ok(match service.store().ping().await {
            Ok(()) => Reply::json(json!({"status": "ok"})),
            Err(error) => {
                tracing::warn!(%error, "health check: database unreachable");
                Reply::json_with(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "unavailable", "database": "unreachable"}),
                )
            }
        }),
        Route::Metrics => Ok(Reply::text(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            service.metrics().render(),
        )),
    }
}

fn profile(user: &User) -> Value {
    json!({
        "id": user.id,
        "idhash": user.id,
        "provider_id": user.provider_id,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "avatar_url": user.avatar_url,
        "join_date": user.join_date.as_ref().map(iso8601),
    })
}

async fn check(service: &AuthService, logins: &Logins, params: &Params) -> Result<Reply> {
    Ok(Reply::json(
        match service.authenticate(params.jwt()).await? {
            Some((user, _)) => json!({"authenticated": true, "profile": profile(&user)}),
            None => {
                let providers: serde_json::Map<String, Value> = logins
                    .provider_links(params.get("next"))
                    .into_iter()
                    .map(|(name, url)| (name, json!({ "url": url })))
                    .collect();
                json!({"authenticated": false, "providers": providers})
            }
        },
    ))
}

async fn authorize(service: &AuthService, params: &Params) -> Result<Reply> {
    match service.authorize(params.jwt(), params.get("service")).await {
        Ok(Authorization::Nothing) => Ok(Reply::json(json!({"permissions": {}}))),
        Ok(Authorization::Granted {
            userid,
            service,
            permissions,
            token,
        }) => Ok(Reply::json(json!({
            "userid": userid,
            "permissions": permissions,
            "service": service,
            "token": token,
        }))),
        // The provider failed: this request only, with the shape clients already parse.
        Err(Error::Plugin(error)) => Ok(Reply::json_with(
            plugin_status(&error),
            json!({"permissions": {}, "error": error.to_string()}),
        )),
        Err(other) => Err(other),
    }
}

async fn update(service: &AuthService, params: &Params) -> Result<Reply> {
    Ok(Reply::json(
        match service
            .choose_username(params.jwt(), params.get("username"))
            .await?
        {
            Ok(()) => json!({"success": true}),
            Err(refusal) => json!({"success": false, "error": refusal.message()}),
        },
    ))
}

async fn get_profile(service: &AuthService, params: &Params) -> Result<Reply> {
    let user = match params.get("username") {
        Some(username) => service.profile(username).await?,
        None => None,
    };
    Ok(Reply::json(match user {
        Some(user) => {
            let gravatar = user
                .email
                .as_deref()
                .map(|email| format!("{:x}", md5::Md5::digest(email.as_bytes())));
            json!({
                "found": true,
                "profile": {
                    "id": user.id,
                    "name": user.name,
                    "join_date": user.join_date.as_ref().map(iso8601),
                    "avatar_url": user.avatar_url,
                    "gravatar": gravatar,
                }
            })
        }
        None => json!({"found": false, "profile": null}),
    }))
}

/// `POST /admin/reload`: the same reload as SIGHUP, answering how it went.
async fn admin_reload(admin: Option<&AdminAccess>, params: &Params) -> Result<Reply> {
    let Some(admin) = admin else {
        return Err(Error::NotFound);
    };
    if !params
        .bearer()
        .is_some_and(|token| admin.token.matches(token))
    {
        tracing::warn!("admin endpoint: missing or wrong bearer token");
        return Err(Error::Unauthorized);
    }
    // A task of its own: a caller that goes away must not cut a reload in half.
    let reloader = std::sync::Arc::clone(&admin.reloader);
    let outcome = tokio::spawn(async move { reloader.reload("admin endpoint").await })
        .await
        .unwrap_or_else(|error| Err(ReloadError::Stopped(error.to_string())));
    Ok(match outcome {
        Ok(reloaded) => Reply::json(json!({
            "reloaded": true,
            "services": reloaded.services,
            "extensions": reloaded.extensions,
        })),
        Err(ReloadError::Refused(problems)) => Reply::json_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"reloaded": false, "errors": problems}),
        ),
        Err(error @ ReloadError::Stopped(_)) => Reply::json_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"reloaded": false, "errors": [error.to_string()]}),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_under_both_prefixes() {
        for prefix in ["/auth/", "/user/"] {
            assert_eq!(
                Route::from_path(&format!("{prefix}check")),
                Some(Route::Check)
            );
            assert_eq!(
                Route::from_path(&format!("{prefix}.well-known/jwks.json")),
                Some(Route::Jwks)
            );
        }
        assert_eq!(Route::from_path("/auth/nothing"), None);
        assert_eq!(Route::from_path("/check"), None);
        assert_eq!(Route::from_path("/auth/check/"), None);
    }
}
