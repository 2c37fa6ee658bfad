//! A stand-in OpenTelemetry collector: OTLP/HTTP with protobuf on 127.0.0.1, decoding what
//! arrives with the OpenTelemetry proto crate (not with anything auth-host uses to send it).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One span as the collector received it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// 2 server, 3 client (OTLP's `SpanKind`).
    pub kind: i32,
    pub attributes: HashMap<String, String>,
}

pub struct StandInCollector {
    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub base: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Every path posted to, in order.
    paths: Arc<Mutex<Vec<String>>>,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

impl StandInCollector {
    pub async fn start() -> StandInCollector {
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kept, posted) = (Arc::clone(&spans), Arc::clone(&paths));
        let base = super::serve_local(move |request: hyper::Request<hyper::body::Incoming>| {
            let (kept, posted) = (Arc::clone(&kept), Arc::clone(&posted));
            async move {
                posted.lock().unwrap().push(request.uri().path().to_owned());
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let Ok(export) = ExportTraceServiceRequest::decode(body) else {
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(b"bad protobuf")));
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    return response;
                };
                let mut spans = kept.lock().unwrap();
                for resource in export.resource_spans {
                    let service = resource
                        .resource
                        .as_ref()
                        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                        .map(|a| text(a.value.as_ref()))
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            spans.push(ReceivedSpan {
                                service: service.clone(),
                                name: span.name,
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent_span_id: hex(&span.parent_span_id),
                                kind: span.kind,
                                attributes: span
                                    .attributes
                                    .iter()
                                    .map(|a| (a.key.clone(), text(a.value.as_ref())))
                                    .collect(),
                            });
                        }
                    }
                }
                let answer = ExportTraceServiceResponse::default().encode_to_vec();
                let mut response = Response::new(Full::new(Bytes::from(answer)));
                response
                    .headers_mut()
                    .insert("content-type", "application/x-protobuf".parse().unwrap());
                response
            }
        })
        .await;
        StandInCollector { base, spans, paths }
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    /// The spans of `trace_id`, once `done` says they are all there (or panics after 20 s).
    pub async fn trace(
        &self,
        trace_id: &str,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        super::poll_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            &format!("trace {trace_id} complete"),
            || {
                self.spans()
                    .into_iter()
                    .filter(|s| s.trace_id == trace_id)
                    .collect::<Vec<ReceivedSpan>>()
            },
            |spans| done(spans),
        )
        .await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
