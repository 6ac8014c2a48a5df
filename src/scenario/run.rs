//! `demo-service scenario run`: plays a scenario against a running stack and watches what the
//! pipeline makes of it, once a second: Prometheus' alerts (pending, firing, gone) and the
//! receiver's notifications. It stops at the first expectation missed, and always puts the
//! stack back as it was: the knobs to their values before the run, every stopped part started.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::report::{Outcome, Row};
use super::stack::Control;
use super::stack::Stack;
use super::stack::percent_encode;
use super::{How, Part, Scenario, short};
use crate::signals::Signals;

/// How often the run looks at Prometheus and the receiver.
const POLL: Duration = Duration::from_secs(1);

/// How long Prometheus may not answer before the run gives up on it.
const SILENCE: Duration = Duration::from_secs(120);

/// One thing the timeline does.
#[derive(Clone, Debug)]
enum Action {
    /// A step's knobs (its index).
    Begin(usize),
    /// The step's knobs back to their values before the run.
    End(usize),
    Stop(Part),
    Start(Part),
    Kill(Part),
    Restart(Part),
}

/// What a run has to put back.
#[derive(Default)]
struct Undo {
    /// The knobs before the run, when it turns any.
    knobs: Option<serde_json::Map<String, Value>>,
    /// The parts it stopped and has not started again.
    stopped: Vec<Part>,
    /// The parts it killed or restarted: started at the end if they are not running (a
    /// restart policy that did not bring one back, a restart that did not start it).
    jolted: Vec<Part>,
}

/// What is known of one expected alert.
struct Watch {
    row: Row,
    /// Its state in Prometheus at the last look: "pending", "firing" or "inactive".
    state: String,
    /// Whether it went away after firing while the fault was still on.
    gone: bool,
}

/// Plays `scenario` against `stack`; `progress` gets a line per event. An error is a stack
/// not ready for it (nothing was changed); a run that began ends in an [`Outcome`].
pub async fn run(
    scenario: &Scenario,
    stack: &Stack,
    mut signals: Signals,
    progress: &mut dyn FnMut(String),
) -> anyhow::Result<Outcome> {
    let expected: Vec<_> = scenario.expected_on(stack.kind).cloned().collect();
    let (ignored, knobs) = prepare(scenario, stack, &expected).await?;
    let mut undo = Undo {
        knobs,
        ..Undo::default()
    };
    for alert in &ignored {
        progress(format!("{alert} is active already: the run ignores it"));
    }

    let mut actions: Vec<(Duration, Action)> = Vec::new();
    for (i, step) in scenario.timeline.iter().flat_map(|t| &t.steps).enumerate() {
        actions.push((step.at, Action::Begin(i)));
        actions.push((step.at + step.lasts.unwrap_or_default(), Action::End(i)));
    }
    for stop in &scenario.stops {
        match stop.how {
            How::Stop(lasts) => {
                actions.push((stop.at, Action::Stop(stop.part)));
                actions.push((stop.at + lasts, Action::Start(stop.part)));
            }
            How::Kill => actions.push((stop.at, Action::Kill(stop.part))),
            How::Restart => actions.push((stop.at, Action::Restart(stop.part))),
        }
    }
    // Ends before beginnings at the same time, so a step that follows another takes over.
    actions.sort_by_key(|(at, a)| (*at, !matches!(a, Action::End(_) | Action::Start(_))));
    let last_action = actions.len();

    let started = tokio::time::Instant::now();
    let began = SystemTime::now() + scenario.begins();
    let mut outcome = Outcome::new(scenario, stack.kind, began, ignored.clone());
    let mut watches: Vec<Watch> = expected
        .iter()
        .map(|e| Watch {
            row: Row::new(e),
            state: "inactive".to_owned(),
            gone: false,
        })
        .collect();
    let mut done_actions = 0;
    let mut cleared: Option<SystemTime> = None;
    let mut silent_since: Option<SystemTime> = None;
    let failure: Option<String> = loop {
        // A signal that came while the stack was checked, or an action ran: stop before the
        // next action.
        if let Some(signal) = signals.try_next() {
            let at = SystemTime::now().duration_since(began).unwrap_or_default();
            break Some(format!(
                "{signal} at {} after the fault began: the run stopped",
                short(at)
            ));
        }
        // The timeline's actions that are due.
        let elapsed = started.elapsed();
        let mut failed = None;
        while done_actions < last_action && actions[done_actions].0 <= elapsed {
            let (at, action) = &actions[done_actions];
            if let Err(e) = act(scenario, stack, action, &mut undo).await {
                failed = Some(format!("{}: {e:#}", describe(scenario, action)));
                break;
            }
            progress(format!(
                "[{:>6}] {}",
                short(*at),
                describe(scenario, action)
            ));
            done_actions += 1;
            if done_actions == last_action {
                cleared = Some(SystemTime::now());
                outcome.cleared = cleared;
                progress(format!("[{:>6}] the fault is cleared", short(*at)));
            }
        }
        if failed.is_some() {
            break failed;
        }

        let now = SystemTime::now();
        match look(
            stack,
            &mut watches,
            &ignored,
            &scenario.allow,
            (began, cleared),
            now,
            progress,
        )
        .await
        {
            Ok(Some(other)) => break Some(other),
            Ok(None) => silent_since = None,
            // Prometheus may be restarting (a scenario can kill it): wait for it, a while.
            Err(e) => {
                let since = *silent_since.get_or_insert_with(|| {
                    progress(format!(
                        "Prometheus does not answer ({e:#}): waiting for it"
                    ));
                    now
                });
                if now.duration_since(since).unwrap_or_default() > SILENCE {
                    break Some(format!("{e:#}, for {} in a row", short(SILENCE)));
                }
            }
        }
        if let Some(reason) = missed(&watches, began, cleared, now) {
            break Some(reason);
        }
        let all_over = watches.iter().all(|w| {
            w.row.resolved.is_some() && (w.row.notified.is_some() || w.row.notified_bound.is_none())
        });
        if cleared.is_some() && all_over {
            break None;
        }

        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            signal = signals.next() => {
                let at = now.duration_since(began).unwrap_or_default();
                break Some(format!("{signal} at {} after the fault began: the run stopped", short(at)));
            }
        }
    };

    outcome.rows = watches.into_iter().map(|w| w.row).collect();
    outcome.failure = failure;
    outcome.restored = restore(stack, &mut undo)
        .await
        .err()
        .map(|e| format!("{e:#}"));
    if let Some(e) = &outcome.restored {
        progress(format!("could not put the stack back as it was: {e}"));
    } else {
        progress("the stack is back as it was before the run".to_owned());
    }
    Ok(outcome)
}

/// Checks that the stack can play `scenario` now, changing nothing.
pub async fn prepare_for(scenario: &Scenario, stack: &Stack) -> anyhow::Result<()> {
    let expected: Vec<_> = scenario.expected_on(stack.kind).cloned().collect();
    prepare(scenario, stack, &expected).await.map(drop)
}

/// Checks that the stack can play the scenario; returns the alerts active already, which the
/// run ignores, and the knobs when the scenario turns any: the values it checked are the ones
/// it puts back.
async fn prepare(
    scenario: &Scenario,
    stack: &Stack,
    expected: &[super::Expect],
) -> anyhow::Result<(BTreeSet<String>, Option<serde_json::Map<String, Value>>)> {
    let rules = stack
        .get(&format!("{}/api/v1/rules?type=alert", stack.prometheus))
        .await?;
    let names: BTreeSet<&str> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["name"].as_str())
        .collect();
    for e in expected {
        if !names.contains(e.alert.as_str()) {
            anyhow::bail!(
                "Prometheus ({}) has no alert {}: a scenario needs the project's rules (prometheus/rules/); it has {} alert(s)",
                stack.prometheus,
                e.alert,
                names.len()
            );
        }
    }
    for stop in &scenario.stops {
        stack.can_control(stop.part, stop.how).await?;
    }
    let active = active_alerts(stack).await?;
    let mut ignored = BTreeSet::new();
    for (name, state, _) in &active {
        if expected.iter().any(|e| &e.alert == name) {
            anyhow::bail!(
                "{name} is {state} already: its timing cannot be measured; wait until it resolves (Prometheus' Alerts page)"
            );
        }
        ignored.insert(name.clone());
    }
    let knobs = match scenario.timeline {
        Some(_) => Some(stack.knobs().await?),
        None => None,
    };
    if let Some(knobs) = &knobs {
        let on = faults_on(knobs);
        if !on.is_empty() {
            anyhow::bail!(
                "a fault is on already ({}): another game day or drill plays, or someone turned it; a run would put it back on at its end. Clear it first (DELETE /admin/knobs)",
                on.join(", ")
            );
        }
    }
    if scenario.timeline.is_some()
        && let Some(timeline) = stack.incidents().await?
    {
        anyhow::bail!(
            "the service plays the incident timeline {timeline} (DEMO_SERVICE_INCIDENTS), whose faults would mix with the scenario's: start it without one"
        );
    }
    if scenario.traffic > 0.0 {
        let rate = query_scalar(
            stack,
            "max(sum by (instance) (rate(http_requests_total{job=\"flask_app\"}[1m])))",
        )
        .await?
        .unwrap_or(0.0);
        if rate < scenario.traffic {
            let start = match stack.kind {
                super::StackKind::Compose => "docker compose --profile load up -d",
                super::StackKind::Native => "scripts/stack start load",
            };
            anyhow::bail!(
                "the service gets {rate:.2} requests/s, and this scenario needs {}: start the load generator ({start}) and wait a minute",
                scenario.traffic
            );
        }
    }
    for require in &scenario.require {
        if query_scalar(stack, &require.query).await?.is_none() {
            anyhow::bail!("{} ({} has no result)", require.otherwise, require.query);
        }
    }
    stack
        .get(&format!("{}/alerts", stack.receiver))
        .await
        .map_err(|e| e.context("the receiver"))?;
    Ok((ignored, knobs))
}

/// The faults that the knobs `view` (as GET /admin/knobs shows them) have on, by name.
fn faults_on(view: &serde_json::Map<String, Value>) -> Vec<&'static str> {
    use crate::behaviour::faults::{Limits, NAMES};
    use crate::behaviour::knobs::{Knobs, change_to};
    // The service's own limits may be above the defaults: none here, only what is on.
    let limits = Limits {
        memory_leak_cap: u64::MAX,
        max_cpu_burn: Duration::MAX,
        max_cardinality: u32::MAX,
        max_fault_delay: Duration::MAX,
    };
    let values = view.iter().map(|(k, v)| (k.clone(), v.clone()));
    match Knobs::default().changed(&change_to(values), &limits) {
        Ok(knobs) => NAMES
            .iter()
            .zip(knobs.faults.active())
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// An instant query's single value, if it has one.
async fn query_scalar(stack: &Stack, expr: &str) -> anyhow::Result<Option<f64>> {
    let url = format!(
        "{}/api/v1/query?query={}",
        stack.prometheus,
        percent_encode(expr)
    );
    let body = stack.get(&url).await?;
    Ok(body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok()))
}

/// The alerts of the service that Prometheus holds now: name, state, and when it became
/// active.
async fn active_alerts(stack: &Stack) -> anyhow::Result<Vec<(String, String, Option<SystemTime>)>> {
    let body = stack
        .get(&format!("{}/api/v1/alerts", stack.prometheus))
        .await?;
    Ok(body["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["job"] == "flask_app")
        .map(|a| {
            let name = a["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let state = a["state"].as_str().unwrap_or_default().to_owned();
            let since = a["activeAt"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok());
            (name, state, since)
        })
        .collect())
}

/// Takes one look at Prometheus and the receiver, and records what is new. Returns the reason
/// to stop if an alert the scenario does not name fires.
async fn look(
    stack: &Stack,
    watches: &mut [Watch],
    ignored: &BTreeSet<String>,
    allowed: &[String],
    (began, cleared): (SystemTime, Option<SystemTime>),
    now: SystemTime,
    progress: &mut dyn FnMut(String),
) -> anyhow::Result<Option<String>> {
    let since = |t: SystemTime| t.duration_since(began).unwrap_or_default();
    let active = active_alerts(stack).await?;
    for watch in watches.iter_mut() {
        let mine: Vec<_> = active
            .iter()
            .filter(|(n, ..)| *n == watch.row.alert)
            .collect();
        let firing = mine.iter().any(|(_, s, _)| s == "firing");
        let active_at = mine.iter().filter_map(|(.., t)| *t).min();
        watch.state = if firing {
            "firing"
        } else if mine.is_empty() {
            "inactive"
        } else {
            "pending"
        }
        .to_owned();
        let row = &mut watch.row;
        if row.pending.is_none() && !mine.is_empty() {
            let at = since(active_at.unwrap_or(now));
            row.pending = Some(at);
            progress(format!(
                "[{:>6}] {} pending{}",
                short(at),
                row.alert,
                bound(row.pending_bound)
            ));
        }
        if row.firing.is_none() && firing {
            let at = since(now);
            row.firing = Some(at);
            progress(format!(
                "[{:>6}] {} firing{}",
                short(at),
                row.alert,
                bound(Some(row.firing_bound))
            ));
        }
        if row.firing.is_some() && row.resolved.is_none() && mine.is_empty() {
            match cleared {
                // Gone while the fault is on: it flaps, or Prometheus restarted and has not
                // evaluated its rules yet. Not a resolution: it should fire again.
                None if !watch.gone => {
                    watch.gone = true;
                    progress(format!(
                        "[{:>6}] {} is gone while the fault is on (a restart of Prometheus, or a flap)",
                        short(since(now)),
                        row.alert
                    ));
                }
                None => {}
                Some(c) => {
                    row.resolved = Some(now.duration_since(c).unwrap_or_default());
                    progress(format!(
                        "[{:>6}] {} resolved, {} after the fault was cleared{}",
                        short(since(now)),
                        row.alert,
                        short(row.resolved.unwrap_or_default()),
                        bound(Some(row.resolved_bound))
                    ));
                }
            }
        }
        if !mine.is_empty() {
            watch.gone = false;
        }
    }
    // The receiver may be down (a scenario can stop it): then nothing has arrived.
    let notifications = stack
        .get(&format!("{}/alerts", stack.receiver))
        .await
        .unwrap_or_default();
    for watch in watches.iter_mut() {
        // The firing notifications of this alert since the fault began, oldest first.
        let received: Vec<SystemTime> =
            notifications
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| {
                    n["alerts"].as_array().into_iter().flatten().any(|a| {
                        a["alertname"] == watch.row.alert.as_str() && a["status"] == "firing"
                    })
                })
                .filter_map(|n| humantime::parse_rfc3339(n["received_at"].as_str()?).ok())
                .filter(|t| *t >= began)
                .collect();
        // The receiver keeps its latest notifications only: the count never goes down.
        watch.row.notifications = watch.row.notifications.max(received.len() as u32);
        if let (None, Some(&t)) = (watch.row.notified, received.first()) {
            let at = since(t);
            watch.row.notified = Some(at);
            progress(format!(
                "[{:>6}] {} notified at the receiver{}",
                short(at),
                watch.row.alert,
                bound(watch.row.notified_bound)
            ));
        }
    }
    for (name, state, _) in &active {
        let known = watches.iter().any(|w| &w.row.alert == name)
            || ignored.contains(name)
            || allowed.iter().any(|a| a == name || a == "*");
        if !known && state == "firing" {
            return Ok(Some(format!(
                "{name} fired {} after the fault began, and the scenario does not name it (its `allow` would)",
                short(since(now))
            )));
        }
    }
    Ok(None)
}

/// ` (bound 2m)`, or nothing.
fn bound(b: Option<Duration>) -> String {
    b.map(|b| format!(" (bound {})", short(b)))
        .unwrap_or_default()
}

/// The first expectation missed by `now`, as the line that says so.
fn missed(
    watches: &[Watch],
    began: SystemTime,
    cleared: Option<SystemTime>,
    now: SystemTime,
) -> Option<String> {
    let elapsed = now.duration_since(began).unwrap_or_default();
    for w in watches {
        let r = &w.row;
        let state = match (w.state.as_str(), r.pending) {
            ("inactive", _) => "Prometheus has it inactive".to_owned(),
            (state, Some(p)) => format!("Prometheus has it {state} since {}", short(p)),
            (state, None) => format!("Prometheus has it {state}"),
        };
        // What is late: a time past its bound, or none yet when the bound has passed.
        let late = |what: &str,
                    value: Option<Duration>,
                    bound: Duration,
                    since: Duration,
                    from: &str,
                    otherwise: &str| {
            match value {
                Some(v) if v > bound => Some(format!(
                    "{} {what} {} after the fault{from}, past its bound of {}",
                    r.alert,
                    short(v),
                    short(bound)
                )),
                None if since > bound => Some(format!(
                    "{} {otherwise} {} after the fault{from}; {state}",
                    r.alert,
                    short(bound)
                )),
                _ => None,
            }
        };
        let checks = [
            r.pending_bound
                .and_then(|b| late("pending", r.pending, b, elapsed, "", "not pending")),
            late(
                "firing",
                r.firing,
                r.firing_bound,
                elapsed,
                "",
                "not firing",
            ),
            r.notified_bound
                .filter(|_| r.firing.is_some())
                .and_then(|b| {
                    late(
                        "notified",
                        r.notified,
                        b,
                        elapsed,
                        "",
                        "fired, and no notification of it reached the receiver",
                    )
                }),
            cleared.and_then(|c| {
                let after = now.duration_since(c).unwrap_or_default();
                late(
                    "resolved",
                    r.resolved,
                    r.resolved_bound,
                    after,
                    " was cleared",
                    "not resolved",
                )
            }),
        ];
        if let Some(reason) = checks.into_iter().flatten().next() {
            return Some(reason);
        }
        if let Some(most) = r.notifications_bound
            && r.notifications > most
        {
            return Some(format!(
                "{} reached the receiver {} times firing, more than the {most} expected: Alertmanager sent it again",
                r.alert, r.notifications
            ));
        }
    }
    None
}

/// Carries out one action of the timeline, noting what to undo.
async fn act(
    scenario: &Scenario,
    stack: &Stack,
    action: &Action,
    undo: &mut Undo,
) -> anyhow::Result<()> {
    let steps = scenario
        .timeline
        .as_ref()
        .map(|t| &t.steps[..])
        .unwrap_or_default();
    match *action {
        Action::Begin(i) => stack.set(&steps[i].set).await,
        Action::End(i) => {
            let before = undo
                .knobs
                .as_ref()
                .expect("the knobs were read before a step");
            let back = steps[i]
                .set
                .keys()
                .filter_map(|k| Some((k.clone(), before.get(k)?.clone())))
                .collect();
            stack.set(&back).await
        }
        Action::Stop(part) => {
            undo.stopped.push(part);
            stack.control(part, Control::Stop).await
        }
        Action::Start(part) => {
            stack.control(part, Control::Start).await?;
            undo.stopped.retain(|p| *p != part);
            Ok(())
        }
        Action::Kill(part) => {
            undo.jolted.push(part);
            stack.control(part, Control::Kill).await
        }
        Action::Restart(part) => {
            undo.jolted.push(part);
            stack.control(part, Control::Restart).await
        }
    }
}

/// What an action does, for the progress lines.
fn describe(scenario: &Scenario, action: &Action) -> String {
    let steps = scenario
        .timeline
        .as_ref()
        .map(|t| &t.steps[..])
        .unwrap_or_default();
    let knobs = |i: usize| {
        steps[i]
            .set
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match *action {
        Action::Begin(i) => format!("step {}: {}", i + 1, knobs(i)),
        Action::End(i) => format!("step {} over: its knobs back as they were", i + 1),
        Action::Stop(part) => format!("{} stopped", part.name()),
        Action::Start(part) => format!("{} started again", part.name()),
        Action::Kill(part) => format!("{} killed (SIGKILL)", part.name()),
        Action::Restart(part) => format!("{} restarted", part.name()),
    }
}

/// Puts the stack back: every stopped part started, the knobs as they were.
async fn restore(stack: &Stack, undo: &mut Undo) -> anyhow::Result<()> {
    let mut result = Ok(());
    let started = !undo.stopped.is_empty();
    let parts = std::mem::take(&mut undo.stopped)
        .into_iter()
        .chain(std::mem::take(&mut undo.jolted));
    for part in parts {
        // `start` of a running part does nothing.
        if let Err(e) = stack.control(part, Control::Start).await {
            result = Err(e.context(format!("{} not started again", part.name())));
        }
    }
    if let Some(knobs) = undo.knobs.take() {
        // A part just started (the app, under compose) may take a few seconds to listen.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match stack.set(&knobs).await {
                Ok(()) => break,
                Err(_) if started && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    result = Err(e.context("the knobs not put back"));
                    break;
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(state: &str) -> Watch {
        Watch {
            row: Row::new(&super::super::Expect {
                alert: "DemoServiceErrorRatioHigh".to_owned(),
                pending: Some(Duration::from_secs(150)),
                firing: Duration::from_secs(360),
                notified: Some(Duration::from_secs(400)),
                resolved: Duration::from_secs(300),
                notifications: None,
                stack: None,
            }),
            state: state.to_owned(),
            gone: false,
        }
    }

    #[test]
    fn a_missed_bound_is_one_line_that_says_what_prometheus_has() {
        let began = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| began + Duration::from_secs(s);
        let mut w = watch("pending");
        w.row.pending = Some(Duration::from_secs(130));
        assert_eq!(missed(std::slice::from_ref(&w), began, None, at(359)), None);
        assert_eq!(
            missed(std::slice::from_ref(&w), began, None, at(361)).unwrap(),
            "DemoServiceErrorRatioHigh not firing 6m00s after the fault; Prometheus has it pending since 2m10s"
        );
        w.row.firing = Some(Duration::from_secs(250));
        w.state = "firing".to_owned();
        assert_eq!(
            missed(std::slice::from_ref(&w), began, None, at(401)).unwrap(),
            "DemoServiceErrorRatioHigh fired, and no notification of it reached the receiver 6m40s after the fault; Prometheus has it firing since 2m10s"
        );
        w.row.notified = Some(Duration::from_secs(280));
        assert_eq!(
            missed(std::slice::from_ref(&w), began, Some(at(300)), at(601)).unwrap(),
            "DemoServiceErrorRatioHigh not resolved 5m00s after the fault was cleared; Prometheus has it firing since 2m10s"
        );
        let mut late = watch("pending");
        late.row.pending = Some(Duration::from_secs(151));
        assert_eq!(
            missed(&[late], began, None, at(152)).unwrap(),
            "DemoServiceErrorRatioHigh pending 2m31s after the fault, past its bound of 2m30s"
        );
        assert_eq!(
            missed(&[watch("inactive")], began, None, at(151)).unwrap(),
            "DemoServiceErrorRatioHigh not pending 2m30s after the fault; Prometheus has it inactive"
        );
    }

    #[test]
    fn the_faults_on_are_read_from_the_knobs() {
        use crate::behaviour::knobs::{Knobs, View};
        let view = |k: &Knobs| match serde_json::to_value(View::from(k)).unwrap() {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        assert!(faults_on(&view(&Knobs::default())).is_empty());
        let mut broken = Knobs::default();
        broken.faults.not_ready = true;
        broken.faults.hide_family = Some("demo_service_fault_active".to_owned());
        broken.error_rate = 0.9;
        assert_eq!(faults_on(&view(&broken)), ["not_ready", "hide_family"]);
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode("rate(x{a=\"b\"}[1m])"),
            "rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29"
        );
    }
}
