//! The routes: which path and method reach which handler. Handlers only read parameters,
//! call the service and shape the JSON the old service answered.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::login;
use super::request::Params;
use super::response::{Rejection, Reply, plugin_status};
use crate::admin::AdminAccess;
use crate::error::{Error, Result};
use crate::login::Endpoints;
use crate::reload::ReloadError;
use crate::service::{AuthService, Authorization, CheckAnswer};
use crate::users::{User, gravatar, iso8601};

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
    /// `/admin/audit`
    AdminAudit,
}

const GET: &[&str] = &["GET"];
const GET_POST: &[&str] = &["GET", "POST"];
const POST: &[&str] = &["POST"];

/// The public URLs of the login endpoints, under `EXTERNAL_ADDRESS` (`base`, without a
/// trailing `/`). The paths are the ones [`Route::from_path`] serves.
pub fn login_endpoints(base: &str) -> Endpoints {
    Endpoints {
        callback: format!("{base}/auth/oauth_callback"),
        login_prefix: format!("{base}/auth/login/"),
        check: format!("{base}/auth/check"),
    }
}

impl Route {
    pub fn from_path(path: &str) -> Option<Route> {
        if path == "/admin/reload" {
            return Some(Route::AdminReload);
        }
        if path == "/admin/audit" {
            return Some(Route::AdminAudit);
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
            Route::AdminAudit => "admin_audit",
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
    pub admin: Option<&'a AdminAccess>,
    /// The request path (login routes read the provider from it).
    pub path: &'a str,
    pub post: bool,
    /// Whether cookies must be `Secure` (the external address is https).
    pub secure_cookies: bool,
}

/// The handlers that fail answer with a [`Rejection`] or a service [`Error`].
pub enum Failure {
    Rejected(Rejection),
    Service(Error),
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Failure::Rejected(rejection)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Service(error)
    }
}

impl From<Failure> for Reply {
    fn from(failure: Failure) -> Reply {
        match failure {
            Failure::Rejected(rejection) => rejection.into(),
            Failure::Service(error) => error.into(),
        }
    }
}

pub async fn handle(
    route: Route,
    context: &Context<'_>,
    params: &Params,
) -> std::result::Result<Reply, Failure> {
    let service = context.service;
    let secure = context.secure_cookies;
    Ok(match route {
        Route::Check => check(service, params).await?,
        Route::Login => {
            let provider = context.path.rsplit('/').next().unwrap_or_default();
            login::start(service, provider, params, secure).await?
        }
        Route::DevLogin => login::dev(service, params, context.post, secure).await?,
        Route::OAuthCallback => login::callback(service, params).await,
        Route::Logout => login::logout(service, params).await?,
        Route::Authorize => authorize(service, params).await?,
        Route::Update => update(service, params).await?,
        Route::AdminReload => admin_reload(context.admin, params).await?,
        Route::AdminAudit => admin_audit(context.admin, service, params).await?,
        Route::PublicKey => Reply::text("text/plain; charset=utf-8", service.public_key()),
        Route::Resolve => {
            let userid = service.resolve(params.get("username")).await?;
            Reply::json(json!({ "userid": userid }))
        }
        Route::GetProfile => get_profile(service, params).await?,
        Route::Jwks => Reply::json(service.jwks()?),
        Route::Health => health(service).await,
        Route::Metrics => Reply::text(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            service.metrics().render(),
        ),
    })
}

/// The profile `/auth/check` shows, with the old service's fields.
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

/// `/auth/health`: 200 when this replica should get requests, else 503 saying why; isolated
/// plugins in a crash loop are named either way. An audit trail that cannot be written makes
/// it "degraded", still 200: logins fail, but the replica still verifies tokens, and taking
/// every replica of a full database out would stop that too.
async fn health(service: &AuthService) -> Reply {
    let health = service.health().await;
    let (status, mut body) = match (health.draining, health.database, health.audit) {
        (true, _, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining"}),
        ),
        (false, true, None) => (StatusCode::OK, json!({"status": "ok"})),
        (false, true, Some(audit)) => (
            StatusCode::OK,
            json!({"status": "degraded", "audit": audit}),
        ),
        (false, false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "database": "unreachable"}),
        ),
    };
    if !health.crash_loops.is_empty() {
        body["plugins"] = health
            .crash_loops
            .iter()
            .map(|alias| (alias.clone(), json!("crash loop")))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    Reply::json_with(status, body)
}

async fn check(service: &AuthService, params: &Params) -> Result<Reply> {
    Ok(Reply::json(
        match service.check(params.jwt(), params.get("next")).await? {
            CheckAnswer::Authenticated(user) => {
                json!({"authenticated": true, "profile": profile(&user)})
            }
            CheckAnswer::NotAuthenticated { providers } => {
                let providers: serde_json::Map<String, Value> = providers
                    .into_iter()
                    .map(|(name, link)| (name, json!({"url": link.url, "name": link.display_name})))
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
            .choose_username(params.jwt(), params.get("username"), &params.caller())
            .await?
        {
            Ok(()) => json!({"success": true}),
            Err(refusal) => json!({"success": false, "error": refusal.message()}),
        },
    ))
}

async fn get_profile(service: &AuthService, params: &Params) -> Result<Reply> {
    Ok(Reply::json(
        match service.profile(params.get("username")).await? {
            Some(user) => json!({
                "found": true,
                "profile": {
                    "id": user.id,
                    "name": user.name,
                    "join_date": user.join_date.as_ref().map(iso8601),
                    "avatar_url": user.avatar_url,
                    "gravatar": user.email.as_deref().map(gravatar),
                }
            }),
            None => json!({"found": false, "profile": null}),
        },
    ))
}

/// `POST /admin/reload`: the same reload as SIGHUP, answering how it went.
/// Most events one page of `GET /admin/audit` holds.
const MAX_AUDIT_PAGE: u64 = 1000;

/// `GET /admin/audit?user=&type=&since=&until=&limit=&cursor=`: events newest first, a page
/// at a time; `next` is the cursor of the following page (absent on the last).
async fn admin_audit(
    admin: Option<&AdminAccess>,
    service: &AuthService,
    params: &Params,
) -> std::result::Result<Reply, Failure> {
    let Some(admin) = admin else {
        return Err(Rejection::NotFound.into());
    };
    if !admin.authorized(params.bearer()) {
        return Err(Rejection::Unauthorized.into());
    }
    let bad = |message: String| Failure::from(Rejection::BadRequest(message));
    let mut filter = crate::audit::filter(
        params.get("user"),
        params.get("type").filter(|t| !t.is_empty()),
        params.get("since").filter(|t| !t.is_empty()),
        params.get("until").filter(|t| !t.is_empty()),
    )
    .map_err(bad)?;
    filter.before_id = params
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| bad(format!("cursor `{c}`: not a cursor")))
        })
        .transpose()?;
    let limit = params
        .get("limit")
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<u64>()
                .ok()
                .filter(|l| (1..=MAX_AUDIT_PAGE).contains(l))
                .ok_or_else(|| bad(format!("limit `{l}`: from 1 to {MAX_AUDIT_PAGE}")))
        })
        .transpose()?
        .unwrap_or(100);
    let mut events = service
        .store()
        .audit_events(&filter, limit + 1)
        .await
        .map_err(|e| Failure::from(Error::from(e)))?;
    let next = (events.len() as u64 > limit).then(|| {
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        events.last().map(|event| event.id.to_string())
    });
    let events: Vec<Value> = events.iter().map(crate::audit::to_json).collect();
    let mut body = json!({ "events": events });
    if let Some(Some(next)) = next {
        body["next"] = json!(next);
    }
    Ok(Reply::json(body))
}

async fn admin_reload(
    admin: Option<&AdminAccess>,
    params: &Params,
) -> std::result::Result<Reply, Rejection> {
    let Some(admin) = admin else {
        return Err(Rejection::NotFound);
    };
    Ok(match admin.reload(params.bearer()).await {
        Ok(reloaded) => Reply::json(json!({
            "reloaded": true,
            "services": reloaded.services,
            "extensions": reloaded.extensions,
        })),
        Err(ReloadError::Unauthorized) => return Err(Rejection::Unauthorized),
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
