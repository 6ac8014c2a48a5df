//! Binding both listeners, serving them, and shutting down without dropping a request.
//!
//! Shutdown, on the first SIGTERM or SIGINT: `/readyz` turns 503; the app listener stops
//! accepting, answers what is in flight and closes idle connections; the metrics listener keeps
//! answering meanwhile, so that Prometheus can scrape the final counts, and closes last. The
//! drain is bounded by `--shutdown-timeout`; a second signal ends it at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::behaviour::draws::Draws;
use crate::behaviour::faults::leak;
use crate::behaviour::knobs::Knobs;
use crate::behaviour::player::Player;
use crate::behaviour::timeline::Timeline;
use crate::behaviour::{Behaviour, users};
use crate::config::ServeArgs;
use crate::metrics::Metrics;
use crate::signals::Signals;
use crate::state::{AppState, Settings};
use crate::{connections, routes};

/// Connections the kernel may queue before the service accepts them: bursts of thousands of new
/// clients are normal under load tests, and the default of 128 would refuse them.
const BACKLOG: u32 = 4096;

/// How long the metrics listener may take to close once the app listener has drained.
const METRICS_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Both listeners, bound and ready to serve.
#[derive(Debug)]
pub struct Server {
    app: TcpListener,
    metrics: std::net::TcpListener,
    args: ServeArgs,
    state: AppState,
}

impl Server {
    /// Binds both addresses (port 0 picks a free port); fails if either is taken.
    pub fn bind(args: &ServeArgs) -> anyhow::Result<Self> {
        let app = listen(args.app_addr)
            .with_context(|| format!("cannot listen on {} (--app-addr)", args.app_addr))?;
        let metrics = std::net::TcpListener::bind(args.metrics_addr)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .with_context(|| format!("cannot listen on {} (--metrics-addr)", args.metrics_addr))?;
        let settings = Settings {
            admin_token: args.admin_token.clone().filter(|token| !token.is_empty()),
            max_fault_delay: args.behaviour.max_fault_delay,
        };
        let behaviour = Behaviour::new(
            Knobs::from_args(&args.behaviour),
            Draws::from_seed(args.behaviour.seed.and_then(|seed| seed.0)),
            args.behaviour.limits(),
        );
        let state = AppState::new(Arc::new(Metrics::new()), behaviour, settings);
        Ok(Self {
            app,
            metrics,
            args: args.clone(),
            state,
        })
    }

    pub fn app_addr(&self) -> SocketAddr {
        self.app
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Plays `timeline` from the start of [`Server::run`].
    pub fn with_incidents(self, timeline: Option<Timeline>) -> Self {
        if let Some(timeline) = timeline {
            let _ = self.state.incidents.set(Player::new(timeline));
        }
        self
    }

    /// Serves until the first signal, then drains. Errors if the drain times out or a second
    /// signal cuts it short.
    pub async fn run(self, mut signals: Signals) -> anyhow::Result<()> {
        let (app_addr, metrics_addr) = (self.app_addr(), self.metrics_addr());
        let Self {
            app,
            metrics,
            args,
            state,
        } = self;

        let users = tokio::spawn(users::simulate(
            state.metrics.current_users.clone(),
            state.behaviour.clone(),
            args.users_interval,
        ));
        let leak = tokio::spawn(leak::run(state.behaviour.clone(), state.metrics.clone()));
        let incidents = state
            .incidents
            .get()
            .map(|player| tokio::spawn(player.clone().play(state.behaviour.clone())));
        let (stop_app, app_stopped) = watch::channel(false);
        let (stop_metrics, metrics_stopped) = watch::channel(false);
        let mut app_server = serve(
            app,
            routes::app(state.clone()),
            args.header_timeout,
            app_stopped,
        );
        let mut metrics_server = serve_on_own_thread(
            metrics,
            routes::metrics(state.clone()),
            args.header_timeout,
            metrics_stopped,
        )?;
        info!(app = %app_addr, metrics = %metrics_addr, "listening");

        let signal = tokio::select! {
            signal = signals.next() => signal,
            result = &mut app_server => return Err(anyhow!("the app listener stopped: {result:?}")),
            result = &mut metrics_server => return Err(anyhow!("the metrics listener stopped: {result:?}")),
        };
        state.set_draining();
        let _ = stop_app.send(true);
        let deadline = tokio::time::Instant::now() + args.shutdown_timeout;
        info!(
            signal,
            in_flight = state.metrics.red.in_flight(),
            timeout = ?args.shutdown_timeout,
            "shutting down: draining requests in flight"
        );

        // Drained: every connection closed, and the work of every `/` request recorded.
        let drain = async {
            let _ = (&mut app_server).await;
            state.work.close();
            state.work.wait().await;
        };
        let drained = tokio::select! {
            result = tokio::time::timeout_at(deadline, drain) => result.is_ok(),
            signal = signals.next() => {
                let in_flight = state.metrics.red.in_flight();
                return Err(anyhow!("{signal} again: stopped at once with {in_flight} requests in flight"));
            }
        };
        let _ = stop_metrics.send(true);
        let _ = tokio::time::timeout(METRICS_CLOSE_TIMEOUT, metrics_server).await;
        users.abort();
        leak.abort();
        if let Some(incidents) = incidents {
            incidents.abort();
        }
        if drained {
            info!("drained: every request answered");
            Ok(())
        } else {
            let in_flight = state.metrics.red.in_flight().max(state.work.len() as i64);
            warn!(in_flight, "shutdown timed out");
            Err(anyhow!(
                "shutdown timed out after {} with {in_flight} requests in flight",
                humantime::format_duration(args.shutdown_timeout)
            ))
        }
    }
}

/// A listening socket with a deep backlog.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets a restarted service bind while old connections linger in TIME_WAIT; on Linux it does
    // not let two processes listen on one port.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves the metrics listener on a thread and runtime of its own, so that a scrape is answered
/// promptly even while the app's runtime is saturated with requests: that is when the numbers
/// matter most. Returns the server's outcome.
fn serve_on_own_thread(
    listener: std::net::TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<std::io::Result<()>>> {
    let (done, outcome) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the metrics listener's runtime")?;
    std::thread::Builder::new()
        .name("metrics".to_owned())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                connections::serve(listener, router, header_timeout, stop).await
            });
            let _ = done.send(result);
        })
        .context("cannot start the metrics listener's thread")?;
    Ok(outcome)
}

/// Serves the app on `listener` (see [`connections::serve`]) as a task.
fn serve(
    listener: TcpListener,
    app: routes::App,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(connections::serve(listener, app, header_timeout, stop))
}
