//! `httpscope report FILE -o report.html`: one self-contained HTML page (inline SVG, CSS
//! and a little JS; nothing fetched when opened) of a JSON output file or a saved event file.

mod charts;
mod page;

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use httpscope_core::analysis::ReportData;

use super::stats::{load, Loaded};
use crate::cli::ReportArgs;

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let loaded: Loaded<ReportData> =
        load(&args.file, &args.routes.rules(), io::stderr().is_terminal())?;
    let meta = page::Meta {
        file: &args.file.display().to_string(),
        report: loaded.report.as_ref(),
        skipped_lines: loaded.skipped_lines,
        top: usize::from(args.top),
    };
    let html = page::page(&loaded.table, &meta).into_string();
    std::fs::write(&args.output, &html)
        .with_context(|| format!("writing {}", args.output.display()))?;
    tracing::info!(
        path = %args.output.display(),
        bytes = html.len(),
        endpoints = loaded.table.table.len(),
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        "report written"
    );
    Ok(ExitCode::SUCCESS)
}
