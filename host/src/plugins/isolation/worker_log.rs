//! What a worker writes to its stderr — its JSON log lines, and whatever the plugin prints —
//! forwarded into the host's log, tagged with the alias.
//!
//! The plugin controls these bytes, so they are read as hostile: a line is kept up to
//! [`MAX_LINE_BYTES`] and the rest of it dropped (counted, and said so in the log), and bytes
//! that are not UTF-8 are replaced, never a reason to stop reading. The host's memory stays
//! bounded whatever the plugin writes, and the pipe keeps being drained, so the plugin's own
//! prints never fail for want of a reader.

use std::io::{BufRead, BufReader, ErrorKind, Read};

/// The longest line kept from a worker's stderr.
pub(super) const MAX_LINE_BYTES: usize = 16 * 1024;

/// Forwards the worker's stderr on a thread of its own until it closes.
pub(super) fn forward(alias: &str, stderr: impl Read + Send + 'static) {
    let alias = alias.to_owned();
    let _ = std::thread::Builder::new()
        .name(format!("plugin-log-{alias}"))
        .spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::with_capacity(256);
            while let Ok(Some(dropped)) = read_bounded_line(&mut reader, &mut line, MAX_LINE_BYTES)
            {
                log_line(&alias, &String::from_utf8_lossy(&line), dropped);
            }
        });
}

/// One line of the worker's stderr in the host's log: a JSON log event keeps its level and
/// message, anything else is logged as it is, at info; control characters escaped either
/// way, so that a message holding a newline never becomes a line of its own (a forged audit
/// line, say, which fail2ban would act on).
fn log_line(alias: &str, line: &str, dropped: u64) {
    let event: Option<serde_json::Value> = serde_json::from_str(line).ok();
    let message = crate::logging::one_line(
        event
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .unwrap_or(line),
    );
    let level = event.as_ref().and_then(|e| e["level"].as_str());
    if dropped > 0 {
        tracing::warn!(
            plugin = alias,
            worker = true,
            dropped_bytes = dropped,
            "a line of the plugin's output was longer than {MAX_LINE_BYTES} bytes; the rest of \
             it was dropped"
        );
    }
    match level {
        Some("ERROR") => tracing::error!(plugin = alias, worker = true, "{message}"),
        Some("WARN") => tracing::warn!(plugin = alias, worker = true, "{message}"),
        Some("DEBUG" | "TRACE") => tracing::debug!(plugin = alias, worker = true, "{message}"),
        _ => tracing::info!(plugin = alias, worker = true, "{message}"),
    }
}

/// Reads the next line into `line` (without its `\n`), keeping at most `max` bytes of it and
/// dropping the rest; how many bytes were dropped, or `None` once the input has ended.
fn read_bounded_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<u64>> {
    line.clear();
    let mut dropped = 0u64;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(dropped));
        }
        read_any = true;
        let end = available.iter().position(|b| *b == b'\n');
        let content = &available[..end.unwrap_or(available.len())];
        let kept = content.len().min(max.saturating_sub(line.len()));
        line.extend_from_slice(&content[..kept]);
        dropped = dropped.saturating_add((content.len() - kept) as u64);
        let consumed = end.map_or(available.len(), |at| at + 1);
        reader.consume(consumed);
        if end.is_some() {
            return Ok(Some(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, u64)> {
        // A small buffer, so that long lines arrive in many pieces.
        let mut reader = BufReader::with_capacity(7, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(dropped) = read_bounded_line(&mut reader, &mut line, max).unwrap() {
            out.push((line.clone(), dropped));
        }
        out
    }

    #[test]
    fn long_lines_are_cut_and_what_was_dropped_is_counted() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\nshort\n\nlast without newline");
        assert_eq!(
            lines(&input, 10),
            vec![
                (b"xxxxxxxxxx".to_vec(), 990),
                (b"short".to_vec(), 0),
                (Vec::new(), 0),
                (b"last witho".to_vec(), 10),
            ]
        );
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_stop_the_reading() {
        let got = lines(b"\xff\xfe bad\nnext\n", 100);
        assert_eq!(got.len(), 2);
        assert_eq!(String::from_utf8_lossy(&got[0].0), "\u{fffd}\u{fffd} bad");
        assert_eq!(got[1].0, b"next");
    }
}
