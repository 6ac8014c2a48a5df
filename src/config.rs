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
    /// Send traffic to a service: open loop at a rate, or closed loop at a concurrency.
    Load(LoadArgs),
    /// Receive Alertmanager's webhook notifications: log them, and show the latest.
    Receiver(ReceiverArgs),
    /// Game days: break the service on purpose, and check that the monitoring noticed
    /// (docs/game-days.md).
    Scenario(ScenarioArgs),
    /// Write days of the service's own series, as Prometheus would have scraped them, for
    /// scripts/history-load to load (docs/history.md).
    History(HistoryArgs),
    /// The service's objectives (slo/objectives.yaml), and the Prometheus rules generated from
    /// them (docs/objectives.md).
    Slo(SloCommandArgs),
}

#[derive(Debug, Args)]
pub struct SloCommandArgs {
    #[command(subcommand)]
    pub command: SloCommand,
}

#[derive(Debug, Subcommand)]
pub enum SloCommand {
    /// Write the objectives' recording rules and burn-rate alerts.
    Generate(SloArgs),
}

/// Where the objectives are read, and their rules written.
#[derive(Debug, Args)]
pub struct SloArgs {
    /// The objectives.
    #[arg(long, default_value = crate::slo::OBJECTIVES)]
    pub objectives: std::path::PathBuf,

    /// The rules' file, which Prometheus loads.
    #[arg(long, default_value = crate::slo::RULES)]
    pub out: std::path::PathBuf,

    /// Write nothing; fail if the rules' file is not what the objectives give.
    #[arg(long)]
    pub check: bool,
}

/// A history of the service.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many days, ending now, or before the live data (or a history) of --prometheus.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub days: u32,

    /// Where to write: an OpenMetrics file per block, the recording rules by level,
    /// history.env for the loader, history.json with the requests of each day.
    #[arg(long)]
    pub out: std::path::PathBuf,

    /// Mean requests a second; the traffic follows a daily rhythm around it.
    #[arg(long, default_value_t = 10.0, value_parser = rate)]
    pub rate: f64,

    /// The paths the traffic asks for, with weights, as the load generator's --mix: / and
    /// /simulate_error.
    #[arg(long, default_value = "/=1,/simulate_error=1")]
    pub mix: crate::load::Mix,

    /// The instance label of the history's series (its job is the seed's, flask_app).
    #[arg(long, default_value = "history:8000")]
    pub instance: String,

    /// Prometheus' configuration: the scrape interval and timeout, the evaluation interval,
    /// the rule files.
    #[arg(long, default_value = "prometheus/prometheus.yml")]
    pub config: std::path::PathBuf,

    /// The Prometheus the history is for: it ends before that one's live data of the job, and
    /// before a history it holds already; its retention must keep it.
    #[arg(long, value_parser = base_url)]
    pub prometheus: Option<String>,

    #[command(flatten)]
    pub behaviour: BehaviourArgs,
}

/// `scenario`'s subcommands.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    #[command(subcommand)]
    pub command: ScenarioCommand,
}

#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Name the shipped scenarios: the fault each plays, the alerts it expects.
    List,
    /// Play a scenario against the running stack, and check which alerts fire, when, and
    /// whether their notifications arrive. Exit 0 when every expectation held, 1 if not.
    Run(ScenarioRunArgs),
    /// A drill: play one shipped fault, picked at random, without saying which, until it is
    /// named (`answer`) or given up (`reveal`); then put the stack back as it was.
    Drill(DrillArgs),
    /// Name the knob (or the stopped part) that the drill turned: right or wrong.
    Answer(AnswerArgs),
    /// Say what the drill plays, and end it.
    Reveal(DrillStateArgs),
}

/// Where a drill keeps what `answer` and `reveal` need.
#[derive(Debug, Args)]
pub struct DrillStateArgs {
    /// The drill's state file [default: demo-service-drill.json in the temporary directory].
    #[arg(long, env = "DEMO_SERVICE_DRILL_STATE")]
    pub state: Option<std::path::PathBuf>,
}

/// A drill.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Pick the same fault again: a class can get one drill each, an instructor can know it.
    #[arg(long)]
    pub seed: Option<u64>,

    /// The drill ends by itself, and says what it was, after this long.
    #[arg(long, default_value = "30m", value_parser = positive_duration)]
    pub limit: Duration,

    #[command(flatten)]
    pub state: DrillStateArgs,

    #[command(flatten)]
    pub stack: ScenarioStackArgs,
}

/// An answer to the drill.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// A knob of the admin API (error_rate, not_ready, ...), a fault (dependency), or a
    /// stopped part (app, load).
    pub knob: String,

    #[command(flatten)]
    pub state: DrillStateArgs,
}

/// What `scenario run` plays, and where.
#[derive(Debug, Args)]
pub struct ScenarioRunArgs {
    /// A shipped scenario's name (`demo-service scenario list`) or a scenario's file.
    pub scenario: String,

    /// The result's format, on stdout (progress goes to stderr).
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    #[command(flatten)]
    pub stack: ScenarioStackArgs,
}

/// Where the stack a scenario plays against answers. Unset, each is found as the docs find
/// it: .env's BIND_ADDRESS and the stack's ports; the token in .env (compose) or in
/// target/stack/admin-token (scripts/stack).
#[derive(Clone, Debug, Args)]
pub struct ScenarioStackArgs {
    /// Which stack [default: native while scripts/stack runs here, else compose].
    #[arg(long, env = "DEMO_SERVICE_SCENARIO_STACK", value_enum)]
    pub stack: Option<crate::scenario::StackKind>,

    /// Prometheus' base URL [default: http://BIND_ADDRESS:9090].
    #[arg(long, env = "DEMO_SERVICE_SCENARIO_PROMETHEUS", value_parser = base_url)]
    pub prometheus: Option<String>,

    /// The alert receiver's base URL [default: http://BIND_ADDRESS:9095].
    #[arg(long, env = "DEMO_SERVICE_SCENARIO_RECEIVER", value_parser = base_url)]
    pub receiver: Option<String>,

    /// The service's metrics listener, where its admin API is [default: http://BIND_ADDRESS:8000].
    #[arg(long, env = "DEMO_SERVICE_SCENARIO_ADMIN", value_parser = base_url)]
    pub admin: Option<String>,

    /// The admin API's token [default: from .env, or target/stack/admin-token].
    #[arg(long, env = "DEMO_SERVICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// A base URL, `http://HOST:PORT`.
fn base_url(s: &str) -> Result<String, String> {
    let uri: hyper::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(format!("{s:?}: expected http://HOST:PORT"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// Where the alert receiver listens.
#[derive(Clone, Debug, Args)]
pub struct ReceiverArgs {
    /// The address to listen on; Alertmanager posts to /alerts, people read /.
    #[arg(
        long,
        env = "DEMO_SERVICE_RECEIVER_ADDR",
        default_value = "0.0.0.0:9095",
        value_parser = listen_addr
    )]
    pub addr: SocketAddr,

    /// How many notifications to keep.
    #[arg(long, env = "DEMO_SERVICE_RECEIVER_KEEP", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    /// Log format on stdout; the level comes from RUST_LOG (default: info).
    #[arg(long, env = "DEMO_SERVICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The shapes of open-loop traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShapeKind {
    /// Always --rate.
    Constant,
    /// --rate ± --amplitude, a sine wave of --period.
    Sine,
    /// --rate, with --burst-rate for --burst-length at the start of every --period.
    Bursts,
    /// From --ramp-from to --rate over --period, then --rate.
    Ramp,
}

/// How a load run reports at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A summary for people.
    Text,
    /// One JSON object.
    Json,
}

/// What `load` sends, how, and for how long. Without --duration or --requests it runs until
/// Ctrl-C; the summary comes at the end either way.
#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// The service's base URL (plain HTTP). Give it again for each replica: requests take
    /// the targets in turn (in the environment: separated by commas).
    #[arg(
        long,
        env = "DEMO_SERVICE_LOAD_TARGET",
        default_value = "http://127.0.0.1:5000",
        value_parser = target,
        value_delimiter = ','
    )]
    pub target: Vec<hyper::Uri>,

    /// The paths to ask for, with weights: PATH=WEIGHT,... (any path of the target).
    #[arg(
        long,
        env = "DEMO_SERVICE_LOAD_MIX",
        default_value = "/=1,/simulate_error=1"
    )]
    pub mix: crate::load::Mix,

    /// Open loop: requests per second, sent whatever the answers take [default: 10].
    #[arg(long, env = "DEMO_SERVICE_LOAD_RATE", value_parser = rate, allow_negative_numbers = true, conflicts_with = "concurrency")]
    pub rate: Option<f64>,

    /// Closed loop: this many requests in flight, each sent when the last one is answered.
    #[arg(long, env = "DEMO_SERVICE_LOAD_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// How the rate of an open loop changes over time.
    #[arg(long, env = "DEMO_SERVICE_LOAD_SHAPE", value_enum, default_value_t = ShapeKind::Constant)]
    pub shape: ShapeKind,

    /// Open loop in stages, instead of --rate and --shape: LENGTH:RATE,... ramps linearly
    /// from 0 to each stage's rate over its length (k6's stages); the run lasts as long as
    /// they do. E.g. 30s:10,2m:50,30s:0.
    #[arg(long, env = "DEMO_SERVICE_LOAD_STAGES", conflicts_with_all = ["rate", "concurrency", "shape", "duration"])]
    pub stages: Option<crate::load::Stages>,

    /// The period of a sine or of bursts, or the length of a ramp.
    #[arg(long, env = "DEMO_SERVICE_LOAD_PERIOD", default_value = "60s", value_parser = positive_duration)]
    pub period: Duration,

    /// How far a sine swings around --rate, as a fraction of it (0 to 1).
    #[arg(long, env = "DEMO_SERVICE_LOAD_AMPLITUDE", default_value_t = 0.5, value_parser = probability, allow_negative_numbers = true)]
    pub amplitude: f64,

    /// The rate during a burst [default: 5 × --rate].
    #[arg(long, env = "DEMO_SERVICE_LOAD_BURST_RATE", value_parser = rate, allow_negative_numbers = true)]
    pub burst_rate: Option<f64>,

    /// How long a burst lasts.
    #[arg(long, env = "DEMO_SERVICE_LOAD_BURST_LENGTH", default_value = "5s", value_parser = positive_duration)]
    pub burst_length: Duration,

    /// The rate a ramp starts from.
    #[arg(long, env = "DEMO_SERVICE_LOAD_RAMP_FROM", default_value_t = 0.0, value_parser = non_negative_rate, allow_negative_numbers = true)]
    pub ramp_from: f64,

    /// Stop after this long.
    #[arg(long, env = "DEMO_SERVICE_LOAD_DURATION", value_parser = positive_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many requests.
    #[arg(long, env = "DEMO_SERVICE_LOAD_REQUESTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// The most requests in flight at once in an open loop, each on its own connection (a closed
    /// loop has --concurrency in flight).
    #[arg(long, env = "DEMO_SERVICE_LOAD_CONNECTIONS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,

    /// How long a request may take, connecting included.
    #[arg(long, env = "DEMO_SERVICE_LOAD_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,

    /// How long the generator keeps its connections: after that it opens new ones, resolving
    /// the target's name again, as clients behind DNS do; so replicas that join (docker
    /// compose --profile replicas) get their share within this time. 0s keeps them for ever.
    #[arg(long, env = "DEMO_SERVICE_LOAD_CONNECTION_LIFETIME", default_value = "10s", value_parser = duration)]
    pub connection_lifetime: Duration,

    /// The summary's format, on stdout.
    #[arg(long, env = "DEMO_SERVICE_LOAD_OUTPUT", value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Send no `traceparent` header. By default each request starts a trace of its own, which
    /// the service's exemplars and log lines name, and so does the summary's list of the
    /// slowest requests.
    #[arg(long, env = "DEMO_SERVICE_LOAD_NO_TRACE")]
    pub no_trace: bool,

    /// What the run must achieve, e.g. p99<2s, p50<300ms, max<5s, mean<1s, errors<5% (no
    /// answer, or a 5xx), rate>=90; give it again for each. The summary shows each with what
    /// was measured; the exit status is 99 when one fails.
    #[arg(
        long = "threshold",
        env = "DEMO_SERVICE_LOAD_THRESHOLDS",
        value_delimiter = ','
    )]
    pub thresholds: Vec<crate::load::Threshold>,

    /// Serve the generator's own metrics at this address while it runs (/metrics): requests
    /// sent, answered and failed by route, latency from when due and from when sent, the
    /// target and the achieved rate; e.g. 127.0.0.1:9101.
    #[arg(long, env = "DEMO_SERVICE_LOAD_METRICS_ADDR", value_parser = listen_addr)]
    pub metrics_addr: Option<SocketAddr>,

    /// How many of the slowest requests the summary lists, with their trace ids (0: none).
    #[arg(long, env = "DEMO_SERVICE_LOAD_SLOWEST", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub slowest: u32,

    /// How often a progress line goes to stderr when it is not a terminal (a terminal gets a
    /// live line).
    #[arg(long, env = "DEMO_SERVICE_LOAD_PROGRESS_INTERVAL", default_value = "5s", value_parser = positive_duration)]
    pub progress_interval: Duration,
}

impl LoadArgs {
    /// The run these arguments describe, or what is wrong with them.
    pub fn plan(&self) -> Result<crate::load::Plan, String> {
        use crate::load::{Mode, Plan, Shape};
        let mode = match (self.concurrency, self.shape) {
            _ if self.stages.is_some() => {
                Mode::Open(Shape::Stages(self.stages.clone().expect("checked")))
            }
            (Some(n), ShapeKind::Constant) => Mode::Closed(n),
            (Some(_), shape) => {
                let shape = shape
                    .to_possible_value()
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default();
                return Err(format!(
                    "--shape {shape} needs an open loop: give --rate, not --concurrency"
                ));
            }
            (None, kind) => {
                let rate = self.rate.unwrap_or(10.0);
                let period = self.period;
                Mode::Open(match kind {
                    ShapeKind::Constant => Shape::Constant { rate },
                    ShapeKind::Sine => Shape::Sine {
                        rate,
                        amplitude: self.amplitude,
                        period,
                    },
                    ShapeKind::Bursts => {
                        if self.burst_length >= period {
                            return Err(format!(
                                "--burst-length ({}) must be shorter than --period ({})",
                                humantime::format_duration(self.burst_length),
                                humantime::format_duration(period)
                            ));
                        }
                        let burst_rate = self.burst_rate.unwrap_or(5.0 * rate);
                        Shape::Bursts {
                            rate,
                            burst_rate,
                            length: self.burst_length,
                            period,
                        }
                    }
                    ShapeKind::Ramp => Shape::Ramp {
                        from: self.ramp_from,
                        rate,
                        period,
                    },
                })
            }
        };
        Ok(Plan {
            targets: self.target.clone(),
            mix: self.mix.clone(),
            mode,
            duration: self
                .stages
                .as_ref()
                .map(crate::load::Stages::length)
                .or(self.duration),
            requests: self.requests,
            connections: self.connections,
            timeout: self.timeout,
            connection_lifetime: (!self.connection_lifetime.is_zero())
                .then_some(self.connection_lifetime),
            trace: !self.no_trace,
            slowest: self.slowest as usize,
            thresholds: self.thresholds.clone(),
            metrics_addr: self.metrics_addr,
        })
    }
}

/// Parses the target: `http://host[:port]`, nothing after.
fn target(s: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err("https is not supported: the service speaks plain HTTP".to_owned());
        }
        _ => return Err(format!("{s:?}: expected http://HOST:PORT")),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(format!("{s:?}: expected http://HOST:PORT"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "{s:?}: give the paths with --mix, not in the target"
        ));
    }
    let authority = uri.authority().expect("checked above");
    Ok(format!("http://{authority}")
        .parse()
        .expect("a URL of a valid authority"))
}

/// The lowest rate: one request in 1000 s.
const MIN_RATE: f64 = 0.001;

/// Parses a rate: requests per second, at least [`MIN_RATE`].
fn rate(s: &str) -> Result<f64, String> {
    let r = non_negative_rate(s)?;
    if r == 0.0 {
        Err("a rate of 0 sends nothing: give a rate above 0".to_owned())
    } else if r < MIN_RATE {
        Err(format!("{s} is below the lowest rate, {MIN_RATE}/s"))
    } else {
        Ok(r)
    }
}

fn non_negative_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if r.is_finite() && r >= 0.0 {
        Ok(r)
    } else {
        Err(format!(
            "{s} is not a rate: must be a positive number of requests per second"
        ))
    }
}

/// clap's usage error as the one line this program prints: clap's first line, then what it
/// would have taken (the values of an enum, a flag it suggests), then where to read more.
pub fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let rendered = e.to_string();
    let mut line = rendered.lines().next().unwrap_or_default().to_owned();
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
        line += &format!(" (one of: {})", values.join(", "));
    }
    for kind in [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand] {
        match e.get(kind) {
            Some(ContextValue::String(s)) => line += &format!(" (did you mean '{s}'?)"),
            Some(ContextValue::Strings(s)) if !s.is_empty() => {
                line += &format!(" (did you mean '{}'?)", s.join("', '"));
            }
            _ => {}
        }
    }
    if matches!(
        e.kind(),
        ErrorKind::UnknownArgument
            | ErrorKind::InvalidSubcommand
            | ErrorKind::ArgumentConflict
            | ErrorKind::MissingRequiredArgument
            | ErrorKind::NoEquals
            | ErrorKind::TooManyValues
            | ErrorKind::WrongNumberOfValues
    ) {
        // "Usage: demo-service load [OPTIONS]": the command whose --help tells the rest.
        let command = match e.get(ContextKind::Usage) {
            Some(ContextValue::StyledStr(usage)) => usage
                .to_string()
                .trim_start_matches("Usage:")
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        let command = if command.is_empty() {
            "demo-service".to_owned()
        } else {
            command
        };
        line += &format!("; see '{command} --help'");
    }
    line
}

/// Where `healthcheck` asks.
#[derive(Clone, Debug, Args)]
pub struct HealthcheckArgs {
    /// The service's metrics listener, as it was configured (0.0.0.0 is asked on 127.0.0.1).
    #[arg(
        long,
        env = "DEMO_SERVICE_METRICS_ADDR",
        default_value = "0.0.0.0:8000",
        value_parser = listen_addr
    )]
    pub metrics_addr: SocketAddr,

    /// The path to ask: /readyz (ready to take requests) or /healthz (alive).
    #[arg(long, env = "DEMO_SERVICE_HEALTHCHECK_PATH", default_value = "/readyz", value_parser = path)]
    pub path: String,

    /// How long to wait for the answer.
    #[arg(long, env = "DEMO_SERVICE_HEALTHCHECK_TIMEOUT", default_value = "2s", value_parser = positive_duration)]
    pub timeout: Duration,
}

/// Parses an address to listen on: an IP address and a port (`0.0.0.0:5000`, `[::]:5000`), or a
/// host name and a port (`localhost:5000`), resolved once, here.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    const EXAMPLES: &str =
        "e.g. 0.0.0.0:5000 (every interface) or 127.0.0.1:5000 (this machine only)";
    if let Ok(addr) = s.trim().parse() {
        return Ok(addr);
    }
    let Some((host, port)) = s
        .trim()
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    else {
        return Err(format!(
            "{s:?} is not an address and a port: give IP:PORT, {EXAMPLES}"
        ));
    };
    let addrs: Vec<SocketAddr> = (host, port.parse::<u16>().expect("checked above"))
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?} ({e}): give an IP address, {EXAMPLES}"))?
        .collect();
    // localhost has an IPv4 and an IPv6 address: the IPv4 one, as the defaults are.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} has no address: give an IP address, {EXAMPLES}"))
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
    #[arg(long, env = "DEMO_SERVICE_APP_ADDR", default_value = "0.0.0.0:5000", value_parser = listen_addr)]
    pub app_addr: SocketAddr,

    /// Address of the metrics listener, which Prometheus scrapes (/metrics).
    #[arg(
        long,
        env = "DEMO_SERVICE_METRICS_ADDR",
        default_value = "0.0.0.0:8000",
        value_parser = listen_addr
    )]
    pub metrics_addr: SocketAddr,

    /// How the service behaves: its knobs, its faults, an incident timeline.
    #[command(flatten)]
    pub behaviour: BehaviourArgs,

    /// How often the simulated number of users changes.
    #[arg(long, env = "DEMO_SERVICE_USERS_INTERVAL", default_value = "5s", value_parser = positive_duration)]
    pub users_interval: Duration,

    /// How long a client may take to send a request's headers, counted from when its
    /// connection is ready for one: it cuts off clients that trickle their headers, and closes
    /// kept-alive connections idle that long.
    #[arg(long, env = "DEMO_SERVICE_HEADER_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub header_timeout: Duration,

    /// How long requests in flight may take to finish after SIGTERM or SIGINT.
    #[arg(long, env = "DEMO_SERVICE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub shutdown_timeout: Duration,

    /// Log format on stdout; the level comes from RUST_LOG (default: info).
    #[arg(long, env = "DEMO_SERVICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Turns the admin API on (GET/PUT /admin/knobs on the metrics listener), with this bearer
    /// token, at least 16 characters; off when unset or empty.
    #[arg(long, env = "DEMO_SERVICE_ADMIN_TOKEN", value_parser = admin_token, hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// How the simulated service behaves: the knobs at start, the bounds of the faults, an incident
/// timeline. The live service (`serve`) and its simulated history (`history`) take the same.
#[derive(Clone, Debug, Args)]
pub struct BehaviourArgs {
    /// Shortest simulated processing time of / (e.g. 0s, 250ms, 1.5s).
    #[arg(long, env = "DEMO_SERVICE_MIN_DELAY", default_value = "0s", value_parser = duration)]
    pub min_delay: Duration,

    /// Longest simulated processing time of /: no request takes longer.
    #[arg(long, env = "DEMO_SERVICE_MAX_DELAY", default_value = "5s", value_parser = duration)]
    pub max_delay: Duration,

    /// How / draws its processing time, within [--min-delay, --max-delay]: uniform (the
    /// seed's), lognormal:MEDIAN:P99 (a long tail, e.g. lognormal:250ms:3s) or
    /// bimodal:FAST:SLOW:SLOW_SHARE (cache hits and misses, e.g. bimodal:20ms:2s:0.1).
    #[arg(
        long,
        env = "DEMO_SERVICE_DELAY_DISTRIBUTION",
        default_value = "uniform"
    )]
    pub delay_distribution: crate::behaviour::delay::Distribution,

    /// Draw every random number (delays, errors, users) from generators seeded with this, so
    /// that the same sequence of requests gets the same delays and errors; unset, runs differ.
    #[arg(long, env = "DEMO_SERVICE_SEED", value_parser = seed)]
    pub seed: Option<Seed>,

    /// Probability that /simulate_error fails with a 500, from 0 to 1.
    #[arg(long, env = "DEMO_SERVICE_ERROR_RATE", default_value_t = 0.2, value_parser = probability, allow_negative_numbers = true)]
    pub error_rate: f64,

    /// Fewest simulated active users (the current_users gauge).
    #[arg(long, env = "DEMO_SERVICE_USERS_MIN", default_value_t = 10)]
    pub users_min: u32,

    /// Most simulated active users.
    #[arg(long, env = "DEMO_SERVICE_USERS_MAX", default_value_t = 50)]
    pub users_max: u32,

    /// The longest delay /delay/{duration} grants (longer ones are refused with 400), and the
    /// longest --metrics-delay and --dependency-latency.
    #[arg(long, env = "DEMO_SERVICE_MAX_FAULT_DELAY", default_value = "30s", value_parser = duration)]
    pub max_fault_delay: Duration,

    /// Fault: /readyz answers 503 while /healthz stays 200 (the admin knob not_ready).
    #[arg(long, env = "DEMO_SERVICE_NOT_READY", help_heading = "Faults")]
    pub not_ready: bool,

    /// Fault: hold on to memory at this rate, e.g. 1MiB/s, up to --memory-leak-cap; 0: none.
    #[arg(long, env = "DEMO_SERVICE_MEMORY_LEAK", default_value = "0", value_parser = byte_rate, help_heading = "Faults")]
    pub memory_leak: u64,

    /// The most memory the memory_leak fault holds.
    #[arg(long, env = "DEMO_SERVICE_MEMORY_LEAK_CAP", default_value = "256MiB", value_parser = byte_size, help_heading = "Faults")]
    pub memory_leak_cap: u64,

    /// Fault: each request to / spends this much CPU time, e.g. 20ms.
    #[arg(long, env = "DEMO_SERVICE_CPU_BURN", default_value = "0s", value_parser = duration, help_heading = "Faults")]
    pub cpu_burn: Duration,

    /// The most CPU time the cpu_burn fault spends on one request.
    #[arg(long, env = "DEMO_SERVICE_MAX_CPU_BURN", default_value = "1s", value_parser = duration, help_heading = "Faults")]
    pub max_cpu_burn: Duration,

    /// Fault: each call of / to its dependency (database) takes this long.
    #[arg(long, env = "DEMO_SERVICE_DEPENDENCY_LATENCY", default_value = "0s", value_parser = duration, help_heading = "Faults")]
    pub dependency_latency: Duration,

    /// Fault: the probability that a call to the dependency fails, and / answers 503.
    #[arg(long, env = "DEMO_SERVICE_DEPENDENCY_ERROR_RATE", default_value_t = 0.0, value_parser = probability, allow_negative_numbers = true, help_heading = "Faults")]
    pub dependency_error_rate: f64,

    /// Fault: the dependency is down: every request to / answers 503.
    #[arg(long, env = "DEMO_SERVICE_DEPENDENCY_DOWN", help_heading = "Faults")]
    pub dependency_down: bool,

    /// Fault: the exposition waits this long before it answers (past Prometheus'
    /// scrape_timeout, the scrape fails).
    #[arg(long, env = "DEMO_SERVICE_METRICS_DELAY", default_value = "0s", value_parser = duration, help_heading = "Faults")]
    pub metrics_delay: Duration,

    /// Fault: leave this family out of the exposition, e.g. request_duration_seconds.
    #[arg(long, env = "DEMO_SERVICE_HIDE_FAMILY", help_heading = "Faults")]
    pub hide_family: Option<String>,

    /// Fault: add this many series with a per-user label, up to --max-cardinality.
    #[arg(
        long,
        env = "DEMO_SERVICE_CARDINALITY",
        default_value_t = 0,
        help_heading = "Faults"
    )]
    pub cardinality: u32,

    /// The most series the cardinality fault adds.
    #[arg(
        long,
        env = "DEMO_SERVICE_MAX_CARDINALITY",
        default_value_t = 10_000,
        help_heading = "Faults"
    )]
    pub max_cardinality: u32,

    /// Play this incident timeline (a TOML file, e.g. incidents/outage-every-10m.toml): its
    /// steps turn the knobs at their times, by themselves. GET /admin/incidents shows it.
    #[arg(long, env = "DEMO_SERVICE_INCIDENTS", help_heading = "Faults")]
    pub incidents: Option<String>,
}

impl BehaviourArgs {
    /// The incident timeline to play, read and checked against the knobs at start; none when
    /// --incidents is unset or empty.
    pub fn timeline(&self) -> Result<Option<crate::behaviour::timeline::Timeline>, String> {
        self.incidents
            .as_deref()
            .filter(|path| !path.trim().is_empty())
            .map(|path| {
                crate::behaviour::timeline::Timeline::read(
                    std::path::Path::new(path.trim()),
                    &crate::behaviour::knobs::Knobs::from_args(self),
                    &self.limits(),
                )
            })
            .transpose()
    }

    /// The bounds of the faults.
    pub fn limits(&self) -> crate::behaviour::faults::Limits {
        crate::behaviour::faults::Limits {
            memory_leak_cap: self.memory_leak_cap,
            max_cpu_burn: self.max_cpu_burn,
            max_cardinality: self.max_cardinality,
            max_fault_delay: self.max_fault_delay,
        }
    }

    /// Checks what no single value can: the ranges, and the faults against their bounds.
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
        // The faults' knobs say what is wrong in the admin API's words; here, in the flags'.
        crate::behaviour::knobs::Knobs::from_args(self)
            .check(&self.limits())
            .map(drop)
            .map_err(|e| {
                // "cpu_burn 5s is above ..." -> "--cpu-burn 5s is above ...".
                let name = e.split([' ', ':']).next().unwrap_or_default();
                format!("--{}{}", name.replace('_', "-"), &e[name.len()..])
            })
    }
}

/// `--seed`: a whole number, or nothing at all, so that `DEMO_SERVICE_SEED=` (empty, as in
/// .env.example) means no seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(pub Option<u64>);

fn seed(s: &str) -> Result<Seed, String> {
    match s.trim() {
        "" => Ok(Seed(None)),
        n => n.parse().map(|n| Seed(Some(n))).map_err(|_| {
            format!(
                "{s:?} is not a seed: give a whole number from 0 to {}",
                u64::MAX
            )
        }),
    }
}

/// An admin token: long enough not to be guessed, without spaces; empty means none (so that
/// `DEMO_SERVICE_ADMIN_TOKEN=` turns the API off).
fn admin_token(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Ok(String::new())
    } else if s.chars().count() < 16 {
        Err("must be at least 16 characters".to_owned())
    } else if s.chars().any(char::is_whitespace) {
        Err("must not contain spaces".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

fn byte_rate(s: &str) -> Result<u64, String> {
    crate::behaviour::faults::byte_rate(s)
}

fn byte_size(s: &str) -> Result<u64, String> {
    crate::behaviour::faults::byte_size(s)
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
            Command::Serve(serve) => serve.behaviour.validate().map(|()| serve),
            other => Err(format!("not serve: {other:?}")),
        }
    }

    #[test]
    fn defaults_are_the_seeds() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.app_addr, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(s.metrics_addr, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(
            (s.behaviour.min_delay, s.behaviour.max_delay),
            (Duration::ZERO, Duration::from_secs(5))
        );
        assert_eq!(s.behaviour.error_rate, 0.2);
        assert_eq!((s.behaviour.users_min, s.behaviour.users_max), (10, 50));
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
        assert_eq!(s.behaviour.error_rate, 0.5);
        let s = parse(&["--error-rate", "0.5"]).unwrap();
        assert_eq!(s.behaviour.error_rate, 0.5);
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

    fn load(args: &[&str]) -> Result<crate::load::Plan, String> {
        let all = ["demo-service", "load"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .command()
        {
            Command::Load(load) => load.plan(),
            other => Err(format!("not load: {other:?}")),
        }
    }

    #[test]
    fn load_defaults_to_ten_a_second_of_the_seeds_two_paths() {
        use crate::load::{Mode, Shape};
        let plan = load(&[]).unwrap();
        assert!(matches!(plan.mode, Mode::Open(Shape::Constant { rate }) if rate == 10.0));
        assert_eq!(plan.targets, ["http://127.0.0.1:5000/"]);
        let plan = load(&["--target", "http://a:5000", "--target", "http://b:5001"]).unwrap();
        assert_eq!(plan.targets, ["http://a:5000/", "http://b:5001/"]);
        assert_eq!(plan.mix.to_string(), "/=1,/simulate_error=1");
        assert_eq!((plan.duration, plan.requests), (None, None));
        let plan = load(&["--concurrency", "4", "--requests", "100"]).unwrap();
        assert!(matches!(plan.mode, Mode::Closed(4)));
        let plan = load(&["--rate", "20", "--shape", "bursts"]).unwrap();
        assert!(
            matches!(plan.mode, Mode::Open(Shape::Bursts { burst_rate, .. }) if burst_rate == 100.0)
        );
        let plan = load(&["--stages", "30s:10,2m:50,30s:0"]).unwrap();
        assert!(matches!(plan.mode, Mode::Open(Shape::Stages(_))));
        assert_eq!(plan.duration, Some(Duration::from_secs(180)));
        let plan = load(&["--threshold", "p99<2s", "--threshold", "errors<5%"]).unwrap();
        let thresholds: Vec<String> = plan.thresholds.iter().map(|t| t.to_string()).collect();
        assert_eq!(thresholds, ["p99<2s", "errors<5%"]);
    }

    #[test]
    fn bad_load_arguments_say_what_is_wrong() {
        for (args, error) in [
            (&["--rate", "0"][..], "a rate of 0 sends nothing"),
            (&["--rate", "1e-9"], "below the lowest rate"),
            (
                &["--rate", "-5"],
                "-5 is not a rate: must be a positive number",
            ),
            (&["--rate=-5"], "is not a rate"),
            (&["--ramp-from", "-1"], "-1 is not a rate"),
            (
                &["--rate", "5", "--concurrency", "2"],
                "cannot be used with",
            ),
            (&["--concurrency", "0"], "0 is not in 1.."),
            (
                &["--concurrency", "2", "--shape", "sine"],
                "--shape sine needs an open loop",
            ),
            (
                &["--target", "https://example.org"],
                "https is not supported",
            ),
            (&["--target", "127.0.0.1:5000"], "expected http://HOST:PORT"),
            (
                &["--target", "http://127.0.0.1:5000/simulate_error"],
                "give the paths with --mix",
            ),
            (&["--mix", "/=often"], "is not a number"),
            (
                &["--shape", "bursts", "--burst-length", "2m"],
                "must be shorter than --period",
            ),
            (&["--timeout", "0s"], "must be above zero"),
            (
                &["--stages", "30s:10", "--shape", "sine"],
                "the argument '--stages <STAGES>' cannot be used with '--shape <SHAPE>'",
            ),
            (
                &["--stages", "30s:10", "--rate", "5"],
                "cannot be used with '--rate <RATE>'",
            ),
            (
                &["--stages", "30s:10", "--duration", "1m"],
                "cannot be used with '--duration <DURATION>'",
            ),
            (&["--stages", "30s"], "expected LENGTH:RATE"),
            (
                &["--threshold", "p99<2"],
                "has no unit: give e.g. 2s or 300ms",
            ),
            (&["--threshold", "errors<5"], "give errors in percent"),
        ] {
            let e = load(args).unwrap_err();
            assert!(e.contains(error), "{args:?}: {e}");
        }
    }

    #[test]
    fn listen_addresses_take_an_ip_or_a_host_name_with_a_port() {
        assert_eq!(
            listen_addr("0.0.0.0:5000"),
            Ok("0.0.0.0:5000".parse().unwrap())
        );
        assert_eq!(listen_addr("[::]:5000"), Ok("[::]:5000".parse().unwrap()));
        assert_eq!(
            listen_addr("localhost:5000"),
            Ok("127.0.0.1:5000".parse().unwrap())
        );
        for (bad, error) in [
            (
                "localhost",
                "is not an address and a port: give IP:PORT, e.g. 0.0.0.0:5000",
            ),
            (":5000", "is not an address and a port"),
            ("localhost:http", "is not an address and a port"),
            ("127.0.0.1:70000", "is not an address and a port"),
            ("nowhere.invalid:5000", "cannot resolve \"nowhere.invalid\""),
        ] {
            let e = listen_addr(bad).unwrap_err();
            assert!(e.contains(error), "{bad}: {e}");
        }
    }

    #[test]
    fn usage_errors_are_one_line_with_the_choices_and_where_to_read_more() {
        let line = |args: &[&str]| {
            let e =
                Cli::try_parse_from(std::iter::once("demo-service").chain(args.iter().copied()))
                    .unwrap_err();
            usage_line(&e)
        };
        assert_eq!(
            line(&["load", "--shape", "square"]),
            "error: invalid value 'square' for '--shape <SHAPE>' (one of: constant, sine, bursts, ramp)"
        );
        assert_eq!(
            line(&["load", "--nope"]),
            "error: unexpected argument '--nope' found; see 'demo-service load --help'"
        );
        assert_eq!(
            line(&["--max-dleay", "1s"]),
            "error: unexpected argument '--max-dleay' found (did you mean '--max-delay'?); see 'demo-service --help'"
        );
        assert_eq!(
            line(&["lod"]),
            "error: unrecognized subcommand 'lod' (did you mean 'load'?); see 'demo-service --help'"
        );
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
