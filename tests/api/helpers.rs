//! What the tests share: the service as a real process, the seed as a real process, and a
//! reader for expositions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_demo-service");

/// The service's binary, running with JSON logs on loopback ports of its own choosing.
pub struct Service {
    child: Child,
    pub app: SocketAddr,
    pub metrics: SocketAddr,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Service {
    /// Starts `demo-service serve` with `args` and waits until it listens.
    pub fn start(args: &[&str]) -> Service {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--app-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json"])
            .args(args)
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
        let mut service = Service {
            child,
            app: ([0, 0, 0, 0], 0).into(),
            metrics: ([0, 0, 0, 0], 0).into(),
            logs,
        };
        let listening =
            service.wait_for_log(|e| e["message"] == "listening", Duration::from_secs(10));
        service.app = listening["app"].as_str().unwrap().parse().unwrap();
        service.metrics = listening["metrics"].as_str().unwrap().parse().unwrap();
        service
    }

    pub fn app_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app)
    }

    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
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

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
pub struct Seed {
    child: Child,
}

/// The seed's requirements.txt.
pub const SEED_REQUIREMENTS: [&str; 3] = [
    "Flask==2.2.2",
    "Werkzeug==2.2.2",
    "prometheus_client==0.11.0",
];

impl Seed {
    /// The seed binds ports 5000 and 8000 itself: one test at a time may run it.
    pub fn start() -> Seed {
        for port in [5000, 8000] {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                "something already listens on port {port}, which the seed needs"
            );
        }
        let dir = seed_dir();
        let python = seed_python();
        let child = Command::new(python)
            .arg(dir.join("main.py"))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the seed's main.py");
        let seed = Seed { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect("127.0.0.1:8000").is_err()
            || std::net::TcpStream::connect("127.0.0.1:5000").is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the seed did not listen on 5000 and 8000"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        seed
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        // The seed ignores SIGTERM's intent (its thread is not a daemon): kill it.
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

fn prepare_seed(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let document = std::env::var_os("DEMO_SEED_DOCUMENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seed/000_7dde45aa5f3f5405.txt")
        });
    let text = std::fs::read_to_string(&document).unwrap_or_else(|e| {
        panic!(
            "the seed document {}: {e} (set DEMO_SEED_DOCUMENT)",
            document.display()
        )
    });
    std::fs::write(dir.join("main.py"), python_block(&text)).unwrap();

    let python = dir.join("venv/bin/python");
    let marker = dir.join("venv/.requirements");
    let wanted = SEED_REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&wanted) {
        return;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(dir.join("venv")));
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(SEED_REQUIREMENTS));
    std::fs::write(marker, wanted).unwrap();
}

/// The first ```` ```python ```` block of the seed document: its `app/main.py`.
fn python_block(document: &str) -> String {
    let mut lines = document
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("````python"));
    lines.next().expect("the seed document has a python block");
    let code: Vec<&str> = lines
        .take_while(|l| !l.trim_start().starts_with("````"))
        .collect();
    code.join("\n") + "\n"
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
