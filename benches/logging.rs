//! What the log line of one request to `/` costs on the request's thread: the seed's
//! `request processed` with its count and processing time, and the trace id, through the
//! service's filter and batched writer (into a sink), as an event formatted by
//! [`demo_service::telemetry::Lean`] (the service's text format off a terminal, for its other
//! lines), by tracing-subscriber's own default format, and as JSON; the same event when
//! `RUST_LOG` turns it off; and the line as the service writes it off a terminal, straight
//! into the writer ([`demo_service::telemetry::request_processed`]). In the service the line
//! costs more than here (docs/performance.md): there its code and data are not always in the
//! CPU's caches.
//!
//!   cargo bench --bench logging

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use demo_service::telemetry::writer::{self, Batched};
use demo_service::telemetry::{self, Lean};
use demo_service::trace::TraceId;
use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::SubscriberBuilder;
use tracing_subscriber::fmt::format::{DefaultFields, Format};

fn line(count: u64, trace: TraceId) {
    tracing::info!(
        message = "request processed",
        request_count = count,
        processing_time = 0.0,
        trace_id = %trace,
    );
}

type Builder = SubscriberBuilder<DefaultFields, Format, EnvFilter, Batched>;

/// As `telemetry::init` sets logging up: `RUST_LOG`'s filter (here `filter`), the batched
/// writer (here into a sink), no colours. Keep the guard while the subscriber is used.
fn service_like(filter: &str) -> (Builder, writer::Guard) {
    let (batched, guard) = Batched::new(std::io::sink(), writer::LIMIT).expect("a writer thread");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(batched);
    (builder, guard)
}

fn request_line(c: &mut Criterion) {
    let trace = TraceId::random();
    let mut count = 0u64;
    let mut bench = |name: &str, subscriber: Dispatch| {
        tracing::dispatcher::with_default(&subscriber, || {
            c.bench_function(name, |b| {
                b.iter(|| {
                    count += 1;
                    line(black_box(count), black_box(trace));
                })
            });
        });
    };
    let (fmt, _lean) = service_like("info");
    bench(
        "the log line of a request to /, Lean",
        fmt.event_format(Lean).finish().into(),
    );
    let (fmt, _default) = service_like("info");
    bench(
        "the same line, tracing-subscriber's default format",
        fmt.finish().into(),
    );
    let (fmt, _json) = service_like("info");
    bench(
        "the same line, JSON",
        fmt.json().flatten_event(true).finish().into(),
    );
    let (fmt, _off) = service_like("warn");
    bench(
        "the same line, turned off by RUST_LOG=warn",
        fmt.event_format(Lean).finish().into(),
    );
    // The service's own path for this line, off a terminal: straight into the writer, once
    // the filter lets it through (the subscriber is there for its filter alone).
    let filter = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .finish();
    let (direct, _direct) = Batched::new(std::io::sink(), writer::LIMIT).expect("a writer thread");
    let mut processed = 0u64;
    tracing::dispatcher::with_default(&filter.into(), || {
        telemetry::write_requests_to(direct);
        c.bench_function(
            "the same line, straight into the writer (the service's)",
            |b| {
                b.iter(|| {
                    processed += 1;
                    telemetry::request_processed(black_box(processed), 0.0, black_box(trace));
                })
            },
        );
    });
}

criterion_group!(benches, request_line);
criterion_main!(benches);
