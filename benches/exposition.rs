//! What a scrape costs: rendering the whole exposition, in each of the three formats, once every family has
//! series (the seed's, RED for five routes with several status codes, the process).
//!
//!   cargo bench --bench exposition

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use demo_service::behaviour::knobs::Knobs;
use demo_service::metrics::{Format, Metrics, TextFormat};
use demo_service::routes;
use demo_service::state::{AppState, Settings};
use tower::ServiceExt;

/// Metrics with a realistic set of series: every route answered, with 200s, 500s and 404s.
fn busy_metrics() -> std::sync::Arc<Metrics> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let knobs = Knobs {
        delay: Duration::ZERO..=Duration::ZERO,
        error_rate: 0.5,
        ..Knobs::default()
    };
    let state = AppState::new(
        std::sync::Arc::new(Metrics::new()),
        knobs,
        Settings::default(),
    );
    let app = routes::app(state.clone());
    runtime.block_on(async {
        for path in [
            "/",
            "/simulate_error",
            "/simulate_error",
            "/healthz",
            "/readyz",
            "/metrics",
            "/nope",
            "/status/503",
        ] {
            for _ in 0..10 {
                let request = Request::get(path).body(Body::empty()).unwrap();
                app.clone().oneshot(request).await.unwrap();
            }
        }
    });
    state.metrics.clone()
}

fn render(c: &mut Criterion) {
    let metrics = busy_metrics();
    c.bench_function("render the exposition, text 0.0.4", |b| {
        b.iter(|| black_box(metrics.encode(Format::Text)))
    });
    c.bench_function("render the exposition, OpenMetrics", |b| {
        b.iter(|| black_box(metrics.encode(Format::OpenMetrics)))
    });
    c.bench_function("render the exposition, protobuf", |b| {
        b.iter(|| black_box(metrics.encode(Format::Protobuf)))
    });
    let text = metrics.text(TextFormat::Prometheus);
    println!(
        "exposition: {} bytes, {} lines; protobuf: {} bytes",
        text.len(),
        text.lines().count(),
        metrics.encode(Format::Protobuf).len()
    );
}

criterion_group!(benches, render);
criterion_main!(benches);
