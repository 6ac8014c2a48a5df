//! The catalogue of faults: what can go wrong with the service, each a knob, off by default.
//!
//! | fault | knob | what it does | where it shows |
//! |---|---|---|---|
//! | not ready | `not_ready` | `/readyz` answers 503, `/healthz` stays 200 | `demo_service_ready` |
//! | memory leak | `memory_leak` | holds on to memory at a rate, up to `--memory-leak-cap` | `demo_service_leaked_bytes`, `process_resident_memory_bytes` |
//! | CPU burn | `cpu_burn` | each request to `/` spends this much CPU | `demo_service_cpu_burn_seconds_total`, `process_cpu_seconds_total` |
//! | dependency | `dependency_latency`, `dependency_error_rate`, `dependency_down` | `/` calls a simulated `database`; when it fails, `/` answers 503 | `dependency_requests_total`, `dependency_request_duration_seconds` |
//! | slow scrape | `metrics_delay` | the exposition waits this long before it answers | Prometheus' `scrape_duration_seconds`, `up` |
//! | hidden family | `hide_family` | one family is left out of the exposition | its series go stale |
//! | cardinality | `cardinality` | this many series with a per-user label, up to `--max-cardinality` | `demo_service_user_sessions`, Prometheus' `prometheus_tsdb_head_series` |
//!
//! Every fault is also in `demo_service_fault_active{fault}`, 1 while it is on. Each lives in
//! a unit of its own here, with its own tests; the handlers only ask it what to do.

pub mod burn;
pub mod dependency;
pub mod leak;

use std::time::Duration;

/// Bounds fixed at start: no knob goes past them, so that no fault can take the host down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// The most memory the leak holds.
    pub memory_leak_cap: u64,
    /// The most CPU time one request to `/` may burn.
    pub max_cpu_burn: Duration,
    /// The most series the cardinality fault adds.
    pub max_cardinality: u32,
    /// The longest delay of the exposition, and of the dependency.
    pub max_fault_delay: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_leak_cap: 256 * 1024 * 1024,
            max_cpu_burn: Duration::from_secs(1),
            max_cardinality: 10_000,
            max_fault_delay: Duration::from_secs(30),
        }
    }
}

/// The faults' knobs. The default is every fault off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// `/readyz` answers 503.
    pub not_ready: bool,
    /// Bytes a second the service holds on to, up to the cap; 0: none.
    pub memory_leak: u64,
    /// CPU time each request to `/` spends.
    pub cpu_burn: Duration,
    /// The simulated downstream dependency of `/`.
    pub dependency: dependency::Dependency,
    /// How long the exposition waits before it answers.
    pub metrics_delay: Duration,
    /// A family left out of the exposition.
    pub hide_family: Option<String>,
    /// Series with a per-user label added to the exposition.
    pub cardinality: u32,
}

/// The faults by name, as `demo_service_fault_active` labels them.
pub const NAMES: [&str; 7] = [
    "not_ready",
    "memory_leak",
    "cpu_burn",
    "dependency",
    "metrics_delay",
    "hide_family",
    "cardinality",
];

impl Faults {
    /// Whether each fault of [`NAMES`] is on, in that order.
    pub fn active(&self) -> [bool; NAMES.len()] {
        [
            self.not_ready,
            self.memory_leak > 0,
            !self.cpu_burn.is_zero(),
            self.dependency != dependency::Dependency::default(),
            !self.metrics_delay.is_zero(),
            self.hide_family.is_some(),
            self.cardinality > 0,
        ]
    }

    /// What the limits allow: every value within its bound, the hidden family one that the
    /// exposition has.
    pub fn check(&self, limits: &Limits) -> Result<(), String> {
        let d = humantime::format_duration;
        if self.memory_leak > limits.memory_leak_cap {
            return Err(format!(
                "memory_leak {} is above the cap of {} (--memory-leak-cap): it would reach it within a second",
                format_byte_rate(self.memory_leak),
                format_bytes(limits.memory_leak_cap)
            ));
        }
        if self.cpu_burn > limits.max_cpu_burn {
            return Err(format!(
                "cpu_burn {} is above --max-cpu-burn ({})",
                d(self.cpu_burn),
                d(limits.max_cpu_burn)
            ));
        }
        for (name, delay) in [
            ("metrics_delay", self.metrics_delay),
            ("dependency_latency", self.dependency.latency),
        ] {
            if delay > limits.max_fault_delay {
                return Err(format!(
                    "{name} {} is above --max-fault-delay ({})",
                    d(delay),
                    d(limits.max_fault_delay)
                ));
            }
        }
        self.dependency.check()?;
        if let Some(family) = &self.hide_family
            && !crate::metrics::FAMILIES.contains(&family.as_str())
        {
            return Err(format!(
                "hide_family: the exposition has no family {family:?}; one of: {}",
                crate::metrics::FAMILIES.join(", ")
            ));
        }
        if self.cardinality > limits.max_cardinality {
            return Err(format!(
                "cardinality {} is above --max-cardinality ({})",
                self.cardinality, limits.max_cardinality
            ));
        }
        Ok(())
    }
}

/// Parses a rate of bytes: `1MiB/s`, `512KiB/s`, `0`.
pub fn byte_rate(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text == "0" {
        return Ok(0);
    }
    let wrong = || format!("{s:?} is not a rate of bytes: give e.g. 1MiB/s, or 0");
    let size = text.strip_suffix("/s").ok_or_else(wrong)?;
    byte_size(size).map_err(|_| wrong())
}

/// Parses a number of bytes: `256MiB`, `1GiB`, `4096`.
pub fn byte_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("{s:?} is not a size: give e.g. 256MiB"))
}

/// A number of bytes as [`byte_size`] reads it, exactly: in the largest binary unit that
/// divides it.
pub fn format_bytes(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// A rate of bytes as [`byte_rate`] reads it.
pub fn format_byte_rate(rate: u64) -> String {
    if rate == 0 {
        "0".to_owned()
    } else {
        format!("{}/s", format_bytes(rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_is_off_by_default_and_each_has_its_name() {
        assert_eq!(Faults::default().active(), [false; NAMES.len()]);
        let on = Faults {
            not_ready: true,
            memory_leak: 1,
            cpu_burn: Duration::from_millis(1),
            dependency: dependency::Dependency {
                down: true,
                ..Default::default()
            },
            metrics_delay: Duration::from_millis(1),
            hide_family: Some("current_users".to_owned()),
            cardinality: 1,
        };
        assert_eq!(on.active(), [true; NAMES.len()]);
        assert_eq!(on.check(&Limits::default()), Ok(()));
    }

    #[test]
    fn limits_hold() {
        let limits = Limits::default();
        for (faults, says) in [
            (
                Faults {
                    memory_leak: 300 * 1024 * 1024,
                    ..Default::default()
                },
                "memory_leak 300MiB/s is above the cap of 256MiB",
            ),
            (
                Faults {
                    cpu_burn: Duration::from_secs(2),
                    ..Default::default()
                },
                "cpu_burn 2s is above --max-cpu-burn (1s)",
            ),
            (
                Faults {
                    metrics_delay: Duration::from_secs(31),
                    ..Default::default()
                },
                "metrics_delay 31s is above --max-fault-delay (30s)",
            ),
            (
                Faults {
                    hide_family: Some("nope".to_owned()),
                    ..Default::default()
                },
                "hide_family: the exposition has no family \"nope\"; one of: request_processing_seconds",
            ),
            (
                Faults {
                    cardinality: 10_001,
                    ..Default::default()
                },
                "cardinality 10001 is above --max-cardinality (10000)",
            ),
        ] {
            let e = faults.check(&limits).unwrap_err();
            assert!(e.starts_with(says), "{e}");
        }
    }

    #[test]
    fn rates_and_sizes_read_as_written() {
        assert_eq!(byte_rate("1MiB/s"), Ok(1024 * 1024));
        assert_eq!(byte_rate(" 0 "), Ok(0));
        for rate in [1, 1000, 1024, 1536, 1024 * 1024, 3 << 30] {
            assert_eq!(byte_rate(&format_byte_rate(rate)), Ok(rate), "{rate}");
        }
        assert_eq!(format_byte_rate(1024 * 1024), "1MiB/s");
        assert_eq!(byte_size("256MiB"), Ok(256 * 1024 * 1024));
        assert!(byte_rate("1MiB").unwrap_err().contains("give e.g. 1MiB/s"));
        assert!(byte_size("lots").unwrap_err().contains("give e.g. 256MiB"));
    }
}
