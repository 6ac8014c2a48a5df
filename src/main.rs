use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use demo_service::config::{self, Cli, Command, Output, ScenarioCommand, SloCommand};
use demo_service::load::{self, Progress};
use demo_service::scenario::{self, Scenario};
use demo_service::server::Server;
use demo_service::signals::Signals;
use demo_service::{healthcheck, receiver, telemetry};
use tokio::runtime::Builder;

/// jemalloc rather than glibc's malloc: its background thread gives memory freed after a burst
/// (10,000 connections) back to the system within seconds, where glibc keeps most of it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&config::usage_line(&e)),
    };
    match cli.command() {
        Command::Serve(args) => {
            let timeline = match args
                .behaviour
                .validate()
                .and_then(|()| args.behaviour.timeline())
            {
                Ok(timeline) => timeline,
                Err(e) => return usage_error(&format!("error: {e}")),
            };
            let _logs = match telemetry::init(args.log_format) {
                Ok(guard) => guard,
                Err(e) => return usage_error(&format!("error: {e}")),
            };
            let runtime = Builder::new_multi_thread().enable_all().build();
            report(runtime.map_err(Into::into).and_then(|runtime| {
                runtime.block_on(async {
                    let server = Server::bind(&args)?.with_incidents(timeline);
                    server.run(Signals::os()?).await
                })
            }))
        }
        Command::Healthcheck(args) => {
            let runtime = Builder::new_current_thread().enable_all().build();
            let checked = runtime
                .map_err(Into::into)
                .and_then(|runtime| runtime.block_on(healthcheck::check(&args)));
            if let Ok(answer) = &checked {
                println!("ok: {answer}");
            }
            report(checked.map(drop))
        }
        Command::Receiver(args) => {
            let _logs = match telemetry::init(args.log_format) {
                Ok(guard) => guard,
                Err(e) => return usage_error(&format!("error: {e}")),
            };
            let runtime = Builder::new_current_thread().enable_all().build();
            report(runtime.map_err(Into::into).and_then(|runtime| {
                runtime.block_on(async { receiver::serve(&args, Signals::os()?).await })
            }))
        }
        Command::History(args) => {
            let runtime = Builder::new_current_thread().enable_all().build();
            report(runtime.map_err(Into::into).and_then(|runtime| {
                let written = runtime.block_on(demo_service::history::run(&args))?;
                println!("{}", written.say(&args));
                Ok(())
            }))
        }
        Command::Slo(args) => match args.command {
            SloCommand::Generate(args) => {
                report(demo_service::slo::generate(&args).map(|line| println!("{line}")))
            }
        },
        Command::Scenario(args) => match args.command {
            ScenarioCommand::List => {
                for scenario in Scenario::shipped() {
                    println!("{}", scenario.line());
                }
                ExitCode::SUCCESS
            }
            ScenarioCommand::Drill(args) => {
                let state = args
                    .state
                    .state
                    .clone()
                    .unwrap_or_else(scenario::drill::default_state);
                let runtime = Builder::new_current_thread().enable_all().build();
                report(runtime.map_err(anyhow::Error::from).and_then(|runtime| {
                    runtime.block_on(async {
                        let dir = std::env::current_dir()?;
                        let stack = scenario::stack::Stack::find(&args.stack, &dir)?;
                        let mut say = |line: String| say(&line);
                        let summary = scenario::drill::drill(
                            &stack,
                            args.seed,
                            args.limit,
                            &state,
                            Signals::os_and_hangup()?,
                            &mut say,
                        )
                        .await?;
                        print!("{summary}");
                        Ok(())
                    })
                }))
            }
            ScenarioCommand::Answer(args) => {
                let state = args
                    .state
                    .state
                    .unwrap_or_else(scenario::drill::default_state);
                report(scenario::drill::answer(&state, &args.knob).map(|line| println!("{line}")))
            }
            ScenarioCommand::Reveal(args) => {
                let state = args.state.unwrap_or_else(scenario::drill::default_state);
                report(scenario::drill::reveal(&state).map(|line| println!("{line}")))
            }
            ScenarioCommand::Run(args) => {
                let scenario = match Scenario::find(&args.scenario) {
                    Ok(scenario) => scenario,
                    Err(e) => return usage_error(&format!("error: {e}")),
                };
                let runtime = Builder::new_current_thread().enable_all().build();
                let outcome = runtime.map_err(anyhow::Error::from).and_then(|runtime| {
                    runtime.block_on(async {
                        let dir = std::env::current_dir()?;
                        let stack = scenario::stack::Stack::find(&args.stack, &dir)?;
                        eprintln!(
                            "scenario {} on the {} stack (Prometheus {}): {}",
                            scenario.name,
                            stack.kind,
                            stack.prometheus,
                            scenario.fault()
                        );
                        let mut progress = |line: String| say(&line);
                        let signals = Signals::os_and_hangup()?;
                        scenario::run::run(&scenario, &stack, signals, &mut progress).await
                    })
                });
                let outcome = match outcome {
                    Ok(outcome) => outcome.settle(),
                    Err(e) => return report(Err(e)),
                };
                match args.output {
                    Output::Text => print!("{}", outcome.to_text()),
                    Output::Json => match serde_json::to_string_pretty(&outcome) {
                        Ok(json) => println!("{json}"),
                        Err(e) => return report(Err(e.into())),
                    },
                }
                match outcome.reason() {
                    None => ExitCode::SUCCESS,
                    Some(reason) => {
                        eprintln!("error: {reason}");
                        ExitCode::FAILURE
                    }
                }
            }
        },
        Command::Load(args) => {
            let plan = match args.plan() {
                Ok(plan) => plan,
                Err(e) => return usage_error(&format!("error: {e}")),
            };
            let progress = if std::io::stderr().is_terminal() {
                Progress::Terminal
            } else {
                Progress::Lines(args.progress_interval)
            };
            // On one CPU (pinned, or a container's quota) a scheduler for many threads only costs.
            let runtime = match std::thread::available_parallelism().map(usize::from) {
                Ok(1) => Builder::new_current_thread().enable_all().build(),
                _ => Builder::new_multi_thread().enable_all().build(),
            };
            let summary = runtime.map_err(anyhow::Error::from).and_then(|runtime| {
                runtime.block_on(async { load::run(plan, Signals::os()?, progress).await })
            });
            let summary = summary.and_then(|summary| {
                match args.output {
                    Output::Text => print!("{}", summary.to_text()),
                    Output::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
                }
                if summary.sent > 0 && summary.answered == 0 {
                    anyhow::bail!(
                        "no request got an answer from {}: is the service running?",
                        summary.run.target
                    );
                }
                Ok(summary)
            });
            match summary {
                Err(e) => report(Err(e)),
                Ok(summary) => {
                    let failed: Vec<String> = summary
                        .failed_thresholds()
                        .map(|t| format!("{} ({})", t.threshold, t.shown()))
                        .collect();
                    if failed.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!(
                            "error: {} of {} thresholds failed: {}",
                            failed.len(),
                            summary.thresholds.len(),
                            failed.join(", ")
                        );
                        // As k6 does, so that a test can tell a failed threshold from an error.
                        ExitCode::from(99)
                    }
                }
            }
        }
    }
}

/// A line on stderr, even when stderr is gone (a closed pipe, a closed terminal): a game day
/// that has broken the service must go on to put it back, not panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A bad command line or configuration: one line, exit code 2.
fn usage_error(line: &str) -> ExitCode {
    eprintln!("{line}");
    ExitCode::from(2)
}

/// Success, or a failure at run time: one line with its causes, exit code 1.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
