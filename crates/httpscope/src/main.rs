use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    httpscope::init_logging();
    match httpscope::run(httpscope::cli::Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
