//! `httpscope record`: attach, capture until told to stop, write records and a summary.

use std::fs::OpenOptions;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use httpscope_capture::doctor::{has_capture_privileges, run_checks};
use httpscope_capture::{
    ensure_tracefs, monotonic_ns, wall_clock_offset_ns, CaptureConfig, SyscallCapture,
};
use httpscope_core::event::abi::KernelStat;
use httpscope_core::eventlog::{EventFileHeader, EventFileWriter, FORMAT_VERSION};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};

use crate::cli::RecordArgs;
use crate::doctor::describe_failures;
use crate::output::{http_config, open_output, output_path, redactor, sinks};

const POLL_INTERVAL: Duration = Duration::from_millis(20);
const COUNTER_INTERVAL: Duration = Duration::from_secs(1);
/// Queued bytes that wake the reader early; otherwise it polls every POLL_INTERVAL.
const WAKEUP_BYTES: u64 = 256 * 1024;

pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    if !has_capture_privileges() {
        eprintln!(
            "httpscope: capturing needs root (or CAP_BPF and CAP_PERFMON): run `sudo httpscope`; \
             `httpscope doctor` shows what is missing"
        );
        return Ok(ExitCode::from(2));
    }
    let mut ports = args.ports.clone();
    ports.sort_unstable();
    ports.dedup();

    let out = open_output(&output_path(&args.output, "output/ebpf_http.log"))?;
    let wall_clock_offset_ns = wall_clock_offset_ns();
    let mut saver = match &args.save_events {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating event file {}", path.display()))?;
            let header = EventFileHeader {
                format_version: FORMAT_VERSION,
                wall_clock_offset_ns,
                ports: ports.clone(),
                capture_bytes: args.capture_bytes,
                recorded_by: format!("httpscope {}", env!("CARGO_PKG_VERSION")),
            };
            Some(EventFileWriter::new(BufWriter::new(file), &header)?)
        }
        None => None,
    };

    if let Err(err) = ensure_tracefs() {
        anyhow::bail!("tracefs is not available and could not be mounted: {err}");
    }
    let config = CaptureConfig {
        ports: ports.clone(),
        pid: args.pid,
        comm: args.comm.clone(),
        capture_bytes: args.capture_bytes,
        ring_bytes: args.ring_mb.saturating_mul(1 << 20),
        wakeup_bytes: WAKEUP_BYTES,
    };
    let mut capture = match SyscallCapture::attach(&config) {
        Ok(capture) => capture,
        Err(err) => {
            let failures = describe_failures(&run_checks());
            if failures.is_empty() {
                anyhow::bail!("{err:#}");
            }
            anyhow::bail!("{err:#}; this kernel lacks: {failures}");
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handler")?;
    }
    tracing::info!(
        ports = ?ports,
        pid = ?args.pid,
        comm = ?args.comm,
        "attached to the socket syscall tracepoints; capturing until SIGINT/SIGTERM{}",
        args.duration.map(|d| format!(" or {d}s")).unwrap_or_default()
    );

    let pipeline_config = PipelineConfig {
        http: http_config(&args.output),
        redactor: redactor(&args.output),
        wall_clock_offset_ns,
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(pipeline_config, sinks(&args.output, out));
    let started = Instant::now();
    let deadline = args
        .duration
        .map(|secs| started + Duration::from_secs_f64(secs.max(0.0)));
    let mut last_counters = Instant::now();
    let mut failure: Option<anyhow::Error> = None;

    let mut handle = |raw: &[u8], pipeline: &mut Pipeline, failure: &mut Option<anyhow::Error>| {
        if failure.is_some() {
            return;
        }
        if let Some(saver) = saver.as_mut() {
            if let Err(err) = saver.write_event(httpscope_core::event::trimmed(raw)) {
                *failure = Some(anyhow::Error::new(err).context("writing the event file"));
                return;
            }
        }
        if let Err(err) = pipeline.process_raw(raw) {
            *failure = Some(anyhow::Error::new(err));
        }
    };

    loop {
        let stopping =
            stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
        // One last drain after the stop request, so nothing captured is lost.
        let timeout = if stopping {
            Duration::ZERO
        } else {
            POLL_INTERVAL
        };
        capture.poll(timeout, &mut |raw| handle(raw, &mut pipeline, &mut failure))?;
        if let Err(err) = pipeline.tick(monotonic_ns()) {
            failure.get_or_insert(anyhow::Error::new(err));
        }
        if last_counters.elapsed() >= COUNTER_INTERVAL || stopping {
            last_counters = Instant::now();
            let counters = capture.counters()?;
            let dropped = counters.dropped_events();
            if dropped > pipeline.report().kernel.dropped_events() {
                tracing::warn!(
                    dropped,
                    bytes = counters.get(KernelStat::DataBytesDropped),
                    "the kernel ring buffer overflowed; affected messages are flagged (try a larger --ring-mb)"
                );
            }
            pipeline.set_kernel_counters(counters);
        }
        if failure.is_some() || stopping {
            break;
        }
    }
    drop(capture);
    if let Some(saver) = saver.as_mut() {
        saver.write_counters(&pipeline.report().kernel)?;
        saver.flush()?;
    }
    if let Some(err) = failure {
        return Err(err.context("capture stopped"));
    }
    let report = pipeline.finish()?;
    tracing::info!(
        events = report.pipeline.events,
        records = report.pipeline.records,
        kernel_drops = report.kernel.dropped_events(),
        "detached"
    );
    Ok(ExitCode::SUCCESS)
}
