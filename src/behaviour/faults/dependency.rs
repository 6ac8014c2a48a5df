//! A simulated downstream dependency of `/`, called `database`: its own latency, its own error
//! rate, and a switch that takes it down.
//!
//! The lesson it is for: a service's own errors and the ones it inherits look alike from
//! outside (a 5xx is a 5xx), and only the dependency's own series tell them apart. By default it
//! answers at once and never fails, so the seed's `/` stays 200 as in the seed. When a call
//! fails, `/` answers 503, with a body that says which dependency failed and how.

use std::time::Duration;

use rand::RngExt;

use crate::behaviour::draws::{Draws, Stream};

/// The dependency's name, as its series label it.
pub const NAME: &str = "database";

/// The dependency's knobs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dependency {
    /// How long each call takes.
    pub latency: Duration,
    /// The probability that a call fails, after its latency.
    pub error_rate: f64,
    /// Every call fails at once, as against a host that refuses connections.
    pub down: bool,
}

/// How a call ended, as `dependency_requests_total{outcome}` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// It answered with an error.
    Error,
    /// It could not be reached.
    Down,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Down => "down",
        }
    }

    /// What `/` answers when the call failed.
    pub fn failure(self) -> Option<&'static str> {
        match self {
            Self::Ok => None,
            Self::Error => {
                Some("Service unavailable: the dependency database answered with an error")
            }
            Self::Down => Some("Service unavailable: the dependency database is down"),
        }
    }
}

impl Dependency {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "dependency_error_rate {} is outside [0, 1]",
                self.error_rate
            ));
        }
        Ok(())
    }

    /// What this call does: how long it takes, and how it ends.
    pub fn draw(&self, draws: &Draws) -> (Duration, Outcome) {
        if self.down {
            return (Duration::ZERO, Outcome::Down);
        }
        let failed = self.error_rate > 0.0
            && draws.with(Stream::Dependency, |rng| rng.random_bool(self.error_rate));
        (
            self.latency,
            if failed { Outcome::Error } else { Outcome::Ok },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_it_costs_nothing_and_never_fails() {
        let draws = Draws::seeded(1);
        for _ in 0..1000 {
            assert_eq!(
                Dependency::default().draw(&draws),
                (Duration::ZERO, Outcome::Ok)
            );
        }
    }

    #[test]
    fn it_fails_at_its_rate_after_its_latency_or_at_once_when_down() {
        let draws = Draws::seeded(2);
        let flaky = Dependency {
            latency: Duration::from_millis(40),
            error_rate: 0.3,
            down: false,
        };
        let calls: Vec<_> = (0..2000).map(|_| flaky.draw(&draws)).collect();
        assert!(calls.iter().all(|(took, _)| *took == flaky.latency));
        let failed = calls.iter().filter(|(_, o)| *o == Outcome::Error).count();
        assert!(
            (500..700).contains(&failed),
            "{failed} of 2000 failed at 0.3"
        );
        let down = Dependency {
            down: true,
            ..flaky
        };
        assert_eq!(down.draw(&draws), (Duration::ZERO, Outcome::Down));
        assert_eq!(
            Dependency {
                error_rate: 1.5,
                ..Default::default()
            }
            .check(),
            Err("dependency_error_rate 1.5 is outside [0, 1]".to_owned())
        );
    }
}
