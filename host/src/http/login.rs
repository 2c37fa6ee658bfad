//! Login and logout pages: redirects, the browser-binding cookie, the development form.

use hyper::StatusCode;
use serde_json::json;

use super::request::Params;
use super::response::{Reply, escape_html};
use crate::error::Result;
use crate::login::{
    BROWSER_COOKIE, DEV_PROVIDER, Identity, LOGIN_LIFETIME, LoginFailure, Logins, StartError,
    with_param,
};
use crate::service::AuthService;

fn browser_cookie(value: &str, secure: bool) -> String {
    format!(
        "{BROWSER_COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        LOGIN_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// A person-facing error page, for failures with no safe place to send the browser.
fn error_page(status: StatusCode, message: &str) -> Reply {
    Reply::html(
        status,
        format!(
            "<!doctype html><meta charset=utf-8><title>Login failed</title>\
             <h1>Login failed</h1><p>{}</p>",
            escape_html(message)
        ),
    )
}

fn failed(failure: LoginFailure) -> Reply {
    match failure.next {
        Some(next) => Reply::redirect(with_param(&next, "error", &failure.message)),
        None => error_page(StatusCode::BAD_REQUEST, &failure.message),
    }
}

/// `GET /auth/login/<provider>?next=…`: remember the login, send the browser to the provider.
pub async fn start(
    logins: &Logins,
    provider: &str,
    params: &Params,
    secure: bool,
) -> Result<Reply> {
    match logins
        .start(provider, params.get("next"), params.browser())
        .await
    {
        Ok(started) => Ok(Reply::redirect(started.redirect)
            .with_cookie(browser_cookie(&started.browser_cookie, secure))),
        Err(StartError::UnknownProvider(name)) => Ok(Reply::json_with(
            StatusCode::NOT_FOUND,
            json!({"error": format!("unknown login provider `{name}`")}),
        )),
        Err(StartError::BadNext(message)) => Ok(Reply::json_with(
            StatusCode::BAD_REQUEST,
            json!({ "error": message }),
        )),
        Err(StartError::Provider(failure)) => Ok(failed(failure)),
        Err(StartError::Storage(error)) => Err(error.into()),
    }
}

/// Turns a vouched identity into a token at `next`, or an error there.
async fn complete(
    service: &AuthService,
    finished: Result<(Identity, String), LoginFailure>,
) -> Reply {
    let (identity, next) = match finished {
        Ok(finished) => finished,
        Err(failure) => return failed(failure),
    };
    match service.complete_login(identity).await {
        Ok(Ok(token)) => Reply::redirect(with_param(&next, "jwt", &token)),
        Ok(Err(refusal)) => Reply::redirect(with_param(&next, "error", &refusal)),
        Err(error) => {
            tracing::error!(%error, "login failed");
            Reply::redirect(with_param(&next, "error", "Login failed: internal error"))
        }
    }
}

/// `GET /auth/oauth_callback?code=…&state=…`
pub async fn callback(service: &AuthService, logins: &Logins, params: &Params) -> Reply {
    let finished = logins
        .finish(
            params.get("state"),
            params.get("code"),
            params.get("error"),
            params.browser(),
        )
        .await;
    complete(service, finished).await
}

/// `/auth/login/dev`: GET without a state starts a login, GET with one shows the form,
/// POST logs in whoever the form names.
pub async fn dev(
    service: &AuthService,
    logins: &Logins,
    params: &Params,
    post: bool,
    secure: bool,
) -> Result<Reply> {
    if !logins.dev_login() {
        return Ok(Reply::json_with(
            StatusCode::NOT_FOUND,
            json!({"error": "unknown login provider `dev`"}),
        ));
    }
    if post {
        let finished = logins
            .finish_dev(
                params.get("state"),
                params.get("email"),
                params.get("name"),
                params.browser(),
            )
            .await;
        return Ok(complete(service, finished).await);
    }
    let Some(state) = params.get("state") else {
        return start(logins, DEV_PROVIDER, params, secure).await;
    };
    Ok(Reply::html(
        StatusCode::OK,
        format!(
            "<!doctype html><meta charset=utf-8><title>auth-host development login</title>\
             <h1>Development login</h1>\
             <p>Log in as anyone: this login is for trying auth-host on this machine only.</p>\
             <form method=post action=\"/auth/login/dev\">\
             <input type=hidden name=state value=\"{}\">\
             <p><label>Email <input name=email type=email required></label></p>\
             <p><label>Name <input name=name></label></p>\
             <p><button type=submit>Log in</button></p></form>",
            escape_html(state)
        ),
    ))
}

/// `GET|POST /auth/logout?jwt=…&next=…`
pub async fn logout(service: &AuthService, logins: &Logins, params: &Params) -> Result<Reply> {
    let next = match params.get("next").filter(|n| !n.is_empty()) {
        Some(next) => match logins.check_next(Some(next)) {
            Ok(next) => Some(next),
            Err(message) => {
                return Ok(Reply::json_with(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": message }),
                ));
            }
        },
        None => None,
    };
    service.logout(params.jwt()).await?;
    Ok(match next {
        Some(next) => Reply::redirect(next),
        None => Reply::json(json!({"success": true})),
    })
}
