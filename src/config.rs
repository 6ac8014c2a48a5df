//! Every knob of the service: a flag, an environment variable (`DEMO_SERVICE_*`) and a check.
//!
//! A bad value stops the program before it does anything, with one line on stderr naming the
//! flag and what is wrong, and exit code 2 (as clap's own usage errors).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A demo service instrumented for Prometheus: a Rust drop-in for the Flask app of the
/// service-monitoring exercise, metric for metric.
#[derive(Debug, Parser)]
#[command(name = "demo-service", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// `serve`'s options, for when no subcommand is given.
    #[command(flatten)]
    serve: ServeArgs,
}

impl Cli {
    /// The subcommand to run: `serve` when none was given.
    pub fn command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the app and the metrics (the default).
    Serve(ServeArgs),
    /// Exit 0 if the service on this machine is ready, 1 if not: a container healthcheck that
    /// needs no shell or curl.
    Healthcheck(HealthcheckArgs),
}

/// Where `healthcheck` asks.
#[derive(Clone, Debug, Args)]
pub struct HealthcheckArgs {
    /// The service's metrics listener, as it was configured (0.0.0.0 is asked on 127.0.0.1).
    #[arg(
        long,
        env = "DEMO_SERVICE_METRICS_ADDR",
        default_value = "0.0.0.0:8000"
    )]
    pub metrics_addr: SocketAddr,

    /// The path to ask: /readyz (ready to take requests) or /healthz (alive).
    #[arg(long, env = "DEMO_SERVICE_HEALTHCHECK_PATH", default_value = "/readyz", value_parser = path)]
    pub path: String,

    /// How long to wait for the answer.
    #[arg(long, env = "DEMO_SERVICE_HEALTHCHECK_TIMEOUT", default_value = "2s", value_parser = positive_duration)]
    pub timeout: Duration,
}

fn path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && s.parse::<axum::http::uri::PathAndQuery>().is_ok() {
        Ok(s.to_owned())
    } else {
        Err("expected a path such as /readyz".to_owned())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The service's settings.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address of the app listener: /, /simulate_error, /metrics, /healthz, /readyz.
    #[arg(long, env = "DEMO_SERVICE_APP_ADDR", default_value = "0.0.0.0:5000")]
    pub app_addr: SocketAddr,

    /// Address of the metrics listener, which Prometheus scrapes (/metrics).
    #[arg(
        long,
        env = "DEMO_SERVICE_METRICS_ADDR",
        default_value = "0.0.0.0:8000"
    )]
    pub metrics_addr: SocketAddr,

    /// Shortest simulated processing time of / (e.g. 0s, 250ms, 1.5s).
    #[arg(long, env = "DEMO_SERVICE_MIN_DELAY", default_value = "0s", value_parser = duration)]
    pub min_delay: Duration,

    /// Longest simulated processing time of /; each request draws uniformly between the two.
    #[arg(long, env = "DEMO_SERVICE_MAX_DELAY", default_value = "5s", value_parser = duration)]
    pub max_delay: Duration,

    /// Probability that /simulate_error fails with a 500, from 0 to 1.
    #[arg(long, env = "DEMO_SERVICE_ERROR_RATE", default_value_t = 0.2, value_parser = probability)]
    pub error_rate: f64,

    /// Fewest simulated active users (the current_users gauge).
    #[arg(long, env = "DEMO_SERVICE_USERS_MIN", default_value_t = 10)]
    pub users_min: u32,

    /// Most simulated active users.
    #[arg(long, env = "DEMO_SERVICE_USERS_MAX", default_value_t = 50)]
    pub users_max: u32,

    /// How often the simulated number of users changes.
    #[arg(long, env = "DEMO_SERVICE_USERS_INTERVAL", default_value = "5s", value_parser = positive_duration)]
    pub users_interval: Duration,

    /// How long requests in flight may take to finish after SIGTERM or SIGINT.
    #[arg(long, env = "DEMO_SERVICE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub shutdown_timeout: Duration,

    /// Log format on stdout; the level comes from RUST_LOG (default: info).
    #[arg(long, env = "DEMO_SERVICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl ServeArgs {
    /// Checks what no single value can: the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_delay > self.max_delay {
            return Err(format!(
                "--min-delay ({}) is above --max-delay ({})",
                humantime::format_duration(self.min_delay),
                humantime::format_duration(self.max_delay)
            ));
        }
        if self.users_min > self.users_max {
            return Err(format!(
                "--users-min ({}) is above --users-max ({})",
                self.users_min, self.users_max
            ));
        }
        Ok(())
    }
}

/// Parses `250ms`, `1.5s`, `2m`, `1h30m` and the like.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (expected e.g. 250ms, 1.5s, 2m)"))
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("must be above zero".to_owned()),
        d => Ok(d),
    }
}

/// Parses a probability: a number from 0 to 1.
pub fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{s} is outside [0, 1]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        let cli = Cli::try_parse_from(std::iter::once("demo-service").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        match cli.command() {
            Command::Serve(serve) => serve.validate().map(|()| serve),
            other => Err(format!("not serve: {other:?}")),
        }
    }

    #[test]
    fn defaults_are_the_seeds() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.app_addr, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(s.metrics_addr, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(
            (s.min_delay, s.max_delay),
            (Duration::ZERO, Duration::from_secs(5))
        );
        assert_eq!(s.error_rate, 0.2);
        assert_eq!((s.users_min, s.users_max), (10, 50));
        assert_eq!(s.users_interval, Duration::from_secs(5));
    }

    #[test]
    fn serve_options_come_after_the_subcommand_or_alone() {
        assert!(parse(&["serve", "--log-format", "json"]).is_ok());
        assert!(parse(&["--log-format", "json"]).is_ok());
    }

    #[test]
    fn serve_is_the_default_subcommand() {
        let s = parse(&["serve", "--error-rate", "0.5"]).unwrap();
        assert_eq!(s.error_rate, 0.5);
        let s = parse(&["--error-rate", "0.5"]).unwrap();
        assert_eq!(s.error_rate, 0.5);
    }

    #[test]
    fn durations_take_fractions_and_units() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert!(duration("1.5").is_err());
        assert!(duration("-1s").is_err());
        assert!(duration("").is_err());
        assert!(positive_duration("0s").is_err());
    }

    #[test]
    fn probabilities_stay_within_zero_and_one() {
        assert_eq!(probability("0"), Ok(0.0));
        assert_eq!(probability("1"), Ok(1.0));
        for bad in ["-0.1", "1.01", "NaN", "inf", "abc", ""] {
            assert!(probability(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_must_be_ordered() {
        let e = parse(&["--min-delay", "6s"]).unwrap_err();
        assert_eq!(e, "--min-delay (6s) is above --max-delay (5s)");
        let e = parse(&["--users-min", "60"]).unwrap_err();
        assert_eq!(e, "--users-min (60) is above --users-max (50)");
        assert!(parse(&["--min-delay", "5s"]).is_ok());
    }
}
