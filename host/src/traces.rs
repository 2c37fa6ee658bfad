//! OpenTelemetry traces over OTLP/HTTP, off unless `[tracing]` names an endpoint.
//!
//! The spans are ordinary `tracing` spans at `debug` level (and sea-orm's statement spans):
//! the log never sees them, and with tracing off no layer wants them, so they cost a
//! disabled callsite's check. When on, a request's W3C `traceparent` is continued and calls
//! to login providers carry it onward.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{SamplerKind, TracingSettings};

/// How long one export may take before it is given up (the spans are dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: the hot paths skip the propagation work when not.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Traces being exported; dropping it sends what is still queued.
pub struct Exporting {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Exporting {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "traces: the last spans could not be sent");
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The layer that exports spans, when `settings` turn tracing on.
pub fn layer<S>(
    settings: &TracingSettings,
) -> Result<Option<(impl Layer<S> + use<S>, Exporting)>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(url) = settings.traces_url() else {
        return Ok(None);
    };
    // Exports run on a small runtime of their own: the exporter's thread is no tokio thread,
    // and a slow collector must not take the server's workers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| format!("traces: cannot start the export thread: {e}"))?;
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("traces: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OtlpHttp {
            client,
            runtime: runtime.handle().clone(),
        })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("traces: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BoundedAttributes(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build(),
        ))
        .with_sampler(sampler(settings))
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name().to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("auth-host");
    // For the spans made from times measured elsewhere (an isolated plugin's worker).
    opentelemetry::global::set_tracer_provider(provider.clone());
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(filter_fn(|metadata| {
            metadata.is_span()
                && *metadata.level() <= Level::DEBUG
                && metadata.name() != "request"
                && (metadata.target().starts_with("auth_host")
                    || metadata.target().starts_with("sea_orm"))
        }));
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((
        layer,
        Exporting {
            provider,
            runtime: Some(runtime),
        },
    )))
}

fn sampler(settings: &TracingSettings) -> Sampler {
    let ratio = settings.ratio();
    match settings.sampler {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        SamplerKind::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentbasedTraceIdRatio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

/// The longest text value of a span attribute exported, in bytes: some come from anyone
/// (an anonymous `service=` of 60,000 bytes was exported whole) or from plugins.
pub const MAX_ATTRIBUTE_BYTES: usize = 256;

/// Cuts the text values of every span's attributes (and events) to [`MAX_ATTRIBUTE_BYTES`]
/// before `P` exports it.
#[derive(Debug)]
struct BoundedAttributes<P>(P);

impl<P: opentelemetry_sdk::trace::SpanProcessor> opentelemetry_sdk::trace::SpanProcessor
    for BoundedAttributes<P>
{
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, mut span: opentelemetry_sdk::trace::SpanData) {
        if let Some(cut) = cut(&span.name) {
            span.name = cut.into();
        }
        span.attributes.iter_mut().for_each(bound_value);
        for event in span.events.events.iter_mut() {
            event.attributes.iter_mut().for_each(bound_value);
        }
        self.0.on_end(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

fn bound_value(attribute: &mut KeyValue) {
    if let opentelemetry::Value::String(text) = &attribute.value
        && let Some(cut) = cut(text.as_str())
    {
        attribute.value = opentelemetry::Value::String(cut.into());
    }
}

/// `text` cut to [`MAX_ATTRIBUTE_BYTES`] at a character boundary and marked with `…`; `None`
/// when it fits (the common case costs no copy).
fn cut(text: &str) -> Option<String> {
    if text.len() <= MAX_ATTRIBUTE_BYTES {
        return None;
    }
    let mut end = MAX_ATTRIBUTE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!("{}…", &text[..end]))
}

/// The span of one HTTP request to `route`, continuing the caller's trace when its
/// `traceparent` is valid. Disabled (free) when tracing is off.
pub fn server_span(
    parent: &Span,
    method: &http::Method,
    route: &str,
    headers: &http::HeaderMap,
) -> Span {
    // The fields are evaluated only when the span is enabled.
    let span = tracing::debug_span!(
        parent: parent,
        "http request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    if enabled() && !span.is_disabled() {
        let caller =
            TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
        // Fails only once the span has started; it has not.
        let _ = span.set_parent(caller);
    }
    span
}

/// How the request was answered.
pub fn record_status(span: &Span, status: u16) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// The worker's side of an isolated call (a child of the current span): when the plugin ran
/// in the worker, as the worker said. Taken only when it lies between the host asking and
/// now — a worker is not trusted with the trace.
pub fn record_worker_run(alias: &str, asked: SystemTime, from_ns: u64, until_ns: u64) {
    if !enabled() {
        return;
    }
    let Some((from, until)) = worker_run(asked, from_ns, until_ns, SystemTime::now()) else {
        return;
    };
    let tracer = opentelemetry::global::tracer("auth-host");
    let mut span = tracer
        .span_builder(format!("plugin {alias} in its worker"))
        .with_start_time(from)
        .with_attributes([KeyValue::new("plugin.alias", alias.to_owned())])
        .start_with_context(&tracer, &Span::current().context());
    span.end_with_timestamp(until);
}

/// The times a worker said its plugin ran (Unix ns), when they lie between the host asking
/// and `now`, in order.
fn worker_run(
    asked: SystemTime,
    from_ns: u64,
    until_ns: u64,
    now: SystemTime,
) -> Option<(SystemTime, SystemTime)> {
    let at = |ns| UNIX_EPOCH.checked_add(Duration::from_nanos(ns));
    let (from, until) = (at(from_ns)?, at(until_ns)?);
    (asked <= from && from <= until && until <= now).then_some((from, until))
}

/// Adds the current span's `traceparent` to an outgoing request's headers.
pub fn inject(headers: &mut http::HeaderMap) {
    if !enabled() {
        return;
    }
    let context = Span::current().context();
    TraceContextPropagator::new()
        .inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
}

/// Posts OTLP requests with reqwest, on the export runtime.
#[derive(Debug)]
struct OtlpHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        // Errors without the URL: it may hold credentials.
        let sent = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await.map_err(|e| e.without_url())?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| e.without_url())?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await?;
        let failure = match &sent {
            Ok((status, _)) if status.is_success() => None,
            Ok((status, _)) => Some(format!("the collector answered {status}")),
            // Without the URL: it may hold credentials.
            Err(error) => Some(format!("the collector is unreachable: {error}")),
        };
        if let Some(failure) = failure {
            warn_now_and_then(&failure);
        }
        let (status, body) = sent?;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        Ok(response)
    }
}

/// Warns that spans were lost, at most once a minute (a collector that is down would
/// otherwise fill the log).
fn warn_now_and_then(failure: &str) {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let Ok(mut last) = LAST.lock() else {
        return;
    };
    if last.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
        return;
    }
    *last = Some(std::time::Instant::now());
    tracing::warn!(failure, "traces: spans could not be sent and are lost");
}

/// Where spans go, for the log: scheme, host and port, never credentials or query.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_attributes_are_cut_at_a_character_boundary() {
        let bounded = |text: &str| cut(text).unwrap_or_else(|| text.to_owned());
        assert_eq!(bounded("short"), "short");
        let exact = "x".repeat(MAX_ATTRIBUTE_BYTES);
        assert_eq!(bounded(&exact), exact);
        for long in [
            "é".repeat(30_000),
            format!("x{}", "é".repeat(200)),
            "€".repeat(99),
        ] {
            let cut = bounded(&long);
            assert!(cut.len() <= MAX_ATTRIBUTE_BYTES, "{}", cut.len());
            assert!(cut.ends_with('…'));
            assert!(long.starts_with(cut.trim_end_matches('…')));
        }
    }

    #[test]
    fn a_worker_is_believed_only_within_the_call() {
        let ns = |t: SystemTime| {
            u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(0)
        };
        let asked = SystemTime::now();
        let from = asked + Duration::from_micros(10);
        let until = asked + Duration::from_micros(200);
        let now = asked + Duration::from_millis(1);
        assert_eq!(
            worker_run(asked, ns(from), ns(until), now),
            Some((from, until))
        );
        // Before the host asked, after now, the wrong way round, the end of time, unsaid.
        let before = asked - Duration::from_secs(3600);
        assert_eq!(worker_run(asked, ns(before), ns(until), now), None);
        let later = now + Duration::from_secs(3600);
        assert_eq!(worker_run(asked, ns(from), ns(later), now), None);
        assert_eq!(worker_run(asked, ns(until), ns(from), now), None);
        assert_eq!(worker_run(asked, u64::MAX, u64::MAX, now), None);
        assert_eq!(worker_run(asked, 0, 0, now), None);
    }
}
