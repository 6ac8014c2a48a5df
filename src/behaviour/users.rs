//! The simulated number of active users behind the `current_users` gauge.
//!
//! The seed sets it from a thread to a random integer in [10, 50] every 5 seconds and logs it.
//! (Its thread dies after the first update: `Gauge.get()` does not exist in prometheus_client
//! 0.11, so the seed's gauge never moves again. This one keeps moving, as the seed intends.)

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tracing::info;

use super::Behaviour;

/// Sets `gauge` to a uniformly random value in the knobs' users range now and after every
/// `interval`, forever; the range is read afresh each time.
pub(crate) async fn simulate(gauge: Gauge, behaviour: Arc<Behaviour>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let users = behaviour.draw_users();
        gauge.set(i64::from(users));
        info!(current_users = users, "current active users");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_gauge_moves_within_its_range() {
        let gauge = Gauge::default();
        let knobs = crate::behaviour::knobs::Knobs {
            users: 10..=12,
            ..Default::default()
        };
        let behaviour = Arc::new(Behaviour::from(knobs));
        let task = tokio::spawn(simulate(gauge.clone(), behaviour, Duration::from_secs(5)));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            seen.insert(gauge.get());
        }
        task.abort();
        assert_eq!(seen, [10, 11, 12].into(), "50 draws from 10..=12");
    }
}
