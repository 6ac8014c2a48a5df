//! When an open-loop run sends: the traffic shapes, and the send times they give.
//!
//! A shape is a rate that changes with time. The schedule integrates it: the next request is due
//! when the area under the rate since the last one reaches 1. It steps at most 10 ms at a time,
//! so a rate that changes (a sine, a ramp, a burst) is followed closely and a rate of zero
//! simply sends nothing until it rises.

use std::f64::consts::TAU;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest step of the integration, in seconds.
const MAX_STEP: f64 = 0.01;

/// A rate over time, in requests per second.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Always `rate`.
    Constant { rate: f64 },
    /// `rate` × (1 + `amplitude` × sin(2πt / `period`)): between rate × (1 − amplitude) and
    /// rate × (1 + amplitude), `rate` on average.
    Sine {
        rate: f64,
        amplitude: f64,
        period: Duration,
    },
    /// `rate`, except for the first `length` of every `period`, which runs at `burst_rate`.
    Bursts {
        rate: f64,
        burst_rate: f64,
        length: Duration,
        period: Duration,
    },
    /// From `from` to `rate`, linearly over `period`, then `rate`.
    Ramp {
        from: f64,
        rate: f64,
        period: Duration,
    },
    /// From 0, linearly to each stage's rate over the stage's length, in turn.
    Stages(Stages),
}

/// Stages in k6's sense: `30s:10,2m:50,30s:0` ramps from 0 to 10/s in 30 s, on to 50/s over 2
/// minutes, and down to 0 in 30 s. A stage of `0s` jumps to its rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Stages(Vec<(Duration, f64)>);

impl Stages {
    /// How long the stages last together.
    pub fn length(&self) -> Duration {
        self.0.iter().map(|(length, _)| *length).sum()
    }

    fn rate_at(&self, t: f64) -> f64 {
        let (mut start, mut from) = (0.0, 0.0);
        for &(length, rate) in &self.0 {
            let length = length.as_secs_f64();
            if t < start + length {
                return from + (rate - from) * (t - start) / length;
            }
            (start, from) = (start + length, rate);
        }
        from
    }
}

impl FromStr for Stages {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let stages = s
            .split(',')
            .map(|stage| {
                let (length, rate) = stage.trim().split_once(':').ok_or_else(|| {
                    format!("{stage:?}: expected LENGTH:RATE, e.g. 30s:10,2m:50,30s:0")
                })?;
                let length = humantime::parse_duration(length.trim())
                    .map_err(|e| format!("{stage:?}: {length:?} is not a length ({e})"))?;
                let rate = match rate.trim().parse::<f64>() {
                    Ok(r) if r.is_finite() && r >= 0.0 => r,
                    _ => return Err(format!("{stage:?}: {rate:?} is not a rate of 0 or more")),
                };
                Ok((length, rate))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stages = Stages(stages);
        if stages.length().is_zero() {
            return Err(format!("{s:?}: the stages last no time at all"));
        }
        Ok(stages)
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (length, rate)) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{}:{rate}", humantime::format_duration(*length))?;
        }
        Ok(())
    }
}

impl Shape {
    /// The rate at `t` seconds after the start.
    pub fn rate_at(&self, t: f64) -> f64 {
        match *self {
            Shape::Constant { rate } => rate,
            Shape::Sine {
                rate,
                amplitude,
                period,
            } => rate * (1.0 + amplitude * (TAU * t / period.as_secs_f64()).sin()),
            Shape::Bursts {
                rate,
                burst_rate,
                length,
                period,
            } => {
                if t % period.as_secs_f64() < length.as_secs_f64() {
                    burst_rate
                } else {
                    rate
                }
            }
            Shape::Ramp { from, rate, period } => {
                let progress = (t / period.as_secs_f64()).min(1.0);
                from + (rate - from) * progress
            }
            Shape::Stages(ref stages) => stages.rate_at(t),
        }
        .max(0.0)
    }
}

/// The send times of a shape, in seconds since the start; endless, but for stages.
#[derive(Debug)]
pub struct Schedule {
    shape: Shape,
    t: f64,
    /// Requests owed since the last send, as a fraction.
    credit: f64,
}

impl Schedule {
    pub fn new(shape: Shape) -> Self {
        Self {
            shape,
            t: 0.0,
            credit: 0.0,
        }
    }
}

impl Iterator for Schedule {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        // Stages end: past them, nothing is due (their last rate may well be 0).
        let end = match &self.shape {
            Shape::Stages(stages) => stages.length().as_secs_f64(),
            _ => f64::INFINITY,
        };
        loop {
            if self.t > end {
                return None;
            }
            let rate = self.shape.rate_at(self.t);
            // A constant rate needs no small steps: the next request is due in 1/rate.
            let most = match self.shape {
                Shape::Constant { .. } => f64::INFINITY,
                _ => MAX_STEP,
            };
            let step = if rate > 0.0 {
                ((1.0 - self.credit) / rate).min(most)
            } else {
                MAX_STEP
            };
            self.credit += rate * step;
            self.t += step;
            // A tolerance for the rounding of many small steps.
            if self.credit >= 1.0 - 1e-9 {
                self.credit = (self.credit - 1.0).max(0.0);
                // To the microsecond, so that the rounding of many steps cannot push a request
                // due at the end of a run just past it.
                return Some((self.t * 1e6).round() / 1e6);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times_within(shape: Shape, seconds: f64) -> Vec<f64> {
        Schedule::new(shape).take_while(|&t| t <= seconds).collect()
    }

    #[test]
    fn a_constant_rate_sends_evenly() {
        let times = times_within(Shape::Constant { rate: 100.0 }, 10.0);
        assert_eq!(times.len(), 1000);
        for pair in times.windows(2) {
            assert!((pair[1] - pair[0] - 0.01).abs() < 1e-9, "{pair:?}");
        }
        // Slow rates too: one every 4 s.
        assert_eq!(times_within(Shape::Constant { rate: 0.25 }, 20.0).len(), 5);
    }

    #[test]
    fn a_sine_averages_its_rate_and_swings_by_its_amplitude() {
        let period = Duration::from_secs(10);
        let shape = Shape::Sine {
            rate: 100.0,
            amplitude: 0.5,
            period,
        };
        let times = times_within(shape, 10.0);
        assert!((times.len() as i64 - 1000).abs() <= 2, "{}", times.len());
        // The first half-period runs above the mean, the second below: 1000 × (0.5 ± 0.5/π).
        let first_half = times.iter().filter(|&&t| t < 5.0).count() as f64;
        assert!((first_half - 659.2).abs() < 3.0, "{first_half}");
    }

    #[test]
    fn a_full_sine_sends_nothing_at_its_trough() {
        let period = Duration::from_secs(4);
        let times = times_within(
            Shape::Sine {
                rate: 50.0,
                amplitude: 1.0,
                period,
            },
            4.0,
        );
        assert!(
            !times.iter().any(|&t| (2.95..3.05).contains(&t)),
            "sent at the trough"
        );
        assert!((times.len() as i64 - 200).abs() <= 2, "{}", times.len());
    }

    #[test]
    fn bursts_run_at_their_rate_for_their_length() {
        let shape = Shape::Bursts {
            rate: 10.0,
            burst_rate: 100.0,
            length: Duration::from_secs(1),
            period: Duration::from_secs(5),
        };
        let times = times_within(shape, 10.0);
        let in_bursts = times.iter().filter(|&&t| t % 5.0 < 1.0).count();
        assert!((in_bursts as i64 - 200).abs() <= 2, "{in_bursts}");
        assert!((times.len() as i64 - 280).abs() <= 2, "{}", times.len());
    }

    #[test]
    fn a_ramp_climbs_then_holds() {
        let shape = Shape::Ramp {
            from: 0.0,
            rate: 100.0,
            period: Duration::from_secs(10),
        };
        // The area: 500 over the ramp, then 100 a second.
        let times = times_within(shape.clone(), 12.0);
        assert!((times.len() as i64 - 700).abs() <= 2, "{}", times.len());
        assert_eq!(shape.rate_at(5.0), 50.0);
        assert_eq!(shape.rate_at(60.0), 100.0);
    }

    #[test]
    fn stages_ramp_from_one_rate_to_the_next() {
        let stages: Stages = "10s:100, 20s:100,0s:40,10s:0".parse().unwrap();
        assert_eq!(stages.length(), Duration::from_secs(40));
        assert_eq!(stages.to_string(), "10s:100,20s:100,0s:40,10s:0");
        let shape = Shape::Stages(stages);
        assert_eq!(shape.rate_at(5.0), 50.0);
        assert_eq!(shape.rate_at(25.0), 100.0);
        // The stage of 0s jumps to 40, the last ramps down to 0 and stays there.
        assert_eq!(shape.rate_at(30.0), 40.0);
        assert_eq!(shape.rate_at(35.0), 20.0);
        assert_eq!(shape.rate_at(45.0), 0.0);
        // The area: 500 + 2000 + 200.
        let times = times_within(shape.clone(), 40.0);
        assert!((times.len() as i64 - 2700).abs() <= 2, "{}", times.len());
        let first = times.iter().filter(|&&t| t < 10.0).count();
        assert!((first as i64 - 500).abs() <= 2, "{first}");
    }

    #[test]
    fn bad_stages_say_what_is_wrong() {
        for (bad, error) in [
            ("30s", "expected LENGTH:RATE"),
            ("30s:10,2m", "\"2m\": expected LENGTH:RATE"),
            ("30:10", "\"30\" is not a length"),
            ("30s:-1", "\"-1\" is not a rate of 0 or more"),
            ("30s:fast", "is not a rate"),
            ("0s:10", "the stages last no time at all"),
            ("", "expected LENGTH:RATE"),
        ] {
            let e = bad.parse::<Stages>().unwrap_err();
            assert!(e.contains(error), "{bad:?}: {e}");
        }
    }
}
