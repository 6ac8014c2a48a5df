//! How both listeners accept and serve connections: HTTP/1.1 with limits and timeouts that a
//! misbehaving client cannot get around, accept errors that are logged and outlived, and a
//! graceful close.
//!
//! - A request head (request line and headers) larger than [`MAX_HEAD`] is refused with 431
//!   before it is read whole; a URI longer than [`MAX_URI`] gets 414.
//! - A client has `--header-timeout` to send a request's head, counted from when the connection
//!   is ready for it: a client that trickles its headers (slowloris) is cut off, and so is a
//!   kept-alive connection that stays idle that long.
//! - An accept error (out of file descriptors, say) is logged, and the listener tries again a
//!   moment later; the connections it has go on being served.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
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
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD);
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
        let service = TowerToHyperService::new(UriLimit {
            inner: service.clone(),
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
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

/// Answers 414 to a URI longer than [`MAX_URI`], before routing.
#[derive(Clone, Debug)]
struct UriLimit<S> {
    inner: S,
}

impl<S> Service<Request<Incoming>> for UriLimit<S>
where
    S: Service<Request<Incoming>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let length = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if length > MAX_URI {
            let answer = (
                StatusCode::URI_TOO_LONG,
                format!("the URI is longer than {MAX_URI} bytes\n"),
            );
            return Either::Left(std::future::ready(Ok(answer.into_response())));
        }
        Either::Right(self.inner.call(request))
    }
}
