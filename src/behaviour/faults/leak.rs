//! The memory leak: while the knob is on, the service holds on to more memory every tick, at
//! the knob's rate, and never past `--memory-leak-cap`, so that the fault cannot take the host
//! down. The memory is written, not only reserved, so that it is resident:
//! `process_resident_memory_bytes` grows, and `predict_linear` can say when it reaches the cap.
//! Turning the knob off lets it all go, as a restart would (the allocator returns it to the
//! system within seconds).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::behaviour::Behaviour;
use crate::metrics::Metrics;

/// How often the leak grows.
pub const TICK: Duration = Duration::from_millis(100);

/// The memory held, in chunks of one tick each.
#[derive(Debug, Default)]
pub struct Leak {
    held: Mutex<Vec<Box<[u8]>>>,
}

impl Leak {
    /// One tick at `rate` bytes a second, up to `cap`: grows, or lets go when the rate is 0.
    /// Returns the bytes held now.
    pub fn tick(&self, rate: u64, cap: u64) -> u64 {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if rate == 0 {
            *held = Vec::new();
            return 0;
        }
        let now: u64 = held.iter().map(|c| c.len() as u64).sum();
        let chunk = grown(now, rate, cap, TICK) - now;
        if chunk > 0 {
            // Non-zero bytes: every page is written, so resident.
            held.push(vec![0xA5; chunk as usize].into_boxed_slice());
        }
        now + chunk
    }
}

/// What the leak holds `over` later, from `held`, at `rate` bytes a second, within `cap`;
/// nothing once the rate is 0. The live leak takes a tick at a time; a simulation, any time.
pub fn grown(held: u64, rate: u64, cap: u64, over: Duration) -> u64 {
    if rate == 0 {
        return 0;
    }
    let more = (rate as f64 * over.as_secs_f64()).ceil() as u64;
    held + more.min(cap.saturating_sub(held))
}

/// Runs the leak as the knobs say, every [`TICK`], forever; the memory held goes to
/// `demo_service_leaked_bytes`.
pub(crate) async fn run(behaviour: Arc<Behaviour>, metrics: Arc<Metrics>) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held = 0;
    loop {
        ticks.tick().await;
        let rate = behaviour.knobs.load().faults.memory_leak;
        if rate == 0 && held == 0 {
            continue;
        }
        held = behaviour.leak.tick(rate, behaviour.limits.memory_leak_cap);
        metrics.set_leaked(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_grows_at_its_rate_up_to_the_cap_and_lets_go_when_off() {
        let leak = Leak::default();
        let (rate, cap) = (10 * 1024 * 1024, 5 * 1024 * 1024);
        assert_eq!(
            leak.tick(rate, cap),
            1024 * 1024,
            "a tenth of a second's worth"
        );
        let mut held = 0;
        for _ in 0..10 {
            held = leak.tick(rate, cap);
        }
        assert_eq!(held, cap, "never past the cap");
        assert_eq!(leak.tick(0, cap), 0);
        assert!(leak.held.lock().unwrap().is_empty());
    }
}
