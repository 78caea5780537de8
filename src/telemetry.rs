//! The tracing subscriber: human-readable by default, one JSON object per
//! line with `WARDEN_LOG_FORMAT=json`. `RUST_LOG` overrides the filter.

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
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("warden: logging was already initialised: {err}");
    }
}
