//! What one request costs in metric updates: the seed's counters, labelled counter, histogram
//! and summary for a request to `/`, and the RED middleware around a handler that does nothing
//! (minus the same handler without it). Both record exemplars: the histogram's with a given
//! trace, the middleware's with the trace it reads from `traceparent` or makes. And the native
//! histogram's observation, which a request to `/` adds to the seed's.
//!
//!   cargo bench --bench metrics

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use criterion::{Criterion, criterion_group, criterion_main};
use demo_service::metrics::Metrics;
use demo_service::metrics::red::Templates;
use demo_service::trace::TraceId;
use tower::{Layer, Service, ServiceExt, service_fn};

fn seed_updates(c: &mut Criterion) {
    let metrics = Metrics::new();
    let drawn = Duration::from_millis(1234);
    let started = Instant::now();
    let trace = TraceId::random();
    c.bench_function("seed metrics of one request to /", |b| {
        b.iter(|| {
            black_box(metrics.count_request());
            metrics.observe_processing(black_box(drawn), black_box(started), trace);
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
    let mut templates = Templates::default();
    templates.add("/simulate_error");
    let mut measured = metrics
        .red_layer(templates, |_| Response::new(Body::empty()))
        .layer(handler);
    // Each request carries an extension, as every request through the router does (axum's
    // MatchedPath), so that both sides pay alike for the extensions' map.
    let request = || {
        let mut request = Request::get("/simulate_error").body(Body::empty()).unwrap();
        request.extensions_mut().insert(());
        request
    };
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
    // With a traceparent, as the load generator sends: parsed rather than made up.
    let traced = || {
        Request::get("/simulate_error")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .extension(())
            .body(Body::empty())
            .unwrap()
    };
    c.bench_function(
        "a request with a traceparent through a handler that does nothing",
        |b| {
            b.iter(|| {
                runtime
                    .block_on(async { black_box(bare.ready().await.unwrap().call(traced()).await) })
            })
        },
    );
    c.bench_function(
        "the same request with a traceparent, through the RED middleware",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    black_box(measured.ready().await.unwrap().call(traced()).await)
                })
            })
        },
    );
}

/// The native histogram's share of a request to `/`: one observation into the crate's native
/// histogram, as `request_duration_native_seconds` is configured (schema 3, at most 160
/// buckets), over a spread of durations like a lognormal's, so that the buckets it finds vary.
fn native_update(c: &mut Criterion) {
    use prometheus_client::metrics::histogram::{Histogram, NativeHistogramConfig};
    let native = Histogram::new_native(NativeHistogramConfig::new(1.1).max_buckets(160));
    let durations: Vec<f64> = (0..1024).map(|i| 0.01 * 1.01f64.powi(i % 600)).collect();
    let mut next = durations.iter().cycle();
    c.bench_function("one observation into the native histogram", |b| {
        b.iter(|| native.observe(black_box(*next.next().unwrap())))
    });
}

criterion_group!(benches, seed_updates, red_middleware, native_update);
criterion_main!(benches);
