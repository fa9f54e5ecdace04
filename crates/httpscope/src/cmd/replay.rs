//! `httpscope replay`: a saved event file through the same pipeline as live capture.

use std::fs::File;
use std::process::ExitCode;

use anyhow::Context;
use httpscope_core::eventlog::{EventFileReader, EventRecord};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};

use crate::cli::ReplayArgs;
use crate::integrations::Integrations;
use crate::output::{http_config, open_log, output_keeps_bytes, redactor, sinks, Purpose};

pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let mut reader =
        EventFileReader::new(file).with_context(|| format!("reading {}", args.file.display()))?;
    let out = open_log(&args.output, "-", false)?;
    // As `record`'s metrics mode: nothing written keeps bodies, wire bytes or header fields.
    let purpose = if output_keeps_bytes(&args.output) {
        Purpose::Everything
    } else {
        Purpose::MetricsOnly
    };
    let redactor = redactor(&args.output);
    let config = PipelineConfig {
        http: http_config(&args.output, purpose, &redactor),
        redactor,
        routes: args.output.integrations.routes.rules(),
        wall_clock_offset_ns: reader.header().wall_clock_offset_ns,
        ..PipelineConfig::default()
    };
    let mut integrations = Integrations::start(&args.output.integrations)?;
    let mut sinks = sinks(&args.output, out);
    sinks.extend(integrations.sinks(&args.output.integrations)?);
    let mut pipeline = Pipeline::new(config, sinks);
    while let Some(record) = reader.next_record().context("reading event file")? {
        match record {
            EventRecord::KernelEvent(raw) => pipeline.process_raw(raw)?,
            EventRecord::KernelCounters(counters) => pipeline.set_kernel_counters(counters),
        }
    }
    if reader.truncated_tail {
        tracing::warn!("the event file ends with a cut-short record (the recorder was killed?)");
    }
    pipeline.finish()?;
    Ok(ExitCode::SUCCESS)
}
