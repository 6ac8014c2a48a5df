//! Logging: `tracing` events on stdout, as text or JSON lines, at the level `RUST_LOG` sets.
//!
//! Lines go through a background writer ([`writer`]), so a request never waits on the terminal
//! or on a container runtime reading stdout. When that writer falls too far behind (8 MiB
//! waiting), further lines are dropped rather than slowing the service down.
//!
//! Text lines written to a terminal get tracing-subscriber's colours. Elsewhere (a file, a pipe,
//! a container runtime) they are written by [`Lean`], which writes the same line with a third of
//! the work: the service logs every request to `/`, so the format is on the hot path. There,
//! that one line skips tracing's machinery altogether ([`request_processed`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::OnceLock;
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
use crate::trace::TraceId;

pub mod writer;

use writer::Batched;

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
    let lean = (format == LogFormat::Text && !terminal).then(|| writer.clone());
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
    if let Some(writer) = lean {
        write_requests_to(writer);
    }
    Ok(guard)
}

/// Has [`request_processed`] write its line straight to `writer`, as [`init`] does where the
/// text format is [`Lean`]'s, or write nothing when the current subscriber's filter leaves the
/// line out; call it once that subscriber is in place. For the process's whole life, and for
/// every subscriber after: only the first call counts. The filter is asked here, once, as
/// `RUST_LOG` is read at the start and never again. (Public for the benches.)
#[doc(hidden)]
pub fn write_requests_to(writer: Batched) {
    let _ = REQUEST_LINES.set(request_line_enabled().then_some(writer));
}

/// Whether the current subscriber's filter lets the line of a request to `/` through: asked as
/// the event is, with its level, target and field names (an `EnvFilter` directive may name
/// fields). The service enters no spans, so a directive for a span decides nothing for it.
fn request_line_enabled() -> bool {
    tracing::enabled!(
        kind: tracing::metadata::Kind::EVENT,
        target: REQUEST_TARGET,
        tracing::Level::INFO,
        message,
        request_count,
        processing_time,
        trace_id
    )
}

/// The target of the line of a request to `/`: the module that answers it.
const REQUEST_TARGET: &str = "demo_service::routes::simulate";

/// Where [`request_processed`] writes its line straight to, once set ([`write_requests_to`]):
/// the writer that [`Lean`] writes to, or nowhere when the filter leaves the line out.
static REQUEST_LINES: OnceLock<Option<Batched>> = OnceLock::new();

/// Logs the seed's line of a request to `/`, at info: `request processed`, with the request's
/// count, its processing time and its trace id (target `demo_service::routes::simulate`).
///
/// Where the service writes text off a terminal ([`Lean`]; a container's log, a redirected
/// stdout), the line goes straight into the log writer: the same line, put together from the
/// three values instead of going through tracing's dispatch and field visitors, which cost
/// more than the line itself. It is the one line the service writes for every request
/// (docs/performance.md). `RUST_LOG` decides for it as it does for the event, once, at the
/// start ([`write_requests_to`]). Where [`init`] set up no such writer (a terminal's colours,
/// JSON, a program that sets up its own logging, the tests) it is the event.
pub fn request_processed(count: u64, processing_time: f64, trace: TraceId) {
    let Some(lines) = REQUEST_LINES.get() else {
        tracing::info!(
            target: REQUEST_TARGET,
            // A plain string: a message after the fields would go through `fmt::Arguments`.
            message = "request processed",
            request_count = count,
            processing_time,
            trace_id = %trace,
        );
        return;
    };
    let Some(mut writer) = lines.as_ref() else {
        return;
    };
    Scratch::with(|scratch| {
        let line = scratch.request_processed(now(), count, processing_time, trace);
        // The writer takes every line; one it drops for lack of room it counts.
        let _ = writer.write(line.as_bytes());
    });
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
        Scratch::with(|scratch| scratch.write(now(), event, &mut writer))
    }
}

/// What a thread keeps from one line to the next. A line is put together here and handed to
/// the writer in one piece (each piece written to the writer would be a call through
/// `dyn fmt::Write`); it begins with the date and time of day of its second, which stay for
/// the next line of the same second.
#[derive(Debug, Default)]
struct Scratch {
    line: String,
    /// The second whose `2026-11-25T14:23:32.` begins `line`, and that beginning's length.
    second: Option<(u64, usize)>,
    /// The pieces of each callsite, joined at its first line on this thread.
    pieces: HashMap<Identifier, Pieces, FxBuildHasher>,
}

impl Scratch {
    /// Calls `f` with this thread's scratch; with an empty one when that is in use already (a
    /// line begun while another is put together: tracing does not dispatch an event from
    /// inside another's formatting, but a panic here would cost a request).
    fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        thread_local! {
            static SCRATCH: Cell<Scratch> = Cell::default();
        }
        // Taken out while in use (a line begun meanwhile finds an empty one), and put back;
        // after the thread's locals are gone, a scratch for this line alone.
        let mut scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
        let result = f(&mut scratch);
        let _ = SCRATCH.try_with(|kept| kept.set(scratch));
        result
    }

    /// Writes `event`'s line, of the time `since` the epoch, to `writer`.
    fn write(
        &mut self,
        since: Duration,
        event: &Event<'_>,
        writer: &mut impl std::fmt::Write,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        self.stamp(since);
        let pieces = self
            .pieces
            .entry(meta.callsite())
            .or_insert_with(|| Pieces::of(meta));
        self.line.push_str(&pieces.head);
        let mut fields = Fields {
            out: &mut self.line,
            pieces,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        self.line.push('\n');
        writer.write_str(&self.line)
    }

    /// The line of a request to `/` at the time `since` the epoch, as [`Lean`] writes the
    /// event of [`request_processed`].
    fn request_processed(
        &mut self,
        since: Duration,
        count: u64,
        processing_time: f64,
        trace: TraceId,
    ) -> &str {
        self.stamp(since);
        let line = &mut self.line;
        line.push_str("  INFO ");
        line.push_str(REQUEST_TARGET);
        line.push_str(": request processed request_count=");
        let _ = write_u64(line, count);
        line.push_str(" processing_time=");
        let _ = write_f64(line, processing_time);
        line.push_str(" trace_id=");
        line.push_str(std::str::from_utf8(&trace.digits()).expect("hex digits are ASCII"));
        line.push('\n');
        line
    }

    /// Begins the line with the time `since` the epoch as tracing-subscriber writes it,
    /// `2026-11-25T14:23:32.372305Z`: the date and time of day formatted once a second, the
    /// microseconds every time.
    fn stamp(&mut self, since: Duration) {
        let second = since.as_secs();
        match self.second {
            Some((formatted, length)) if formatted == second => self.line.truncate(length),
            _ => {
                // No second begins the line until one is written whole.
                self.second = None;
                let whole =
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(second));
                self.line.clear();
                let _ = write!(self.line, "{whole}");
                self.line.pop(); // the `Z`
                self.line.push('.');
                self.second = Some((second, self.line.len()));
            }
        }
        // The microseconds with their leading zeros: the digits of 1,000,000 more, but the first.
        let mut digits = itoa::Buffer::new();
        let micros = digits.format(1_000_000 + since.subsec_micros());
        self.line.push_str(&micros[1..]);
        self.line.push('Z');
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

/// What a callsite's lines have in common: ` INFO target:`, and before each field ` name=`
/// (before the message, a space). A line written piece by piece costs a push per piece; this
/// halves their number. (An event's metadata is its callsite's, `'static`: the `log` crate's
/// records come through a callsite per level.)
#[derive(Debug)]
struct Pieces {
    head: String,
    fields: Vec<String>,
}

impl Pieces {
    /// The pieces of `meta`'s callsite.
    fn of(meta: &'static Metadata<'static>) -> Self {
        Pieces {
            head: format!(" {} {}:", level(meta), meta.target()),
            fields: meta.fields().iter().map(|f| Self::before(&f)).collect(),
        }
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

/// Writes `value` as tracing-subscriber does, without the formatting machinery.
fn write_u64(out: &mut impl std::fmt::Write, value: u64) -> std::fmt::Result {
    out.write_str(itoa::Buffer::new().format(value))
}

/// Writes `value` as tracing-subscriber does, as `fmt::Debug` writes it (`0.25`, `1.0`, `5e-5`,
/// `inf`): with ryu where the two write the same, from 1e-4 up to 1e16 and zero, without the
/// formatting machinery; else with it.
fn write_f64(out: &mut impl std::fmt::Write, value: f64) -> std::fmt::Result {
    if value == 0.0 || (1e-4..1e16).contains(&value.abs()) {
        out.write_str(ryu::Buffer::new().format_finite(value))
    } else {
        write!(out, "{value:?}")
    }
}

/// Writes ` message k=v k=v` into the line: numbers with itoa and ryu, strings as they are.
/// A value whose own `Debug` fails fails the line, which is then not written, as
/// tracing-subscriber's default format does; the first error is kept, as `Visit` cannot
/// return one.
struct Fields<'a> {
    out: &'a mut String,
    pieces: &'a Pieces,
    result: std::fmt::Result,
}

impl Fields<'_> {
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut String) -> std::fmt::Result) {
        if self.result.is_err() {
            return;
        }
        // Every field of an event is one of its callsite's; were one not, it is joined here.
        match self.pieces.fields.get(field.index()) {
            Some(before) => self.out.push_str(before),
            None => self.out.push_str(&Pieces::before(field)),
        }
        self.result = value(self.out);
    }
}

impl Visit for Fields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |out| write_u64(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, |out| write_f64(out, value));
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

    impl Captured {
        /// What was written, as text.
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        /// The lines written, each without its time stamp.
        fn lines(&self) -> Vec<String> {
            without_stamps(&self.text())
        }
    }

    /// The lines of `text`, each without its time stamp (the first word).
    fn without_stamps(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.split_once(' ').unwrap().1.to_owned())
            .collect()
    }

    /// What `log` writes through tracing-subscriber's default format, and through [`Lean`].
    fn default_and_lean(log: impl Fn()) -> (Captured, Captured) {
        let (default, lean) = (Captured::default(), Captured::default());
        let fmt = |captured: &Captured| {
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(captured.clone())
        };
        tracing::subscriber::with_default(fmt(&default).finish(), &log);
        tracing::subscriber::with_default(fmt(&lean).event_format(Lean).finish(), &log);
        (default, lean)
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
        let text = captured.text();
        let lines = without_stamps(&text);
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
    fn a_value_that_fails_to_format_fails_its_line_as_in_the_default_format() {
        struct Fails;
        impl std::fmt::Debug for Fails {
            fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Err(std::fmt::Error)
            }
        }
        let log = || {
            tracing::warn!(value = ?Fails, "before");
            tracing::warn!(count = 1u64, "after");
        };
        let (default, lean) = default_and_lean(log);
        // tracing-subscriber writes a line of its own about the failure instead of the event's.
        let default = default.lines();
        assert_eq!(default.len(), 2, "{default:?}");
        assert!(
            default[0].contains("format the following event"),
            "{default:?}"
        );
        assert!(!default[0].contains("before"), "{default:?}");
        assert_eq!(
            default[1],
            format!(" WARN {}: after count=1", module_path!())
        );
        assert_eq!(lean.lines(), default);
    }

    #[test]
    fn a_line_begun_while_another_is_put_together_gets_a_scratch_of_its_own() {
        // (tracing itself does not dispatch an event from inside another's formatting; this is
        // the thread's scratch asked for twice, which must not panic.)
        let since = Duration::from_secs(1_800_000_000);
        let outer = Scratch::with(|outer| {
            outer.stamp(since);
            outer.line.push_str(" outer");
            let inner = Scratch::with(|inner| {
                inner.stamp(since);
                inner.line.push_str(" inner");
                inner.line.clone()
            });
            assert_eq!(inner, "2027-01-15T08:00:00.000000Z inner");
            outer.line.clone()
        });
        assert_eq!(outer, "2027-01-15T08:00:00.000000Z outer");
    }

    #[test]
    fn numbers_are_written_as_fmt_debug_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            0.25,
            1e-9,
            1e-5,
            5e-5,
            9.999_999e-5,
            1e-4,
            1.000_001e-4,
            4.999_999_999,
            9.999_999_999e15,
            1e16,
            -5e-5,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        // And a spread over every magnitude a time or a count might have.
        let mut x = 1.234_567_89e-12;
        while x < 1e20 {
            values.extend([x, -x]);
            x *= 3.7;
        }
        for value in values {
            let mut written = String::new();
            write_f64(&mut written, value).unwrap();
            assert_eq!(written, format!("{value:?}"));
        }
        let mut written = String::new();
        write_u64(&mut written, u64::MAX).unwrap();
        assert_eq!(written, u64::MAX.to_string());
    }

    #[test]
    fn the_filter_is_asked_as_the_event_would_be() {
        // For each RUST_LOG, whether the line is let through must be whether the event of
        // `request_processed` (no writer of Lean's is set up here) is written.
        for (directives, expected) in [
            ("info", true),
            ("warn", false),
            ("off", false),
            ("info,demo_service::routes::simulate=warn", false),
            ("warn,demo_service::routes=info", true),
            // Directives that name fields: the line's event has these four, and no others.
            ("info,demo_service[{total_errors}]=warn", true),
            ("warn,demo_service[{request_count}]=info", true),
            ("warn,demo_service[{foo}]=info", false),
        ] {
            let captured = Captured::default();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new(directives))
                .event_format(Lean)
                .with_writer(captured.clone())
                .finish();
            let asked = tracing::subscriber::with_default(subscriber, || {
                request_processed(1, 0.0, TraceId::SIMULATED);
                request_line_enabled()
            });
            let written = !captured.0.lock().unwrap().is_empty();
            assert_eq!(
                (asked, written),
                (expected, expected),
                "RUST_LOG={directives}"
            );
        }
    }

    #[test]
    fn the_line_of_a_request_is_the_events_line() {
        // The event of `request_processed` (no writer of Lean's is set up here), as
        // tracing-subscriber's default format and as Lean write it, against the line put
        // together straight from the values.
        let requests = [
            (0, 0.0, TraceId::SIMULATED),
            (1, 0.25, TraceId::random()),
            (41, 1e-9, TraceId::random()),
            (42, 5e-5, TraceId::random()),
            (43, 1e-5, TraceId::random()),
            (u64::MAX, 4.999_999_999, TraceId::random()),
        ];
        let log_all = || {
            for &(count, time, trace) in &requests {
                request_processed(count, time, trace);
            }
        };
        let (default, lean) = default_and_lean(log_all);
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let mut scratch = Scratch::default();
        let direct: String = requests
            .iter()
            .map(|&(count, time, trace)| {
                scratch
                    .request_processed(since, count, time, trace)
                    .to_owned()
            })
            .collect();
        let expected = default.lines();
        assert_eq!(expected.len(), requests.len());
        assert_eq!(
            expected[1],
            format!(
                " INFO demo_service::routes::simulate: request processed request_count=1 \
                 processing_time=0.25 trace_id={}",
                requests[1].2
            )
        );
        assert_eq!(lean.lines(), expected);
        assert_eq!(without_stamps(&direct), expected);
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
        // One scratch for them all: a second formatted before is formatted again when it
        // comes back after another.
        let mut scratch = Scratch::default();
        for time in times {
            scratch.stamp(time.duration_since(UNIX_EPOCH).unwrap());
            assert_eq!(
                scratch.line,
                humantime::format_rfc3339_micros(time).to_string()
            );
            scratch.line.push_str(" and the rest of a line");
        }
    }
}
