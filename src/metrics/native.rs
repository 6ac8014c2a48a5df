//! `request_duration_native_seconds`: what the seed's `request_duration_seconds` records (the
//! drawn processing time of each request to `/`), again, in a native histogram.
//!
//! A classic histogram's buckets are chosen in advance; a quantile estimated from them is only
//! as good as the bucket it falls in (between 2 s and 5 s, the seed's p99 can be off by a
//! second or more). A native histogram's buckets are exponential and sparse: each bucket's
//! upper bound is at most [`BUCKET_FACTOR`] times its lower one, so an estimate is off by less
//! than 10 %, wherever it falls; only the buckets that were hit are sent, and Prometheus
//! stores the whole histogram as one series.
//!
//! - **Schema 3**: the largest factor of the form 2^(2^-n) within 1.1 is 2^(1/8) ≈ 1.0905; 8
//!   buckets per doubling, 27 between 100 ms and 1 s.
//! - **Zero threshold** 2^-128 (the crate's default, as Prometheus' clients): only a draw of
//!   exactly 0 (`--min-delay 0`) is counted in the zero bucket.
//! - **At most [`MAX_BUCKETS`] buckets**: 1 ms to 10 s is about 106 buckets at schema 3. Past
//!   the limit, the client halves the resolution (schema 2, factor 1.19), as Prometheus' Go
//!   client does, rather than grow.
//!
//! The family has a name of its own: a histogram with both kinds under one name loses its
//! classic buckets in Prometheus 2.42 (and in 3.x without `always_scrape_classic_histograms`),
//! and the seed's queries read those. Only the protobuf exposition carries native histograms,
//! so the text formats leave this family out. Its exemplars are the seed histogram's, the same
//! requests: the latest of each classic bucket, with their timestamps, as native exemplars must
//! have (Prometheus 2.42 reads none: its protobuf has no place for them).

use std::time::Duration;

use prometheus_client::encoding::prometheus_protobuf;
use prometheus_client::metrics::histogram::{Histogram, NativeHistogramConfig};
use prometheus_client::registry::Registry;

use super::{help, register};

use super::exemplar::{self, Clock, Exemplar};
use super::protobuf::MetricFamily;
use crate::snapshot::{Local, Snapshot};

/// The family's name.
pub(crate) const NAME: &str = "request_duration_native_seconds";

/// The largest ratio of a bucket's upper bound to its lower one.
pub(crate) const BUCKET_FACTOR: f64 = 1.1;

/// The most buckets the histogram keeps before it halves its resolution.
pub(crate) const MAX_BUCKETS: usize = 160;

const HELP: &str =
    "Histogram of request durations in seconds, native: sparse exponential buckets, factor 1.09";

/// The native histogram of `/`'s processing times. The crate's histogram takes a lock for each
/// observation (a few tens of nanoseconds, uncontended); it is swapped for a new one when the
/// counters are reset.
#[derive(Debug)]
pub(crate) struct Native {
    histogram: Snapshot<Histogram>,
}

impl Default for Native {
    fn default() -> Self {
        Self {
            histogram: Snapshot::new(new()),
        }
    }
}

fn new() -> Histogram {
    Histogram::new_native(NativeHistogramConfig::new(BUCKET_FACTOR).max_buckets(MAX_BUCKETS))
}

impl Native {
    pub(crate) fn observe(&self, value: Duration) {
        thread_local! {
            /// The histogram as this thread read it last.
            static HISTOGRAM: Local<Histogram> = const { std::cell::RefCell::new(None) };
        }
        self.histogram.read(&HISTOGRAM, |histogram| {
            histogram.observe(value.as_secs_f64())
        });
    }

    /// Empty, as after a restart: a new histogram, created now.
    pub(crate) fn reset(&self) {
        self.histogram.store(std::sync::Arc::new(new()));
    }

    /// The family, with `exemplars` (the same requests' ones, from the classic buckets) in
    /// the order of their timestamps.
    pub(crate) fn proto(&self, exemplars: impl Iterator<Item = Exemplar>) -> Vec<MetricFamily> {
        let mut registry = Registry::default();
        register(
            &mut registry,
            NAME,
            help!(HELP),
            Histogram::clone(&self.histogram.load()),
        );
        // The crate encodes a native histogram into its own message types; it fails only for
        // what this service never does (a native-only histogram in a text encoder).
        let Ok(mut families) = prometheus_protobuf::encode(&registry) else {
            return Vec::new();
        };
        let clock = Clock::anchored();
        let mut exemplars: Vec<_> = exemplars.collect();
        exemplars.sort_by_key(|e| e.at);
        for family in &mut families {
            family.unit = "seconds".to_owned();
            for metric in &mut family.metric {
                if let Some(histogram) = &mut metric.histogram {
                    histogram.exemplars = exemplars
                        .iter()
                        .map(|e| exemplar::proto(e, &clock))
                        .collect();
                }
            }
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceId;
    use std::time::Instant;

    fn histogram_of(native: &Native) -> super::super::protobuf::Histogram {
        let families = native.proto(std::iter::empty());
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].name, NAME);
        families[0].metric[0].histogram.clone().unwrap()
    }

    #[test]
    fn it_has_schema_3_and_the_observations() {
        let native = Native::default();
        for ms in [100, 250, 250, 3000] {
            native.observe(Duration::from_millis(ms));
        }
        let h = histogram_of(&native);
        assert_eq!(h.schema, 3);
        assert_eq!(h.sample_count, 4);
        assert!((h.sample_sum - 3.6).abs() < 1e-9);
        assert!(h.zero_threshold > 0.0 && h.zero_threshold < 1e-30);
        // Three buckets hit: 100 ms, 250 ms (twice) and 3 s.
        let deltas: i64 = h.positive_delta.iter().sum();
        let spans: u32 = h.positive_span.iter().map(|s| s.length).sum();
        assert_eq!(spans as usize, h.positive_delta.len());
        assert!(spans >= 3, "{h:?}");
        assert!(deltas > 0);
    }

    #[test]
    fn a_bucket_is_narrower_than_the_factor() {
        // 2^(1/8): the bucket of 1 s is (2^-1/8, 1].
        let factor = 2f64.powf(1.0 / 8.0);
        assert!(factor <= BUCKET_FACTOR && factor * 2f64.powf(1.0 / 8.0) > BUCKET_FACTOR);
    }

    #[test]
    fn exemplars_come_with_timestamps_in_order() {
        let native = Native::default();
        native.observe(Duration::from_millis(5));
        let now = Instant::now();
        let later = Exemplar {
            trace: TraceId::random(),
            value: 0.2,
            at: now,
        };
        let earlier = Exemplar {
            at: now - Duration::from_secs(1),
            ..later
        };
        let families = native.proto([later, earlier].into_iter());
        let h = families[0].metric[0].histogram.clone().unwrap();
        let stamps: Vec<_> = h
            .exemplars
            .iter()
            .map(|e| e.timestamp.unwrap().seconds)
            .collect();
        assert_eq!(stamps.len(), 2);
        assert!(stamps[0] < stamps[1], "{stamps:?}");
        assert_eq!(h.exemplars[0].label[0].name, "trace_id");
    }

    #[test]
    fn a_reset_empties_it() {
        let native = Native::default();
        native.observe(Duration::from_millis(5));
        native.reset();
        assert_eq!(histogram_of(&native).sample_count, 0);
    }
}
