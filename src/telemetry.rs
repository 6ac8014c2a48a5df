//! Logging: `tracing` events on stdout, as text or JSON lines, at the level `RUST_LOG` sets.
//!
//! Lines go through a background writer, so a request never waits on the terminal or on a
//! container runtime reading stdout. When that writer falls too far behind (16,384 lines
//! queued), further lines are dropped rather than slowing the service down.
//!
//! Text lines written to a terminal get tracing-subscriber's colours. Elsewhere (a file, a pipe,
//! a container runtime) they are written by [`Lean`], which writes the same line with a third of
//! the work: the service logs every request to `/`, so the format is on the hot path.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// How many lines may wait for the background writer; past that, lines are dropped.
const QUEUED_LINES: usize = 16_384;

/// Starts logging. Keep the guard alive until exit: dropping it flushes the last lines.
///
/// Fails on an unparsable `RUST_LOG`.
pub fn init(format: LogFormat) -> Result<WorkerGuard, String> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|e| format!("RUST_LOG: {e}"))?;
    // Buffered: the background writer flushes whenever it has written all it was sent, so a
    // busy service writes its lines in a few large writes instead of one system call each.
    let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    // Room for 16,384 lines on their way: a few hundred kilobytes, not the default's megabytes
    // (128,000 lines, allocated at start).
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .finish(stdout);
    let terminal = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Text if terminal => builder.try_init(),
        LogFormat::Text => builder.event_format(Lean).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| format!("cannot start logging: {e}"))?;
    Ok(guard)
}

/// The text line of tracing-subscriber's default format, without colours, spans or the
/// machinery of `fmt::Debug` for plain numbers and strings:
/// `2026-11-25T14:23:32.372305Z  INFO demo_service::server: listening app=0.0.0.0:5000`.
#[derive(Debug)]
pub struct Lean;

impl<S, N> FormatEvent<S, N> for Lean
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => " WARN",
            tracing::Level::INFO => " INFO",
            tracing::Level::DEBUG => "DEBUG",
            tracing::Level::TRACE => "TRACE",
        };
        let mut line = String::with_capacity(160);
        let _ = write!(
            line,
            "{} {level} ",
            humantime::format_rfc3339_micros(SystemTime::now())
        );
        line.push_str(meta.target());
        line.push(':');
        event.record(&mut Fields(&mut line));
        line.push('\n');
        writer.write_str(&line)
    }
}

/// Writes ` message k=v k=v`: numbers with itoa and ryu, strings as they are.
struct Fields<'a>(&'a mut String);

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(' ');
        if field.name() != "message" {
            self.0.push_str(field.name());
            self.0.push('=');
        }
    }
}

impl Visit for Fields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            self.0.push_str(ryu::Buffer::new().format_finite(value));
        } else {
            let _ = write!(self.0, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            // As tracing-subscriber writes strings: quoted, escaped.
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        let _ = write!(self.0, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn lines_read_as_the_default_format_does() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Lean)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                request_count = 42u64,
                processing_time = 1.25,
                "request processed"
            );
            tracing::error!(
                total_errors = 7i64,
                ok = false,
                name = "x y",
                "simulated error occurred"
            );
            tracing::warn!(addr = %"0.0.0.0:5000", "listening");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        let target = module_path!();
        assert_eq!(
            lines,
            [
                format!(" INFO {target}: request processed request_count=42 processing_time=1.25"),
                format!(
                    "ERROR {target}: simulated error occurred total_errors=7 ok=false name=\"x y\""
                ),
                format!(" WARN {target}: listening addr=0.0.0.0:5000"),
            ]
        );
        let stamp = text.split(' ').next().unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
    }
}
