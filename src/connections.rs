//! How both listeners accept and serve connections: HTTP/1.1 with limits and timeouts that a
//! misbehaving client cannot get around, accept errors that are logged and outlived, and a
//! graceful close.
//!
//! - A request head (request line and headers) larger than [`MAX_HEAD`] is refused with 431
//!   before it is read whole; a URI longer than [`MAX_URI`] gets 414.
//! - A client has `--header-timeout` to send a request's head, counted from when the connection
//!   is ready for it: a client that trickles its headers (slowloris) is cut off, and so is a
//!   kept-alive connection that stays idle that long. Each connection's [`watchdog`] sees to it,
//!   within a quarter of the timeout more, rather than hyper's header-read timer: that timer is
//!   armed and disarmed for every request, which cost the hot path more than any other part of
//!   the service (about 1,240 instructions a request more than the watchdog, a tenth of the bare
//!   server's total).
//! - An accept error (out of file descriptors, say) is logged, and the listener tries again a
//!   moment later; the connections it has go on being served.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;
use tower_service::Service;
use tracing::{debug, warn};

/// The largest request head read: the request line and all headers.
pub const MAX_HEAD: usize = 64 * 1024;

/// The longest URI served.
pub const MAX_URI: usize = 8 * 1024;

/// How long the accept loop waits after an error that is not the client's (EMFILE, ENFILE,
/// ENOBUFS), so that it neither spins nor floods the log while connections are freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `service` (a router, or one behind middleware) on `listener` until `stop` turns true;
/// then stops accepting, lets each connection finish the request it is answering, and returns
/// when all are closed.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_HEAD);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    warn!(error = %e, "cannot accept a connection; trying again");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let requests = Arc::new(Requests::default());
        let guarded = Guarded {
            inner: TowerToHyperService::new(service.clone()),
            requests: requests.clone(),
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), guarded));
        let served = tokio::spawn({
            let requests = requests.clone();
            async move {
                if let Err(e) = connection.await {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                if let Some(watchdog) = requests.watchdog.get() {
                    watchdog.abort();
                }
            }
        });
        let watchdog = tokio::spawn(watchdog(
            served.abort_handle(),
            requests.clone(),
            header_timeout,
            peer,
        ));
        let _ = requests.watchdog.set(watchdog.abort_handle());
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Returns once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Errors of one connection, not of the listener: the next accept can go on at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// The requests of one connection, as its watchdog sees them. Each count is written only by the
/// connection's own task, so a load and a store do, not a read-modify-write.
#[derive(Debug, Default)]
struct Requests {
    begun: AtomicU64,
    answered: AtomicU64,
    /// The watchdog's task, which the connection's task ends when it ends itself.
    watchdog: OnceLock<AbortHandle>,
}

fn bump(count: &AtomicU64) {
    count.store(
        count.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// How many times per header timeout the watchdog looks at its connection.
const CHECKS_PER_TIMEOUT: u32 = 4;

/// Watches a connection's task until it ends, and aborts it, which closes the connection, once
/// it has waited `timeout` for a request's head: from when it was opened or its last request was
/// answered, with no request in service. It is cut off between `timeout` and `timeout` plus a
/// quarter of it after it began to wait: the watchdog looks every quarter, and counts a wait
/// from the first look that finds it. A task of its own, so that serving a request costs the
/// connection's task nothing more than two counts.
async fn watchdog(
    connection: AbortHandle,
    requests: Arc<Requests>,
    timeout: Duration,
    peer: SocketAddr,
) {
    let period = (timeout / CHECKS_PER_TIMEOUT).max(Duration::from_millis(1));
    let mut looks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    looks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A new connection waits for its first head.
    let mut waiting_since = Some(tokio::time::Instant::now());
    let mut seen = 0;
    loop {
        let now = looks.tick().await;
        if connection.is_finished() {
            return;
        }
        let begun = requests.begun.load(Ordering::Relaxed);
        let answered = requests.answered.load(Ordering::Relaxed);
        if begun != answered {
            waiting_since = None;
        } else if begun != seen || waiting_since.is_none() {
            // Answered since the last look: waiting since then, at the earliest.
            waiting_since = Some(now);
        } else if waiting_since.is_some_and(|since| now - since >= timeout) {
            connection.abort();
            debug!(%peer, "cut off: no request head within the header timeout");
            return;
        }
        seen = begun;
    }
}

/// The service of one connection: the listener's, behind the limit on the URI's length, with
/// the connection's requests counted for its watchdog.
struct Guarded<S> {
    inner: TowerToHyperService<S>,
    requests: Arc<Requests>,
}

impl<S> hyper::service::Service<Request<Incoming>> for Guarded<S>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answered<
        Either<
            std::future::Ready<Result<Response, Infallible>>,
            TowerToHyperServiceFuture<S, Request<Incoming>>,
        >,
    >;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        bump(&self.requests.begun);
        let length = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        let inner = if length > MAX_URI {
            let answer = (
                StatusCode::URI_TOO_LONG,
                format!("the URI is longer than {MAX_URI} bytes\n"),
            );
            Either::Left(std::future::ready(Ok(answer.into_response())))
        } else {
            Either::Right(self.inner.call(request))
        };
        Answered {
            inner,
            requests: self.requests.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer: counted as answered when it is ready.
    struct Answered<F> {
        #[pin]
        inner: F,
        requests: Arc<Requests>,
    }
}

impl<F: Future> Future for Answered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        bump(&this.requests.answered);
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(8);

    /// A connection that never ends by itself, watched: its task and its counts.
    fn watched() -> (tokio::task::JoinHandle<()>, Arc<Requests>) {
        let connection = tokio::spawn(std::future::pending::<()>());
        let requests = Arc::new(Requests::default());
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        tokio::spawn(watchdog(
            connection.abort_handle(),
            requests.clone(),
            TIMEOUT,
            peer,
        ));
        (connection, requests)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_waits_for_a_head_is_cut_off_after_the_timeout_and_a_quarter_at_most()
    {
        let (connection, _) = watched();
        tokio::time::sleep(TIMEOUT - Duration::from_millis(1)).await;
        assert!(!connection.is_finished(), "cut off before the timeout");
        tokio::time::sleep(TIMEOUT / 4 + Duration::from_millis(2)).await;
        assert!(connection.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_service_is_never_cut_off_and_the_wait_counts_from_its_answer() {
        let (connection, requests) = watched();
        bump(&requests.begun);
        tokio::time::sleep(TIMEOUT * 10).await;
        assert!(!connection.is_finished(), "cut off while serving");

        bump(&requests.answered);
        tokio::time::sleep(TIMEOUT - Duration::from_millis(1)).await;
        assert!(!connection.is_finished(), "cut off before the timeout");
        tokio::time::sleep(TIMEOUT / 2).await;
        assert!(connection.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_answered_between_two_looks_start_the_wait_again() {
        let (connection, requests) = watched();
        for _ in 0..20 {
            tokio::time::sleep(TIMEOUT / 2).await;
            bump(&requests.begun);
            bump(&requests.answered);
        }
        assert!(!connection.is_finished(), "cut off while requests came");
    }
}
