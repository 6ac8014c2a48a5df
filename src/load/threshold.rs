//! Thresholds: what a run must achieve to pass, as k6 has them (`p99<2s`, `errors<5%`). A run
//! whose threshold fails exits with 99, so that a test or a CI job can gate on it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What a threshold measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure {
    /// A latency quantile (0.99 for `p99`), from when each request was due.
    Quantile(f64),
    /// The slowest latency.
    Max,
    /// The mean latency.
    Mean,
    /// The share of requests that ended without an answer or with a 5xx.
    Errors,
    /// Requests sent per second.
    Rate,
}

/// How a measured value compares with the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
        }
    }
}

/// One threshold, as given on the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// Its text, as given (without spaces).
    text: String,
    pub measure: Measure,
    pub op: Op,
    /// Seconds for a latency, a fraction for errors, requests per second for a rate.
    pub limit: f64,
}

const GRAMMAR: &str = "expected MEASURE<LIMIT, e.g. p99<2s, p50<300ms, max<=5s, mean<1s, \
                       errors<5%, rate>=90 (operators: < <= > >=)";

impl FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| format!("{s:?}: no comparison; {GRAMMAR}"))?;
        let (name, rest) = text.split_at(at);
        let (op, value) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Op::Le, &rest[2..]),
            [b'>', b'=', ..] => (Op::Ge, &rest[2..]),
            [b'<', ..] => (Op::Lt, &rest[1..]),
            _ => (Op::Gt, &rest[1..]),
        };
        let measure = measure(name).map_err(|e| format!("{s:?}: {e}; {GRAMMAR}"))?;
        let limit = match measure {
            Measure::Errors => percent(value),
            Measure::Rate => number(value.strip_suffix("/s").unwrap_or(value)),
            _ => latency(value),
        }
        .map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Threshold {
            text,
            measure,
            op,
            limit,
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn measure(name: &str) -> Result<Measure, String> {
    match name {
        "max" => Ok(Measure::Max),
        "mean" | "avg" => Ok(Measure::Mean),
        "errors" => Ok(Measure::Errors),
        "rate" => Ok(Measure::Rate),
        "" => Err("no measure before the comparison".to_owned()),
        _ => {
            let percentile = name
                .strip_prefix('p')
                .and_then(|p| p.parse::<f64>().ok())
                .ok_or_else(|| format!("unknown measure {name:?}"))?;
            if percentile > 0.0 && percentile < 100.0 {
                Ok(Measure::Quantile(percentile / 100.0))
            } else {
                Err(format!("{name}: a percentile is above 0 and below 100"))
            }
        }
    }
}

fn number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!("{s:?} is not a number of 0 or more")),
    }
}

fn percent(s: &str) -> Result<f64, String> {
    let n = s
        .strip_suffix('%')
        .ok_or_else(|| format!("{s:?}: give errors in percent, e.g. errors<5%"))?;
    match number(n)? {
        p if p <= 100.0 => Ok(p / 100.0),
        _ => Err(format!("{s} is above 100%")),
    }
}

/// A latency with its unit: `2s`, `300ms`, `1.5s`, `250us`.
fn latency(s: &str) -> Result<f64, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?} has no unit: give e.g. 2s or 300ms"))?;
    if split == 0 {
        return Err(format!("{s:?} is not a latency: give e.g. 2s or 300ms"));
    }
    let (n, unit) = s.split_at(split);
    let scale = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (one of: us, ms, s, m)"
            ));
        }
    };
    Ok(number(n)? * scale)
}

/// What a run measured, for its thresholds.
pub trait Measured {
    /// The value of `measure`, or none when the run has none (no latency without answers).
    fn value(&self, measure: Measure) -> Option<f64>;
}

/// A threshold checked against a run.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    pub threshold: String,
    /// What the run measured: seconds, a fraction or requests per second; none when it had
    /// nothing to measure, which fails.
    pub value: Option<f64>,
    pub passed: bool,
    /// What `value` is in: `seconds`, `ratio` or `per_second`.
    pub unit: &'static str,
    #[serde(skip)]
    measure: Measure,
}

impl Threshold {
    pub fn check(&self, run: &impl Measured) -> Checked {
        let value = run.value(self.measure);
        Checked {
            threshold: self.text.clone(),
            value,
            passed: value.is_some_and(|v| self.op.holds(v, self.limit)),
            unit: match self.measure {
                Measure::Errors => "ratio",
                Measure::Rate => "per_second",
                _ => "seconds",
            },
            measure: self.measure,
        }
    }
}

impl Checked {
    /// The measured value as people read it: `1.23s`, `4.1%`, `98.2/s`.
    pub fn shown(&self) -> String {
        match (self.measure, self.value) {
            (_, None) => "nothing measured".to_owned(),
            (Measure::Errors, Some(v)) => format!("{:.2}%", v * 100.0),
            (Measure::Rate, Some(v)) => format!("{v:.2}/s"),
            (_, Some(v)) => super::report::seconds(std::time::Duration::from_secs_f64(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Threshold {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn thresholds_parse_as_k6_writes_them() {
        let t = parse("p99<2s");
        assert_eq!(
            (t.measure, t.op, t.limit),
            (Measure::Quantile(0.99), Op::Lt, 2.0)
        );
        let t = parse("p50 < 300ms");
        assert_eq!((t.measure, t.limit), (Measure::Quantile(0.5), 0.3));
        assert_eq!(t.to_string(), "p50<300ms");
        assert!(
            matches!(parse("p99.9<=1.5s").measure, Measure::Quantile(q) if (q - 0.999).abs() < 1e-12)
        );
        assert_eq!(parse("p99.9<=1.5s").op, Op::Le);
        assert_eq!(parse("max<1m").limit, 60.0);
        assert_eq!(parse("mean<250us").limit, 250e-6);
        assert_eq!(parse("avg<1s").measure, Measure::Mean);
        let t = parse("errors<5%");
        assert_eq!((t.measure, t.limit), (Measure::Errors, 0.05));
        let t = parse("rate>=90/s");
        assert_eq!((t.measure, t.op, t.limit), (Measure::Rate, Op::Ge, 90.0));
        assert_eq!(parse("rate>9.5").op, Op::Gt);
    }

    #[test]
    fn a_bad_threshold_says_what_is_wrong() {
        for (bad, error) in [
            ("p99", "no comparison"),
            ("<2s", "no measure before the comparison"),
            ("p99<2", "has no unit: give e.g. 2s or 300ms"),
            ("p99<2h", "unknown unit \"h\""),
            ("p100<2s", "a percentile is above 0 and below 100"),
            ("p0<2s", "a percentile is above 0 and below 100"),
            ("latency<2s", "unknown measure \"latency\""),
            ("errors<5", "give errors in percent"),
            ("errors<105%", "above 100%"),
            ("rate>fast", "is not a number"),
            ("p99<-1s", "\"-1s\" is not a latency"),
            ("p99=2s", "no comparison"),
            ("p99<=", "\"\" has no unit"),
        ] {
            let e = bad.parse::<Threshold>().unwrap_err();
            assert!(e.contains(error), "{bad}: {e}");
        }
    }

    struct Run;
    impl Measured for Run {
        fn value(&self, measure: Measure) -> Option<f64> {
            match measure {
                Measure::Quantile(q) => Some(q),
                Measure::Errors => Some(0.05),
                Measure::Rate => Some(90.0),
                _ => None,
            }
        }
    }

    #[test]
    fn a_threshold_passes_only_when_its_comparison_holds() {
        let passed = |s: &str| parse(s).check(&Run).passed;
        assert!(passed("p99<1s"));
        assert!(!passed("p99<990ms"));
        assert!(passed("p99<=990ms"));
        assert!(!passed("errors<5%"));
        assert!(passed("errors<=5%"));
        assert!(passed("rate>=90"));
        assert!(!passed("rate>90"));
        // Nothing measured fails, whatever the comparison.
        let checked = parse("max<60m").check(&Run);
        assert!(!checked.passed);
        assert_eq!(checked.shown(), "nothing measured");
        assert_eq!(parse("errors<5%").check(&Run).shown(), "5.00%");
        assert_eq!(parse("p50<1s").check(&Run).shown(), "500.0ms");
    }
}
