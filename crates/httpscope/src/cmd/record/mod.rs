//! `httpscope record`: attach, capture until told to stop, write records and a summary.

mod config;
mod handler;
mod saver;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use httpscope_capture::doctor::{capture_refusal, run_checks, tls_gaps};
use httpscope_capture::{
    ensure_tracefs, wall_clock_offset_ns, BenchStage, Capture, CaptureConfig, CgroupScanner,
    ContainerFilter, KernelFeatures,
};
use httpscope_core::pipeline::Pipeline;
use httpscope_core::sink::Sink;
use httpscope_core::stats::Report;

use super::doctor::describe_failures;
use crate::cli::RecordArgs;
use crate::integrations::Integrations;
use crate::output::{open_log, sinks, Purpose};
use handler::Recorder;
use saver::EventSaver;

pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    if !require_privileges() {
        return Ok(ExitCode::from(2));
    }
    let out = match BenchStage::from_env() {
        // The cost ladder: no line before stage 9, and stage 9's go nowhere.
        Some(stage) if stage.skips_lines() => None,
        Some(_) => Some(Box::new(std::io::sink()) as Box<dyn std::io::Write>),
        None => open_log(&args.output, "output/ebpf_http.log", true)?,
    };
    capture(args, sinks(&args.output, out), &mut NoHooks)?;
    Ok(ExitCode::SUCCESS)
}

/// Says what is missing and returns false when this process cannot capture.
pub(crate) fn require_privileges() -> bool {
    if let Some(refusal) = capture_refusal() {
        eprintln!("httpscope: {refusal}");
        return false;
    }
    true
}

/// What a front end (such as `top`) does around the live capture loop.
pub(crate) trait CaptureHooks {
    /// Capture is attached and about to start.
    fn attached(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Whether the front end shows whole messages (bodies, header fields), whatever the
    /// output: the capture keeps them.
    fn shows_messages(&self) -> bool {
        false
    }

    /// Called after every poll of the ring buffer; returning false stops the capture.
    fn tick(&mut self, pipeline: &Pipeline) -> anyhow::Result<bool> {
        let _ = pipeline;
        Ok(true)
    }
}

struct NoHooks;
impl CaptureHooks for NoHooks {}

/// Attaches, feeds `sinks` until a signal, `--duration` or `hooks` stop it, then finishes.
pub(crate) fn capture(
    args: &RecordArgs,
    mut sinks: Vec<Box<dyn Sink>>,
    hooks: &mut dyn CaptureHooks,
) -> anyhow::Result<Report> {
    let wall_clock_offset_ns = wall_clock_offset_ns();
    let saver = EventSaver::create(args, wall_clock_offset_ns)?;
    let mut integrations = Integrations::start(&args.output.integrations)?;
    sinks.extend(integrations.sinks(&args.output.integrations)?);
    if let Err(err) = ensure_tracefs() {
        anyhow::bail!("tracefs is not available and could not be mounted: {err}");
    }
    let containers = args.container.clone().map(ContainerFilter::new);
    let stage = BenchStage::from_env();
    if let Some(stage) = stage {
        tracing::warn!(
            "cost ladder stage {}: the capture stops after \"{}\"; nothing is written whole",
            stage.number(),
            stage.describe()
        );
    }
    let purpose = Purpose::of(args, hooks.shows_messages());
    if purpose == Purpose::MetricsOnly {
        tracing::info!("metrics mode: no log; the kernel copies message heads, not bodies");
    }
    let mut capture = attach(&config::capture_config(
        args,
        containers.as_ref(),
        purpose,
        stage,
    ))?;
    let (object, features) = capture.object();
    warn_gated_features(features);
    if !args.no_tls {
        for gap in tls_gaps() {
            tracing::warn!("TLS: {gap}");
        }
        log_tls_targets(&capture);
    }
    let stop = stop_on_signals()?;
    tracing::info!(
        ports = ?args.watched_ports(),
        all_ports = args.all_ports,
        pid = ?args.pid,
        comm = ?args.comm,
        container = ?args.container,
        backend = capture.backend().name(),
        bpf_object = object.name(),
        "attached; capturing until SIGINT/SIGTERM{}",
        args.duration.map(|d| format!(" or {d}s")).unwrap_or_default()
    );

    let pipeline = Pipeline::new(
        config::pipeline_config(args, wall_clock_offset_ns, purpose, stage),
        sinks,
    )
    .with_cgroups(Box::new(CgroupScanner::new()));
    hooks.attached()?;
    let mut recorder = Recorder::new(pipeline, saver, integrations, hooks)
        .dropping_records(stage.is_some_and(BenchStage::drops_records));
    capture.run(config::run_options(args, stop, containers), &mut recorder)?;
    // Everything written first: detaching the uprobes is what takes long.
    let finished = recorder.finish();
    let started = std::time::Instant::now();
    drop(capture);
    let report = finished?;
    tracing::info!(
        events = report.pipeline.events,
        records = report.pipeline.records,
        kernel_drops = report.kernel.dropped_events(),
        detach_ms = started.elapsed().as_millis() as u64,
        "detached"
    );
    Ok(report)
}

/// Attaches, or says what this kernel lacks when it cannot.
fn attach(config: &CaptureConfig) -> anyhow::Result<Capture> {
    Capture::attach(config).or_else(|err| {
        let failures = describe_failures(&run_checks());
        if failures.is_empty() {
            anyhow::bail!("{err:#}");
        }
        anyhow::bail!("{err:#}; this kernel lacks: {failures}");
    })
}

fn warn_gated_features(features: KernelFeatures) {
    for gated in features.gated() {
        tracing::warn!(
            "this kernel lacks {}: {} (`httpscope doctor` says more)",
            gated.missing,
            gated.cost
        );
    }
}

fn log_tls_targets(capture: &Capture) {
    let targets = capture.tls_targets();
    if targets.is_empty() {
        tracing::info!("TLS: no TLS library hooked; HTTPS connections are counted, not decoded");
    } else {
        tracing::info!(
            targets = %targets.iter().map(|t| t.describe()).collect::<Vec<_>>().join(", "),
            "TLS: hooked the read/write functions of"
        );
    }
}

/// A flag SIGINT and SIGTERM set.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handler")?;
    }
    Ok(stop)
}
