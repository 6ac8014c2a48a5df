//! What the handlers share: the metrics, the simulation's knobs, and readiness.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::RngExt;
use tokio_util::task::TaskTracker;

use crate::config::ServeArgs;
use crate::metrics::Metrics;

/// The simulation's knobs.
#[derive(Clone, Debug)]
pub struct Knobs {
    /// The range `/` draws its processing time from.
    pub delay: RangeInclusive<Duration>,
    /// The probability that `/simulate_error` fails.
    pub error_rate: f64,
}

impl Knobs {
    pub(crate) fn draw_delay(&self) -> Duration {
        if self.delay.start() == self.delay.end() {
            return *self.delay.start();
        }
        rand::rng().random_range(self.delay.clone())
    }

    pub(crate) fn draw_error(&self) -> bool {
        rand::rng().random_bool(self.error_rate)
    }
}

impl From<&ServeArgs> for Knobs {
    fn from(args: &ServeArgs) -> Self {
        Self {
            delay: args.min_delay..=args.max_delay,
            error_rate: args.error_rate,
        }
    }
}

/// Shared by every handler; cloning it is cheap (reference counts).
#[derive(Clone, Debug)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub knobs: Arc<Knobs>,
    /// The simulated work of `/`, which outlives its request when the client goes away; the
    /// drain waits for it too, so that no counted request goes unrecorded.
    pub work: TaskTracker,
    ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(metrics: Arc<Metrics>, knobs: Knobs) -> Self {
        Self {
            metrics,
            knobs: Arc::new(knobs),
            work: TaskTracker::new(),
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// False once shutdown has begun.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }
}
