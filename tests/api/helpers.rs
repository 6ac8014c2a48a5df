//! What the tests share: the service as a real process, the seed as a real process, and a
//! reader for expositions.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use tower::Service as TowerService;

/// Either listener's service (`routes::app`, `routes::metrics`), called in process.
pub trait Listener:
    Clone + Send + TowerService<Request<Body>, Response = Response, Error = Infallible, Future: Send>
{
}

impl<S> Listener for S where
    S: Clone
        + Send
        + TowerService<Request<Body>, Response = Response, Error = Infallible, Future: Send>
{
}

pub const BIN: &str = env!("CARGO_BIN_EXE_demo-service");

/// demo-service running as a real process with JSON logs, which a thread collects.
pub struct Process {
    child: Child,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Process {
    /// Starts `demo-service ARGS --log-format json` and waits until it logs `listening`;
    /// returns the process and that log event.
    pub fn start(args: &[&str]) -> (Process, serde_json::Value) {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--log-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start demo-service");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
                sink.lock().unwrap().push(event);
            }
        });
        let process = Process { child, logs };
        let listening =
            process.wait_for_log(|e| e["message"] == "listening", Duration::from_secs(10));
        (process, listening)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "demo-service still running after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every log event so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits for a log event that satisfies `matches`; panics after `timeout`.
    pub fn wait_for_log(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.logs.lock().unwrap().iter().find(|e| matches(e)) {
                return event.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such log line after {timeout:?}: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process whose stdout a thread collects line by line, as it comes, for any output format
/// ([`Process`] reads JSON logs); killed when dropped, also when a test fails before its end.
pub struct Lines {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Lines {
    /// Starts `command` with its stdout collected here and its stderr inherited.
    pub fn spawn(command: &mut Command) -> Lines {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in stdout.lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }
        });
        Lines {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for the process to exit and for its last line; returns how it exited and every
    /// line it wrote.
    pub fn finish(&mut self) -> (ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status, self.lines())
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `demo-service serve` on loopback ports of its own choosing.
pub struct Service {
    process: Process,
    pub app: SocketAddr,
    pub metrics: SocketAddr,
}

impl Service {
    /// Starts `demo-service serve` with `args` and waits until it listens.
    pub fn start(args: &[&str]) -> Service {
        let mut all = vec![
            "serve",
            "--app-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let (process, listening) = Process::start(&all);
        Service {
            process,
            app: listening["app"].as_str().unwrap().parse().unwrap(),
            metrics: listening["metrics"].as_str().unwrap().parse().unwrap(),
        }
    }

    pub fn app_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app)
    }

    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics)
    }
}

impl std::ops::Deref for Service {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Service {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// The samples of a text-format exposition, by series as written (`name{labels}`).
pub fn samples(exposition: &str) -> BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            (series.to_owned(), value)
        })
        .collect()
}

/// One sample's value; panics when the exposition lacks it.
pub fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in {samples:#?}"))
}

/// Fetches a URL and returns status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The content type and body of a metrics URL asked for OpenMetrics, as Prometheus asks.
pub async fn get_openmetrics(url: &str) -> (String, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// The exposition of a metrics URL, in the text format.
pub async fn scrape(url: &str) -> BTreeMap<String, f64> {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "scrape {url}");
    samples(&body)
}

/// The seed's own Flask app, `main.py` taken from the seed document at test time, run in a
/// virtualenv with the seed's exact requirements (created under `target/` on first use).
///
/// Only its ports change: the seed binds 5000 and 8000, which a running stack may hold, so it
/// gets free ones; and it dies with the test process (the seed ignores SIGTERM's intent: its
/// users thread is not a daemon), so that no interrupted run leaves it behind.
pub struct Seed {
    child: Child,
    /// The app listener's base URL.
    pub app: String,
    /// The metrics listener's `/metrics` URL.
    pub metrics: String,
}

/// The seed's requirements.txt.
pub const SEED_REQUIREMENTS: [&str; 3] = [
    "Flask==2.2.2",
    "Werkzeug==2.2.2",
    "prometheus_client==0.11.0",
];

/// Runs a script as `__main__`, killed when its parent dies (Linux' PR_SET_PDEATHSIG).
const DIE_WITH_PARENT: &str = "import ctypes, runpy, signal, sys; \
    ctypes.CDLL(None).prctl(1, signal.SIGKILL); runpy.run_path(sys.argv[1], run_name='__main__')";

impl Seed {
    pub fn start() -> Seed {
        let dir = seed_dir();
        let (app_port, metrics_port) = (free_port(), free_port());
        let main = std::fs::read_to_string(dir.join("main.py")).unwrap();
        let ported = [
            (
                "start_http_server(8000)",
                format!("start_http_server({metrics_port})"),
            ),
            (
                "app.run(host='0.0.0.0', port=5000)",
                format!("app.run(host='127.0.0.1', port={app_port})"),
            ),
        ]
        .iter()
        .fold(main, |text, (from, to)| {
            assert!(
                text.contains(from),
                "the seed's main.py no longer has {from}"
            );
            text.replace(from, to)
        });
        let script = dir.join(format!("main-{app_port}.py"));
        std::fs::write(&script, ported).unwrap();
        let child = Command::new(seed_python())
            .args(["-c", DIE_WITH_PARENT])
            .arg(&script)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the seed's main.py");
        let seed = Seed {
            child,
            app: format!("http://127.0.0.1:{app_port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", app_port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the seed did not listen on {app_port} and {metrics_port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(script);
        seed
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the seed's virtualenv and `main.py` live: `DEMO_SEED_DIR`, or under `target/`.
fn seed_dir() -> PathBuf {
    static READY: Mutex<bool> = Mutex::new(false);
    let dir = std::env::var_os("DEMO_SEED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/seed"));
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if !*ready {
        prepare_seed(&dir);
        *ready = true;
    }
    dir
}

pub fn seed_python() -> PathBuf {
    seed_dir().join("venv/bin/python")
}

/// The seed document's text.
fn seed_document() -> String {
    let document = std::env::var_os("DEMO_SEED_DOCUMENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seed/000_7dde45aa5f3f5405.txt")
        });
    std::fs::read_to_string(&document).unwrap_or_else(|e| {
        panic!(
            "the seed document {}: {e} (set DEMO_SEED_DOCUMENT)",
            document.display()
        )
    })
}

/// The seed document's first block in `language` that contains `containing`, verbatim.
pub fn seed_block(language: &str, containing: &str) -> String {
    let text = seed_document();
    let mut lines = text.lines();
    loop {
        lines
            .by_ref()
            .find(|l| l.trim_start().starts_with(&format!("````{language}")))
            .unwrap_or_else(|| {
                panic!("the seed document has no {language} block with {containing:?}")
            });
        let code: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.trim_start().starts_with("````"))
            .collect();
        let code = code.join("\n") + "\n";
        if code.contains(containing) {
            return code;
        }
    }
}

fn prepare_seed(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("main.py"), seed_block("python", "")).unwrap();

    virtualenv(&dir.join("venv"), &SEED_REQUIREMENTS);
}

/// The tools the Kubernetes tests run in Python: Kubernetes' schemas, a JSON-schema validator
/// and a YAML parser, in a virtualenv of their own under `target/`.
pub const TOOLS_REQUIREMENTS: [&str; 3] = [
    "kubernetes-validate==1.37.0",
    "jsonschema==4.26.0",
    "PyYAML==6.0.3",
];

/// The Python of the tools' virtualenv, made once per test run.
pub fn tools_python() -> PathBuf {
    static READY: Mutex<bool> = Mutex::new(false);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools-venv");
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if !*ready {
        virtualenv(&dir, &TOOLS_REQUIREMENTS);
        *ready = true;
    }
    dir.join("bin/python")
}

/// Makes a virtualenv at `dir` with exactly `requirements` (from PyPI), unless the one there
/// already has them.
fn virtualenv(dir: &Path, requirements: &[&str]) {
    let python = dir.join("bin/python");
    let marker = dir.join(".requirements");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&wanted) {
        return;
    }
    stdout_of(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(dir),
    );
    stdout_of(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(requirements),
    );
    std::fs::write(marker, wanted).unwrap();
}

/// Runs `command` with `input` on its stdin; returns what it printed and how it ended.
pub fn pipe(command: &mut Command, input: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    // A child that exits without reading all of its input is its own failure, seen in Output.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

/// The path of `promtool`: `PROMTOOL`, or the one on PATH.
pub fn promtool() -> PathBuf {
    std::env::var_os("PROMTOOL").map_or_else(|| PathBuf::from("promtool"), PathBuf::from)
}

/// A free TCP port on loopback (free when asked; tests take it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which real daemon: Debian's `prometheus` (or `PROMETHEUS`), or Debian's
/// `prometheus-alertmanager` (or `ALERTMANAGER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prometheus,
    Alertmanager,
}

impl Kind {
    fn binary(self) -> std::ffi::OsString {
        let (variable, default) = match self {
            Kind::Prometheus => ("PROMETHEUS", "prometheus"),
            Kind::Alertmanager => ("ALERTMANAGER", "prometheus-alertmanager"),
        };
        std::env::var_os(variable).unwrap_or_else(|| default.into())
    }

    fn args(self, config: &Path, data: &Path, addr: SocketAddr) -> Vec<String> {
        let mut args = vec![
            format!("--config.file={}", config.display()),
            format!("--web.listen-address={addr}"),
        ];
        match self {
            Kind::Prometheus => {
                args.push(format!("--storage.tsdb.path={}", data.display()));
                // As compose and scripts/stack run it: the exemplars kept, native histograms on.
                args.push(prometheus_flags().to_owned());
            }
            Kind::Alertmanager => {
                args.push(format!("--storage.path={}", data.display()));
                // One Alertmanager: no gossip port.
                args.push("--cluster.listen-address=".to_owned());
            }
        }
        args
    }
}

/// The feature flags of the Prometheus here, as scripts/stack starts it: exemplar storage, and
/// native histograms before 3.8 (which turns them on by its configuration instead).
pub fn prometheus_flags() -> &'static str {
    static FLAGS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FLAGS.get_or_init(|| stack_config(&["prometheus-flags"]).trim().to_owned())
}

/// Whether a configuration and the flags of the Prometheus that is to read it agree on native
/// histograms: before 3.8 the flag turns them on and the configuration's keys would fail to
/// load; from 3.8 on only the keys do, and a configuration without them scrapes none.
pub fn native_histograms_agree(config: &str, flags: &str) -> Result<(), String> {
    let by_flag = flags.contains("native-histograms");
    let by_config = config.contains("scrape_native_histograms: true");
    let scrapes_the_app = config.contains("job_name: flask_app");
    match (by_flag, by_config) {
        (true, true) => Err(
            "the configuration turns native histograms on with scrape_native_histograms, which \
             this Prometheus (before 3.8) rejects: derive it with scripts/stack prometheus-config"
                .to_owned(),
        ),
        (false, false) if scrapes_the_app => Err(
            "this Prometheus (3.8 or later) scrapes native histograms only with \
             scrape_native_histograms: true in the app's job, which the configuration lacks"
                .to_owned(),
        ),
        _ => Ok(()),
    }
}

/// A real Prometheus or Alertmanager on a loopback port, its data in a temporary directory.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// A real Prometheus.
pub type Prometheus = Daemon;

impl Daemon {
    /// Starts Prometheus (see [`Daemon::start_kind`]).
    pub async fn start(config: impl Fn(SocketAddr) -> String) -> Daemon {
        Self::start_kind(Kind::Prometheus, config).await
    }

    /// Starts `kind` on a free loopback port, with the configuration `config` gives for that
    /// address, and waits until it is ready. Another test may take the port first: then it
    /// tries another.
    pub async fn start_kind(kind: Kind, config: impl Fn(SocketAddr) -> String) -> Daemon {
        for _ in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            if let Some(daemon) = Self::start_on(kind, addr, &config(addr)).await {
                return daemon;
            }
        }
        panic!("{kind:?} did not start on three ports in a row");
    }

    /// Starts `kind` on `addr`; `None` if it exits before it is ready (its port was taken).
    async fn start_on(kind: Kind, addr: SocketAddr, config: &str) -> Option<Daemon> {
        if kind == Kind::Prometheus
            && let Err(why) = native_histograms_agree(config, prometheus_flags())
        {
            panic!("{why}");
        }
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let binary = kind.binary();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(&binary)
            .args(kind.args(&config_file, &dir.path().join("data"), addr))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary:?} (scripts/test installs it): {e}"));
        let mut daemon = Daemon { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("http://{addr}/-/ready")).await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Some(daemon);
            }
            if daemon.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} not ready on {addr}: {}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where it keeps its data (Prometheus' --storage.tsdb.path).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What the daemon has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Runs an instant query; returns the `result` array. Panics if Prometheus refuses it.
    pub async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        query(&format!("http://{}", self.addr), expr, None).await
    }
}

/// Runs an instant query on the Prometheus at `base` (`http://host:port`), now or at the Unix
/// time `at`; returns the `result` array. Panics if Prometheus refuses it.
pub async fn query(base: &str, expr: &str, at: Option<f64>) -> Vec<serde_json::Value> {
    let mut params = vec![("query", expr.to_owned())];
    if let Some(at) = at {
        params.push(("time", format!("{at:.3}")));
    }
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &params).unwrap();
    let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The exemplars that the Prometheus at `base` has stored for `query` from the Unix time
/// `start` until now, each as the API gives it (`labels`, `value`, `timestamp`). Panics if
/// Prometheus refuses the query.
pub async fn query_exemplars(base: &str, query: &str, start: f64) -> Vec<serde_json::Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let params = [
        ("query", query.to_owned()),
        ("start", format!("{start:.3}")),
        ("end", format!("{:.3}", now + 1.0)),
    ];
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query_exemplars"), &params)
        .unwrap();
    let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "success", "{query}: {body}");
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
        .collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a report of what a test measured to `target/reports/NAME`, where `scripts/test`
/// prints it after the tests (cargo hides what passing tests print).
pub fn write_report(name: &str, report: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/reports");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), report).unwrap();
}

/// A file of scrape targets for Prometheus' `file_sd_configs`, as scripts/stack writes one:
/// pass its path to `prometheus-config --targets`, and keep it while Prometheus runs.
pub fn targets_file(targets: &[std::net::SocketAddr]) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
    std::fs::write(
        file.path(),
        serde_json::json!([{ "targets": targets }]).to_string(),
    )
    .unwrap();
    file
}

/// The file through which the Prometheus of [`prometheus_config`] finds the load generator:
/// beside `targets`, of its own (absent unless a test writes it, so that no other test's
/// generator is scraped).
pub fn loadgen_targets(targets: &Path) -> std::path::PathBuf {
    targets.with_extension("loadgen.json")
}

/// `demo-service load` against `service` with its own metrics on a port of its own, listed
/// for the Prometheus of [`prometheus_config`] in [`loadgen_targets`]; killed, and unlisted,
/// when dropped.
pub struct Generator {
    child: Option<Child>,
    listed: std::path::PathBuf,
    /// Where its metrics are.
    pub metrics: SocketAddr,
}

impl Generator {
    /// Starts `demo-service load ARGS` at `service`, listed beside the file `targets`, with a
    /// JSON summary.
    pub fn start(service: &Service, targets: &Path, args: &[&str]) -> Generator {
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listed = loadgen_targets(targets);
        std::fs::write(
            &listed,
            serde_json::json!([{ "targets": [metrics.to_string()] }]).to_string(),
        )
        .unwrap();
        let child = Command::new(BIN)
            .args(["load", "--target", &service.app_url("")])
            .args(["--output", "json", "--progress-interval", "1h"])
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start demo-service load");
        Generator {
            child: Some(child),
            listed,
            metrics,
        }
    }

    /// Stops it with SIGTERM, as Ctrl-C does; its summary.
    pub fn finish(mut self) -> serde_json::Value {
        let child = self.child.take().unwrap();
        signal(child.id(), "TERM");
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "demo-service load: {}", out.status);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Sends process `pid` a signal by name (`TERM`, `INT`).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

impl Drop for Generator {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.listed);
    }
}

/// Runs `command` to its end; returns what it printed on stdout. Fails the test, with both of
/// its outputs, unless it succeeded.
pub fn stdout_of(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| {
        panic!("run {command:?}: {e} (scripts/test installs what the tests need)")
    });
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What `scripts/stack ARGS` prints: the native stack's configurations, derived from the
/// compose ones.
pub fn stack_config(args: &[&str]) -> String {
    stdout_of(Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stack")).args(args))
}

/// The native stack's Prometheus configuration as the tests run it: the targets listed in the
/// file `targets` (see `targets_file`), Prometheus itself on `addr`, every scrape and rule
/// evaluation every 500 ms (the 15 s scrape interval divided by 30, as the rules'
/// durations are in the time-compressed tests: a [1m] window, 2 s there, holds four scrapes as
/// it does at full scale); alerts to `alertmanager` and the rules in `rules` when given, else
/// the configuration's own. The load generator's targets are in [`loadgen_targets`].
pub fn prometheus_config(
    targets: &Path,
    addr: SocketAddr,
    alertmanager: Option<SocketAddr>,
    rules: Option<&Path>,
) -> String {
    let mut args = vec![
        "prometheus-config".to_owned(),
        "--targets".to_owned(),
        targets.to_str().unwrap().to_owned(),
        "--loadgen-targets".to_owned(),
        loadgen_targets(targets).to_str().unwrap().to_owned(),
        "--prometheus".to_owned(),
        addr.to_string(),
        "--interval".to_owned(),
        "500ms".to_owned(),
    ];
    if let Some(alertmanager) = alertmanager {
        args.extend(["--alertmanager".to_owned(), alertmanager.to_string()]);
    }
    if let Some(rules) = rules {
        args.extend(["--rules".to_owned(), rules.to_str().unwrap().to_owned()]);
    }
    stack_config(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs `demo-service load` against `service` with JSON output; returns the summary.
pub fn load(service: &Service, args: &[&str]) -> serde_json::Value {
    let out = stdout_of(
        Command::new(BIN)
            .args(["load", "--target", &service.app_url(""), "--output", "json"])
            .args(args),
    );
    serde_json::from_str(&out).unwrap()
}

/// A count in a load summary, as a float to compare with a sample.
pub fn count(value: &serde_json::Value) -> f64 {
    value.as_u64().map_or(0.0, |n| n as f64)
}
