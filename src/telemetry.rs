//! The tracing subscriber: human-readable by default, one JSON object per
//! line with `WARDEN_LOG_FORMAT=json`. `RUST_LOG` overrides the filter.
//!
//! The human-readable format is coloured only when standard output is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>): a
//! log file, `docker logs` or a journal gets plain text, not escape codes.
//! JSON is never coloured.
//!
//! Each request writes one line with target `warden::access` (see
//! `http::access`); probes and scrapes write theirs at DEBUG.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// What is logged when `RUST_LOG` is unset: Warden at INFO, libraries quieter.
/// SQL statement logging stays off everywhere: statements carry hashes.
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,poem=warn";

/// Installs the global subscriber. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let result = match format {
        LogFormat::Pretty => builder
            .with_ansi(colour(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("warden: logging was already initialised: {err}");
    }
}

/// Colour only on a terminal, and only when `NO_COLOR` is unset or empty.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// True at most once per wall-clock second for `last`, across threads: for
/// a warning that a flood would otherwise repeat on every request. Each call
/// site keeps its own `static LAST: AtomicU64 = AtomicU64::new(u64::MAX)`.
pub fn once_a_second(last: &std::sync::atomic::AtomicU64) -> bool {
    let second = crate::clock::Clock::system()
        .now()
        .timestamp()
        .unsigned_abs();
    last.swap(second, std::sync::atomic::Ordering::Relaxed) != second
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn once_a_second_says_yes_once_then_no_within_the_second() {
        let last = std::sync::atomic::AtomicU64::new(u64::MAX);
        assert!(super::once_a_second(&last));
        // Within the same second (a retry if the first call sat on a boundary).
        let again = super::once_a_second(&last) && super::once_a_second(&last);
        assert!(!again);
    }
}
