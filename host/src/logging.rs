//! Log output: `RUST_LOG` filter (default `info`), human or JSON lines on stderr; and, when
//! `[tracing]` names a collector, OpenTelemetry traces beside it.

use std::borrow::Cow;
use std::io::IsTerminal;

use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TracingSettings};
use crate::traces::{self, Exporting};

/// Starts logging (and exporting traces when `tracing` says where). The returned guard sends
/// the last spans when dropped.
pub fn init(
    format: LogFormat,
    tracing: Option<&TracingSettings>,
) -> Result<Option<Exporting>, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The log shows events and the request they belong to; the finer spans are for traces.
    let filter = filter.and(filter_fn(|metadata| {
        metadata.is_event() || metadata.name() == "request"
    }));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into files or journald.
        .with_ansi(std::io::stderr().is_terminal());
    let log = match format {
        LogFormat::Human => log.boxed(),
        LogFormat::Json => log.json().flatten_event(true).boxed(),
    }
    .with_filter(filter);
    let (traces, exporting) = match tracing.map(traces::layer).transpose()?.flatten() {
        Some((layer, exporting)) => (Some(layer), Some(exporting)),
        None => (None, None),
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(traces)
        .try_init();
    if exporting.is_some()
        && let Some(settings) = tracing
        && let Some(url) = settings.traces_url()
    {
        tracing::info!(
            collector = traces::describe_url(&url),
            sampler = ?settings.sampler,
            "exporting traces"
        );
    }
    Ok(exporting)
}

/// Text from outside (a plugin's log message, an email) made safe to print on one line:
/// control characters — a newline that would start a forged line, a terminal's escape
/// sequences — written as escapes (`\n`, `\u{1b}`), everything else kept.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(one_line("plain text, é ✓"), "plain text, é ✓");
        assert_eq!(
            one_line("ok\nINFO auth_host::audit: type=\"login.refused\"\r"),
            "ok\\nINFO auth_host::audit: type=\"login.refused\"\\r"
        );
        assert_eq!(
            one_line("\u{1b}]0;title\u{7}\u{1b}[2J"),
            "\\u{1b}]0;title\\u{7}\\u{1b}[2J"
        );
        assert_eq!(one_line("tab\there\u{85}"), "tab\\there\\u{85}");
        // Escaping twice changes nothing more: the backslash is no control character.
        let once = one_line("a\nb").into_owned();
        assert_eq!(one_line(&once), once);
    }
}
