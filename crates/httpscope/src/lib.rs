//! The `httpscope` command. `cli` declares every flag; `cmd` holds one module per
//! subcommand (record, replay, doctor, top, stats, report, and generate for packagers);
//! `output` and `integrations` (with `otlp` and `health`) build the sinks they share.

pub mod cli;
mod cmd;
mod health;
mod integrations;
mod otlp;
mod output;

use std::process::ExitCode;

use cli::{Cli, Command};
use cmd::{doctor, generate, record, replay, report, stats, top};
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
