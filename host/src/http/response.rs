//! Rendering answers: JSON (or JSONP), text, and the mapping of every error to a status.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::error::Error;
use crate::plugins::PluginCallError;

pub type Body = Full<Bytes>;

/// What a handler answers, before rendering.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: ReplyBody,
    pub allow: Option<&'static [&'static str]>,
    /// `WWW-Authenticate`, with a 401.
    pub challenge: Option<&'static str>,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    /// `Retry-After`, with a 429 or 503.
    pub retry_after: Option<std::time::Duration>,
}

#[derive(Debug)]
pub enum ReplyBody {
    Json(Value),
    Text {
        content_type: &'static str,
        text: String,
    },
    Empty,
}

impl Reply {
    pub fn json(body: Value) -> Reply {
        Reply::json_with(StatusCode::OK, body)
    }

    pub fn json_with(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            allow: None,
            challenge: None,
            location: None,
            set_cookie: None,
            retry_after: None,
        }
    }

    pub fn text(content_type: &'static str, text: String) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: ReplyBody::Text { content_type, text },
            allow: None,
            challenge: None,
            location: None,
            set_cookie: None,
            retry_after: None,
        }
    }

    /// A page for a person (login form, login error), HTML-escaped by the caller.
    pub fn html(status: StatusCode, html: String) -> Reply {
        Reply {
            status,
            ..Reply::text("text/html; charset=utf-8", html)
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: String) -> Reply {
        Reply {
            status: StatusCode::FOUND,
            body: ReplyBody::Empty,
            allow: None,
            challenge: None,
            location: Some(location),
            set_cookie: None,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Reply {
        self.retry_after = Some(wait);
        self
    }

    pub fn with_cookie(mut self, cookie: String) -> Reply {
        self.set_cookie = Some(cookie);
        self
    }

    /// Renders, wrapping JSON as `callback(...)` when a callback was given.
    pub fn render(self, callback: Option<&str>) -> Response<Body> {
        let (content_type, bytes) = match (self.body, callback) {
            (ReplyBody::Json(value), Some(callback)) => (
                "application/javascript; charset=utf-8",
                format!("{callback}({value})").into_bytes(),
            ),
            (ReplyBody::Json(value), None) => ("application/json", value.to_string().into_bytes()),
            (ReplyBody::Text { content_type, text }, _) => (content_type, text.into_bytes()),
            (ReplyBody::Empty, _) => ("text/plain; charset=utf-8", Vec::new()),
        };
        let mut response = Response::new(Full::new(Bytes::from(bytes)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Answers carry tokens and profiles: never cached, never sniffed.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // Pages (the development form, login errors) load nothing, run no script and are
        // never framed; no answer leaks its URL (which may carry a token) as a referrer.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                 frame-ancestors 'none'",
            ),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if let Some(location) = self.location
            && let Ok(value) = HeaderValue::from_str(&location)
        {
            headers.insert(header::LOCATION, value);
        }
        if let Some(cookie) = self.set_cookie
            && let Ok(value) = HeaderValue::from_str(&cookie)
        {
            headers.insert(header::SET_COOKIE, value);
        }
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: never earlier than the limit allows.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(methods) = self.allow
            && let Ok(value) = HeaderValue::from_str(&methods.join(", "))
        {
            headers.insert(header::ALLOW, value);
        }
        response
    }
}

/// Text made safe to put in HTML.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The status of a failed plugin call, as `/auth/authorize` answers it.
pub fn plugin_status(error: &PluginCallError) -> StatusCode {
    match error {
        PluginCallError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
        PluginCallError::Busy { .. } | PluginCallError::Restarting { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        PluginCallError::Crashed { .. } => StatusCode::BAD_GATEWAY,
        PluginCallError::Failed { .. }
        | PluginCallError::Panicked { .. }
        | PluginCallError::InvalidAnswer { .. } => StatusCode::BAD_GATEWAY,
    }
}

/// What the front end refuses before any use case runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allowed: &'static [&'static str] },
    /// A bearer token was required and not given, or not the right one.
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request took too long")]
    Timeout,
}

impl From<Rejection> for Reply {
    fn from(rejection: Rejection) -> Reply {
        let status = match rejection {
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut reply = Reply::json_with(status, json!({ "error": rejection.to_string() }));
        match rejection {
            Rejection::MethodNotAllowed { allowed } => reply.allow = Some(allowed),
            Rejection::Unauthorized => reply.challenge = Some("Bearer realm=\"auth-host admin\""),
            _ => {}
        }
        reply
    }
}

/// Every service error, as a status and `{"error": …}`. Internal details are logged, not
/// shown.
impl From<Error> for Reply {
    fn from(error: Error) -> Reply {
        let (status, message) = match &error {
            Error::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
            Error::Plugin(plugin) => (plugin_status(plugin), plugin.to_string()),
            // Not an internal error: worth trying again once room is made.
            Error::Storage(store) if store.is_full() => {
                tracing::error!(%error, "database full");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    crate::storage::STORAGE_FULL.into(),
                )
            }
            // As /auth/health says it; the request can be tried again.
            Error::Storage(store) if store.is_unavailable() => {
                tracing::warn!(%error, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable".into(),
                )
            }
            Error::Storage(_) | Error::Signing(_) | Error::Internal(_) => {
                tracing::error!(%error, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        Reply::json_with(status, json!({ "error": message }))
    }
}
