//! The `httpscope` command: record, replay, doctor, top, stats, report (and generate,
//! for packagers).

pub mod cli;
mod doctor;
mod generate;
mod health;
mod integrations;
mod otlp;
mod output;
mod record;
mod replay;
mod report;
mod stats;
mod top;

use std::process::ExitCode;

use cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// Logs go to stderr; data goes to files or stdout.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => record::run(&cli.record),
        Some(Command::Record(args)) => record::run(&args),
        Some(Command::Replay(args)) => replay::run(&args),
        Some(Command::Doctor) => Ok(doctor::run()),
        Some(Command::Top(args)) => top::run(&args),
        Some(Command::Stats(args)) => stats::run(&args),
        Some(Command::Report(args)) => report::run(&args),
        Some(Command::Generate(args)) => generate::run(&args).map(|()| ExitCode::SUCCESS),
    }
}
