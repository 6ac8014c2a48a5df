//! The compose stack, run for real: the project's own docker-compose.yml, unmodified, under a
//! real Docker engine and Docker Compose v2, every service but Grafana (whose image cannot be
//! had here). One override, [`STANDIN`]: where the prom/prometheus image is a stand-in older
//! than 3.8 (Debian's 2.42 here), its Prometheus turns native histograms on by the flag that
//! version takes rather than by the keys it rejects. It needs the engine, so `cargo test` leaves it out; `scripts/test-compose` starts
//! the engine and the stand-in images, then runs it:
//!
//!   cargo test --test api compose -- --ignored --nocapture
//!
//! One scenario, in the order a learner meets the stack, with the real rules and intervals
//! (nothing time-compressed). Its own project name and loopback address, so that it cannot
//! clash with a developer's own compose run or the native stack; everything it made, volumes
//! included, goes when it ends, passed or failed.

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::alerts::notified;
use crate::helpers::{query, stdout_of, write_report};

const PROJECT: &str = "demo-service-compose-test";
const ADDR: &str = "127.0.0.3";
/// The override for a Prometheus before 3.8 under the pinned tag (see the file): with the
/// project's file, what `COMPOSE_FILE` names for every `docker compose` of the tests.
pub const STANDIN: &str = "docker-compose.yml:tests/compose/prometheus-before-3.8.yml";

/// Every service that can run here: all but Grafana.
const SERVICES: [&str; 4] = ["app", "prometheus", "alertmanager", "receiver"];

/// `docker compose` on the project's file, with a project name, an env file and a published
/// address of its own. Takes the whole project down, volumes included, when dropped.
pub struct Compose {
    project: String,
    addr: String,
    env_file: tempfile::NamedTempFile,
    report: String,
    started: Instant,
}

impl Compose {
    fn new(env: &str) -> Compose {
        Self::named(PROJECT, ADDR, env)
    }

    /// A project of its own, published on `addr`, with `env` as its .env.
    pub fn named(project: &str, addr: &str, env: &str) -> Compose {
        let compose = Compose {
            project: project.to_owned(),
            addr: addr.to_owned(),
            env_file: env_file(env),
            report: String::new(),
            started: Instant::now(),
        };
        // What a killed earlier run may have left.
        compose.down(true);
        compose
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker");
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["compose", "--project-name", &self.project, "--env-file"])
            .arg(self.env_file.path())
            .args(args)
            // Only what the test sets: a developer's exports must not count.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
            )
            .env("BIND_ADDRESS", &self.addr)
            .env("COMPOSE_FILE", STANDIN);
        command
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// Runs `docker compose ARGS`; fails the test unless it succeeds. Returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        stdout_of(&mut self.command(args))
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `up -d --wait` of `services`, with the given env.
    fn up(&self, services: &[&str]) -> Output {
        let mut args = vec!["up", "-d", "--wait", "--wait-timeout", "120"];
        args.extend_from_slice(services);
        self.output(&args)
    }

    fn down(&self, volumes: bool) {
        let mut args = vec![
            "--profile",
            "*",
            "down",
            "--remove-orphans",
            "--timeout",
            "20",
        ];
        if volumes {
            args.push("--volumes");
        }
        let _ = self.output(&args);
    }

    /// The ids of the containers of `service` (all of the project's when empty), stopped ones
    /// included.
    fn containers(&self, service: &str) -> Vec<String> {
        let mut args = vec!["--profile", "*", "ps", "--all", "--quiet"];
        if !service.is_empty() {
            args.push(service);
        }
        self.run(&args).lines().map(str::to_owned).collect()
    }

    pub fn say(&mut self, line: &str) {
        let line = format!("[{:>4} s] {line}", self.started.elapsed().as_secs());
        eprintln!("{}: {line}", self.project);
        self.report.push_str(&line);
        self.report.push('\n');
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("compose test failed; the project's state and logs:");
            let _ = self.command(&["--profile", "*", "ps", "--all"]).status();
            let _ = self
                .command(&["--profile", "*", "logs", "--tail", "20"])
                .status();
        }
        self.down(true);
        // The game days' projects report through their test (game-days-compose).
        if self.project == PROJECT {
            write_report("compose.txt", &self.report);
        }
    }
}

fn env_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn docker(args: &[&str]) -> String {
    stdout_of(Command::new("docker").args(args))
}

fn url(port: u16, path: &str) -> String {
    format!("http://{ADDR}:{port}{path}")
}

fn prometheus() -> String {
    url(9090, "")
}

/// Polls `check` every half second until it returns `Some`; fails with `what` after `within`.
pub async fn poll<T, F: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls the instant query `expr` against the Prometheus at `base` until it answers something;
/// fails with `what` after `within`.
pub async fn poll_answers(what: &str, within: Duration, base: &str, expr: &str) {
    poll(what, within, || async {
        (!query(base, expr, None).await.is_empty()).then_some(())
    })
    .await
}

async fn status_of(url: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Waits until the app answers on BIND_ADDRESS:5000 and its metrics on :8000.
async fn app_answers_on_its_ports(why: &str) {
    for (port, path) in [(5000, "/simulate_error"), (8000, "/metrics")] {
        let url = url(port, path);
        poll(
            &format!("{url} after {why}"),
            Duration::from_secs(60),
            || async { status_of(&url).await.filter(|s| [200, 500].contains(s)) },
        )
        .await;
    }
}

/// The app's own samples, from its metrics port.
async fn app_samples() -> std::collections::BTreeMap<String, f64> {
    crate::helpers::scrape(&url(8000, "/metrics")).await
}

/// Every request the app has answered: http_requests_total summed over its series.
async fn requests_answered() -> f64 {
    app_samples()
        .await
        .iter()
        .filter(|(series, _)| series.starts_with("http_requests_total{"))
        .map(|(_, v)| v)
        .sum()
}

/// A Prometheus of the pinned image on the seed's own prometheus.yml, verbatim, in the
/// compose project's network; removed when dropped.
struct SeedPrometheus {
    name: String,
    _config: tempfile::TempDir,
}

impl SeedPrometheus {
    fn start(compose: &Compose) -> SeedPrometheus {
        let config = tempfile::tempdir().unwrap();
        let file = config.path().join("prometheus.yml");
        std::fs::write(&file, crate::helpers::seed_block("yaml", "flask_app:8000")).unwrap();
        // Readable by Prometheus' user, nobody.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(config.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let name = format!("{}-seed-prometheus", compose.project());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let image = pinned_image("prometheus");
        stdout_of(
            Command::new("docker")
                .args([
                    "run",
                    "-d",
                    "--rm",
                    "--name",
                    &name,
                    "--user",
                    "65534:65534",
                ])
                .args(["--network", &format!("{}_default", compose.project())])
                .args(["--tmpfs", "/prometheus-seed"])
                .arg("-v")
                .arg(format!("{}:/seed:ro", config.path().display()))
                .arg(&image)
                .args([
                    "--config.file=/seed/prometheus.yml",
                    "--storage.tsdb.path=/prometheus-seed",
                ]),
        );
        SeedPrometheus {
            name,
            _config: config,
        }
    }

    /// The value of `up{job="flask_app", instance="flask_app:8000"}`, once there is one.
    fn up(&self) -> Option<String> {
        let out = Command::new("docker")
            .args(["exec", &self.name, "wget", "-q", "-O", "-"])
            .arg("http://localhost:9090/api/v1/query?query=up")
            .output()
            .ok()?;
        let body: Value = serde_json::from_slice(&out.stdout).ok()?;
        body["data"]["result"]
            .as_array()?
            .iter()
            .find(|s| {
                s["metric"]["job"] == "flask_app" && s["metric"]["instance"] == "flask_app:8000"
            })
            .and_then(|s| s["value"][1].as_str().map(str::to_owned))
    }
}

impl Drop for SeedPrometheus {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// The image docker-compose.yml pins for `service`.
fn pinned_image(service: &str) -> String {
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    file.split(&format!("\n  {service}:\n"))
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|l| l.trim().strip_prefix("image: ")))
        .unwrap_or_else(|| panic!("docker-compose.yml pins no image for {service}"))
        .to_owned()
}

async fn targets_up() -> Vec<String> {
    let result = query(&prometheus(), r#"up{job="flask_app"} == 1"#, None).await;
    let mut instances: Vec<String> = result
        .iter()
        .map(|s| s["metric"]["instance"].as_str().unwrap().to_owned())
        .collect();
    instances.sort();
    instances
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The numbers in the load generator's summary line `requests   N sent, M answered, ...`.
fn load_summary(logs: &str) -> (f64, f64) {
    let line = logs
        .lines()
        .rev()
        .find(|l| l.starts_with("requests ") && l.contains(" sent, "))
        .unwrap_or_else(|| panic!("no summary in the load generator's output:\n{logs}"));
    let numbers: Vec<f64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}

/// What `docker inspect` says of a container's hardening; `Err` names what is missing.
fn hardening(inspect: &Value) -> Result<(), String> {
    let name = inspect["Name"].as_str().unwrap_or("?");
    let host = &inspect["HostConfig"];
    let user = inspect["Config"]["User"].as_str().unwrap_or("");
    let mut missing = Vec::new();
    if user.is_empty() || user == "root" || user.starts_with("0:") || user == "0" {
        missing.push(format!("runs as user {user:?}"));
    }
    if host["ReadonlyRootfs"] != true {
        missing.push("root filesystem is writable".to_owned());
    }
    if host["CapDrop"] != serde_json::json!(["ALL"]) {
        missing.push(format!("CapDrop is {}", host["CapDrop"]));
    }
    let opts = host["SecurityOpt"].as_array().cloned().unwrap_or_default();
    if !opts.iter().any(|o| o == "no-new-privileges:true") {
        missing.push(format!("SecurityOpt is {opts:?}"));
    }
    for (port, bindings) in host["PortBindings"].as_object().into_iter().flatten() {
        for binding in bindings.as_array().into_iter().flatten() {
            if binding["HostIp"] != ADDR {
                missing.push(format!("{port} published on {}", binding["HostIp"]));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", missing.join("; ")))
    }
}

/// How long after `down` and `up` the receiver must have no DemoServiceTargetMissing: the
/// lingering address of the old run would have fired it about 6.5 minutes after (5 minutes of
/// lookback, a minute of `for:`, an evaluation and Alertmanager's `group_wait`).
const RESTART_WATCH: Duration = Duration::from_secs(8 * 60);

/// The documentation's compose path, run by `scripts/check-docs --compose` beside the test's
/// own stack: a project and an address of its own, so that the two do not meet.
struct DocsWalk {
    child: std::process::Child,
    log: std::path::PathBuf,
}

const WALK_PROJECT: &str = "demo-service-compose-test-docs";
const WALK_ADDR: &str = "127.0.0.4";

impl DocsWalk {
    fn start() -> DocsWalk {
        let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/reports");
        std::fs::create_dir_all(&log).unwrap();
        let log = log.join("docs-compose.txt");
        let child = Command::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-docs"),
        )
        .arg("--compose")
        .env("COMPOSE_PROJECT_NAME", WALK_PROJECT)
        .env("BIND_ADDRESS", WALK_ADDR)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .unwrap();
        DocsWalk { child, log }
    }

    /// Waits for the walk to end; its report, and whether it passed.
    fn finish(mut self) -> (bool, String) {
        let passed = self.child.wait().unwrap().success();
        (
            passed,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

impl Drop for DocsWalk {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = Command::new("docker")
                .args(["compose", "--project-name", WALK_PROJECT, "--profile", "*"])
                .args(["down", "--volumes", "--remove-orphans", "--timeout", "5"])
                .output();
        }
    }
}

/// The flask_app targets' request counts by instance, as Prometheus last scraped them.
async fn requests_by_instance() -> std::collections::BTreeMap<String, f64> {
    query(
        &prometheus(),
        r#"sum by (instance) (http_requests_total{job="flask_app"})"#,
        None,
    )
    .await
    .iter()
    .map(|s| {
        (
            s["metric"]["instance"].as_str().unwrap().to_owned(),
            s["value"][1].as_str().unwrap().parse().unwrap(),
        )
    })
    .collect()
}

#[tokio::test]
#[ignore = "needs a Docker engine and Compose v2: scripts/test-compose runs it"]
async fn the_compose_stack_works_as_the_docs_say() {
    // Twenty requests a second from the load generator, so that the dashboard fills quickly.
    let mut compose = Compose::new("LOAD_RATE=20\n");

    // --- up, healthy --------------------------------------------------------------------
    let took = Instant::now();
    let mut args = vec!["up", "-d", "--build", "--wait", "--wait-timeout", "300"];
    args.extend_from_slice(&SERVICES);
    compose.run(&args);
    compose.say(&format!(
        "up -d --build --wait {}: {:.0} s",
        SERVICES.join(" "),
        took.elapsed().as_secs_f64()
    ));
    let ps = compose.run(&["ps", "--format", "{{.Service}}\t{{.Status}}\t{{.Ports}}"]);
    for line in ps.lines() {
        compose.say(&format!("  {line}"));
    }
    assert_eq!(ps.matches("(healthy)").count(), SERVICES.len(), "{ps}");

    // The documentation's compose path, beside this one, from now on: the image is built.
    let walk = DocsWalk::start();
    compose.say(&format!(
        "scripts/check-docs --compose started: the docs' compose blocks, in order, against a \
         stack of their own ({WALK_PROJECT}, on {WALK_ADDR})"
    ));

    // --- Prometheus finds the app by DNS ---------------------------------------------------
    let up = poll(
        "up{job=\"flask_app\"} == 1",
        Duration::from_secs(60),
        || async { Some(targets_up().await).filter(|t| t.len() == 1) },
    )
    .await;
    compose.say(&format!(
        "Prometheus scrapes the app it found by DNS: {up:?}"
    ));
    let old_instance = up[0].clone();

    // --- the seed's own prometheus.yml, verbatim, scrapes the app by the seed's name ------------
    let seed = SeedPrometheus::start(&compose);
    let scraped = poll(
        "the seed's prometheus.yml scraping flask_app:8000",
        Duration::from_secs(60),
        || async { seed.up().filter(|up| up == "1") },
    )
    .await;
    drop(seed);
    compose.say(&format!(
        "a Prometheus on the seed's prometheus.yml, verbatim, in the compose network: \
         up{{job=\"flask_app\", instance=\"flask_app:8000\"}} = {scraped}"
    ));

    // --- a few requests by hand -------------------------------------------------------------
    let client = reqwest::Client::new();
    for path in ["/", "/simulate_error", "/simulate_error", "/nope"] {
        client.get(url(5000, path)).send().await.unwrap();
    }

    // --- stop with a slow request in flight: it is answered, the exit code is 0 ------------
    let slow = tokio::spawn(async move {
        let response = reqwest::get(url(5000, "/delay/3s")).await.unwrap();
        response.status().as_u16()
    });
    poll(
        "the slow request in flight",
        Duration::from_secs(10),
        || async {
            let samples = app_samples().await;
            let in_flight: f64 = samples
                .iter()
                .filter(|(s, _)| s.starts_with("http_requests_in_flight"))
                .map(|(_, v)| v)
                .sum();
            (in_flight >= 1.0).then_some(())
        },
    )
    .await;
    let took = Instant::now();
    compose.run(&["stop", "app"]);
    let stopped_in = took.elapsed().as_secs_f64();
    let status = slow.await.unwrap();
    let app = compose.containers("app").remove(0);
    let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &app]);
    compose.say(&format!(
        "stop app with /delay/3s in flight: the request got {status}, the container exited \
         {} after {stopped_in:.1} s",
        exit.trim()
    ));
    assert_eq!(status, 200);
    assert_eq!(exit.trim(), "0", "SIGKILLed (137) or failed");

    // --- the seed's ports, after a stop and start -------------------------------------------
    compose.run(&["start", "app"]);
    app_answers_on_its_ports("stop app + start app").await;
    compose.say(&format!(
        "start app: the app answers on {ADDR}:5000, its metrics on :8000"
    ));
    // Two scrapes more, so that the history holds the app as it runs before the down.
    poll_answers(
        "two scrapes of the app since its start",
        Duration::from_secs(60),
        &prometheus(),
        r#"count_over_time(up{job="flask_app"}[20s]) >= 1"#,
    )
    .await;

    // --- down and up, as exercise 2 does: the history stays, no alert for nothing ----------
    let scraped_at = now();
    let before_down = query(&prometheus(), r#"up{job="flask_app"}"#, Some(scraped_at)).await;
    assert!(!before_down.is_empty());
    compose.down(false);
    compose.run(&[&["up", "-d", "--wait"][..], &SERVICES].concat());
    let restarted = Instant::now();
    let restarted_at = now();
    app_answers_on_its_ports("down + up").await;
    let after = query(&prometheus(), r#"up{job="flask_app"}"#, Some(scraped_at)).await;
    compose.say(&format!(
        "down, then up: the app answers on {ADDR}:5000 and :8000; Prometheus still answers \
         up{{job=\"flask_app\"}} at a time before the down: {} series, as before it",
        after.len()
    ));
    assert_eq!(
        after.len(),
        before_down.len(),
        "history lost across down/up"
    );
    // The trap the rule must not fall into: the old address lingers beside the new one.
    let both = poll(
        "the old address's up lingering beside the new one's",
        Duration::from_secs(60),
        || async {
            let series = query(&prometheus(), r#"up{job="flask_app"}"#, None).await;
            let instances: Vec<String> = series
                .iter()
                .map(|s| s["metric"]["instance"].as_str().unwrap().to_owned())
                .collect();
            (instances.len() == 2).then_some(instances)
        },
    )
    .await;
    assert!(both.contains(&old_instance), "{both:?}");
    compose.say(&format!(
        "after up, count(up{{job=\"flask_app\"}}) is 2: {both:?}, the old address lingering \
         for the 5-minute lookback (no staleness marker at shutdown) beside the new one"
    ));

    // A few server errors outside /simulate_error spend some of the availability budget, so
    // that the dashboard's time until it is gone has a value (nothing else burns it). Before
    // the load generator's count begins. One first, until Prometheus has scraped its series:
    // a series' first sample is no increase, so the rest must come after it.
    let client = reqwest::Client::new();
    client.get(url(5000, "/status/500")).send().await.unwrap();
    poll_answers(
        "the first /status/500 scraped",
        Duration::from_secs(60),
        &prometheus(),
        r#"http_requests_total{job="flask_app", route="/status/{codes}", status="500"}"#,
    )
    .await;
    for _ in 0..20 {
        client.get(url(5000, "/status/500")).send().await.unwrap();
    }

    // --- the load generator: what it sent is what the app counted -----------------------------
    let before = requests_answered().await;
    compose.run(&["--profile", "load", "up", "-d", "loadgen"]);
    compose.say("--profile load up -d loadgen: the generator runs");
    let instance = poll(
        "the app at its new address, up",
        Duration::from_secs(60),
        || async { targets_up().await.into_iter().find(|t| *t != old_instance) },
    )
    .await;

    // --- the generator's own metrics, a job of their own ------------------------------------
    let sent = poll(
        "compose's Prometheus scraping the generator's metrics as job loadgen",
        Duration::from_secs(60),
        || async {
            let up = query(&prometheus(), r#"up{job="loadgen"} == 1"#, None).await;
            let sent = query(
                &prometheus(),
                r#"sum(loadgen_requests_sent_total{job="loadgen"}) > 0"#,
                None,
            )
            .await;
            let value = sent.first()?["value"][1].as_str()?.to_owned();
            (!up.is_empty()).then_some(value)
        },
    )
    .await;
    compose.say(&format!(
        "job loadgen up, its loadgen_requests_sent_total at {sent}"
    ));

    // --- every dashboard query answers ------------------------------------------------------
    // The budget adds up 5-minute tiles, recorded every 5 minutes at a phase of Prometheus'
    // choosing: hence the 6 minutes.
    // Grafana's $__rate_interval at a 15 s scrape interval is 1m: four scrapes.
    let report = poll(
        "every dashboard query answering from compose's Prometheus",
        Duration::from_secs(360),
        || async {
            let (report, empty) =
                crate::stack::dashboard_queries(&prometheus(), &instance, "1m").await;
            empty.is_empty().then_some(report)
        },
    )
    .await;
    let queries = report.lines().filter(|l| l.contains(" | ")).count() - 1;
    compose.say(&format!(
        "every dashboard query answers: {queries} queries with a value"
    ));

    // --- exemplars: Prometheus keeps them, and each names a request the app logged --------
    let exemplar = poll(
        "an exemplar of request_duration_seconds in compose's Prometheus",
        Duration::from_secs(60),
        || async {
            let exemplars = crate::helpers::query_exemplars(
                &prometheus(),
                "request_duration_seconds_bucket",
                restarted_at,
            )
            .await;
            exemplars.first().and_then(|e| e.as_object().cloned())
        },
    )
    .await;
    let trace = exemplar["labels"]["trace_id"].as_str().unwrap_or_default();
    let app_logs = compose.run(&["logs", "--no-log-prefix", "app"]);
    let line = app_logs
        .lines()
        .find(|l| !trace.is_empty() && l.contains(trace))
        .unwrap_or_else(|| panic!("no log line of the exemplar's trace {trace:?}"));
    compose.say(&format!(
        "exemplar stored: trace_id {trace}, {} s; its log line: {line}",
        exemplar["value"].as_str().unwrap_or_default()
    ));

    compose.run(&["--profile", "load", "stop", "loadgen"]);
    let logs = compose.run(&["--profile", "load", "logs", "--no-log-prefix", "loadgen"]);
    let (sent, answered) = load_summary(&logs);
    let moved = requests_answered().await - before;
    compose.say(&format!(
        "loadgen stopped: it sent {sent} and had {answered} answered; the app's \
         http_requests_total moved by {moved}"
    ));
    assert!(sent > 0.0 && sent == answered, "{logs}");
    assert_eq!(moved, sent, "the app counted other than the generator sent");

    // --- replicas started after the load generator get its traffic ---------------------------
    compose.run(&["--profile", "load", "start", "loadgen"]);
    let took = Instant::now();
    compose.run(&["--profile", "replicas", "up", "-d", "replica"]);
    let spread = poll(
        "every replica answering the load generator's requests",
        Duration::from_secs(60),
        || async {
            // The old address may still linger: it is not one of the three.
            let up: Vec<String> = targets_up()
                .await
                .into_iter()
                .filter(|t| *t != old_instance)
                .collect();
            let counts = requests_by_instance().await;
            (up.len() == 3 && up.iter().all(|i| counts.get(i).is_some_and(|c| *c > 0.0)))
                .then_some(counts)
        },
    )
    .await;
    let spread_in = took.elapsed();
    assert!(
        spread_in <= Duration::from_secs(60),
        "the replicas got traffic {spread_in:?} after up"
    );
    compose.say(&format!(
        "--profile replicas up -d replica, with the load generator already running: every \
         replica's http_requests_total rising {:.0} s later, each instance's total: {spread:?}",
        spread_in.as_secs_f64()
    ));

    // Every container there is now, stopped ones included: hardened, published on ADDR only.
    let ids = compose.containers("");
    let mut args = vec!["inspect"];
    args.extend(ids.iter().map(String::as_str));
    let inspected: Vec<Value> = serde_json::from_str(&docker(&args)).unwrap();
    let faults: Vec<String> = inspected
        .iter()
        .filter_map(|c| hardening(c).err())
        .collect();
    assert!(faults.is_empty(), "{faults:#?}");
    compose.say(&format!(
        "docker inspect of {} containers: none runs as root, read-only root filesystems, \
         CapDrop ALL, no-new-privileges, ports on {ADDR} only",
        inspected.len()
    ));

    // --- an incident timeline, played by the app itself: its alert reaches the receiver ------
    // Set in .env, as the docs say; `up -d` re-creates the app (at a new address, inside the
    // watch for a false DemoServiceTargetMissing below, which it must not set off either).
    compose.env_file = env_file(
        "LOAD_RATE=20\nDEMO_SERVICE_INCIDENTS=incidents/dependency-down.toml\nHISTORY_DAYS=2\n",
    );
    compose.run(&["up", "-d", "--wait", "app"]);
    let took = Instant::now();
    let alert = notified(
        &url(9095, ""),
        "DemoServiceDependencyFailing",
        "firing",
        Duration::from_secs(420),
    )
    .await;
    compose.say(&format!(
        "DEMO_SERVICE_INCIDENTS=incidents/dependency-down.toml in .env, up -d app: the app plays \
         it (the database down from its first minute on), and {} reaches the receiver {:.0} s \
         after up ({})",
        alert["alertname"],
        took.elapsed().as_secs_f64(),
        alert["summary"]
    ));

    // --- a history, through the profile `history`, in Prometheus' volume ----------------------
    // Two days (HISTORY_DAYS in .env): the one-shot `history` writes them from the app's image,
    // `history-load` loads them from Prometheus' image, and Prometheus reads them with no
    // restart. (Inside the watch for a false DemoServiceTargetMissing, which it must not set
    // off either.)
    let took = Instant::now();
    let loaded = compose.run(&["--profile", "history", "run", "--rm", "history-load"]);
    let wrote = compose.run(&["--profile", "history", "logs", "--no-log-prefix", "history"]);
    assert!(
        wrote.contains("wrote 2 days of job flask_app, instance history:8000"),
        "{wrote}"
    );
    assert!(loaded.contains("loaded 2 days"), "{loaded}");
    let history = query(
        &prometheus(),
        r#"count_over_time(up{instance="history:8000"}[3d])"#,
        None,
    )
    .await;
    let scrapes: f64 = history
        .first()
        .and_then(|s| s["value"][1].as_str()?.parse().ok())
        .unwrap_or(0.0);
    assert!(scrapes > 2.0 * 5760.0 * 0.99, "{history:?}");
    let rules = query(
        &prometheus(),
        r#"count_over_time(instance:http_requests:rate5m{instance="history:8000"}[3d])"#,
        None,
    )
    .await;
    assert!(!rules.is_empty(), "no recording rule over the history");
    compose.say(&format!(
        "--profile history run --rm history-load: 2 days written and loaded in {:.0} s, no \
         restart; {scrapes} scrapes of history:8000 in Prometheus, its recording rules too ({})",
        took.elapsed().as_secs_f64(),
        loaded.lines().last().unwrap_or_default()
    ));

    // --- no DemoServiceTargetMissing for the restart, at the receiver or in Prometheus --------
    let missing = |alerts: &[Value]| -> Vec<Value> {
        alerts
            .iter()
            .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["alertname"] == "DemoServiceTargetMissing")
            .collect()
    };
    while restarted.elapsed() < RESTART_WATCH {
        let at_receiver = missing(&crate::alerts::notifications(&url(9095, "")).await);
        assert!(
            at_receiver.is_empty(),
            "DemoServiceTargetMissing at the receiver {:.0} s after down and up: {at_receiver:#?}",
            restarted.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let window = restarted.elapsed().as_secs();
    let history = query(
        &prometheus(),
        &format!(r#"count_over_time(ALERTS{{alertname="DemoServiceTargetMissing"}}[{window}s])"#),
        None,
    )
    .await;
    assert!(
        history.is_empty(),
        "pending or firing after the restart: {history:?}"
    );
    let counted = query(
        &prometheus(),
        &format!(r#"max_over_time(job:up:count{{job="flask_app"}}[{window}s])"#),
        None,
    )
    .await;
    compose.say(&format!(
        "for {window} s after down and up: no DemoServiceTargetMissing at the receiver, none \
         pending or firing in Prometheus (ALERTS); job:up:count at most {} (the app, then the \
         replicas)",
        counted
            .first()
            .map(|s| s["value"][1].as_str().unwrap().to_owned())
            .unwrap_or_default()
    ));

    // --- a replica stopped: the alert the docs promise reaches the receiver -----------------
    let replica = compose.containers("replica").remove(0);
    let took = Instant::now();
    docker(&["stop", &replica]);
    let alert = notified(
        &url(9095, ""),
        "DemoServiceTargetMissing",
        "firing",
        Duration::from_secs(300),
    )
    .await;
    compose.say(&format!(
        "docker stop of one replica: {} firing at the receiver {:.0} s later ({})",
        alert["alertname"],
        took.elapsed().as_secs_f64(),
        alert["summary"]
    ));

    // --- down -v removes the history ---------------------------------------------------------
    compose.down(true);
    let volumes = docker(&[
        "volume",
        "ls",
        "--quiet",
        "--filter",
        &format!("name={PROJECT}_"),
    ]);
    assert!(volumes.trim().is_empty(), "down -v left {volumes}");
    compose.say("down -v: the volumes, and with them the history, are gone");

    // --- a bad setting in .env: up --wait fails, the app's log says why ---------------------
    compose.env_file = env_file("DEMO_SERVICE_ERROR_RATE=2\n");
    let out = compose.up(&SERVICES);
    assert!(
        !out.status.success(),
        "up --wait succeeded with an error rate of 2"
    );
    let logs = compose.run(&["logs", "--no-log-prefix", "app"]);
    let line = logs.lines().next().unwrap_or("");
    assert!(
        line.contains("2 is outside [0, 1]"),
        "the app's log does not say what is wrong:\n{logs}"
    );
    let ps = compose.run(&["ps", "--format", "{{.Service}}\t{{.Status}}"]);
    for service in ["prometheus", "alertmanager", "receiver"] {
        assert!(
            ps.lines()
                .any(|l| l.starts_with(service) && l.contains("(healthy)")),
            "{service} is not healthy beside a broken app:\n{ps}"
        );
    }
    compose.say(&format!(
        "DEMO_SERVICE_ERROR_RATE=2 in .env: up --wait fails ({}), the app logs \"{line}\", \
         Prometheus, Alertmanager and the receiver stay healthy",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .trim()
    ));

    // --- the documentation's compose path ----------------------------------------------------
    let (passed, walked) = walk.finish();
    for line in walked
        .lines()
        .filter(|l| l.starts_with("ran ") || l.starts_with("FAILED "))
    {
        compose.say(&format!("  docs: {line}"));
    }
    assert!(passed, "scripts/check-docs --compose failed:\n{walked}");
    compose.say(&format!(
        "scripts/check-docs --compose: {}",
        walked.lines().last().unwrap_or_default()
    ));
}
