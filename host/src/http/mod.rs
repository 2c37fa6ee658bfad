//! The HTTP front end (hyper 1): parses requests, calls the service, renders answers. It
//! adds what every request needs — a request id, CORS for configured origins, size and
//! time limits, metrics — and nothing of the product's logic.

mod login;
mod pages;
mod request;
mod response;
mod routes;

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::admin::AdminAccess;
use crate::config::{ClientIpHeader, IpRange};
use crate::metrics::{RequestLabels, RouteLabels};
use crate::service::AuthService;
use request::Params;
use response::{Body, Rejection, Reply};
use routes::Route;

pub use routes::login_endpoints;

/// Limits and CORS of the HTTP front end.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Lower-case `scheme://host[:port]` origins allowed to call from a browser.
    pub cors_origins: HashSet<String>,
    /// Cookies get `Secure` (the external address is https).
    pub secure_cookies: bool,
    /// Peers whose forwarding headers say who the client is.
    pub trusted_proxies: Vec<IpRange>,
    /// The one header trusted proxies name the client in.
    pub client_ip_header: ClientIpHeader,
    /// How long requests in flight may finish once serving stops.
    pub shutdown_grace: Duration,
}

pub struct HttpApi {
    service: Arc<AuthService>,
    /// `None`: no admin endpoint (no `admin_token` set).
    admin: Option<AdminAccess>,
    settings: HttpSettings,
}

impl HttpApi {
    pub fn new(
        service: Arc<AuthService>,
        admin: Option<AdminAccess>,
        settings: HttpSettings,
    ) -> Self {
        HttpApi {
            service,
            admin,
            settings,
        }
    }

    /// Serves connections from `listener` until `shutdown` completes, then lets requests in
    /// flight finish (for up to `shutdown_grace`).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let api = Arc::clone(&self);
            let service = service_fn(move |request| {
                let api = Arc::clone(&api);
                async move { Ok::<_, Infallible>(api.answer(request, peer.ip()).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(self.settings.shutdown_grace) => {
                tracing::warn!(
                    grace = ?self.settings.shutdown_grace,
                    "requests still running at the end of the shutdown grace; stopping anyway"
                );
            }
        }
    }

    async fn answer(&self, request: Request<Incoming>, peer: IpAddr) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(request.headers());
        let method = request.method().clone();
        let origin = self.allowed_origin(request.headers());
        let span = tracing::info_span!("request", id = %request_id);
        let route_name = Route::from_path(request.uri().path()).map_or("unknown", Route::name);
        let traced = crate::traces::server_span(&span, &method, route_name, request.headers());
        let (route, mut response) = match tokio::time::timeout(
            self.settings.request_timeout,
            self.dispatch(request, peer, &request_id)
                .instrument(traced.clone())
                .instrument(span.clone()),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => {
                self.count_time_out(route_name);
                (route_name, Reply::from(Rejection::Timeout).render(None))
            }
        };
        let status = response.status();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("x-request-id", value);
        }
        if let Some(origin) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        if self.service.is_draining() {
            // No connection kept for later: there is no later on this replica.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        crate::traces::record_status(&traced, status.as_u16());
        let elapsed = started.elapsed();
        let metrics = self.service.metrics();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route,
                status: status.as_u16(),
            })
            .inc();
        metrics
            .request_seconds
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
        // The path only: query strings carry tokens.
        span.in_scope(|| {
            tracing::debug!(%method, route, status = status.as_u16(), micros = elapsed.as_micros() as u64, "answered");
        });
        response
    }

    async fn dispatch(
        &self,
        request: Request<Incoming>,
        peer: IpAddr,
        request_id: &str,
    ) -> (&'static str, Response<Body>) {
        let path = request.uri().path().to_owned();
        let Some(route) = Route::from_path(&path) else {
            return ("unknown", Reply::from(Rejection::NotFound).render(None));
        };
        let method = request.method().clone();
        if method == Method::OPTIONS {
            return (route.name(), preflight(route));
        }
        if !route.methods().contains(&method.as_str()) {
            let error = Rejection::MethodNotAllowed {
                allowed: route.methods(),
            };
            return (route.name(), Reply::from(error).render(None));
        }
        let client = request::client_address(
            peer,
            request.headers(),
            &self.settings.trusted_proxies,
            self.settings.client_ip_header,
        );
        let params =
            match Params::read(request, self.settings.max_body_bytes, client, request_id).await {
                Ok(params) => params,
                Err(error) => return (route.name(), Reply::from(error).render(None)),
            };
        let callback = match params.callback() {
            Ok(callback) => callback,
            Err(error) => return (route.name(), Reply::from(error).render(None)),
        };
        let context = routes::Context {
            service: &self.service,
            admin: self.admin.as_ref(),
            path: &path,
            post: method == Method::POST,
            secure_cookies: self.settings.secure_cookies,
        };
        let reply = match routes::handle(route, &context, &params).await {
            Ok(reply) => reply,
            Err(failure) => {
                if let routes::Failure::Service(crate::error::Error::Storage(_)) = &failure {
                    self.service.metrics().database_errors.inc();
                }
                Reply::from(failure)
            }
        };
        (route.name(), reply.render(callback))
    }

    /// A request cut at `request_timeout`: counted under its route (as a 503, and apart as
    /// a time-out), and as a database error when the database is what does not answer —
    /// looked at after the answer went out, so that the client waits no longer.
    fn count_time_out(&self, route: &'static str) {
        let metrics = self.service.metrics();
        metrics
            .request_timeouts
            .get_or_create(&RouteLabels { route })
            .inc();
        let service = Arc::clone(&self.service);
        tokio::spawn(async move {
            if !service.database_answers().await {
                service.metrics().database_errors.inc();
            }
        });
    }

    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        self.settings
            .cors_origins
            .contains(&text)
            .then(|| origin.clone())
    }
}

/// A CORS preflight; the allowed origin is added by `answer` when it is one.
fn preflight(route: Route) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    if let Ok(methods) = HeaderValue::from_str(&route.methods().join(", ")) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("auth-token, content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// The caller's `x-request-id` when it is a sane token, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}
