//! Plays a [`Timeline`] against the live knobs: each step's knobs at its time, put back when
//! its `for` is over, round after round when the timeline repeats. What plays now and what
//! comes next is what `GET /admin/incidents` shows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::RngExt;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Behaviour;
use super::draws::Stream;
use super::timeline::{self, Event, Timeline};

/// A timeline being played.
#[derive(Debug)]
pub struct Player {
    timeline: Timeline,
    status: Mutex<Status>,
}

#[derive(Debug, Default)]
struct Status {
    round: u64,
    /// The steps playing now: their index, when they began and end, what they replaced.
    playing: Vec<Playing>,
    /// The next step to begin, and when.
    next: Option<(usize, SystemTime)>,
}

#[derive(Debug)]
struct Playing {
    step: usize,
    began: SystemTime,
    ends: Option<SystemTime>,
    previous: Map<String, Value>,
}

impl Player {
    pub fn new(timeline: Timeline) -> Arc<Self> {
        Arc::new(Self {
            timeline,
            status: Mutex::default(),
        })
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Plays the timeline from now, until it ends (forever, when it repeats).
    pub async fn play(self: Arc<Self>, behaviour: Arc<Behaviour>) {
        let started = Instant::now();
        let wall = SystemTime::now();
        info!(timeline = self.timeline.name, "incident timeline started");
        for round in 0u64.. {
            let events = self.timeline.round(round, |bound| {
                behaviour.draws.with(Stream::Jitter, |rng| {
                    rng.random_range(Duration::ZERO..=bound)
                })
            });
            for (at, event) in events {
                if let Event::Begin(i) = event {
                    self.lock().next = Some((i, wall + at));
                }
                tokio::time::sleep_until(started + at).await;
                self.lock().round = round;
                self.apply(&behaviour, event, wall + at);
            }
            if self.timeline.repeat.is_none() {
                break;
            }
        }
        self.lock().next = None;
        info!(timeline = self.timeline.name, "incident timeline ended");
    }

    fn apply(&self, behaviour: &Behaviour, event: Event, now: SystemTime) {
        let limits = behaviour.limits;
        match event {
            Event::Begin(i) => {
                let step = &self.timeline.steps[i];
                match behaviour.change_knobs(|k| timeline::begin(k, step, &limits)) {
                    Ok((before, after, previous)) => {
                        let changes = after.differences(&before);
                        info!(
                            timeline = self.timeline.name,
                            step = i + 1,
                            changes,
                            "incident step began"
                        );
                        let mut status = self.lock();
                        status.playing.push(Playing {
                            step: i,
                            began: now,
                            ends: step.lasts.map(|l| now + l),
                            previous,
                        });
                        status.next = None;
                    }
                    Err(e) => warn!(
                        timeline = self.timeline.name,
                        step = i + 1,
                        error = e,
                        "incident step skipped"
                    ),
                }
            }
            Event::End(i) => {
                let Some(playing) = ({
                    let mut status = self.lock();
                    let index = status.playing.iter().position(|p| p.step == i);
                    index.map(|index| status.playing.remove(index))
                }) else {
                    return;
                };
                let step = &self.timeline.steps[i];
                let changes = behaviour
                    .change_knobs(|k| Ok((timeline::end(k, step, &playing.previous, &limits)?, ())))
                    .map_or_else(
                        |e| format!("none: {e}"),
                        |(before, after, ())| after.differences(&before),
                    );
                info!(
                    timeline = self.timeline.name,
                    step = i + 1,
                    changes,
                    "incident step ended"
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What plays now and what comes next, for `GET /admin/incidents`.
    pub fn status(&self) -> Value {
        let time = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        let step = |i: usize| &self.timeline.steps[i];
        let status = self.lock();
        json!({
            "timeline": self.timeline.name,
            "description": self.timeline.description,
            "round": status.round + 1,
            "playing": status.playing.iter().map(|p| json!({
                "step": p.step + 1,
                "began": time(p.began),
                "ends": p.ends.map(time),
                "set": step(p.step).set,
            })).collect::<Vec<_>>(),
            "next": status.next.map(|(i, at)| json!({
                "step": i + 1,
                "begins": time(at),
                "set": step(i).set,
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::knobs::Knobs;
    use super::*;

    fn timeline(text: &str) -> Timeline {
        Timeline::parse("t", text, &Knobs::default(), &Default::default()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn it_plays_each_step_at_its_time_and_round_after_round() {
        let behaviour = Arc::new(Behaviour::from(Knobs::default()));
        let player = Player::new(timeline(
            "repeat = \"10m\"\n[[step]]\nat = \"1m\"\nfor = \"2m\"\nset = { error_rate = 0.9 }",
        ));
        let task = tokio::spawn(player.clone().play(behaviour.clone()));
        let error_rate_at = |minutes: f64| {
            let behaviour = behaviour.clone();
            async move {
                tokio::time::sleep_until(
                    tokio::time::Instant::now() + Duration::from_secs_f64(minutes * 60.0),
                )
                .await;
                behaviour.knobs.load().error_rate
            }
        };
        assert_eq!(error_rate_at(0.5).await, 0.2);
        assert_eq!(player.status()["next"]["step"], 1);
        assert_eq!(error_rate_at(1.0).await, 0.9, "at 1m30s");
        assert_eq!(player.status()["playing"][0]["step"], 1);
        assert_eq!(error_rate_at(2.0).await, 0.2, "at 3m30s: over");
        assert_eq!(error_rate_at(8.0).await, 0.9, "at 11m30s: the second round");
        assert_eq!(player.status()["round"], 2);
        task.abort();
    }
}
