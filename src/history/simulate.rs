//! The service, simulated over days: the same behaviour ([`crate::behaviour`]) plans each
//! request, the same metrics ([`crate::metrics`]) count it, the same exposition renders each
//! scrape. Only time is made up: no request waits, so a month takes seconds.
//!
//! What is made up besides, and how:
//! - **traffic**: a Poisson number of requests in each scrape interval, at the mean rate times a
//!   daily rhythm (half as much again at 15:00 UTC, half as much at 03:00), over the paths of the
//!   load generator's mix;
//! - **restarts**: the service restarts once a day, at a time between 08:00 and 18:00 UTC drawn
//!   from the seed and the day (a deploy): its counters start again from zero;
//! - **the process**: `process_*` as a small service shows them (CPU time by the request,
//!   memory with the leak's), since this process is not the one being simulated;
//! - **an incident timeline** plays round after round, from the Unix epoch on: rounds of its
//!   `repeat`, or of a day when it has none.
//!
//! Everything is a function of the seed and the time alone: each restart's process draws from
//! generators seeded with the seed and its start, and each round of the timeline with the seed
//! and the round. So a history written twice, over ranges that overlap, has the same samples
//! where they overlap (and Prometheus stores them once).

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution as _, Poisson};
use serde_json::{Map, Value};

use crate::behaviour::Behaviour;
use crate::behaviour::draws::{Draws, Stream};
use crate::behaviour::faults::{Limits, leak};
use crate::behaviour::knobs::Knobs;
use crate::behaviour::timeline::{self, Event, Timeline};
use crate::metrics::{Metrics, TextFormat, process};

const DAY: i64 = 86_400;

/// How far the daily rhythm swings around the mean rate, as a fraction of it.
const DAILY_SWING: f64 = 0.5;

/// The time of a request beyond what it was planned to take: a bare answer's.
const OVERHEAD: Duration = Duration::from_micros(100);

/// CPU time a request costs the simulated process, beyond what the cpu_burn fault burns.
const CPU_PER_REQUEST: f64 = 50e-6;

/// The routes a history's traffic may ask for: the seed's two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Root,
    SimulateError,
}

impl Route {
    pub fn path(self) -> &'static str {
        match self {
            Route::Root => "/",
            Route::SimulateError => "/simulate_error",
        }
    }
}

/// What the simulation needs to know.
#[derive(Clone, Debug)]
pub struct Model {
    /// The knobs at start, as the command line sets them.
    pub knobs: Knobs,
    pub limits: Limits,
    pub timeline: Option<Timeline>,
    pub seed: u64,
    /// Mean requests a second.
    pub rate: f64,
    /// The load generator's mix of paths, as routes.
    pub mix: Vec<Route>,
    pub pick: crate::load::Mix,
    /// Prometheus' scrape interval: the grid every sample is on, in whole seconds.
    pub step: i64,
    /// Prometheus' scrape timeout: a slower exposition is a failed scrape.
    pub scrape_timeout: Duration,
}

/// One scrape of the simulated service.
#[derive(Debug)]
pub enum Scrape<'a> {
    /// The exposition at `at`, of a process started at `started`.
    Answered {
        at: i64,
        started: i64,
        exposition: &'a str,
    },
    /// The exposition took longer than the scrape timeout.
    TimedOut { at: i64 },
}

impl Model {
    /// What no single field can say: a scrape interval that divides a day (the restarts and
    /// the rounds are on its grid), and a timeline without `repeat` that fits in the day it
    /// then repeats over.
    pub fn check(&self) -> Result<(), String> {
        if self.step <= 0 || DAY % self.step != 0 {
            return Err(format!(
                "a scrape interval of {}s does not divide a day: give Prometheus one that does (15s, 30s, 1m)",
                self.step
            ));
        }
        if let Some(timeline) = &self.timeline
            && timeline.repeat.is_none()
        {
            let end = timeline
                .steps
                .iter()
                .map(|s| s.at + s.jitter + s.lasts.unwrap_or_default())
                .max()
                .unwrap_or_default();
            if end > Duration::from_secs(DAY as u64) {
                return Err(format!(
                    "the timeline {} plays for {} and has no repeat: a history plays it once a day, so give it a repeat of {} or more",
                    timeline.name,
                    humantime::format_duration(end),
                    humantime::format_duration(end)
                ));
            }
        }
        Ok(())
    }

    /// Simulates the service from `from` to `to` (seconds since the epoch, on the grid), and
    /// hands each scrape to `scraped`, with the requests that it is the first to show.
    pub fn run(&self, from: i64, to: i64, mut scraped: impl FnMut(Scrape, u64)) {
        let mut clock = self.timeline.as_ref().map(|t| TimelineClock::new(t, self));
        let mut t = segment(self.seed, self.step, from).0;
        while t <= to {
            let (started, ends) = segment(self.seed, self.step, t);
            let mut service = Service::start(self, started);
            let mut unseen = 0;
            while t < ends && t <= to {
                let knobs = clock.as_mut().map_or(&self.knobs, |c| c.at(t));
                service.set_knobs(knobs);
                service.update_gauges();
                if t >= from {
                    match service.scrape(self) {
                        Some(exposition) => scraped(
                            Scrape::Answered {
                                at: t,
                                started,
                                exposition: &exposition,
                            },
                            unseen,
                        ),
                        None => scraped(Scrape::TimedOut { at: t }, 0),
                    }
                    unseen = 0;
                }
                let served = service.serve(t, self);
                // What was served before `from` is shown by no scrape in the range.
                unseen = if t >= from { unseen + served } else { 0 };
                t += self.step;
            }
        }
    }
}

/// A 64-bit mix of numbers, for seeding: splitmix64's finaliser over each in turn.
fn mix(parts: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15_u64;
    for &p in parts {
        let mut z = h ^ p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

/// When the service restarts on `day` (days since the epoch): between 08:00 and 18:00 UTC,
/// on the grid.
fn restart(seed: u64, step: i64, day: i64) -> i64 {
    let slots = 10 * 3600 / step;
    let slot = (mix(&[seed, day as u64, 0x5245_5354]) % slots as u64) as i64;
    day * DAY + 8 * 3600 + slot * step
}

/// The life of the process that runs at `t`: from its start to the next restart.
fn segment(seed: u64, step: i64, t: i64) -> (i64, i64) {
    let day = t.div_euclid(DAY);
    let today = restart(seed, step, day);
    if t >= today {
        (today, restart(seed, step, day + 1))
    } else {
        (restart(seed, step, day - 1), today)
    }
}

/// The mean rate at `t`, with the daily rhythm.
pub fn rate_at(mean: f64, t: i64) -> f64 {
    let hours = t.rem_euclid(DAY) as f64 / 3600.0;
    mean * (1.0 + DAILY_SWING * (std::f64::consts::TAU * (hours - 9.0) / 24.0).sin())
}

/// The knobs as an incident timeline sets them at each time.
struct TimelineClock<'a> {
    timeline: &'a Timeline,
    model: &'a Model,
    /// Milliseconds.
    repeat: i64,
    round: Option<i64>,
    /// The round's events, at milliseconds since the epoch.
    events: Vec<(i64, Event)>,
    next: usize,
    knobs: Knobs,
    /// What each step playing replaced.
    previous: Vec<Option<Map<String, Value>>>,
}

impl<'a> TimelineClock<'a> {
    fn new(timeline: &'a Timeline, model: &'a Model) -> Self {
        let repeat = timeline.repeat.unwrap_or(Duration::from_secs(DAY as u64));
        Self {
            timeline,
            model,
            repeat: i64::try_from(repeat.as_millis()).unwrap_or(i64::MAX).max(1),
            round: None,
            events: Vec::new(),
            next: 0,
            knobs: model.knobs.clone(),
            previous: vec![None; timeline.steps.len()],
        }
    }

    /// The knobs at `t` (seconds since the epoch), which never goes back.
    fn at(&mut self, t: i64) -> &Knobs {
        let now = t * 1000;
        let round = now.div_euclid(self.repeat);
        if self.round != Some(round) {
            // A round begins with the knobs at start: what a step without `for` set lasts
            // to the end of its round.
            self.round = Some(round);
            self.knobs = self.model.knobs.clone();
            self.previous.iter_mut().for_each(|p| *p = None);
            let draws = Draws::seeded(mix(&[self.model.seed, round as u64, 0x4A49_5454]));
            let begins = round * self.repeat;
            self.events = self
                .timeline
                .round(0, |bound| {
                    draws.with(Stream::Jitter, |rng| {
                        rng.random_range(Duration::ZERO..=bound)
                    })
                })
                .into_iter()
                .map(|(at, event)| {
                    let at = i64::try_from(at.as_millis()).unwrap_or(i64::MAX);
                    (begins.saturating_add(at), event)
                })
                .collect();
            self.next = 0;
        }
        let limits = self.model.limits;
        while let Some(&(at, event)) = self.events.get(self.next)
            && at <= now
        {
            self.next += 1;
            match event {
                Event::Begin(i) => {
                    let step = &self.timeline.steps[i];
                    if let Ok((knobs, previous)) = timeline::begin(&self.knobs, step, &limits) {
                        self.knobs = knobs;
                        self.previous[i] = Some(previous);
                    }
                }
                Event::End(i) => {
                    let step = &self.timeline.steps[i];
                    if let Some(previous) = self.previous[i].take()
                        && let Ok(knobs) = timeline::end(&self.knobs, step, &previous, &limits)
                    {
                        self.knobs = knobs;
                    }
                }
            }
        }
        &self.knobs
    }
}

/// One life of the simulated process, from a start to a restart.
struct Service {
    behaviour: Behaviour,
    metrics: Metrics,
    process: process::Simulated,
    traffic: StdRng,
    started: i64,
    leaked: u64,
    cpu_seconds: f64,
    /// Requests in flight at the last scrape, by Little's law.
    in_flight: f64,
}

impl Service {
    fn start(model: &Model, started: i64) -> Self {
        let draws = Draws::seeded(mix(&[model.seed, started as u64, 0x4452_4157]));
        let process = process::Simulated::default();
        Self {
            behaviour: Behaviour::new(model.knobs.clone(), draws, model.limits),
            metrics: Metrics::simulated(process.clone()),
            process,
            traffic: StdRng::seed_from_u64(mix(&[model.seed, started as u64, 0x5452_4146])),
            started,
            leaked: 0,
            cpu_seconds: 0.0,
            in_flight: 0.0,
        }
    }

    fn set_knobs(&self, knobs: &Knobs) {
        if **self.behaviour.knobs.load() != *knobs {
            self.behaviour.knobs.store(Arc::new(knobs.clone()));
        }
    }

    /// Sets what a scrape reads besides the counters: the users (drawn at every scrape
    /// interval, whether or not the scrape is kept, so that the draws stay in step), the leak,
    /// the requests in flight, the process.
    fn update_gauges(&self) {
        let metrics = &self.metrics;
        metrics
            .current_users
            .set(i64::from(self.behaviour.draw_users()));
        metrics.set_leaked(self.leaked);
        metrics.red.set_in_flight(self.in_flight.round() as i64);
        let base_memory = 14.0 * 1024.0 * 1024.0;
        self.process.set(process::Reading {
            virtual_memory_bytes: Some(1.2e9 + self.leaked as f64),
            resident_memory_bytes: Some(base_memory + self.leaked as f64),
            start_time_seconds: Some(self.started as f64),
            cpu_seconds: Some(self.cpu_seconds),
            open_fds: Some(12.0 + self.in_flight.round()),
            max_fds: Some(1_048_576.0),
        });
    }

    /// The exposition now, or none when it would take longer than the scrape timeout.
    fn scrape(&self, model: &Model) -> Option<String> {
        let knobs = self.behaviour.knobs.load();
        if knobs.faults.metrics_delay >= model.scrape_timeout {
            return None;
        }
        Some(self.metrics.text_with(
            TextFormat::OpenMetrics,
            &knobs.faults,
            !knobs.faults.not_ready,
        ))
    }

    /// Serves the requests of the scrape interval that begins at `t`; returns how many.
    fn serve(&mut self, t: i64, model: &Model) -> u64 {
        let step = Duration::from_secs(model.step as u64);
        let expected = rate_at(model.rate, t) * step.as_secs_f64();
        let n = if expected > 0.0 {
            Poisson::new(expected).map_or(0, |p| p.sample(&mut self.traffic) as u64)
        } else {
            0
        };
        let mut busy = Duration::ZERO;
        for _ in 0..n {
            let route = model.mix[model.pick.pick(&mut self.traffic)];
            busy += match route {
                Route::Root => self.root(),
                Route::SimulateError => self.simulate_error(),
            };
        }
        let knobs = self.behaviour.knobs.load();
        self.in_flight = busy.as_secs_f64() / step.as_secs_f64();
        self.cpu_seconds += n as f64 * CPU_PER_REQUEST;
        self.leaked = leak::grown(
            self.leaked,
            knobs.faults.memory_leak,
            model.limits.memory_leak_cap,
            step,
        );
        n
    }

    /// `GET /`, as [`crate::routes`]' handler does it: the dependency's call, then the CPU
    /// to burn and the processing time; returns how long it took.
    fn root(&mut self) -> Duration {
        let metrics = &self.metrics;
        metrics.count_request();
        let plan = self.behaviour.plan_root();
        let (latency, outcome) = plan.dependency;
        metrics.observe_dependency(
            outcome,
            latency,
            crate::trace::TraceId::SIMULATED,
            std::time::Instant::now(),
        );
        if outcome.failure().is_some() {
            metrics.count_response(503);
            let took = latency + OVERHEAD;
            metrics.red.observe_simulated("/", 503, took);
            return took;
        }
        if !plan.cpu_burn.is_zero() {
            metrics.count_cpu_burned(plan.cpu_burn);
            self.cpu_seconds += plan.cpu_burn.as_secs_f64();
        }
        metrics.observe_simulated_processing(plan.delay);
        metrics.count_response(200);
        let took = latency + plan.cpu_burn + plan.delay + OVERHEAD;
        metrics.red.observe_simulated("/", 200, took);
        took
    }

    /// `GET /simulate_error`, as its handler does it.
    fn simulate_error(&mut self) -> Duration {
        let metrics = &self.metrics;
        metrics.count_request();
        let status = if self.behaviour.plan_simulate_error() {
            metrics.count_error();
            500
        } else {
            200
        };
        metrics.count_response(status);
        metrics
            .red
            .observe_simulated("/simulate_error", status, OVERHEAD);
        OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn model() -> Model {
        Model {
            knobs: Knobs::default(),
            limits: Limits::default(),
            timeline: None,
            seed: 7,
            rate: 10.0,
            mix: vec![Route::Root, Route::SimulateError],
            pick: "/=1,/simulate_error=1".parse().unwrap(),
            step: 15,
            scrape_timeout: Duration::from_secs(10),
        }
    }

    /// The scrapes from `from` to `to`, as (time, exposition or none, requests first shown).
    fn scrapes(model: &Model, from: i64, to: i64) -> Vec<(i64, Option<String>, u64)> {
        let mut out = Vec::new();
        model.run(from, to, |scrape, n| match scrape {
            Scrape::Answered { at, exposition, .. } => {
                out.push((at, Some(exposition.to_owned()), n))
            }
            Scrape::TimedOut { at } => out.push((at, None, n)),
        });
        out
    }

    fn value(exposition: &str, series: &str) -> Option<f64> {
        exposition
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse().ok())
    }

    const DAY0: i64 = 20_000 * DAY;

    #[test]
    fn the_same_time_gives_the_same_samples_wherever_the_run_began() {
        let model = model();
        let long = scrapes(&model, DAY0, DAY0 + 6 * 3600);
        let short = scrapes(&model, DAY0 + 3 * 3600, DAY0 + 6 * 3600);
        assert_eq!(long.len(), 6 * 240 + 1);
        let tail: Vec<_> = long[long.len() - short.len()..]
            .iter()
            .map(|(t, e, _)| (*t, e.clone()))
            .collect();
        let short: Vec<_> = short.into_iter().map(|(t, e, _)| (t, e)).collect();
        let short_again = |long: &[(i64, Option<String>, u64)]| -> Vec<(i64, Option<String>)> {
            long[long.len() - 721..]
                .iter()
                .map(|(t, e, _)| (*t, e.clone()))
                .collect()
        };
        // Exemplar timestamps come from the clock; the samples do not. (The order of a
        // family's children is a hash map's, which Prometheus does not mind.)
        let strip = |v: Vec<(i64, Option<String>)>| -> Vec<(i64, Vec<String>)> {
            v.into_iter()
                .map(|(t, e)| {
                    let lines = e
                        .unwrap_or_default()
                        .lines()
                        .map(|l| l.split(" # ").next().unwrap_or(l).to_owned())
                        .filter(|l| !l.contains("_created"))
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    (t, lines)
                })
                .collect()
        };
        let (tail, short) = (strip(tail), strip(short));
        for (a, b) in tail.iter().zip(&short) {
            let differ: Vec<_> =
                a.1.iter()
                    .zip(&b.1)
                    .filter(|(x, y)| x != y)
                    .take(3)
                    .collect();
            assert!(differ.is_empty(), "at {}: {differ:?}", a.0);
        }
        assert_eq!(tail.len(), short.len());
        let other: Vec<_> = scrapes(
            &Model { seed: 8, ..model },
            DAY0 + 3 * 3600,
            DAY0 + 6 * 3600,
        )
        .into_iter()
        .map(|(t, e, _)| (t, e))
        .collect();
        assert_ne!(strip(other), strip(short_again(&long)));
    }

    #[test]
    fn counters_grow_until_a_daily_restart_and_count_every_request_shown() {
        let model = model();
        let all = scrapes(&model, DAY0, DAY0 + 2 * DAY);
        let mut restarts = 0;
        let mut previous = 0.0;
        for (i, (t, exposition, n)) in all.iter().enumerate() {
            let exposition = exposition.as_ref().unwrap();
            let count = value(exposition, "request_count_total").unwrap();
            if count < previous {
                restarts += 1;
                assert_eq!(count, 0.0, "at {t}: a restart starts from zero");
                let (started, _) = segment(model.seed, model.step, *t);
                assert_eq!(started, *t);
            }
            if i == 0 || count < previous {
                assert_eq!(*n, 0, "at {t}: nothing shown first");
            } else {
                assert_eq!(count - previous, *n as f64, "at {t}");
            }
            previous = count;
        }
        assert_eq!(restarts, 2, "one a day");
        // The daily rhythm: 10/s on average, 15/s at 15:00, 5/s at 03:00.
        assert!((rate_at(10.0, DAY0 + 15 * 3600) - 15.0).abs() < 1e-9);
        assert!((rate_at(10.0, DAY0 + 3 * 3600) - 5.0).abs() < 1e-9);
        let total: u64 = all.iter().map(|(_, _, n)| n).sum();
        let mean = total as f64 / (2.0 * DAY as f64);
        assert!((mean / 10.0 - 1.0).abs() < 0.02, "mean rate {mean}");
    }

    #[test]
    fn errors_follow_the_error_rate_and_delays_the_distribution() {
        let mut model = model();
        model.knobs.error_rate = 0.3;
        model.knobs.distribution = "lognormal:250ms:3s".parse().unwrap();
        let all = scrapes(&model, DAY0 + 9 * 3600, DAY0 + 15 * 3600);
        let last = all.last().unwrap().1.clone().unwrap();
        let errors = value(&last, "error_count_total").unwrap();
        let requests = value(
            &last,
            "http_requests_total{method=\"GET\",route=\"/simulate_error\",status=\"200\"}",
        )
        .unwrap()
            + errors;
        assert!(
            (errors / requests - 0.3).abs() < 0.02,
            "{errors}/{requests}"
        );
        // Half of the lognormal's draws are under its median, 250 ms.
        let under = value(&last, "request_duration_seconds_bucket{le=\"0.3\"}").unwrap();
        let count = value(&last, "request_duration_seconds_count").unwrap();
        assert!((0.5..0.65).contains(&(under / count)), "{under}/{count}");
    }

    #[test]
    fn a_timeline_plays_round_after_round_from_the_epoch() {
        let mut model = model();
        model.timeline = Some(
            Timeline::parse(
                "outage",
                "repeat = \"1h\"\n[[step]]\nat = \"10m\"\nfor = \"5m\"\nset = { dependency_down = true, metrics_delay = \"12s\" }",
                &model.knobs,
                &model.limits,
            )
            .unwrap(),
        );
        let all = scrapes(&model, DAY0, DAY0 + 3 * 3600);
        let timed_out: Vec<i64> = all
            .iter()
            .filter(|(_, e, _)| e.is_none())
            .map(|(t, _, _)| (t - DAY0) / 60)
            .collect();
        // Minutes 10 to 14 of each hour: 20 scrapes, 3 rounds.
        assert_eq!(timed_out.len(), 60);
        assert!(timed_out.iter().all(|m| (10..15).contains(&(m % 60))));
        // The dependency was down: 503s, counted after the outage, at the next good scrape.
        let after = &all.iter().find(|(t, _, _)| *t == DAY0 + 16 * 60).unwrap().1;
        let down = value(
            after.as_ref().unwrap(),
            "dependency_requests_total{dependency=\"database\",outcome=\"down\"}",
        )
        .unwrap();
        assert!(down > 500.0, "{down}");
    }

    #[test]
    fn a_timeline_without_repeat_plays_daily_and_must_fit_in_a_day() {
        let mut model = model();
        let text = "[[step]]\nat = \"23h\"\nfor = \"2h\"\nset = { error_rate = 1.0 }";
        model.timeline = Some(Timeline::parse("long", text, &model.knobs, &model.limits).unwrap());
        let e = model.check().unwrap_err();
        assert!(e.contains("plays for 1day 1h and has no repeat"), "{e}");
        model.timeline = None;
        model.step = 7;
        assert!(model.check().unwrap_err().contains("does not divide a day"));
    }
}
