//! Game days for real: `demo-service scenario run` against stacks built from the native stack's
//! configuration (scripts/stack derives Prometheus' and Alertmanager's from the compose ones),
//! with the real intervals: scrapes every 15 s, rules every 30 s, the real `for:` and
//! `group_wait`. Nothing is time-compressed, since the timing is what is checked, so these take
//! minutes: each scenario gets a stack of its own, and they all run at once. scripts/test runs
//! them beside the rest of the tests (`cargo test --test api gamedays -- --ignored`).
//!
//! Three scenarios must pass (the error ratio, a target down, a fault of the catalogue), and
//! planted faults must each make a run fail with its reason: an alert renamed in the rules, an
//! Alertmanager route that drops the notification, a bound too tight. After a failed run and
//! after a SIGINT, the knobs are back as they were.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::compose::poll;
use crate::helpers::{
    BIN, Daemon, Kind, Process, Service, query, stack_config, targets_file, write_report,
};

const TOKEN: &str = "game-day-token-0123456789";
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A stack of the native kind, with the real intervals: the service with the admin API on,
/// the load generator at 4 requests/s, Prometheus, Alertmanager and the receiver.
struct GameStack {
    service: Service,
    prometheus: Daemon,
    _alertmanager: Daemon,
    receiver: String,
    _receiver: Process,
    _load: crate::alerts::Load,
    _targets: tempfile::NamedTempFile,
    _rules: Option<tempfile::TempDir>,
    /// Where `scenario run` runs: a directory of no stack, so that only the flags say where.
    dir: tempfile::TempDir,
}

impl GameStack {
    /// Starts a stack; `alertmanager` may change Alertmanager's configuration, `rules` is
    /// another directory of rules.
    async fn start(
        alertmanager: impl Fn(String) -> String,
        rules: Option<tempfile::TempDir>,
    ) -> Self {
        let (receiver_process, listening) = Process::start(&["receiver", "--addr", "127.0.0.1:0"]);
        let receiver = format!("http://{}", listening["addr"].as_str().unwrap());
        let service = Service::start(&["--admin-token", TOKEN]);
        let url = format!("{receiver}/alerts");
        let am = Daemon::start_kind(Kind::Alertmanager, |_| {
            alertmanager(stack_config(&["alertmanager-config", "--receiver", &url]))
        })
        .await;
        let targets = targets_file(&[service.metrics]);
        let rules_dir = rules.as_ref().map_or_else(
            || Path::new(ROOT).join("prometheus/rules"),
            |r| r.path().to_owned(),
        );
        let prometheus = Daemon::start(|addr| {
            stack_config(&[
                "prometheus-config",
                "--targets",
                targets.path().to_str().unwrap(),
                "--prometheus",
                &addr.to_string(),
                "--alertmanager",
                &am.addr.to_string(),
                "--rules",
                rules_dir.to_str().unwrap(),
            ])
        })
        .await;
        let load = crate::alerts::Load(
            Command::new(BIN)
                .args(["load", "--target", &service.app_url(""), "--rate", "4"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        Self {
            service,
            prometheus,
            _alertmanager: am,
            receiver,
            _receiver: receiver_process,
            _load: load,
            _targets: targets,
            _rules: rules,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Waits until Prometheus sees the load.
    async fn warm(&self) {
        traffic_seen(&format!("http://{}", self.prometheus.addr)).await;
    }

    /// `demo-service scenario run SCENARIO` against this stack.
    fn scenario(&self, scenario: &str) -> Command {
        scenario_run(
            scenario,
            "native",
            &format!("http://{}", self.prometheus.addr),
            &self.receiver,
            &self.service.metrics_url(""),
            self.dir.path(),
        )
    }

    /// Runs a scenario to its end, in a thread of its own.
    async fn run(&self, scenario: &str) -> Output {
        let mut command = self.scenario(scenario);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// The knobs now.
    async fn knobs(&self) -> Value {
        reqwest::Client::new()
            .get(self.service.metrics_url("/admin/knobs"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The flags that say where a stack is: `--stack`, every address, the token.
fn stack_flags(stack: &str, prometheus: &str, receiver: &str, admin: &str) -> Vec<String> {
    [
        "--stack",
        stack,
        "--prometheus",
        prometheus,
        "--receiver",
        receiver,
        "--admin",
        admin,
        "--admin-token",
        TOKEN,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `demo-service scenario run SCENARIO --stack STACK`, every address and the token given, in
/// `dir`.
fn scenario_run(
    scenario: &str,
    stack: &str,
    prometheus: &str,
    receiver: &str,
    admin: &str,
    dir: &Path,
) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("DEMO_SERVICE_ADMIN_TOKEN")
        .args(["scenario", "run", scenario])
        .args(stack_flags(stack, prometheus, receiver, admin));
    command
}

/// Waits until the Prometheus at `base` sees traffic (a rate needs two scrapes, 15 s apart).
async fn traffic_seen(base: &str) {
    poll(
        &format!("traffic seen by {base}"),
        Duration::from_secs(180),
        || async {
            let rate = query(
                base,
                "sum(rate(http_requests_total{job=\"flask_app\"}[1m]))",
                None,
            )
            .await;
            let value = rate
                .first()
                .and_then(|r| r["value"][1].as_str()?.parse::<f64>().ok());
            value.filter(|v| *v > 2.0).map(drop)
        },
    )
    .await;
}

/// The knobs at start, as GET /admin/knobs shows them.
fn default_knobs() -> Value {
    let knobs = demo_service::behaviour::knobs::View::from(
        &demo_service::behaviour::knobs::Knobs::default(),
    );
    serde_json::to_value(knobs).unwrap()
}

/// The last line of a run's stderr: its reason, when it failed.
fn reason(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines().last().unwrap_or_default().to_owned()
}

/// A scenario that must pass: its table, for the report.
async fn passes(name: &str) -> String {
    let stack = GameStack::start(|c| c, None).await;
    stack.warm().await;
    let started = Instant::now();
    let out = stack.run(name).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scenario {name}: {}\n{table}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("PASS: every expectation held"), "{table}");
    assert_eq!(
        stack.knobs().await,
        default_knobs(),
        "{name}: the knobs are back"
    );
    format!("{table}(the run took {}s)\n", started.elapsed().as_secs())
}

/// An alert renamed in a scratch copy of the rules: the run refuses at once, naming it.
async fn renamed_alert() -> String {
    let rules = tempfile::tempdir().unwrap();
    for name in ["recording.yml", "alerts.yml"] {
        let text =
            std::fs::read_to_string(Path::new(ROOT).join("prometheus/rules").join(name)).unwrap();
        let text = text.replace(
            "alert: DemoServiceTargetDown",
            "alert: DemoServiceTargetIsDown",
        );
        std::fs::write(rules.path().join(name), text).unwrap();
    }
    let stack = GameStack::start(|c| c, Some(rules)).await;
    let out = stack.run("target-down").await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = reason(&out);
    assert!(
        line.contains("has no alert DemoServiceTargetDown"),
        "{line}"
    );
    assert_eq!(stack.knobs().await, default_knobs(), "nothing was turned");
    line
}

/// Alertmanager's critical route sends to a receiver with nowhere to send: the alert fires,
/// and the run fails at the notification's bound, then puts the knobs back.
async fn dropped_notification() -> String {
    let drop_critical = |config: String| {
        let config = config.replacen("      receiver: oncall\n", "      receiver: nowhere\n", 1);
        assert!(config.contains("receiver: nowhere"), "{config}");
        config.replacen("receivers:\n", "receivers:\n  - name: nowhere\n", 1)
    };
    let stack = GameStack::start(drop_critical, None).await;
    stack.warm().await;
    let out = stack.run("target-down").await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = reason(&out);
    assert!(
        line.contains("DemoServiceTargetDown fired, and no notification of it reached the receiver 2m30s after the fault"),
        "{line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stack.knobs().await,
        default_knobs(),
        "the knobs are back after a failed run"
    );
    line
}

/// A bound too tight (firing within 30 s of a `for: 2m` alert) fails at 30 s; then a run
/// stopped by SIGINT in its middle puts the knobs back too.
async fn tight_bound_and_sigint() -> (String, String) {
    let stack = GameStack::start(|c| c, None).await;
    let tight = stack.dir.path().join("tight.toml");
    let text = Scenario::shipped_text("not-ready")
        .replace("pending = \"1m\"\n", "")
        .replace("firing = \"3m\"", "firing = \"30s\"");
    assert!(
        text.contains("firing = \"30s\"") && !text.contains("pending ="),
        "{text}"
    );
    std::fs::write(&tight, text).unwrap();
    let out = stack.run(tight.to_str().unwrap()).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let tight_line = reason(&out);
    assert!(
        tight_line.contains("DemoServiceNotReady not firing 30s after the fault"),
        "{tight_line}"
    );
    assert_eq!(
        stack.knobs().await,
        default_knobs(),
        "the knobs are back after a failed run"
    );

    stack.warm().await;
    let mut child = stack
        .scenario("error-ratio")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log
        .iter()
        .any(|l: &String| l.contains("step 1: error_rate=1"))
    {
        let line = seen.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        log.push(line.unwrap_or_else(|_| panic!("no step began within 60 s: {log:?}")));
    }
    assert_eq!(stack.knobs().await["error_rate"], 1.0, "the fault is on");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    log.extend(seen.iter());
    assert_eq!(status.code(), Some(1), "{log:?}");
    let sigint_line = log.last().cloned().unwrap_or_default();
    assert!(sigint_line.contains("SIGINT at"), "{log:?}");
    assert_eq!(
        stack.knobs().await,
        default_knobs(),
        "the knobs are back after SIGINT"
    );
    (tight_line, sigint_line)
}

/// A drill, seeded: a wrong answer says so, the right one ends it, the knobs are back, and the
/// summary says what it was and how long the diagnosis took.
async fn drill() -> String {
    let stack = GameStack::start(|c| c, None).await;
    stack.warm().await;
    let state = stack.dir.path().join("drill.json");
    let mut drill = Command::new(BIN);
    drill
        .current_dir(stack.dir.path())
        .env_remove("DEMO_SERVICE_ADMIN_TOKEN")
        .args([
            "scenario",
            "drill",
            // Picks memory-leak among today's scenarios: not family-gone, which hides a family
            // of its own instead of the giveaway (a new scenario can move the pick).
            "--seed",
            "8",
            "--state",
            state.to_str().unwrap(),
        ])
        .args(stack_flags(
            "native",
            &format!("http://{}", stack.prometheus.addr),
            &stack.receiver,
            &stack.service.metrics_url(""),
        ));
    let child = drill
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let answer = |knob: &str| {
        let out = Command::new(BIN)
            .args([
                "scenario",
                "answer",
                knob,
                "--state",
                state.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // The drill plays once its state is written and a knob has moved.
    let before = default_knobs();
    poll("a drill begun", Duration::from_secs(30), || async {
        (state.exists() && stack.knobs().await != before).then_some(())
    })
    .await;
    let knobs = stack.knobs().await;
    assert_eq!(
        knobs["hide_family"], "demo_service_fault_active",
        "the giveaway hidden (if the drill picked family-gone, change the seed above)"
    );
    let turned: Vec<String> = knobs
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| before[k.as_str()] != **v && *k != "hide_family")
        .map(|(k, _)| k.clone())
        .collect();
    let wrong = if turned.contains(&"error_rate".to_owned()) {
        "cpu_burn"
    } else {
        "error_rate"
    };
    let (code, said) = answer(wrong);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with(&format!("wrong: not {wrong}")), "{said}");
    let right = turned.first().cloned().unwrap_or_else(|| "load".to_owned());
    let (code, said) = answer(&right);
    assert!(
        said.starts_with(&format!("right: {right}")),
        "{code:?} {said}"
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        summary.contains(&format!("Diagnosed: {right} after")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("1 wrong guess(es): {wrong}")),
        "{summary}"
    );
    assert_eq!(
        stack.knobs().await,
        default_knobs(),
        "the knobs are back after the drill"
    );
    assert!(!state.exists(), "the drill's state is gone");
    format!("{said}\n{summary}")
}

/// A shipped scenario's text.
struct Scenario;

impl Scenario {
    fn shipped_text(name: &str) -> String {
        std::fs::read_to_string(
            PathBuf::from(ROOT)
                .join("scenarios")
                .join(format!("{name}.toml")),
        )
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "real intervals, 12 minutes: scripts/test runs it beside the other tests"]
async fn game_days_on_the_native_stack() {
    let started = Instant::now();
    let (error_ratio, target_down, not_ready, renamed, dropped, (tight, sigint), drilled) = tokio::join!(
        passes("error-ratio"),
        passes("target-down"),
        passes("not-ready"),
        renamed_alert(),
        dropped_notification(),
        tight_bound_and_sigint(),
        drill(),
    );
    write_report(
        "game-days-native",
        &format!(
            "Game days on stacks of the native stack's configuration, real intervals, all at once ({}s in all):\n\n{error_ratio}\n{target_down}\n{not_ready}\nPlanted faults, each a failed run with its reason:\n  renamed alert:        {renamed}\n  dropped notification: {dropped}\n  bound too tight:      {tight}\n  SIGINT mid-run:       {sigint}\n  (after each failed run and after the SIGINT: the knobs back as they were)\n\nA drill (--seed 7), answered wrong, then right:\n{drilled}",
            started.elapsed().as_secs()
        ),
    );
}

/// A scenario on a compose project of its own, published on `addr`: the app (the admin API
/// on), Prometheus, Alertmanager, the receiver and the load generator, as `docker compose
/// --profile load up -d` starts them, with the project's own files.
async fn passes_on_compose(name: &str, addr: &str) -> String {
    let mut compose = crate::compose::Compose::named(
        &format!("demo-service-game-day-{name}"),
        addr,
        &format!("LOAD_RATE=5\nDEMO_SERVICE_ADMIN_TOKEN={TOKEN}\n"),
    );
    compose.run(&[
        "up",
        "-d",
        "--wait",
        "--wait-timeout",
        "180",
        "app",
        "prometheus",
        "alertmanager",
        "receiver",
    ]);
    compose.run(&["--profile", "load", "up", "-d", "loadgen"]);
    let base = |port: u16| format!("http://{addr}:{port}");
    traffic_seen(&base(9090)).await;
    compose.say(&format!(
        "{name}: the stack is up on {addr}, Prometheus sees the load"
    ));
    // From the repository, as a learner runs it, on this project: the pipeline's scenarios
    // stop, kill and restart its services with `docker compose`.
    let mut command = scenario_run(
        name,
        "compose",
        &base(9090),
        &base(9095),
        &base(8000),
        Path::new(ROOT),
    );
    command
        .env("COMPOSE_PROJECT_NAME", compose.project())
        .env("COMPOSE_FILE", crate::compose::STANDIN)
        .env("BIND_ADDRESS", addr);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    compose.say(&format!(
        "scenario run {name} --stack compose: {}\n{table}",
        out.status
    ));
    assert!(
        out.status.success(),
        "scenario {name} on compose: {}\n{table}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut report = format!("{table}(the run took {}s)\n", started.elapsed().as_secs());
    if name == "prometheus-killed" {
        report.push_str(&after_the_kill(&compose, &base(9090), &table).await);
    }
    report
}

/// After Prometheus was killed: the restart policy brought it back, its history from before
/// the kill is there, and it kept the alert's `for` state in ALERTS_FOR_STATE.
async fn after_the_kill(
    compose: &crate::compose::Compose,
    prometheus: &str,
    table: &str,
) -> String {
    let id = compose.run(&["ps", "--quiet", "prometheus"]);
    let restarts = crate::helpers::stdout_of(Command::new("docker").args([
        "inspect",
        "--format",
        "{{.RestartCount}}",
        id.trim(),
    ]));
    assert_eq!(restarts.trim(), "1", "restarted once, by its policy");
    // The scrapes of the minute before the kill (at 1m15s into the fault), asked of the
    // Prometheus that came back.
    let began = table
        .lines()
        .find_map(|l| l.strip_prefix("the fault began at "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no start in the table:\n{table}"));
    let before_kill = began + Duration::from_secs(70);
    let at = before_kill
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let scrapes = query(
        prometheus,
        r#"count_over_time(up{job="flask_app"}[1m])"#,
        Some(at),
    )
    .await;
    let scrapes = scrapes
        .first()
        .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(
        scrapes >= 3.0,
        "history lost in the kill: {scrapes} scrapes of the app in the minute before it"
    );
    let for_state = query(
        prometheus,
        r#"ALERTS_FOR_STATE{alertname="DemoServiceNotReady"}"#,
        Some(at),
    )
    .await;
    assert!(
        !for_state.is_empty(),
        "no ALERTS_FOR_STATE of DemoServiceNotReady from before the kill"
    );
    format!(
        "after the kill: Prometheus restarted {} time(s) by its restart policy; the minute before the kill still holds {scrapes} scrapes of the app (4 at 15 s): its history kept; ALERTS_FOR_STATE of DemoServiceNotReady kept\n",
        restarts.trim()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a Docker engine and Compose v2: scripts/test-compose runs it"]
async fn game_days_on_compose() {
    let started = Instant::now();
    let (error_ratio, target_down, not_ready, receiver, prometheus, alertmanager) = tokio::join!(
        passes_on_compose("error-ratio", "127.0.0.5"),
        passes_on_compose("target-down", "127.0.0.6"),
        passes_on_compose("not-ready", "127.0.0.7"),
        passes_on_compose("receiver-down", "127.0.0.8"),
        passes_on_compose("prometheus-killed", "127.0.0.9"),
        passes_on_compose("alertmanager-restart", "127.0.0.10"),
    );
    write_report(
        "game-days-compose",
        &format!(
            "Game days on compose, a project for each, real intervals, all at once ({}s in all):\n\n{error_ratio}\n{target_down}\n{not_ready}\nWhen the monitoring itself breaks:\n\n{receiver}\n{prometheus}\n{alertmanager}",
            started.elapsed().as_secs()
        ),
    );
}

/// Every shipped scenario that a stack of the native configuration can play alone (all but
/// those that stop a part of the stack, the monitoring's own, and the hours-long slow burns),
/// each on a stack of its own, all at once: the measurements behind the bounds of
/// scenarios/*.toml. About 40 minutes (budget-burn resolves slowly, by design).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "40 minutes of real intervals: run it by hand when the rules or the bounds change"]
async fn every_game_day_measured() {
    let names: Vec<String> = demo_service::scenario::Scenario::shipped()
        .into_iter()
        .filter(|s| s.stops.is_empty() && !s.name.ends_with("-slow"))
        .map(|s| s.name)
        .collect();
    let runs = names.iter().map(|name| async move {
        let stack = GameStack::start(|c| c, None).await;
        stack.warm().await;
        let scenario = demo_service::scenario::Scenario::find(name).unwrap();
        for require in &scenario.require {
            // A young stack: wait until the history the scenario needs is there.
            let base = format!("http://{}", stack.prometheus.addr);
            crate::compose::poll_answers(
                &require.otherwise,
                Duration::from_secs(20 * 60),
                &base,
                &require.query,
            )
            .await;
        }
        let out = stack.run(name).await;
        format!(
            "{}{}\n",
            String::from_utf8_lossy(&out.stdout),
            if out.status.success() {
                String::new()
            } else {
                format!("({})\n", reason(&out))
            }
        )
    });
    let tables = futures_util::future::join_all(runs).await;
    let report = tables.concat();
    write_report("game-days-measured", &report);
    assert!(!report.contains("FAIL"), "{report}");
}
