//! Exemplars: for each bucket of a histogram (and each counter), the latest request that was
//! counted in it, named by its trace id. Only the OpenMetrics exposition carries them (the 0.0.4
//! text format has no place for them), as `# {trace_id="..."} value timestamp` after a sample.
//!
//! One exemplar per bucket, replaced by each request: Prometheus keeps the one it finds at each
//! scrape, so it stores one request per bucket per scrape, not every request.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::trace::TraceId;

/// One request, as an exemplar shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) trace: TraceId,
    /// The request's duration, in seconds.
    pub(crate) value: f64,
    /// When it was recorded: the instant its duration was measured at, so that recording
    /// reads no clock of its own; the exposition turns it into wall-clock time.
    pub(crate) at: Instant,
}

/// The latest exemplar of one bucket or counter.
///
/// A request that finds the cell taken by another one of the same bucket, at the same moment,
/// leaves it to that one: either is the latest, and a request never waits here.
#[derive(Debug, Default)]
pub(crate) struct Cell(Mutex<Option<Exemplar>>);

impl Cell {
    pub(crate) fn record(&self, trace: TraceId, value: f64, at: Instant) {
        if let Ok(mut latest) = self.0.try_lock() {
            *latest = Some(Exemplar { trace, value, at });
        }
    }

    pub(crate) fn get(&self) -> Option<Exemplar> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The time now, on both clocks: what turns an exemplar's instant into a timestamp.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: f64,
    monotonic: Instant,
}

impl Clock {
    pub(crate) fn now() -> Self {
        Self {
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            monotonic: Instant::now(),
        }
    }

    /// `at` in seconds since the Unix epoch.
    fn timestamp(&self, at: Instant) -> f64 {
        self.wall - self.monotonic.saturating_duration_since(at).as_secs_f64()
    }
}

/// Writes an exemplar as OpenMetrics puts it after a sample's value, before the line's end.
/// Its labels, `trace_id="<32 hex digits>"`, are 42 characters, within OpenMetrics' 128.
pub(crate) fn push(out: &mut String, exemplar: &Exemplar, clock: &Clock) {
    use std::fmt::Write;
    let _ = write!(
        out,
        " # {{trace_id=\"{}\"}} {} {:.3}",
        exemplar.trace,
        ryu::Buffer::new().format(exemplar.value),
        clock.timestamp(exemplar.at)
    );
}
