//! Exemplars: for each bucket of a histogram (and each counter), the latest request that was
//! counted in it, named by its trace id. The OpenMetrics exposition carries them, as
//! `# {trace_id="..."} value timestamp` after a sample, and the protobuf one, in each counter and
//! bucket (and in the native histogram's list); the 0.0.4 text format has no place for them.
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
/// A request that finds the cell taken (by another request of the same bucket at the same
/// moment, or by a scrape reading it) leaves it as it is: a request never waits here, and the
/// next request of the bucket records itself.
#[derive(Debug, Default)]
pub(crate) struct Cell(Mutex<Option<Exemplar>>);

impl Cell {
    /// Records the request of `trace`, measured at `at`, unless the cell holds a later one: two
    /// requests that end together may record in either order, and an exemplar older than the
    /// one Prometheus last took would be refused as out of order.
    pub(crate) fn record(&self, trace: TraceId, value: f64, at: Instant) {
        if let Ok(mut latest) = self.0.try_lock()
            && latest.is_none_or(|e| e.at <= at)
        {
            *latest = Some(Exemplar { trace, value, at });
        }
    }

    pub(crate) fn get(&self) -> Option<Exemplar> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// What turns an exemplar's instant into a timestamp: the two clocks read together, when the
/// first exemplar is written. The same exemplar gets the same timestamp at every scrape, to the
/// millisecond (Prometheus would otherwise store it again, or count it out of order), and small
/// corrections of the wall clock (NTP's slewing) leave it alone. But on Linux the monotonic
/// clock stands still while the machine is suspended: after a laptop's sleep, or a step of the
/// wall clock, every later exemplar would be stamped in the past by that much, out of
/// Grafana's range. So each scrape checks the anchor first, and reads the two clocks anew when
/// the time it computes for now is more than [`DRIFT`] off the wall clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: f64,
    monotonic: Instant,
}

/// How far the anchor may drift from the wall clock before a scrape re-reads it, in seconds.
const DRIFT: f64 = 1.0;

impl Clock {
    /// The clock of a scrape: the anchor every exposition shares, checked against the wall
    /// clock now.
    pub(crate) fn anchored() -> Self {
        static ANCHOR: std::sync::Mutex<Option<Clock>> = std::sync::Mutex::new(None);
        let mut anchor = ANCHOR.lock().unwrap_or_else(|e| e.into_inner());
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let clock = Self::checked(*anchor, wall, Instant::now());
        *anchor = Some(clock);
        clock
    }

    /// `anchor`, unless there is none or the time it computes for `monotonic` is more than
    /// [`DRIFT`] off `wall` (both read now): then a new anchor at `wall` and `monotonic`.
    fn checked(anchor: Option<Clock>, wall: f64, monotonic: Instant) -> Clock {
        match anchor {
            Some(anchor) if (anchor.timestamp(monotonic) - wall).abs() <= DRIFT => anchor,
            _ => Clock { wall, monotonic },
        }
    }

    /// `at` in seconds since the Unix epoch.
    fn timestamp(&self, at: Instant) -> f64 {
        if at >= self.monotonic {
            self.wall + (at - self.monotonic).as_secs_f64()
        } else {
            self.wall - (self.monotonic - at).as_secs_f64()
        }
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

/// An exemplar as the protobuf exposition carries it: the same label, value and timestamp.
pub(crate) fn proto(exemplar: &Exemplar, clock: &Clock) -> super::protobuf::Exemplar {
    // To the millisecond, as the text formats write it: the same at every scrape, in any format.
    let millis = (clock.timestamp(exemplar.at) * 1000.0).round() / 1000.0;
    super::protobuf::Exemplar {
        label: super::protobuf::labels([("trace_id", exemplar.trace.to_string().as_str())]),
        value: exemplar.value,
        timestamp: Some(super::protobuf::timestamp(millis)),
    }
}

/// The latest exemplar of each cell, as protobuf carries them: a bucket's each, `None` where
/// its cell has none.
pub(crate) fn proto_each(cells: &[Cell], clock: &Clock) -> Vec<Option<super::protobuf::Exemplar>> {
    cells
        .iter()
        .map(|cell| cell.get().map(|e| proto(&e, clock)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(exemplar: &Exemplar) -> String {
        let mut out = String::new();
        push(&mut out, exemplar, &Clock::anchored());
        out
    }

    #[test]
    fn an_exemplar_is_written_the_same_at_every_scrape() {
        let cell = Cell::default();
        assert_eq!(cell.get(), None);
        let trace = TraceId::random();
        let recorded = Instant::now();
        cell.record(trace, 0.25, recorded);
        let exemplar = cell.get().unwrap();
        let first = written(&exemplar);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(written(&exemplar), first);
        assert!(
            first.starts_with(&format!(" # {{trace_id=\"{trace}\"}} 0.25 ")),
            "{first}"
        );
        let timestamp: f64 = first.rsplit(' ').next().unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (now - 1.0..=now).contains(&timestamp),
            "{timestamp} vs {now}"
        );
    }

    #[test]
    fn a_suspend_or_a_step_of_the_wall_clock_re_anchors_at_the_next_scrape() {
        use std::time::Duration;
        let start = Instant::now();
        let first = Clock::checked(None, 1_000.0, start);
        let later = start + Duration::from_secs(10);
        let recorded = start + Duration::from_secs(9);
        // NTP's slewing, within a second: the anchor holds, and an exemplar keeps its timestamp.
        let slewed = Clock::checked(Some(first), 1_010.9, later);
        assert_eq!(slewed.timestamp(recorded), first.timestamp(recorded));
        // An hour's suspend: the monotonic clock stood still while the wall clock went on. The
        // next scrape re-anchors, and a request after waking is stamped at the wall clock's time.
        let woke = Clock::checked(Some(first), 4_610.0, later);
        let after = later + Duration::from_secs(2);
        assert!((woke.timestamp(after) - 4_612.0).abs() < 1e-6);
        assert!(
            (first.timestamp(after) - 1_012.0).abs() < 1e-6,
            "stale, an hour behind"
        );
        // The anchor then holds again.
        let next = Clock::checked(Some(woke), 4_615.0, later + Duration::from_secs(5));
        assert_eq!(next.timestamp(after), woke.timestamp(after));
        // A step back of the wall clock, too.
        let stepped = Clock::checked(Some(woke), 4_000.0, later);
        assert!((stepped.timestamp(after) - 4_002.0).abs() < 1e-6);
    }

    #[test]
    fn an_older_request_leaves_a_newer_one_in_place() {
        let cell = Cell::default();
        let (newer, older) = (TraceId::random(), TraceId::random());
        let now = Instant::now();
        cell.record(newer, 1.0, now);
        // Ended a moment before, recorded a moment after.
        cell.record(older, 2.0, now - std::time::Duration::from_micros(1));
        assert_eq!(cell.get().unwrap().trace, newer);
        // At the same instant, the later record wins.
        cell.record(older, 2.0, now);
        assert_eq!(cell.get().unwrap().trace, older);
    }

    #[test]
    fn a_request_that_finds_the_cell_taken_leaves_it() {
        let cell = Cell::default();
        let (first, second) = (TraceId::random(), TraceId::random());
        cell.record(first, 1.0, Instant::now());
        let held = cell.0.lock().unwrap();
        cell.record(second, 2.0, Instant::now()); // does not wait
        drop(held);
        assert_eq!(cell.get().unwrap().trace, first);
        cell.record(second, 2.0, Instant::now());
        assert_eq!(cell.get().unwrap().trace, second);
    }
}
