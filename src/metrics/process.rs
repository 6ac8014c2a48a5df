//! The `process_*` families, as the Python client exports them on Linux.
//!
//! prometheus-client has no process collector, so this one reads `/proc/self` (through the
//! procfs crate) at every scrape, with the Python client's names and help texts. Elsewhere than
//! Linux it exports nothing, as the Python client does. A read that fails leaves its families
//! out of that scrape rather than failing the scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One reading of the process' resources.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Reading {
    pub(crate) virtual_memory_bytes: Option<f64>,
    pub(crate) resident_memory_bytes: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) open_fds: Option<f64>,
    pub(crate) max_fds: Option<f64>,
}

impl Reading {
    #[cfg(target_os = "linux")]
    pub(crate) fn now() -> Self {
        use procfs::process::{LimitValue, Process};

        let Ok(me) = Process::myself() else {
            return Self::default();
        };
        let mut reading = Self::default();
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            reading.virtual_memory_bytes = Some(stat.vsize as f64);
            reading.resident_memory_bytes = Some((stat.rss * procfs::page_size()) as f64);
            reading.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
            reading.start_time_seconds = procfs::boot_time_secs()
                .ok()
                .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
        }
        reading.open_fds = me.fd_count().ok().map(|n| n as f64);
        reading.max_fds = me.limits().ok().map(|l| match l.max_open_files.soft_limit {
            LimitValue::Value(v) => v as f64,
            LimitValue::Unlimited => f64::INFINITY,
        });
        reading
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn now() -> Self {
        Self::default()
    }
}

/// Reads the process at each scrape.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = Reading::now();
        let gauges = [
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                r.virtual_memory_bytes,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                r.resident_memory_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                r.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                r.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                r.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(metric)?;
            }
        }
        if let Some(v) = r.cpu_seconds {
            let help = "Total user and system CPU time spent in seconds.";
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                help,
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reading_sees_this_process() {
        let before = std::fs::read_dir("/proc/self/fd").unwrap().count();
        let r = Reading::now();
        let rss = r.resident_memory_bytes.unwrap();
        assert!(
            rss > 1_000_000.0,
            "resident memory {rss} is implausibly small"
        );
        assert!(r.virtual_memory_bytes.unwrap() >= rss);
        let open = r.open_fds.unwrap();
        // Other test threads open files too; the count is close to ours, not equal.
        assert!(
            (open - before as f64).abs() < 64.0,
            "open fds {open}, /proc says {before}"
        );
        assert!(r.max_fds.unwrap() >= open);
        assert!(r.cpu_seconds.unwrap() >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = r.start_time_seconds.unwrap();
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "start time {started}, now {now}"
        );
    }

    #[test]
    fn collector_writes_the_python_clients_families() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for family in [
            "process_virtual_memory_bytes gauge",
            "process_resident_memory_bytes gauge",
            "process_start_time_seconds gauge",
            "process_cpu_seconds_total counter",
            "process_open_fds gauge",
            "process_max_fds gauge",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family}\n")),
                "{family} missing in\n{text}"
            );
        }
    }
}
