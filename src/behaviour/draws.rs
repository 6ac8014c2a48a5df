//! Where the service's random draws come from: each thread's own generator, as the seed's
//! `random` module is, or, with `--seed N`, generators seeded from N.
//!
//! Seeded, each kind of draw has a stream of its own, all derived from the one seed: the
//! delays of `/`, the errors of `/simulate_error`, the number of users, the dependency's
//! failures and the timeline's jitter. Separate streams keep a run repeatable: the users' timer draws at times of its own,
//! and would otherwise shift the requests' draws by however many times it had fired. So the
//! same seed and the same sequence of requests give the same delays and the same errors.
//! (Requests that overlap draw in the order they arrive, which no seed can fix.) Trace ids are
//! not drawn from here: two replicas with the same seed must still name different requests.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a draw is for: each has its own stream when seeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The processing time of `/`.
    Delays = 0,
    /// Whether `/simulate_error` fails.
    Errors = 1,
    /// The simulated `current_users`.
    Users = 2,
    /// The jitter of an incident timeline.
    Jitter = 3,
    /// Whether a call to the simulated dependency fails.
    Dependency = 4,
}

const STREAMS: usize = 5;

/// The source of every random draw of the service.
#[derive(Debug, Default)]
pub struct Draws {
    /// One generator per [`Stream`], when seeded; the thread's own generator otherwise.
    seeded: Option<[Mutex<StdRng>; STREAMS]>,
}

impl Draws {
    /// Draws that differ from run to run, from each thread's generator.
    pub fn unseeded() -> Self {
        Self::default()
    }

    /// Draws that repeat from run to run: the streams of `seed`.
    pub fn seeded(seed: u64) -> Self {
        let mut root = StdRng::seed_from_u64(seed);
        Self {
            seeded: Some(std::array::from_fn(|_| {
                Mutex::new(StdRng::from_rng(&mut root))
            })),
        }
    }

    /// From `--seed`: seeded when given.
    pub fn from_seed(seed: Option<u64>) -> Self {
        seed.map_or_else(Self::unseeded, Self::seeded)
    }

    /// Runs `draw` with the generator of `stream`.
    pub fn with<T>(&self, stream: Stream, draw: impl FnOnce(&mut dyn Rng) -> T) -> T {
        match &self.seeded {
            None => draw(&mut rand::rng()),
            Some(streams) => {
                let mut rng = streams[stream as usize]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                draw(&mut *rng)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    fn ten(draws: &Draws, stream: Stream) -> Vec<u32> {
        (0..10)
            .map(|_| draws.with(stream, |rng| rng.random_range(0..1000)))
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_draws_and_streams_do_not_shift_each_other() {
        let (a, b) = (Draws::seeded(42), Draws::seeded(42));
        // b's users stream draws in between; a's delays do not notice.
        let first = ten(&a, Stream::Delays);
        ten(&b, Stream::Users);
        assert_eq!(first, ten(&b, Stream::Delays));
        assert_ne!(first, ten(&Draws::seeded(43), Stream::Delays));
        assert_ne!(ten(&a, Stream::Errors), ten(&a, Stream::Jitter));
    }

    #[test]
    fn unseeded_draws_differ() {
        let draws = Draws::from_seed(None);
        assert_ne!(ten(&draws, Stream::Delays), ten(&draws, Stream::Delays));
    }
}
