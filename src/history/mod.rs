//! `demo-service history`: days of the service's own series, as Prometheus would have
//! scraped them, for Prometheus' own tools to load (docs/history.md).
//!
//! The series come from the service's own code, run against a made-up clock ([`simulate`]),
//! and are written as OpenMetrics, one file per block of the TSDB ([`openmetrics`]), beside the
//! recording rules sorted into the levels that backfilling them needs ([`rules`]) and a
//! `history.env` that tells `scripts/history-load` what to load and how to tell it is there.
//!
//! Where the history ends: now, unless `--prometheus` names a Prometheus that has scraped the
//! live service already (then before its first sample: the two never overlap), or that holds a
//! history already (then before that one begins: a history asked for twice adds only the days
//! the first did not cover, and nothing when it covered them all).

pub mod openmetrics;
pub mod rules;
pub mod simulate;

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::behaviour::knobs::Knobs;
use crate::config::HistoryArgs;
use crate::scenario::stack::{fetch_json, percent_encode};
use openmetrics::{Target, Window};
use simulate::{Model, Route, Scrape};

/// The job every history's series carry: the seed's.
pub const JOB: &str = "flask_app";

/// The span of the blocks promtool writes (`--max-block-duration`): one of the TSDB's block
/// ranges (2h × 3^n), so that each file is one block. Fewer, larger files load faster; each
/// file's samples are held in memory while it is written.
const BLOCK: i64 = 18 * 3600;

/// What the history wrote, as the command says it and `history.json` keeps it.
#[derive(Debug)]
pub struct Written {
    pub start: i64,
    /// The scrape interval: the samples are `start`, `start + step`, ..., `end`.
    pub step: i64,
    pub end: i64,
    pub files: usize,
    pub bytes: u64,
    pub samples: u64,
    /// Requests shown by the scrapes of each day, the last day first: day k is the scrapes
    /// in (end - (k+1) days, end - k days].
    pub requests_by_day: Vec<u64>,
    pub levels: usize,
    pub took: Duration,
    /// Why nothing was written, when nothing was.
    pub nothing: Option<String>,
}

impl Written {
    pub fn say(&self, args: &HistoryArgs) -> String {
        if let Some(why) = &self.nothing {
            return why.clone();
        }
        let total: u64 = self.requests_by_day.iter().sum();
        format!(
            "wrote {} of job {JOB}, instance {} ({} to {}): {} requests, {} samples in {} files ({}), recording rules in {} levels, to {}, in {:.1}s",
            days(self.end - self.start + self.step),
            args.instance,
            rfc3339(self.start),
            rfc3339(self.end),
            total,
            self.samples,
            self.files,
            bytesize::ByteSize(self.bytes).display().si(),
            self.levels,
            args.out.display(),
            self.took.as_secs_f64()
        )
    }
}

fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).to_string()
}

fn days(seconds: i64) -> String {
    let days = seconds as f64 / 86_400.0;
    if (days - days.round()).abs() < 1e-9 {
        format!("{} days", days.round())
    } else {
        format!("{days:.2} days")
    }
}

/// The parts of Prometheus' configuration a history needs.
#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default)]
    global: Global,
    #[serde(default)]
    rule_files: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Global {
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
    evaluation_interval: Option<String>,
}

/// A Prometheus duration (`15s`, `1m`, `1h30m`; `d`, `w`, `y` too), in whole seconds.
fn prometheus_duration(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration: {e}"))?;
    Ok(d.as_secs() as i64)
}

/// Writes the history that `args` asks for.
pub async fn run(args: &HistoryArgs) -> anyhow::Result<Written> {
    let began = Instant::now();
    // Everything is checked before anything is written.
    let text = fs::read_to_string(&args.config).with_context(|| {
        format!(
            "cannot read Prometheus' configuration {} (give it with --config)",
            args.config.display()
        )
    })?;
    let config: Config = serde_saphyr::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            args.config.display(),
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    let step = prometheus_duration(config.global.scrape_interval.as_deref().unwrap_or("1m"))
        .map_err(anyhow::Error::msg)?;
    let timeout = prometheus_duration(config.global.scrape_timeout.as_deref().unwrap_or("10s"))
        .map_err(anyhow::Error::msg)?;
    let evaluation = config
        .global
        .evaluation_interval
        .as_deref()
        .unwrap_or("1m")
        .trim()
        .to_owned();
    let levels =
        rules::levels(&rules::files(&args.config, &config.rule_files).map_err(anyhow::Error::msg)?)
            .map_err(anyhow::Error::msg)?;
    args.behaviour.validate().map_err(anyhow::Error::msg)?;
    let mut mix = Vec::new();
    for path in args.mix.paths() {
        mix.push(match path {
            "/" => Route::Root,
            "/simulate_error" => Route::SimulateError,
            other => bail!(
                "a history simulates the seed's two routes, / and /simulate_error: --mix names {other}"
            ),
        });
    }
    let model = Model {
        knobs: Knobs::from_args(&args.behaviour),
        limits: args.behaviour.limits(),
        timeline: args.behaviour.timeline().map_err(anyhow::Error::msg)?,
        seed: args.behaviour.seed.and_then(|s| s.0).unwrap_or(0),
        rate: args.rate,
        mix,
        pick: args.mix.clone(),
        step,
        scrape_timeout: Duration::from_secs(timeout.max(0) as u64),
    };
    model.check().map_err(anyhow::Error::msg)?;

    // Where it ends, and begins.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // The last sample on the grid before `t`.
    let before = |t: i64| (t - 1).div_euclid(step) * step;
    let mut end = before(now + 1);
    let wanted = i64::from(args.days) * 86_400;
    let mut start = end - wanted + step;
    let history_up = format!("up{{job=\"{JOB}\",instance=\"{}\"}}", args.instance);
    if let Some(url) = &args.prometheus {
        let prometheus = Prometheus::new(url);
        prometheus.check_retention(args.days).await?;
        let live = format!("up{{job=\"{JOB}\",instance!=\"{}\"}}", args.instance);
        if let Some(first) = prometheus.earliest(&live, now).await? {
            end = end.min(before(first));
            start = end - wanted + step;
        }
        if let Some(first) = prometheus.earliest(&history_up, now).await? {
            if first <= start {
                let why = format!(
                    "the history is there already, from {}: nothing to add, nothing written",
                    rfc3339(first)
                );
                prepare(&args.out)?;
                write_file(
                    &args.out.join("history.env"),
                    format!("NOTHING='{why}'\n").as_bytes(),
                )?;
                return Ok(Written {
                    nothing: Some(why),
                    ..Written::empty(began)
                });
            }
            // Only what the history there does not cover yet: the days before it.
            end = end.min(before(first));
        }
    }

    // The scrapes, a block's window at a time.
    prepare(&args.out)?;
    let target = Target::new(JOB, &args.instance);
    let mut window = Window::default();
    let mut window_start = start.div_euclid(BLOCK) * BLOCK;
    let mut written = Written::empty(began);
    written.start = start;
    written.end = end;
    written.step = step;
    written.requests_by_day = vec![0; ((end - start) / 86_400 + 1) as usize];
    let mut failure = None;
    model.run(start, end, |scrape, requests| {
        if failure.is_some() {
            return;
        }
        let at = match scrape {
            Scrape::Answered { at, .. } | Scrape::TimedOut { at } => at,
        };
        if at >= window_start + BLOCK {
            if let Err(e) = flush(&args.out, window_start, &window, &mut written) {
                failure = Some(e);
                return;
            }
            window = Window::default();
            window_start = at.div_euclid(BLOCK) * BLOCK;
        }
        match scrape {
            Scrape::Answered {
                at,
                started,
                exposition,
            } => window.scrape(exposition, &target, at, started),
            Scrape::TimedOut { at } => window.failed_scrape(&target, at),
        }
        let day = ((end - at) / 86_400) as usize;
        if let Some(n) = written.requests_by_day.get_mut(day) {
            *n += requests;
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    flush(&args.out, window_start, &window, &mut written)?;

    // The rules, by level, and what the loader needs.
    for (i, level) in levels.iter().enumerate() {
        write_file(
            &args.out.join(format!("rules-{}.yml", i + 1)),
            level.to_yaml().as_bytes(),
        )?;
    }
    written.levels = levels.len();
    let probe = |selector: &str| percent_encode(&format!("count({selector})"));
    let mut env = format!(
        "# Written by `demo-service history`: what scripts/history-load loads.\n\
         START={start}\nEND={end}\nDAYS={}\nSTEP={step}s\nEVALUATION={evaluation}\n\
         BLOCK={}h\nLEVELS={}\nINSTANCE='{}'\nPROBE_0='{}'\n",
        args.days,
        BLOCK / 3600,
        levels.len(),
        args.instance,
        probe(&history_up),
    );
    for (i, level) in levels.iter().enumerate() {
        let names: Vec<&str> = level.records().collect();
        let selector = format!("{{__name__=~\"{}\"}}", names.join("|"));
        env.push_str(&format!("PROBE_{}='{}'\n", i + 1, probe(&selector)));
    }
    write_file(&args.out.join("history.env"), env.as_bytes())?;
    let report = json!({
        "start": start,
        "end": end,
        "job": JOB,
        "instance": args.instance,
        "step_seconds": step,
        "samples": written.samples,
        "requests_by_day": written.requests_by_day,
    });
    write_file(
        &args.out.join("history.json"),
        report.to_string().as_bytes(),
    )?;
    written.took = began.elapsed();
    Ok(written)
}

impl Written {
    fn empty(began: Instant) -> Self {
        Self {
            start: 0,
            step: 0,
            end: 0,
            files: 0,
            bytes: 0,
            samples: 0,
            requests_by_day: Vec::new(),
            levels: 0,
            took: began.elapsed(),
            nothing: None,
        }
    }
}

/// Makes `out` ready: there, writable, without the files of an earlier history.
fn prepare(out: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let probe = out.join(".history-probe");
    fs::write(&probe, b"").with_context(|| format!("cannot write to {}", out.display()))?;
    let _ = fs::remove_file(&probe);
    for entry in fs::read_dir(out)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with("history-") && name.ends_with(".om"))
            || (name.starts_with("rules-") && name.ends_with(".yml"))
            || name == "history.env"
            || name == "history.json";
        if ours {
            fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Writes one window's file, whole or not at all.
fn flush(out: &Path, start: i64, window: &Window, written: &mut Written) -> anyhow::Result<()> {
    if window.samples() == 0 {
        return Ok(());
    }
    let path = out.join(format!("history-{start}.om"));
    let partial = path.with_extension("om.partial");
    let file = fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    window
        .write(&mut BufWriter::with_capacity(1 << 20, file))
        .with_context(|| format!("cannot write {}", partial.display()))?;
    fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    written.files += 1;
    written.samples += window.samples();
    written.bytes += fs::metadata(&path).map_or(0, |m| m.len());
    Ok(())
}

fn write_file(path: &PathBuf, contents: &[u8]) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// The Prometheus a history is for.
struct Prometheus {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Prometheus {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A GET of Prometheus' API; 30 s for an answer, as its subqueries over months may take.
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = hyper::Request::get(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("{}{path}", self.base))?;
        fetch_json(&self.http, request, Duration::from_secs(30), || {
            format!(
                "cannot reach Prometheus at {}: is the stack running? (or leave --prometheus out, and the history ends now)",
                self.base
            )
        })
        .await
    }

    async fn scalar(&self, expr: &str, at: i64) -> anyhow::Result<Option<f64>> {
        let body = self
            .get(&format!(
                "/api/v1/query?query={}&time={at}",
                percent_encode(expr)
            ))
            .await?;
        Ok(body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok()))
    }

    /// The time of the first sample of `selector`, to the second: found by the hour over
    /// 400 days, then by the second within the two hours that end an hour after it. A
    /// subquery's steps fall on the hour, so one younger than the last hour has no step: the
    /// coarse search finds nothing, and the fine one looks at the last two hours.
    async fn earliest(&self, selector: &str, now: i64) -> anyhow::Result<Option<i64>> {
        let coarse = format!("min(min_over_time(timestamp({selector})[400d:1h]))");
        let at = match self.scalar(&coarse, now).await? {
            Some(hour) => (hour as i64 + 3600).min(now),
            None => now,
        };
        let fine = format!("min(min_over_time(timestamp({selector})[2h:1s]))");
        Ok(self.scalar(&fine, at).await?.map(|t| t.floor() as i64))
    }

    /// Refuses a history that Prometheus' retention would delete.
    async fn check_retention(&self, days: u32) -> anyhow::Result<()> {
        let flags = self.get("/api/v1/status/flags").await?;
        let Some(retention) = flags["data"]["storage.tsdb.retention.time"].as_str() else {
            return Ok(());
        };
        let Ok(seconds) = prometheus_duration(retention) else {
            return Ok(());
        };
        if seconds > 0 && seconds < (i64::from(days) + 1) * 86_400 {
            bail!(
                "Prometheus keeps {retention} of data (--storage.tsdb.retention.time): it would delete most of a {days}-day history at its next compaction; set PROMETHEUS_RETENTION={}d or more and restart it",
                days + 1
            );
        }
        Ok(())
    }
}
