//! The service's behaviour: what its routes do, how long they take, how they fail. One model,
//! in one place, so that everything that needs it draws from the same code: the live service's
//! handlers, and whatever simulates the service without serving it (a history of it, a game day
//! against it).
//!
//! The parts: the [`knobs`] (the settings, changeable at run time), the [`delay`]
//! distributions, the [`draws`] (every random draw, seeded or not), the catalogue of
//! [`faults`], incident [`timeline`]s and their [`player`], and the simulated [`users`]. A
//! request is first *planned* here (what it will do, drawn from the knobs of the moment), then
//! carried out by its handler.

pub mod delay;
pub mod draws;
pub mod faults;
pub mod knobs;
pub mod player;
pub mod timeline;
pub(crate) mod users;

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;

use draws::{Draws, Stream};
use faults::dependency::Outcome;
use faults::{Limits, burn::Burner, leak::Leak};
use knobs::Knobs;

use crate::snapshot::{Local, Snapshot};

thread_local! {
    /// The knobs as this thread read them last.
    static KNOBS: Local<Knobs> = const { std::cell::RefCell::new(None) };
}

/// The knobs of the moment, the draws, and what the faults need while they run.
#[derive(Debug)]
pub struct Behaviour {
    /// Read on every request (through the thread's cache), replaced whole by the admin API.
    pub knobs: Snapshot<Knobs>,
    /// The knobs at start: what a knob cleared goes back to.
    pub start: Knobs,
    /// The bounds of the faults, fixed at start.
    pub limits: Limits,
    pub draws: Draws,
    /// Where the cpu_burn fault takes turns.
    pub burner: Burner,
    /// What the memory_leak fault holds.
    pub leak: Leak,
}

/// What one request to `/` does, drawn before it is done.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RootPlan {
    /// The call to the dependency: how long it takes, how it ends.
    pub dependency: (Duration, Outcome),
    /// The CPU time to spend, if the call succeeded.
    pub cpu_burn: Duration,
    /// The processing time, if the call succeeded: the seed's simulated work.
    pub delay: Duration,
}

impl RootPlan {
    /// Whether it is done at once: nothing to wait for, nothing to burn.
    pub fn is_instant(&self) -> bool {
        self.dependency.0.is_zero() && self.cpu_burn.is_zero() && self.delay.is_zero()
    }
}

impl Behaviour {
    pub fn new(knobs: Knobs, draws: Draws, limits: Limits) -> Self {
        Self {
            knobs: Snapshot::new(knobs.clone()),
            start: knobs,
            limits,
            draws,
            burner: Burner::default(),
            leak: Leak::default(),
        }
    }

    /// What this request to `/` does: the dependency's call first; when it succeeds, the CPU
    /// to burn and a processing time drawn from the knobs' distribution, within their range.
    pub fn plan_root(&self) -> RootPlan {
        self.knobs.read(&KNOBS, |knobs| {
            let dependency = knobs.faults.dependency.draw(&self.draws);
            if dependency.1 != Outcome::Ok {
                return RootPlan {
                    dependency,
                    cpu_burn: Duration::ZERO,
                    delay: Duration::ZERO,
                };
            }
            let delay = if knobs.delay.start() == knobs.delay.end() {
                *knobs.delay.start()
            } else {
                self.draws.with(Stream::Delays, |rng| {
                    knobs.distribution.draw(&knobs.delay, rng)
                })
            };
            RootPlan {
                dependency,
                cpu_burn: knobs.faults.cpu_burn,
                delay,
            }
        })
    }

    /// Whether this request to `/simulate_error` fails.
    pub fn plan_simulate_error(&self) -> bool {
        let rate = self.knobs.read(&KNOBS, |knobs| knobs.error_rate);
        self.draws.with(Stream::Errors, |rng| rng.random_bool(rate))
    }

    /// The number of users now.
    pub fn draw_users(&self) -> u32 {
        let users = self.knobs.load().users.clone();
        self.draws
            .with(Stream::Users, |rng| rng.random_range(users))
    }

    /// Applies `change` to the knobs of the moment, and swaps the result in only if nothing
    /// changed them meanwhile, so that two changes at once (the admin API, a timeline) cannot
    /// undo each other. Returns the knobs before and after, with what `change` returned beside
    /// them; or why not, and nothing changed.
    pub fn change_knobs<T>(
        &self,
        change: impl Fn(&Knobs) -> Result<(Knobs, T), String>,
    ) -> Result<(Arc<Knobs>, Knobs, T), String> {
        let mut outcome = None;
        self.knobs.rcu(|current| match change(current) {
            Ok((after, extra)) => {
                let swapped = Arc::new(after.clone());
                outcome = Some(Ok((current.clone(), after, extra)));
                swapped
            }
            Err(e) => {
                outcome = Some(Err(e));
                current.clone()
            }
        });
        outcome.expect("rcu runs its closure")
    }

    /// Whether `/readyz` says ready, the service not draining: the not_ready fault is off.
    pub fn is_ready(&self) -> bool {
        !self.knobs.load().faults.not_ready
    }
}

/// Knobs with unseeded draws and the default limits, as the tests and benches build them.
impl From<Knobs> for Behaviour {
    fn from(knobs: Knobs) -> Self {
        Self::new(knobs, Draws::unseeded(), Limits::default())
    }
}
