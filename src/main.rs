use std::process::ExitCode;

use clap::Parser;
use demo_service::config::{Cli, Command};
use demo_service::server::{Server, Signals};
use demo_service::telemetry;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(e.to_string().lines().next().unwrap_or_default()),
    };
    let log_format = cli.log_format;
    let command = cli.command();
    let Command::Serve(args) = &command;
    if let Err(e) = args.validate() {
        return usage_error(&format!("error: {e}"));
    }
    let _logs = match telemetry::init(log_format) {
        Ok(guard) => guard,
        Err(e) => return usage_error(&format!("error: {e}")),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return failure(&anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let server = Server::bind(args)?;
        server.run(Signals::os()?).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(&e),
    }
}

/// A bad command line or configuration: one line, exit code 2.
fn usage_error(line: &str) -> ExitCode {
    eprintln!("{line}");
    ExitCode::from(2)
}

/// A failure at run time: one line with its causes, exit code 1.
fn failure(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}
