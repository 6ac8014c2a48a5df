//! What one request costs in metric updates: the seed's counters, labelled counter, histogram
//! and summary for a request to `/`, and the RED middleware around a handler that does nothing
//! (minus the same handler without it).
//!
//!   cargo bench --bench metrics

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use criterion::{Criterion, criterion_group, criterion_main};
use demo_service::metrics::Metrics;
use tower::{Layer, Service, ServiceExt, service_fn};

fn seed_updates(c: &mut Criterion) {
    let metrics = Metrics::new();
    let (drawn, waited) = (Duration::from_millis(1234), Duration::from_millis(1235));
    c.bench_function("seed metrics of one request to /", |b| {
        b.iter(|| {
            black_box(metrics.count_request());
            metrics.observe_processing(black_box(drawn), black_box(waited));
            metrics.count_response(black_box(200));
        })
    });
    c.bench_function("seed metrics of one failing /simulate_error", |b| {
        b.iter(|| {
            black_box(metrics.count_request());
            black_box(metrics.count_error());
            metrics.count_response(black_box(500));
        })
    });
}

fn red_middleware(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let metrics = Metrics::new();
    let handler =
        service_fn(|_: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
    let mut bare = handler;
    let mut measured = metrics.red_layer().layer(handler);
    let request = || Request::get("/simulate_error").body(Body::empty()).unwrap();
    c.bench_function("a request through a handler that does nothing", |b| {
        b.iter(|| {
            runtime.block_on(async { black_box(bare.ready().await.unwrap().call(request()).await) })
        })
    });
    c.bench_function("the same request through the RED middleware", |b| {
        b.iter(|| {
            runtime.block_on(async {
                black_box(measured.ready().await.unwrap().call(request()).await)
            })
        })
    });
}

criterion_group!(benches, seed_updates, red_middleware);
criterion_main!(benches);
