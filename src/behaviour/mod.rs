//! The service's behaviour: what its routes do, how long they take, how often they fail. One
//! model, in one place, so that everything that needs it draws from the same code: the live
//! service's handlers, and whatever simulates the service without serving it (a history of it,
//! a game day against it).
//!
//! The parts: the [`knobs`] (the settings, changeable at run time), the [`delay`]
//! distributions, the [`draws`] (every random draw, seeded or not), and the simulated
//! [`users`].

pub mod delay;
pub mod draws;
pub mod knobs;
pub(crate) mod users;

use std::time::Duration;

use arc_swap::ArcSwap;

use draws::{Draws, Stream};
use knobs::Knobs;

/// The knobs of the moment and the draws: what a request's outcome is made from.
#[derive(Debug)]
pub struct Behaviour {
    /// Read on every request (a lock-free load), replaced whole by the admin API.
    pub knobs: ArcSwap<Knobs>,
    pub draws: Draws,
}

impl Behaviour {
    pub fn new(knobs: Knobs, draws: Draws) -> Self {
        Self {
            knobs: ArcSwap::from_pointee(knobs),
            draws,
        }
    }

    /// How long this request to `/` takes: a draw from the knobs' distribution, within their
    /// range.
    pub fn draw_delay(&self) -> Duration {
        let knobs = self.knobs.load();
        if knobs.delay.start() == knobs.delay.end() {
            return *knobs.delay.start();
        }
        self.draws.with(Stream::Delays, |rng| {
            knobs.distribution.draw(&knobs.delay, rng)
        })
    }

    /// Whether this request to `/simulate_error` fails.
    pub fn draw_error(&self) -> bool {
        let rate = self.knobs.load().error_rate;
        self.draws
            .with(Stream::Errors, |rng| rand::RngExt::random_bool(rng, rate))
    }

    /// The number of users now.
    pub fn draw_users(&self) -> u32 {
        let users = self.knobs.load().users.clone();
        self.draws
            .with(Stream::Users, |rng| rand::RngExt::random_range(rng, users))
    }
}

/// Knobs with unseeded draws, as the tests and benches build them.
impl From<Knobs> for Behaviour {
    fn from(knobs: Knobs) -> Self {
        Self::new(knobs, Draws::unseeded())
    }
}
