//! The generator's connections: each sender (a closed loop's worker, or one of an open loop's
//! `--connections`) keeps one HTTP/1 connection to each target, as wrk keeps one per
//! connection it was given. Nothing is shared between senders, so a request costs no pool
//! lookup and no hand-over to another task: it is written on the sender's own connection.
//!
//! A connection is replaced by a new one, which resolves the target's name again, once it is
//! older than `--connection-lifetime`, or once it closed: the service closes a kept-alive
//! connection that stays idle longer than its `--header-timeout`, and hyper closes one whose
//! request was given up at `--timeout`.

use std::pin::Pin;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::report::ErrorKind;

/// Where requests go: one `--target`, its `host:port` (resolved anew by each connection) kept
/// as the `Host` header its requests carry.
#[derive(Debug)]
pub struct Target {
    host: HeaderValue,
}

impl Target {
    pub fn new(authority: &str) -> Self {
        Target {
            host: HeaderValue::from_str(authority).expect("a URI's authority is a valid header"),
        }
    }

    /// Its `host:port`.
    fn authority(&self) -> &str {
        self.host
            .to_str()
            .expect("made from a str of visible characters")
    }

    /// Its `Host` header.
    pub fn host(&self) -> HeaderValue {
        self.host.clone()
    }
}

/// An open HTTP/1 connection, driven by the sender that uses it (not by a task of its own, so
/// that a request costs no hand-over between tasks), and when it was opened.
#[derive(Debug)]
struct Connection {
    send: SendRequest<Empty<Bytes>>,
    /// Reads and writes the connection; polled only while an exchange is under way. Gone once
    /// the connection closed: dropping it tells `send` so, and hands back a request it held.
    driver: Option<http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>>,
    opened: Instant,
}

/// Why an exchange failed: before its request was written (it can be sent again, on another
/// connection), or after.
enum Failed {
    Unsent(Box<Request<Empty<Bytes>>>),
    Broken,
}

impl Connection {
    /// Connects to `target`: a failure here is [`ErrorKind::Connect`]. Boxed, so that the
    /// futures that hold it, one per request, stay small to move.
    async fn open(target: &Target) -> Result<Box<Connection>, ErrorKind> {
        let stream = TcpStream::connect(target.authority())
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let _ = stream.set_nodelay(true);
        let (send, driver) = http1::Builder::new()
            // A fixed read buffer, and the head written from one: a few per cent cheaper per
            // request than hyper's defaults for answers this small.
            .read_buf_exact_size(Some(4096))
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        Ok(Box::new(Connection {
            send,
            driver: Some(driver),
            opened: Instant::now(),
        }))
    }

    /// Sends `request` and reads the answer to its end (so that the connection can carry the
    /// next one), driving the connection meanwhile; the answer's status.
    async fn exchange(&mut self, request: Request<Empty<Bytes>>) -> Result<u16, Failed> {
        let Connection { send, driver, .. } = self;
        let exchange = async {
            if send.ready().await.is_err() {
                return Err(Failed::Unsent(Box::new(request)));
            }
            let response = send.try_send_request(request).await.map_err(|mut e| {
                e.take_message()
                    .map_or(Failed::Broken, |unsent| Failed::Unsent(Box::new(unsent)))
            })?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                frame.map_err(|_| Failed::Broken)?;
            }
            Ok(status)
        };
        tokio::pin!(exchange);
        loop {
            let Some(running) = driver.as_mut() else {
                // Closed: the exchange ends with what the connection delivered, or an error.
                return exchange.await;
            };
            tokio::select! {
                biased;
                done = &mut exchange => return done,
                _ = running => {}
            }
            *driver = None;
        }
    }
}

/// One sender's connections, at most one to each target, and its timer for `--timeout`.
#[derive(Debug)]
pub struct Slot {
    connections: Vec<Option<Box<Connection>>>,
    lifetime: Option<Duration>,
    timeout: Duration,
    /// Set anew for each request: cheaper than a timer of its own per request.
    timer: Pin<Box<Sleep>>,
}

impl Slot {
    /// A slot for `targets` targets, whose connections are kept for `lifetime` (`None`: for
    /// as long as they stay open), and whose requests are given up after `timeout`.
    pub fn new(targets: usize, lifetime: Option<Duration>, timeout: Duration) -> Self {
        Slot {
            connections: (0..targets).map(|_| None).collect(),
            lifetime,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Sends `request` to `targets[target]` and reads the answer, within the timeout: its
    /// status, or why there is none.
    pub async fn exchange(
        &mut self,
        targets: &[Target],
        target: usize,
        request: Request<Empty<Bytes>>,
    ) -> Result<u16, ErrorKind> {
        self.timer.as_mut().reset(Instant::now() + self.timeout);
        let exchange = Self::attempt(
            &mut self.connections[target],
            self.lifetime,
            &targets[target],
            request,
        );
        tokio::select! {
            biased;
            done = exchange => done,
            () = self.timer.as_mut() => Err(ErrorKind::Timeout),
        }
    }

    /// Sends `request` to `target` on the connection `slot` keeps to it, opening one if it
    /// keeps none, or none that is open and younger than `lifetime`, and reads the answer; its
    /// status. A kept connection that turns out to be closed before the request was written
    /// (the service closed it while idle) is replaced, and the request sent again, once.
    async fn attempt(
        slot: &mut Option<Box<Connection>>,
        lifetime: Option<Duration>,
        target: &Target,
        mut request: Request<Empty<Bytes>>,
    ) -> Result<u16, ErrorKind> {
        let kept = slot.take().filter(|connection| {
            lifetime.is_none_or(|lifetime| connection.opened.elapsed() < lifetime)
        });
        let mut reused = kept.is_some();
        let mut connection = match kept {
            Some(connection) => connection,
            None => Box::pin(Connection::open(target)).await?,
        };
        loop {
            match connection.exchange(request).await {
                Ok(status) => {
                    if connection.driver.is_some() {
                        *slot = Some(connection);
                    }
                    return Ok(status);
                }
                Err(Failed::Unsent(unsent)) if reused => {
                    request = *unsent;
                    connection = Box::pin(Connection::open(target)).await?;
                    reused = false;
                }
                Err(_) => return Err(ErrorKind::Io),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn get(target: &Target) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        request
            .headers_mut()
            .insert(hyper::header::HOST, target.host());
        request
    }

    /// A server that answers each connection's first request 200, keeping it alive, and then
    /// closes it once asked to: as the service closes a connection left idle too long.
    async fn closes_when_asked() -> (
        Target,
        tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::new(&listener.local_addr().unwrap().to_string());
        let (close, mut asked) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let done = asked.recv().await.unwrap();
                drop(stream);
                done.send(()).unwrap();
            }
        });
        (target, close)
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced_and_the_request_sent_again() {
        let (target, close) = closes_when_asked().await;
        let targets = [target];
        let mut slot = Slot::new(1, None, Duration::from_secs(5));
        for n in 1..=3 {
            let status = slot.exchange(&targets, 0, get(&targets[0])).await;
            assert_eq!(status, Ok(200), "request {n}");
            assert!(
                slot.connections[0].is_some(),
                "request {n}'s connection was kept"
            );
            let (closed, done) = tokio::sync::oneshot::channel();
            close.send(closed).await.unwrap();
            done.await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_answer_that_does_not_come_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let targets = [Target::new(&listener.local_addr().unwrap().to_string())];
        // Accepts, reads, and never answers.
        let silent = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        let mut slot = Slot::new(1, None, Duration::from_millis(200));
        let given_up = slot.exchange(&targets, 0, get(&targets[0])).await;
        assert_eq!(given_up, Err(ErrorKind::Timeout));
        // The connection was closed with the request it carried, and not kept.
        tokio::time::timeout(Duration::from_secs(5), silent)
            .await
            .expect("the given-up connection was closed")
            .unwrap();
        assert!(slot.connections[0].is_none());
    }

    #[tokio::test]
    async fn no_listener_is_a_connect_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let targets = [Target::new(&format!("127.0.0.1:{port}"))];
        let mut slot = Slot::new(1, None, Duration::from_secs(5));
        let refused = slot.exchange(&targets, 0, get(&targets[0])).await;
        assert_eq!(refused, Err(ErrorKind::Connect));
    }

    #[tokio::test]
    async fn a_connection_older_than_its_lifetime_is_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let targets = [Target::new(&listener.local_addr().unwrap().to_string())];
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(|_| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            Empty::<Bytes>::new(),
                        ))
                    }),
                ));
            }
        });
        let lifetime = Duration::from_millis(100);
        let mut slot = Slot::new(1, Some(lifetime), Duration::from_secs(5));
        for _ in 0..3 {
            assert_eq!(slot.exchange(&targets, 0, get(&targets[0])).await, Ok(200));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::sleep(lifetime).await;
        assert_eq!(slot.exchange(&targets, 0, get(&targets[0])).await, Ok(200));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
