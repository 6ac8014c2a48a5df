//! The bare comparison server for `scripts/bench`: the service's routes with constant bodies,
//! and nothing else: no metrics, no logs, no middleware. It listens the way the service does
//! (the same backlog, TCP_NODELAY), so that the difference measured is the instrumentation.
//!
//!   cargo run --release --example bare -- 127.0.0.1:5100

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5100".to_owned())
        .parse()
        .map_err(std::io::Error::other)?;
    let app = Router::new()
        .route(
            "/",
            get(|| async { "Success response with status code OK" }),
        )
        .route(
            "/simulate_error",
            get(|| async { "No error occurred - statuscode: OK" }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }));
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("listening on {addr}");
    axum::serve(listener, app).await
}
