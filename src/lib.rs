//! demo-service: the Flask app of the service-monitoring exercise, in Rust, metric for metric.

/// What the service's routes do: the knobs, the latency distributions, the random draws.
pub mod behaviour;
/// Every knob: flags, environment variables, validation.
pub mod config;
/// Accepting and serving connections: limits, timeouts, graceful close.
pub mod connections;
/// `demo-service healthcheck`.
pub mod healthcheck;
/// `demo-service history`: days of the service's series, for Prometheus to load.
pub mod history;
/// `demo-service load`: the load generator.
pub mod load;
/// The exposition: the seed's families, RED metrics, the process.
pub mod metrics;
/// `demo-service receiver`: where alert notifications arrive.
pub mod receiver;
/// The app and metrics routers.
pub mod routes;
/// `demo-service scenario`: game days, played and checked.
pub mod scenario;
/// Binding, serving, draining.
pub mod server;
/// SIGTERM and SIGINT, as a stream.
pub mod signals;
/// `demo-service slo`: the objectives, and the rules generated from them.
pub mod slo;
/// Values that every request reads and that change seldom, cached per thread.
pub mod snapshot;
/// What the handlers share.
pub mod state;
/// Logging setup.
pub mod telemetry;
/// W3C trace context: each request's trace id.
pub mod trace;
/// Weighted choices written as text (`200:0.9,500:0.1`).
pub mod weighted;
