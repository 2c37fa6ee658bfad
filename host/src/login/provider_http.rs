//! HTTP to login providers. Each call — by the oauth2 crates (discovery, code exchange) or
//! ours (GitHub's API), all through [`AsyncHttpClient`] — is a client span of the trace and
//! carries its `traceparent`.

use std::future::Future;
use std::pin::Pin;

use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};
use tracing::{Instrument, Span};

#[derive(Debug, Clone)]
pub(super) struct ProviderHttp(reqwest::Client);

impl ProviderHttp {
    pub(super) fn new(client: reqwest::Client) -> ProviderHttp {
        ProviderHttp(client)
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, mut request: HttpRequest) -> Self::Future {
        let span = call_span(request.method(), request.uri().host(), request.uri().path());
        span.in_scope(|| crate::traces::inject(request.headers_mut()));
        let answer = self.0.call(request);
        Box::pin(async move {
            let response = answer.instrument(span.clone()).await;
            if let Ok(response) = &response {
                record_status(&span, response.status().as_u16());
            }
            response
        })
    }
}

/// The span of one call; the path but never the query (it may carry codes).
fn call_span(method: &http::Method, host: Option<&str>, path: &str) -> Span {
    let span = tracing::debug_span!(
        "login provider call",
        otel.kind = "client",
        otel.name = format!("{method} {}", host.unwrap_or_default()),
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        server.address = host.unwrap_or_default(),
        url.path = path,
        http.response.status_code = tracing::field::Empty,
    );
    span
}

fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}
