//! Opens the output and builds the sinks both record and replay feed.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use httpscope_core::http::HttpConfig;
use httpscope_core::redact::Redactor;
use httpscope_core::sink::{LineFormat, LineSink, Sink, SummarySink};

use crate::cli::{Format, OutputArgs};

/// Opens `path` for appending (creating it 0600 and its directory), or stdout for `-`.
pub fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdout()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot write output {}: creating directory {}",
                path.display(),
                dir.display()
            )
        })?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot write output {}: opening it for appending",
                path.display()
            )
        })?;
    Ok(Box::new(file))
}

pub fn output_path(args: &OutputArgs, default: &str) -> PathBuf {
    args.output
        .clone()
        .unwrap_or_else(|| PathBuf::from(default))
}

pub fn http_config(args: &OutputArgs) -> HttpConfig {
    HttpConfig {
        body_limit: args.body_limit as usize,
        raw_limit: args.raw_limit as usize,
        ..HttpConfig::default()
    }
}

pub fn sinks(args: &OutputArgs, out: Box<dyn Write>) -> Vec<Box<dyn Sink>> {
    let format = match args.format {
        Format::Logfmt => LineFormat::Logfmt,
        Format::Json => LineFormat::Json,
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(LineSink::new(out, format))];
    if !args.no_summary {
        sinks.push(Box::new(SummarySink::new(io::stderr())));
    }
    sinks
}

pub fn redactor(args: &OutputArgs) -> Redactor {
    if args.no_redact {
        tracing::warn!(
            "--no-redact: credentials and cookies will be written to the output in clear text"
        );
    }
    Redactor::new(!args.no_redact, &args.redact, !args.no_body)
}

/// Creates (or truncates) a file readable by its owner only: captures hold secrets.
pub fn create_private(path: &Path, what: &str) -> anyhow::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {what} {}", path.display()))
}
