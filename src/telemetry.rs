//! Logging: `tracing` events on stdout, as text or JSON lines, at the level `RUST_LOG` sets.
//!
//! Lines go through a background writer, so a request never waits on the terminal or on a
//! container runtime reading stdout. When that writer falls too far behind (128,000 lines
//! queued), further lines are dropped rather than slowing the service down.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::config::LogFormat;

/// Starts logging. Keep the guard alive until exit: dropping it flushes the last lines.
///
/// Fails on an unparsable `RUST_LOG`.
pub fn init(format: LogFormat) -> Result<WorkerGuard, String> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|e| format!("RUST_LOG: {e}"))?;
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot start logging: {e}"))?;
    Ok(guard)
}
