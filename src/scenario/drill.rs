//! `demo-service scenario drill`: a fault of the shipped scenarios, picked at random and played
//! without saying which, held until the learner names it (`scenario answer KNOB`) or gives up
//! (`scenario reveal`). The learner diagnoses it as on call: from the dashboard, Prometheus'
//! alerts and queries, and the logs.
//!
//! The drill runs in the foreground; `answer` and `reveal` talk to it through a small state
//! file (`--state`: a temporary file natively, a volume under compose), which it polls. At its
//! end (right answer, reveal, its time limit, Ctrl-C) it puts the stack back as it was, as
//! every run does, and says what the monitoring saw meanwhile.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::report::Outcome;
use super::stack::Stack;
use super::{How, Scenario, short};
use crate::behaviour::timeline::{Step, Timeline};
use crate::signals::Signals;

/// The family that says which fault is on: hidden while a drill plays, or the dashboard's
/// "Faults on" panel would give the answer away.
const GIVEAWAY: &str = "demo_service_fault_active";

/// What a drill and its `answer` and `reveal` share.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    /// The drill's process (in its own PID namespace, under compose).
    pub pid: u32,
    pub scenario: String,
    /// When the fault began, RFC 3339.
    pub began: String,
    /// Every guess so far: the name given, whether it was right, and when.
    #[serde(default)]
    pub guesses: Vec<Guess>,
    /// Why it ended: "answered" or "revealed"; `None` while it plays.
    pub ended: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Guess {
    pub name: String,
    pub right: bool,
    /// Seconds since the fault began.
    pub after: f64,
}

/// The scenarios a drill picks from: the service's faults (not the monitoring's), in a stable
/// order.
pub fn candidates(stack: &Stack) -> Vec<Scenario> {
    Scenario::shipped()
        .into_iter()
        .filter(|s| s.expected_on(stack.kind).next().is_some())
        .filter(|s| {
            s.stops
                .iter()
                .all(|stop| matches!(stop.how, How::Stop(_)) && !stop.part.is_monitoring())
        })
        // Hours long: a drill wants an answer within the class.
        .filter(|s| !s.name.ends_with("-slow"))
        .collect()
}

/// The names that count as a right answer for `scenario`: each knob it turns, the fault
/// (`demo_service_fault_active`'s label) that knob belongs to, and each part it stops.
pub fn answers(scenario: &Scenario) -> Vec<String> {
    let mut names = Vec::new();
    for step in scenario.timeline.iter().flat_map(|t| &t.steps) {
        for knob in step.set.keys() {
            names.push(knob.clone());
            if knob.starts_with("dependency_") {
                names.push("dependency".to_owned());
            }
        }
    }
    for stop in &scenario.stops {
        names.push(stop.part.name().to_owned());
        if stop.part == super::Part::Load {
            names.push("loadgen".to_owned());
        }
    }
    names
}

/// The drill's own scenario: `scenario`'s fault held for up to `limit`, the giveaway family
/// hidden, every alert allowed, no bound that can end it early.
fn held(mut scenario: Scenario, limit: Duration) -> Scenario {
    let mut timeline = scenario.timeline.take().unwrap_or_else(|| Timeline {
        name: scenario.name.clone(),
        description: String::new(),
        repeat: None,
        steps: Vec::new(),
    });
    for step in &mut timeline.steps {
        step.lasts = Some(limit);
    }
    if !timeline
        .steps
        .iter()
        .any(|s| s.set.contains_key("hide_family"))
    {
        let mut set = serde_json::Map::new();
        set.insert("hide_family".to_owned(), GIVEAWAY.into());
        timeline.steps.push(Step {
            at: Duration::ZERO,
            lasts: Some(limit),
            jitter: Duration::ZERO,
            set,
        });
    }
    scenario.timeline = Some(timeline);
    for stop in &mut scenario.stops {
        stop.how = How::Stop(limit);
    }
    let never = limit * 4;
    for e in &mut scenario.expect {
        e.pending = None;
        e.notified = None;
        e.firing = never;
        e.resolved = never;
    }
    scenario.allow = vec!["*".to_owned()];
    scenario
}

/// Where the state lives unless `--state` says: the system's temporary directory.
pub fn default_state() -> PathBuf {
    std::env::temp_dir().join("demo-service-drill.json")
}

fn read(path: &Path) -> anyhow::Result<Option<State>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{}: not a drill's state", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write(path: &Path, state: &State) -> anyhow::Result<()> {
    // A name of its own: `answer` and `reveal` may write at once.
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let new = path.with_extension(format!("{}.{nanos}.new", std::process::id()));
    std::fs::write(&new, serde_json::to_vec_pretty(state)?)
        .and_then(|()| std::fs::rename(&new, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// How often a playing drill touches its state file; one untouched for three times as long
/// belongs to a drill that is gone. (Not its pid: under compose, `answer` runs in a container
/// of its own, which cannot see the drill's process.)
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Marks the drill at `path` as alive.
fn touch(path: &Path) {
    let _ = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
}

/// Whether the drill whose state is at `path` is alive: its file touched lately.
fn alive(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() < HEARTBEAT * 3)
}

/// The drill that plays now, or what to do without one.
fn playing(path: &Path) -> anyhow::Result<State> {
    match read(path)? {
        Some(state) if state.ended.is_none() && alive(path) => Ok(state),
        _ => bail!("no drill is playing (start one with `demo-service scenario drill`)"),
    }
}

/// Plays a drill; returns the report to print at its end.
pub async fn drill(
    stack: &Stack,
    seed: Option<u64>,
    limit: Duration,
    state_path: &Path,
    signals: Signals,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<String> {
    if let Some(state) = read(state_path)?
        && state.ended.is_none()
        && alive(state_path)
    {
        bail!(
            "a drill plays already (pid {}): `demo-service scenario reveal` ends it",
            state.pid
        );
    }
    // Every drill turns knobs (it hides the giveaway family at least): the admin API first,
    // so that a missing token is said once, not once per fault.
    stack.knobs().await?;
    let mut pool = candidates(stack);
    let mut rng = match seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
        None => rand::rngs::StdRng::from_rng(&mut rand::rng()),
    };
    // A fault the stack cannot play now (no traffic yet, a young history) is passed over.
    let mut passed_over = Vec::new();
    let (scenario, held_scenario) = loop {
        if pool.is_empty() {
            bail!(
                "no fault can be played on this stack now: {}",
                passed_over.join("; ")
            );
        }
        let picked = pool.remove(rng.random_range(0..pool.len()));
        let scenario = held(picked.clone(), limit);
        match super::run::prepare_for(&scenario, stack).await {
            Ok(()) => break (picked, scenario),
            Err(e) => {
                let reason = format!("{}: {e:#}", picked.name);
                passed_over.push(reason);
            }
        }
    };
    let began = SystemTime::now();
    write(
        state_path,
        &State {
            pid: std::process::id(),
            scenario: scenario.name.clone(),
            began: humantime::format_rfc3339_seconds(began).to_string(),
            guesses: Vec::new(),
            ended: None,
        },
    )?;
    let announcement = format!(
        "A fault is on. Diagnose it with the dashboard, Prometheus' alerts and queries, and the logs;\n\
         then name the knob you would turn back, in another terminal:\n\
         \x20 demo-service scenario answer KNOB    (compose: docker compose run --rm gameday answer KNOB)\n\
         (docs/faults.md names the knobs; a stopped part is app or load). `scenario reveal` gives\n\
         up. It ends by itself after {}.",
        short(limit)
    );
    // The answer, the reveal and the time limit reach the run as signals, beside Ctrl-C.
    let (tx, run_signals) = Signals::channel();
    let watch_path = state_path.to_owned();
    let mut os = signals;
    let forward = tokio::spawn(async move {
        let end = tokio::time::Instant::now() + limit;
        loop {
            tokio::select! {
                signal = os.next() => {
                    // The drill ends: no more heartbeat, so that a late answer is told so.
                    let _ = tx.send(signal).await;
                    break;
                }
                () = tokio::time::sleep_until(end) => {
                    let _ = tx.send("the time limit").await;
                    break;
                }
                () = tokio::time::sleep(HEARTBEAT) => {
                    touch(&watch_path);
                    if let Ok(Some(state)) = read(&watch_path)
                        && state.ended.is_some()
                    {
                        let _ = tx.send("the drill's end").await;
                        break;
                    }
                }
            }
        }
    });
    // The run's lines would name the fault: the learner gets one line, once it is on.
    let mut announced = false;
    let mut quiet = |line: String| {
        if !announced && line.starts_with('[') {
            announced = true;
            say(announcement.clone());
        }
    };
    let outcome = super::run::run(&held_scenario, stack, run_signals, &mut quiet).await;
    forward.abort();
    let state = read(state_path);
    let _ = std::fs::remove_file(state_path);
    Ok(summary(&scenario, &outcome?, state?, began))
}

/// What the drill was, how the diagnosis went, and what the monitoring saw.
fn summary(
    scenario: &Scenario,
    outcome: &Outcome,
    state: Option<State>,
    began: SystemTime,
) -> String {
    let mut out = format!(
        "It was `{}`: {} ({}).\n",
        scenario.name,
        scenario.description,
        scenario.fault()
    );
    let guesses = state.as_ref().map(|s| &s.guesses[..]).unwrap_or_default();
    let wrong: Vec<&str> = guesses
        .iter()
        .filter(|g| !g.right)
        .map(|g| g.name.as_str())
        .collect();
    match (
        guesses.iter().find(|g| g.right),
        state.as_ref().and_then(|s| s.ended.as_deref()),
    ) {
        (Some(right), _) => out.push_str(&format!(
            "Diagnosed: {} after {}",
            right.name,
            short(Duration::from_secs_f64(right.after))
        )),
        (None, Some("revealed")) => out.push_str("Revealed, not diagnosed"),
        _ => out.push_str(&format!(
            "Not diagnosed: the drill ended after {}",
            short(began.elapsed().unwrap_or_default())
        )),
    }
    if wrong.is_empty() {
        out.push_str(".\n");
    } else {
        out.push_str(&format!(
            ", after {} wrong guess(es): {}.\n",
            wrong.len(),
            wrong.join(", ")
        ));
    }
    if let Some(failure) = &outcome.failure {
        let own = [
            "the drill's end",
            "the time limit",
            "SIGINT",
            "SIGTERM",
            "SIGHUP",
        ];
        if !own.iter().any(|o| failure.starts_with(o)) {
            out.push_str(&format!("The drill stopped: {failure}\n"));
        }
    }
    out.push_str("What the monitoring saw, from when the fault began:\n");
    for r in &outcome.rows {
        let t = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), short);
        out.push_str(&format!(
            "  {}: pending {}, firing {}, notified {}\n",
            r.alert,
            t(r.pending),
            t(r.firing),
            t(r.notified)
        ));
    }
    match &outcome.restored {
        None => out.push_str("The stack is back as it was.\n"),
        Some(e) => out.push_str(&format!("Could not put the stack back as it was: {e}\n")),
    }
    out
}

/// `scenario answer NAME`: right or wrong, and how long the diagnosis took.
pub fn answer(state_path: &Path, name: &str) -> anyhow::Result<String> {
    let mut state = playing(state_path)?;
    let scenario = Scenario::find(&state.scenario).map_err(|e| anyhow::anyhow!(e))?;
    let name = name.trim().trim_start_matches("--").replace('-', "_");
    let right = answers(&scenario)
        .iter()
        .any(|a| a.replace('-', "_") == name);
    let began = humantime::parse_rfc3339(&state.began).unwrap_or(SystemTime::now());
    let after = began.elapsed().unwrap_or_default();
    state.guesses.push(Guess {
        name: name.clone(),
        right,
        after: after.as_secs_f64(),
    });
    let tries = state.guesses.len();
    if right {
        state.ended = Some("answered".to_owned());
    }
    write(state_path, &state)?;
    Ok(if right {
        format!(
            "right: {name}, diagnosed {} after the fault began, at guess {tries}. The drill ends and puts the knobs back.",
            short(after)
        )
    } else {
        format!(
            "wrong: not {name} ({} after the fault began, guess {tries}). Look again: which panel moved first?",
            short(after)
        )
    })
}

/// `scenario reveal`: what the fault was; the drill ends.
pub fn reveal(state_path: &Path) -> anyhow::Result<String> {
    let mut state = playing(state_path)?;
    let scenario = Scenario::find(&state.scenario).map_err(|e| anyhow::anyhow!(e))?;
    state.ended = Some("revealed".to_owned());
    write(state_path, &state)?;
    Ok(format!(
        "It is `{}`: {} ({}); the knob to name: {}. The drill ends and puts the knobs back.",
        scenario.name,
        scenario.description,
        scenario.fault(),
        answers(&scenario).first().cloned().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_answers_are_the_knobs_the_faults_and_the_parts() {
        let find = |name: &str| Scenario::find(name).unwrap();
        assert_eq!(answers(&find("not-ready")), ["not_ready"]);
        assert_eq!(
            answers(&find("dependency-failing")),
            ["dependency_error_rate", "dependency"]
        );
        assert_eq!(answers(&find("no-traffic")), ["load", "loadgen"]);
    }

    #[test]
    fn a_held_fault_lasts_until_the_limit_and_hides_the_giveaway() {
        let limit = Duration::from_secs(1800);
        let ready = held(Scenario::find("not-ready").unwrap(), limit);
        let steps = &ready.timeline.as_ref().unwrap().steps;
        assert!(steps.iter().all(|s| s.lasts == Some(limit)));
        assert!(
            steps
                .iter()
                .any(|s| s.set.get("hide_family") == Some(&GIVEAWAY.into()))
        );
        assert!(
            ready
                .expect
                .iter()
                .all(|e| e.firing > limit && e.pending.is_none())
        );
        let family = held(Scenario::find("family-gone").unwrap(), limit);
        let hidden: Vec<_> = family
            .timeline
            .unwrap()
            .steps
            .iter()
            .filter_map(|s| s.set.get("hide_family").cloned())
            .collect();
        assert_eq!(
            hidden,
            [serde_json::Value::from("request_count")],
            "one family hidden: the scenario's"
        );
    }

    #[test]
    fn answer_and_reveal_need_a_drill_and_say_right_or_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drill.json");
        assert!(
            answer(&path, "not_ready")
                .unwrap_err()
                .to_string()
                .contains("no drill is playing")
        );
        let state = State {
            pid: std::process::id(),
            scenario: "not-ready".to_owned(),
            began: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            guesses: Vec::new(),
            ended: None,
        };
        write(&path, &state).unwrap();
        assert!(
            answer(&path, "error_rate")
                .unwrap()
                .starts_with("wrong: not error_rate")
        );
        assert!(
            answer(&path, "not-ready")
                .unwrap()
                .starts_with("right: not_ready")
        );
        let after = read(&path).unwrap().unwrap();
        assert_eq!(after.guesses.len(), 2);
        assert_eq!(after.ended.as_deref(), Some("answered"));
        assert!(
            reveal(&path)
                .unwrap_err()
                .to_string()
                .contains("no drill is playing"),
            "it ended"
        );
        write(&path, &state).unwrap();
        assert!(reveal(&path).unwrap().contains("It is `not-ready`"));
    }

    #[test]
    fn drills_pick_the_service_s_faults_only() {
        let dir = tempfile::tempdir().unwrap();
        let args = crate::config::ScenarioStackArgs {
            stack: Some(super::super::StackKind::Compose),
            prometheus: None,
            receiver: None,
            admin: None,
            admin_token: None,
        };
        let stack = Stack::find(&args, dir.path()).unwrap();
        let names: Vec<String> = candidates(&stack).into_iter().map(|s| s.name).collect();
        for monitoring in [
            "receiver-down",
            "prometheus-killed",
            "alertmanager-restart",
            "budget-burn-slow",
        ] {
            assert!(!names.contains(&monitoring.to_owned()), "{names:?}");
        }
        assert!(
            names.contains(&"not-ready".to_owned()) && names.contains(&"app-stopped".to_owned())
        );
    }
}
