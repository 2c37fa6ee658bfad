//! `[tracing]`: where OpenTelemetry traces go, read from `auth-host.toml`, `AUTH_TRACING__*`
//! or the standard `OTEL_*` variables.

use serde::Deserialize;

/// The standard OpenTelemetry variables auth-host honours, and the key each sets.
pub(super) const OTEL_ENV: &[(&str, &str)] = &[
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "tracing.endpoint"),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "tracing.traces_endpoint",
    ),
    ("OTEL_SERVICE_NAME", "tracing.service_name"),
    ("OTEL_TRACES_SAMPLER", "tracing.sampler"),
    ("OTEL_TRACES_SAMPLER_ARG", "tracing.sampler_arg"),
];

/// Which traces are kept, by the names of `OTEL_TRACES_SAMPLER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    #[serde(rename = "traceidratio")]
    TraceIdRatio,
    /// The caller's decision when there is one (`traceparent`), else always: OpenTelemetry's
    /// default.
    #[default]
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    #[serde(rename = "parentbased_traceidratio")]
    ParentbasedTraceIdRatio,
}

/// `[tracing]` as written; off unless an endpoint is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSettings {
    /// The collector's base URL (`http://collector:4318`); traces go to `<endpoint>/v1/traces`.
    pub endpoint: Option<String>,
    /// The full URL traces are posted to, when it is not `<endpoint>/v1/traces`.
    pub traces_endpoint: Option<String>,
    /// `service.name` of the spans (default `auth-host`).
    pub service_name: Option<String>,
    #[serde(default)]
    pub sampler: SamplerKind,
    /// The ratio of the `traceidratio` samplers, 0 to 1 (default 1).
    pub sampler_arg: Option<f64>,
}

impl TracingSettings {
    /// Where spans are posted; `None`: tracing is off.
    pub fn traces_url(&self) -> Option<String> {
        match (&self.traces_endpoint, &self.endpoint) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(base)) => Some(format!("{}/v1/traces", base.trim_end_matches('/'))),
            (None, None) => None,
        }
    }

    pub fn service_name(&self) -> &str {
        self.service_name.as_deref().unwrap_or("auth-host")
    }

    /// The ratio the `traceidratio` samplers keep.
    pub fn ratio(&self) -> f64 {
        self.sampler_arg.unwrap_or(1.0)
    }

    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            (
                "tracing.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)",
                &self.endpoint,
            ),
            (
                "tracing.traces_endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)",
                &self.traces_endpoint,
            ),
        ] {
            if let Some(value) = value {
                match url::Url::parse(value) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                    _ => problems.push(format!(
                        "{key}: `{value}` is not an http:// or https:// URL"
                    )),
                }
            }
        }
        if let Some(ratio) = self.sampler_arg
            && !(0.0..=1.0).contains(&ratio)
        {
            problems.push(format!(
                "tracing.sampler_arg (OTEL_TRACES_SAMPLER_ARG): {ratio} is not a ratio from 0 to 1"
            ));
        }
        problems
    }
}
