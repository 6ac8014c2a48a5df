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

mod metrics;
mod mix;
mod report;
mod schedule;
mod threshold;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
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

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What every sending task shares.
#[derive(Debug)]
struct Sender {
    /// The client and its pool of connections; replaced by a new one, with new connections,
    /// every `--connection-lifetime`.
    client: ArcSwap<HttpClient>,
    /// The URI of each path (inner) at each target (outer).
    uris: Vec<Vec<Uri>>,
    /// How many requests were sent: the next one goes to the target after.
    turn: AtomicUsize,
    timeout: Duration,
    trace: bool,
    recorder: Recorder,
}

impl Sender {
    /// The URIs of the next target in turn.
    fn next_target(&self) -> &[Uri] {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        &self.uris[turn % self.uris.len()]
    }

    /// Sends one request for `path` and records the outcome, its latency counted from `due`;
    /// returns the error, if any.
    async fn send(&self, path: usize, due: Instant) -> Option<ErrorKind> {
        let sent = Instant::now();
        let took = || Took {
            since_due: due.elapsed(),
            since_sent: sent.elapsed(),
        };
        let trace = self.trace.then(TraceId::random);
        let mut request = hyper::Request::get(self.next_target()[path].clone());
        if let Some(trace) = trace {
            request = request.header(TRACEPARENT, trace.traceparent(rand::random()));
        }
        let request = request
            .body(Empty::new())
            .expect("a GET of a valid URI is a valid request");
        let exchange = async {
            // The future owns what it needs of the client: the guard goes at once.
            let response = self.client.load().request(request);
            let response = response.await.map_err(|e| {
                if e.is_connect() {
                    ErrorKind::Connect
                } else {
                    ErrorKind::Io
                }
            })?;
            let status = response.status().as_u16();
            // Read the body to its end, so that the connection can be used again.
            response
                .into_body()
                .collect()
                .await
                .map_err(|_| ErrorKind::Io)?;
            Ok(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(status)) => {
                self.recorder.answered(path, status, took(), trace);
                None
            }
            Ok(Err(kind)) => {
                self.recorder.failed(path, kind);
                Some(kind)
            }
            Err(_) => {
                self.recorder.timed_out(path, took(), trace);
                Some(ErrorKind::Timeout)
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
    let uris = authorities
        .iter()
        .map(|authority| {
            paths
                .iter()
                .map(|path| {
                    format!("http://{authority}{path}")
                        .parse()
                        .expect("target and path were validated")
                })
                .collect()
        })
        .collect();
    let sender = Arc::new(Sender {
        client: ArcSwap::from_pointee(http_client(&plan)),
        uris,
        turn: AtomicUsize::new(0),
        timeout: plan.timeout,
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
    let renewer = plan
        .connection_lifetime
        .map(|lifetime| renew_connections(lifetime, plan.clone(), sender.clone()));
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
    for task in [renewer, rates, exporter].into_iter().flatten() {
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

/// A client with a pool of its own: at most `--connections` idle connections to each target.
fn http_client(plan: &Plan) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(plan.timeout));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(plan.connections as usize)
        .build(connector)
}

/// Replaces the sender's client every `lifetime`, until aborted. The old client's connections
/// close once their requests in flight are answered (nothing returns them to a pool that is
/// gone); the next requests connect anew, and so resolve the target's name again.
fn renew_connections(
    lifetime: Duration,
    plan: Plan,
    sender: Arc<Sender>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + lifetime, lifetime);
        loop {
            ticks.tick().await;
            sender.client.store(Arc::new(http_client(&plan)));
        }
    })
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
        let sender = sender.clone();
        tasks.spawn(async move {
            sender.send(path, due).await;
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
        workers.spawn(async move {
            while !stop.load(Ordering::Relaxed) && issued.fetch_add(1, Ordering::Relaxed) < limit {
                let path = mix.pick(&mut rand::rng());
                sender.recorder.sent(path);
                if sender.send(path, Instant::now()).await == Some(ErrorKind::Connect) {
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
