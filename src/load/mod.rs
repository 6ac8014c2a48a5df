//! `demo-service load`: steady, shaped traffic for the service, so that dashboards and alerts
//! have something to show.
//!
//! Two ways to send. An *open loop* sends at a rate (constant, a sine, bursts, a ramp) whatever
//! the service does, as independent users would; each request's latency counts from the moment
//! it was due, so a service that stalls shows in the latency instead of silently slowing the
//! generator down (no coordinated omission). A *closed loop* keeps a number of requests in
//! flight, each sent when the previous one is answered, as a fixed pool of clients would.
//! Either way at most `--connections` requests are in flight, each on a connection of its own.
//! Connections are kept for `--connection-lifetime`, then replaced by new ones, which resolve
//! the target's name again: behind DNS (replicas under docker compose) the traffic follows the
//! replicas that come and go, as it does from real clients.
//!
//! Each request starts a trace of its own (a W3C `traceparent`, unless `--no-trace`), which
//! the service puts in its exemplars and log lines; the summary names the slowest requests by
//! their trace id, so that "which request was the p99?" has an answer from both sides.

mod connection;
mod metrics;
mod mix;
mod report;
mod schedule;
mod threshold;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Empty;
use hyper::Uri;
use hyper::header::HOST;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use mix::Mix;
pub use report::{ErrorKind, Summary};
pub use schedule::{Schedule, Shape, Stages};
pub use threshold::Threshold;

use crate::signals::Signals;
use crate::trace::{TRACEPARENT, TraceId};
use connection::{Slot, Target};
use report::{Ended, Recorder, Run, Took};

/// How the run sends.
#[derive(Clone, Debug)]
pub enum Mode {
    /// At the rate of a shape.
    Open(Shape),
    /// With this many requests in flight.
    Closed(u32),
}

/// Everything a run needs to know.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `http://host:port`, without a path, one per replica; requests take them in turn.
    pub targets: Vec<Uri>,
    pub mix: Mix,
    pub mode: Mode,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    /// The most requests in flight at once (open loop).
    pub connections: u32,
    pub timeout: Duration,
    /// How long connections are kept before new ones replace them; `None`: for ever.
    pub connection_lifetime: Option<Duration>,
    /// Whether each request names a trace of its own in a `traceparent` header.
    pub trace: bool,
    /// How many of the slowest requests the summary lists.
    pub slowest: usize,
    /// What the run must achieve to pass.
    pub thresholds: Vec<Threshold>,
    /// Where to serve the generator's own metrics while it runs.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Where progress goes while a run lasts.
#[derive(Debug)]
pub enum Progress {
    /// A live line on a terminal, redrawn every second.
    Terminal,
    /// A plain line on stderr at this interval.
    Lines(Duration),
    /// Nothing.
    Off,
}

/// What every sending task shares.
#[derive(Debug)]
struct Sender {
    targets: Vec<Target>,
    /// Each path of the mix, as the URI a request names (origin-form).
    paths: Vec<Uri>,
    /// How many requests were sent: the next one goes to the target after.
    turn: AtomicUsize,
    trace: bool,
    recorder: Recorder,
}

impl Sender {
    /// Sends one request for `path` to the next target in turn, on a connection of `slot`,
    /// and records the outcome, its latency counted from `due` and from `sent`, now (the same
    /// instant in a closed loop, which sends each request when it is due); returns the error,
    /// if any.
    async fn send(
        &self,
        slot: &mut Slot,
        path: usize,
        due: Instant,
        sent: Instant,
    ) -> Option<ErrorKind> {
        let took = || {
            let now = Instant::now();
            Took {
                since_due: now - due,
                since_sent: now - sent,
            }
        };
        let target = self.turn.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        let trace = self.trace.then(TraceId::random);
        // A GET: the method of a new request.
        let mut request = hyper::Request::new(Empty::new());
        *request.uri_mut() = self.paths[path].clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.targets[target].host());
        if let Some(trace) = trace {
            headers.insert(&TRACEPARENT, trace.traceparent(rand::random()));
        }
        match slot.exchange(&self.targets, target, request).await {
            Ok(status) => {
                self.recorder.answered(path, status, took(), trace);
                None
            }
            Err(ErrorKind::Timeout) => {
                self.recorder.timed_out(path, took(), trace);
                Some(ErrorKind::Timeout)
            }
            Err(kind) => {
                self.recorder.failed(path, kind);
                Some(kind)
            }
        }
    }
}

/// Runs `plan` until its duration or request count is reached, or a signal arrives; then
/// waits for the requests in flight (a second signal stops waiting) and sums up. Fails before
/// it sends when it cannot listen on its `metrics_addr`.
pub async fn run(plan: Plan, mut signals: Signals, progress: Progress) -> anyhow::Result<Summary> {
    let paths: Vec<String> = plan.mix.paths().map(str::to_owned).collect();
    let exported = plan.metrics_addr.map(|addr| {
        let open = matches!(plan.mode, Mode::Open(_));
        (addr, Arc::new(metrics::LoadMetrics::new(&paths, open)))
    });
    let exporter = match &exported {
        Some((addr, metrics)) => Some(metrics::serve(*addr, metrics.clone()).await?),
        None => None,
    };
    let authorities: Vec<_> = plan
        .targets
        .iter()
        .map(|target| target.authority().expect("the target was validated"))
        .collect();
    let sender = Arc::new(Sender {
        targets: authorities
            .iter()
            .map(|authority| Target::new(authority.as_str()))
            .collect(),
        paths: paths
            .iter()
            .map(|path| path.parse().expect("the mix's paths were validated"))
            .collect(),
        turn: AtomicUsize::new(0),
        trace: plan.trace,
        recorder: Recorder::new(
            paths.len(),
            plan.slowest,
            exported.as_ref().map(|(_, metrics)| metrics.clone()),
        ),
    });
    let run = Run {
        target: authorities
            .iter()
            .map(|authority| format!("http://{authority}"))
            .collect::<Vec<_>>()
            .join(","),
        kind: match plan.mode {
            Mode::Open(_) => "open",
            Mode::Closed(_) => "closed",
        },
        shape: match &plan.mode {
            Mode::Open(shape) => Some(describe(shape)),
            Mode::Closed(_) => None,
        },
        concurrency: match plan.mode {
            Mode::Open(_) => None,
            Mode::Closed(n) => Some(n),
        },
        mix: plan.mix.to_string(),
        paths,
    };

    let start = Instant::now();
    let reporter = report_progress(progress, sender.clone(), start);
    let rates =
        exported.map(|(_, metrics)| export_rates(metrics, &plan.mode, sender.clone(), start));
    let mut tasks = JoinSet::new();
    let ended = match plan.mode.clone() {
        Mode::Open(shape) => {
            open_loop(&plan, shape, &sender, &mut tasks, &mut signals, start).await
        }
        Mode::Closed(n) => closed_loop(&plan, n, &sender, &mut tasks, &mut signals, start).await,
    };
    // The requests in flight end within their timeout; a second signal does not wait for them.
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = signals.next() => tasks.abort_all(),
    }
    reporter.abort();
    let _ = reporter.await;
    for task in [rates, exporter].into_iter().flatten() {
        task.abort();
    }
    Ok(sender.recorder.summary(run, ended, &plan.thresholds))
}

/// Sets the rate gauges every second, until aborted: the target of an open loop's shape, and
/// the rate achieved over the last second.
fn export_rates(
    metrics: Arc<metrics::LoadMetrics>,
    mode: &Mode,
    sender: Arc<Sender>,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    let shape = match mode {
        Mode::Open(shape) => Some(shape.clone()),
        Mode::Closed(_) => None,
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(metrics::RATE_EVERY);
        let (mut last, mut sent_then) = (Instant::now(), 0);
        loop {
            ticks.tick().await;
            let target = shape
                .as_ref()
                .map(|shape| shape.rate_at(start.elapsed().as_secs_f64()));
            let sent = sender.recorder.sent_so_far();
            let achieved = (sent - sent_then) as f64 / last.elapsed().as_secs_f64().max(1e-3);
            metrics.rates(target, achieved);
            (last, sent_then) = (Instant::now(), sent);
        }
    })
}

/// The connections of one sender: one to each target, kept for the plan's lifetime, each
/// request given up at its timeout.
fn slot(plan: &Plan) -> Slot {
    Slot::new(plan.targets.len(), plan.connection_lifetime, plan.timeout)
}

/// How long after its `--duration` an open loop may still send what was due before it.
const END_SLACK: Duration = Duration::from_millis(50);

/// Sends on the schedule of `shape` until the duration, the request count or a signal.
async fn open_loop(
    plan: &Plan,
    shape: Shape,
    sender: &Arc<Sender>,
    tasks: &mut JoinSet<()>,
    signals: &mut Signals,
    start: Instant,
) -> Ended {
    let in_flight = Arc::new(Semaphore::new(plan.connections as usize));
    // The connections of the senders not in flight; the last one back is the next to go, so
    // that at a low rate the same few connections stay in use (and are not closed as idle).
    let slots = Arc::new(Mutex::new(
        (0..plan.connections)
            .map(|_| slot(plan))
            .collect::<Vec<_>>(),
    ));
    // A request due at the very end is still sent: the end is enforced a little after it.
    let deadline = plan.duration.map(|d| start + d + END_SLACK);
    let past_deadline = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(past_deadline);
    let mut schedule = Schedule::new(shape);
    let ended = |sending, unsent, interrupted| Ended {
        sending,
        unsent,
        interrupted,
    };
    for sent in 0u64.. {
        let Some(offset) = schedule.next() else {
            return ended(start.elapsed(), 0, false);
        };
        let offset = Duration::from_secs_f64(offset);
        if let Some(duration) = plan.duration {
            // Due after the end; or due before it, but the end has come (the generator fell
            // behind): what was due and not sent is counted.
            if offset > duration {
                return ended(duration, 0, false);
            }
            if start.elapsed() > duration + END_SLACK {
                let late = 1 + schedule
                    .by_ref()
                    .take_while(|&t| t <= duration.as_secs_f64())
                    .count();
                return ended(duration, late as u64, false);
            }
        }
        if plan.requests.is_some_and(|n| sent >= n) {
            return ended(start.elapsed(), 0, false);
        }
        let due = start + offset;
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = signals.next() => return ended(start.elapsed(), 0, true),
        }
        // A request that must wait for a free connection is late, and its latency says so.
        let permit = tokio::select! {
            biased;
            permit = in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = signals.next() => return ended(start.elapsed(), 0, true),
            _ = &mut past_deadline => {
                let duration = plan.duration.expect("a deadline comes from a duration");
                let late = 1 + schedule.by_ref().take_while(|&t| t <= duration.as_secs_f64()).count();
                return ended(duration, late as u64, false);
            }
        };
        let path = plan.mix.pick(&mut rand::rng());
        sender.recorder.sent(path);
        let mut slot = slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| slot(plan));
        let (sender, slots) = (sender.clone(), slots.clone());
        tasks.spawn(async move {
            sender.send(&mut slot, path, due, Instant::now()).await;
            slots.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
            drop(permit);
        });
        // Forget finished tasks as we go, so that a long run holds only those in flight.
        while tasks.try_join_next().is_some() {}
    }
    unreachable!("more requests than a u64 counts")
}

/// How long a closed-loop worker waits after a failed connection before it tries again, so that
/// a target that is down is not hammered at full speed.
const CONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Keeps `n` requests in flight until the duration, the request count or a signal.
async fn closed_loop(
    plan: &Plan,
    n: u32,
    sender: &Arc<Sender>,
    tasks: &mut JoinSet<()>,
    signals: &mut Signals,
    start: Instant,
) -> Ended {
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let limit = plan.requests.unwrap_or(u64::MAX);
    let mut workers = JoinSet::new();
    for _ in 0..n {
        let (sender, stop, issued, mix) = (
            sender.clone(),
            stop.clone(),
            issued.clone(),
            plan.mix.clone(),
        );
        let mut slot = slot(plan);
        workers.spawn(async move {
            while !stop.load(Ordering::Relaxed) && issued.fetch_add(1, Ordering::Relaxed) < limit {
                let path = mix.pick(&mut rand::rng());
                sender.recorder.sent(path);
                let now = Instant::now();
                if sender.send(&mut slot, path, now, now).await == Some(ErrorKind::Connect) {
                    tokio::time::sleep(CONNECT_BACKOFF).await;
                }
            }
        });
    }
    let deadline = plan.duration.map(|d| start + d);
    let ended = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let interrupted = tokio::select! {
        _ = async { while workers.join_next().await.is_some() {} } => false,
        _ = ended => false,
        _ = signals.next() => true,
    };
    let sending = start.elapsed();
    // The workers finish the request they are in, and stop.
    stop.store(true, Ordering::Relaxed);
    tasks.spawn(async move { while workers.join_next().await.is_some() {} });
    Ended {
        sending,
        unsent: 0,
        interrupted,
    }
}

/// Writes progress until aborted.
fn report_progress(
    progress: Progress,
    sender: Arc<Sender>,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (every, bar) = match progress {
            Progress::Off => return,
            Progress::Lines(every) => (every, None),
            Progress::Terminal => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
                );
                (Duration::from_secs(1), Some(bar))
            }
        };
        // Clears the live line when the run ends and this task is aborted.
        struct Clear(Option<ProgressBar>);
        impl Drop for Clear {
            fn drop(&mut self) {
                if let Some(bar) = &self.0 {
                    bar.finish_and_clear();
                }
            }
        }
        let bar = Clear(bar);
        let mut ticks = tokio::time::interval_at(start + every, every);
        loop {
            ticks.tick().await;
            let line = sender.recorder.progress(start.elapsed());
            match &bar.0 {
                Some(bar) => bar.set_message(line),
                None => eprintln!("{line}"),
            }
        }
    })
}

/// A shape as the summary names it.
fn describe(shape: &Shape) -> String {
    match shape {
        Shape::Constant { rate } => format!("constant {rate}/s"),
        Shape::Sine {
            rate,
            amplitude,
            period,
        } => {
            format!(
                "sine {rate}/s ±{}% every {}",
                amplitude * 100.0,
                humantime::format_duration(*period)
            )
        }
        Shape::Bursts {
            rate,
            burst_rate,
            length,
            period,
        } => format!(
            "{rate}/s with bursts of {burst_rate}/s for {} every {}",
            humantime::format_duration(*length),
            humantime::format_duration(*period)
        ),
        Shape::Ramp { from, rate, period } => {
            format!(
                "ramp {from}/s to {rate}/s over {}",
                humantime::format_duration(*period)
            )
        }
        Shape::Stages(stages) => format!("stages {stages}"),
    }
}
