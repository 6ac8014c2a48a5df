//! The `process_*` families, as the Python client exports them on Linux.
//!
//! prometheus-client has no process collector, so this one reads the process at every scrape
//! (`/proc/self` through the procfs crate, the CPU clock and the file limit through rustix),
//! with the Python client's names and help texts. Elsewhere than Linux it exports nothing, as
//! the Python client does. A read that fails leaves its families out of that scrape rather
//! than failing the scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::exposition::{describe, help};

/// One reading of the process' resources.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Reading {
    pub(crate) virtual_memory_bytes: Option<f64>,
    pub(crate) resident_memory_bytes: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) open_fds: Option<f64>,
    pub(crate) max_fds: Option<f64>,
}

/// Reads the process at each scrape. What cannot change (the start time) is read once, and
/// `/proc/self` stays open; a scrape costs about 10 µs (the full `stat` and `limits` files that
/// procfs would parse cost 50).
#[derive(Debug)]
pub(crate) struct ProcessCollector {
    /// A simulation's process: read from here, not from the kernel.
    simulated: Option<Simulated>,
    #[cfg(target_os = "linux")]
    process: Option<procfs::process::Process>,
    start_time_seconds: Option<f64>,
}

impl ProcessCollector {
    #[cfg(target_os = "linux")]
    pub(crate) fn new() -> Self {
        let process = procfs::process::Process::myself().ok();
        let start_time_seconds = process.as_ref().and_then(|p| {
            let started = p.stat().ok()?.starttime as f64 / procfs::ticks_per_second() as f64;
            Some(procfs::boot_time_secs().ok()? as f64 + started)
        });
        Self {
            simulated: None,
            process,
            start_time_seconds,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new() -> Self {
        Self {
            simulated: None,
            start_time_seconds: None,
        }
    }

    /// A process that a simulation makes up: each scrape shows what it last set.
    pub(crate) fn simulated(process: Simulated) -> Self {
        Self {
            simulated: Some(process),
            #[cfg(target_os = "linux")]
            process: None,
            start_time_seconds: None,
        }
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn read(&self) -> Reading {
        use rustix::process::{Resource, getrlimit};
        use rustix::time::{ClockId, clock_gettime};

        if let Some(simulated) = &self.simulated {
            return simulated.get();
        }
        let Some(process) = &self.process else {
            return Reading::default();
        };
        let page = procfs::page_size() as f64;
        let memory = process.statm().ok();
        let cpu = clock_gettime(ClockId::ProcessCPUTime);
        Reading {
            virtual_memory_bytes: memory.as_ref().map(|m| m.size as f64 * page),
            resident_memory_bytes: memory.as_ref().map(|m| m.resident as f64 * page),
            start_time_seconds: self.start_time_seconds,
            cpu_seconds: Some(cpu.tv_sec as f64 + cpu.tv_nsec as f64 / 1e9),
            open_fds: process.fd_count().ok().map(|n| n as f64),
            max_fds: Some(
                getrlimit(Resource::Nofile)
                    .current
                    .map_or(f64::INFINITY, |n| n as f64),
            ),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn read(&self) -> Reading {
        self.simulated
            .as_ref()
            .map_or_else(Reading::default, Simulated::get)
    }
}

/// The readings of a simulated process, set by the simulation, read by the scrapes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Simulated(std::sync::Arc<std::sync::Mutex<Reading>>);

impl Simulated {
    pub(crate) fn set(&self, reading: Reading) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = reading;
    }

    fn get(&self) -> Reading {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = self.read();
        let gauges = [
            (
                "process_virtual_memory_bytes",
                help!("Virtual memory size in bytes."),
                r.virtual_memory_bytes,
            ),
            (
                "process_resident_memory_bytes",
                help!("Resident memory size in bytes."),
                r.resident_memory_bytes,
            ),
            (
                "process_start_time_seconds",
                help!("Start time of the process since unix epoch in seconds."),
                r.start_time_seconds,
            ),
            (
                "process_open_fds",
                help!("Number of open file descriptors."),
                r.open_fds,
            ),
            (
                "process_max_fds",
                help!("Maximum number of open file descriptors."),
                r.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let metric = describe(&mut encoder, name, help, MetricType::Gauge)?;
                ConstGauge::new(v).encode(metric)?;
            }
        }
        if let Some(v) = r.cpu_seconds {
            let help = help!("Total user and system CPU time spent in seconds.");
            let metric = describe(
                &mut encoder,
                "process_cpu_seconds",
                help,
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
        let r = ProcessCollector::new().read();
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
        registry.register_collector(Box::new(ProcessCollector::new()));
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
