//! Logging: `tracing` events on stdout, as text or JSON lines, at the level `RUST_LOG` sets.
//!
//! Lines go through a background writer ([`writer`]), so a request never waits on the terminal
//! or on a container runtime reading stdout. When that writer falls too far behind (8 MiB
//! waiting), further lines are dropped rather than slowing the service down.
//!
//! Text lines written to a terminal get tracing-subscriber's colours. Elsewhere (a file, a pipe,
//! a container runtime) they are written by [`Lean`], which writes the same line with a third of
//! the work: the service logs every request to `/`, so the format is on the hot path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use rustc_hash::FxBuildHasher;
use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

pub mod writer;

/// Starts logging. Keep the guard alive until exit: dropping it flushes the last lines.
///
/// Fails on an unparsable `RUST_LOG`.
pub fn init(format: LogFormat) -> Result<writer::Guard, String> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|e| format!("RUST_LOG: {e}"))?;
    let (writer, guard) = writer::Batched::new(std::io::stdout(), writer::LIMIT)
        .map_err(|e| format!("cannot start the log writer: {e}"))?;
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
        let pieces = Pieces::of(meta);
        stamp(now(), &mut writer)?;
        writer.write_str(&pieces.head)?;
        let mut fields = Fields {
            out: &mut writer,
            pieces: &pieces,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default format writes it, five wide.
fn level(meta: &Metadata<'_>) -> &'static str {
    match *meta.level() {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => " WARN",
        tracing::Level::INFO => " INFO",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::TRACE => "TRACE",
    }
}

/// What a callsite's lines have in common, joined once per thread: ` INFO target:`, and before
/// each field ` name=` (before the message, a space). A line written piece by piece costs a
/// call into the writer per piece; this halves the number of calls. (An event's metadata is
/// its callsite's, `'static`: the `log` crate's records come through a callsite per level.)
#[derive(Debug)]
struct Pieces {
    head: String,
    fields: Vec<String>,
}

impl Pieces {
    /// The pieces of `meta`'s callsite, joined at its first line on this thread.
    fn of(meta: &'static Metadata<'static>) -> Rc<Self> {
        thread_local! {
            static JOINED: RefCell<HashMap<Identifier, Rc<Pieces>, FxBuildHasher>> =
                RefCell::default();
        }
        JOINED.with_borrow_mut(|joined| {
            joined
                .entry(meta.callsite())
                .or_insert_with(|| {
                    Rc::new(Pieces {
                        head: format!(" {} {}:", level(meta), meta.target()),
                        fields: meta.fields().iter().map(|f| Self::before(&f)).collect(),
                    })
                })
                .clone()
        })
    }

    /// What goes before `field`'s value: ` name=`, or before the message a space.
    fn before(field: &Field) -> String {
        match field.name() {
            "message" => " ".to_owned(),
            name => format!(" {name}="),
        }
    }
}

/// The wall clock, read directly (`SystemTime::now` and `duration_since` cost twice as much,
/// on a line the service writes for every request to `/`).
fn now() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Writes the time `since` the epoch as tracing-subscriber does, `2026-11-25T14:23:32.372305Z`.
/// The date and the time of day are formatted once a second (per thread), the microseconds
/// every time.
fn stamp(since: Duration, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    thread_local! {
        /// The last second formatted, and its `2026-11-25T14:23:32.`.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let second = since.as_secs();
    SECOND.with_borrow_mut(|(formatted, date)| {
        if *formatted != second {
            let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(second));
            *date = whole.to_string();
            date.truncate(19);
            date.push('.');
            *formatted = second;
        }
        out.write_str(date)
    })?;
    // The microseconds with their leading zeros: the digits of 1,000,000 more, but the first.
    let mut digits = itoa::Buffer::new();
    let micros = digits.format(1_000_000 + since.subsec_micros());
    out.write_str(&micros[1..])?;
    out.write_char('Z')
}

/// Writes ` message k=v k=v`: numbers with itoa and ryu, strings as they are; the first error
/// is kept, as `Visit` cannot return one.
struct Fields<'a, W> {
    out: &'a mut W,
    pieces: &'a Pieces,
    result: std::fmt::Result,
}

impl<W: std::fmt::Write> Fields<'_, W> {
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut W) -> std::fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            // Every field of an event is one of its callsite's; were one not, it is joined here.
            match self.pieces.fields.get(field.index()) {
                Some(before) => self.out.write_str(before)?,
                None => self.out.write_str(&Pieces::before(field))?,
            }
            value(self.out)
        })();
    }
}

impl<W: std::fmt::Write> Visit for Fields<'_, W> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, |out| {
            if value.is_finite() {
                out.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                write!(out, "{value}")
            }
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let message = field.name() == "message";
        self.write(field, |out| {
            if message {
                out.write_str(value)
            } else {
                // As tracing-subscriber writes strings: quoted, escaped.
                write!(out, "{value:?}")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.write(field, |out| write!(out, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;
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
            // The second line of a callsite is written from the pieces joined for its first.
            for count in [41u64, 42] {
                tracing::info!(
                    request_count = count,
                    processing_time = 1.25,
                    "request processed"
                );
            }
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
                format!(" INFO {target}: request processed request_count=41 processing_time=1.25"),
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

    #[test]
    fn the_time_is_written_as_the_default_format_does() {
        let now = SystemTime::now();
        let times = [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_001),
            now,
            now + Duration::from_micros(999_999),
            now + Duration::from_secs(1),
            now + Duration::from_secs(86_400 * 400) + Duration::from_micros(7),
            now,
        ];
        for time in times {
            let mut written = String::new();
            stamp(time.duration_since(UNIX_EPOCH).unwrap(), &mut written).unwrap();
            assert_eq!(written, humantime::format_rfc3339_micros(time).to_string());
        }
    }
}
