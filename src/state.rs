//! What the handlers share: the metrics, the behaviour (knobs and draws), the settings that do
//! not change, and readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::behaviour::Behaviour;
use crate::behaviour::player::Player;
use crate::metrics::Metrics;

/// Settings fixed at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The bearer token of the admin API; without one the API is off.
    pub admin_token: Option<String>,
    /// The longest delay `/delay/{duration}` grants.
    pub max_fault_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            admin_token: None,
            max_fault_delay: Duration::from_secs(30),
        }
    }
}

/// Shared by every handler. Cloning it bumps one reference count; the fields are reached
/// through it (`state.metrics`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Shared {
    pub metrics: Arc<Metrics>,
    /// What requests do: the knobs of the moment, and the draws.
    pub behaviour: Arc<Behaviour>,
    pub settings: Settings,
    /// The incident timeline playing, if any.
    pub incidents: std::sync::OnceLock<Arc<Player>>,
    /// The simulated work of `/`, which outlives its request when the client goes away; the
    /// drain waits for it too, so that no counted request goes unrecorded.
    pub work: TaskTracker,
    ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(metrics: Arc<Metrics>, behaviour: impl Into<Behaviour>, settings: Settings) -> Self {
        Self(Arc::new(Shared {
            metrics,
            behaviour: Arc::new(behaviour.into()),
            incidents: std::sync::OnceLock::new(),
            settings,
            work: TaskTracker::new(),
            ready: AtomicBool::new(true),
        }))
    }

    /// False once shutdown has begun.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }
}
