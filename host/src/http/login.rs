//! Login and logout pages: redirects, the browser-binding cookie, the development form.

use hyper::StatusCode;
use serde_json::json;

use super::pages;
use super::request::Params;
use super::response::Reply;
use crate::error::Result;
use crate::login::{BROWSER_COOKIE, DEV_PROVIDER, LOGIN_LIFETIME, LoginEnd, StartError};
use crate::service::AuthService;

fn browser_cookie(value: &str, secure: bool) -> String {
    format!(
        "{BROWSER_COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        LOGIN_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Where a login sends the browser: a redirect, or a page saying what went wrong.
fn render_end(end: LoginEnd) -> Reply {
    match end {
        LoginEnd::Redirect(url) => Reply::redirect(url),
        LoginEnd::ErrorPage(message) => {
            Reply::html(StatusCode::BAD_REQUEST, pages::login_failed(&message))
        }
    }
}

/// `GET /auth/login/<provider>?next=…`: remember the login, send the browser to the provider.
pub async fn start(
    service: &AuthService,
    provider: &str,
    params: &Params,
    secure: bool,
) -> Result<Reply> {
    match service
        .start_login(
            provider,
            params.get("next"),
            params.client(),
            &params.caller(),
        )
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
        Err(error @ StartError::TooManyLogins { retry_after }) => Ok(Reply::json_with(
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "error": error.to_string() }),
        )
        .with_retry_after(retry_after)),
        Err(StartError::Provider(failure)) => Ok(render_end(failure.end())),
        Err(StartError::Storage(error)) => Err(error.into()),
    }
}

/// `GET /auth/oauth_callback?code=…&state=…`
pub async fn callback(service: &AuthService, params: &Params) -> Reply {
    render_end(
        service
            .finish_login(
                params.get("state"),
                params.get("code"),
                params.get("error"),
                params.browser(),
                &params.caller(),
            )
            .await,
    )
}

/// `/auth/login/dev`: GET without a state starts a login, GET with one shows the form,
/// POST logs in whoever the form names.
pub async fn dev(
    service: &AuthService,
    params: &Params,
    post: bool,
    secure: bool,
) -> Result<Reply> {
    if !service.dev_login_enabled() {
        return Ok(Reply::json_with(
            StatusCode::NOT_FOUND,
            json!({"error": "unknown login provider `dev`"}),
        ));
    }
    if post {
        let end = service
            .finish_dev_login(
                params.get("state"),
                params.get("email"),
                params.get("name"),
                params.browser(),
                &params.caller(),
            )
            .await;
        return Ok(render_end(end));
    }
    let Some(state) = params.get("state") else {
        return start(service, DEV_PROVIDER, params, secure).await;
    };
    Ok(Reply::html(StatusCode::OK, pages::dev_login_form(state)))
}

/// `GET|POST /auth/logout?jwt=…&next=…`
pub async fn logout(service: &AuthService, params: &Params) -> Result<Reply> {
    Ok(
        match service
            .logout(params.jwt(), params.get("next"), &params.caller())
            .await?
        {
            Some(next) => Reply::redirect(next),
            None => Reply::json(json!({"success": true})),
        },
    )
}
