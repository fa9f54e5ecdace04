//! `httpscope record`: attach, capture until told to stop, write records and a summary.

use std::io::BufWriter;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use httpscope_capture::doctor::{has_capture_privileges, run_checks};
use httpscope_capture::{
    ensure_tracefs, monotonic_ns, wall_clock_offset_ns, Backend, BackendChoice, CaptureConfig,
    CgroupScanner, SyscallCapture,
};
use httpscope_core::event::abi::KernelStat;
use httpscope_core::eventlog::{EventFileHeader, EventFileWriter, FORMAT_VERSION};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::sink::Sink;
use httpscope_core::stats::Report;

use crate::cli::{CaptureBackendArg, RecordArgs};
use crate::doctor::describe_failures;
use crate::output::{http_config, open_output, output_path, redactor, sinks};

const POLL_INTERVAL: Duration = Duration::from_millis(20);
const COUNTER_INTERVAL: Duration = Duration::from_secs(1);
/// How often memory freed inside the heap goes back to the system (see [`release_free_memory`]).
const TRIM_INTERVAL: Duration = Duration::from_secs(10);
/// Queued bytes that wake the reader early; otherwise it polls every POLL_INTERVAL.
const WAKEUP_BYTES: u64 = 256 * 1024;
/// Pause between drains while events keep coming. Draining in batches keeps the
/// reader off the ring buffer's shared positions, which every traced syscall
/// touches, and amortises the per-drain work; the pause shrinks when the ring
/// fills fast.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    if !require_privileges() {
        return Ok(ExitCode::from(2));
    }
    let out = open_output(&output_path(&args.output, "output/ebpf_http.log"))?;
    capture(args, sinks(&args.output, out), &mut NoHooks)?;
    Ok(ExitCode::SUCCESS)
}

/// Says what is missing and returns false when this process cannot capture.
pub(crate) fn require_privileges() -> bool {
    if !has_capture_privileges() {
        eprintln!(
            "httpscope: capturing needs root (or CAP_BPF and CAP_PERFMON): run `sudo httpscope`; \
             `httpscope doctor` shows what is missing"
        );
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

    /// Called after every poll of the ring buffer; returning false stops the capture.
    fn tick(&mut self, pipeline: &Pipeline) -> anyhow::Result<bool> {
        let _ = pipeline;
        Ok(true)
    }
}

struct NoHooks;
impl CaptureHooks for NoHooks {}

/// Attaches, feeds `sinks` until a signal, `--duration` or `hooks` stop it, then finishes.
/// Records larger than this on average mean bodies are streaming through the
/// ring in bursts that a pause could let overflow it.
const BULK_RECORD_BYTES: u64 = 2048;
/// After a drain of bulk records, how long the reader drains without pausing.
const BULK_QUIET: Duration = Duration::from_secs(1);

/// Decides how long the reader lets events accumulate after each drain.
struct DrainPacer {
    ring_bytes: f64,
    last_drain: Instant,
    last_bulk_drain: Option<Instant>,
}

impl DrainPacer {
    fn new(ring_bytes: f64) -> Self {
        Self {
            ring_bytes,
            last_drain: Instant::now(),
            last_bulk_drain: None,
        }
    }

    /// Call as a drain begins: the bytes it finds built up since the previous one began.
    fn drain_started(&mut self) -> Duration {
        let since_last_drain = self.last_drain.elapsed();
        self.last_drain = Instant::now();
        since_last_drain
    }

    /// The pause after a drain that found `records` records of `drained` bytes in
    /// all, built up over `since_last_drain`: BATCH_INTERVAL for streams of small
    /// records, less when a sixteenth of the ring would fill sooner at that rate,
    /// none while bulk data has flowed within BULK_QUIET.
    fn pause(&mut self, drained: u64, records: u64, since_last_drain: Duration) -> Duration {
        if records == 0 {
            return Duration::ZERO;
        }
        if drained / records > BULK_RECORD_BYTES {
            self.last_bulk_drain = Some(Instant::now());
        }
        if self
            .last_bulk_drain
            .is_some_and(|at| at.elapsed() < BULK_QUIET)
        {
            return Duration::ZERO;
        }
        let rate = drained as f64 / since_last_drain.as_secs_f64().max(1e-6);
        let sixteenth_fill = Duration::from_secs_f64(self.ring_bytes / 16.0 / rate.max(1.0));
        BATCH_INTERVAL.min(sixteenth_fill)
    }
}

pub(crate) fn capture(
    args: &RecordArgs,
    sinks: Vec<Box<dyn Sink>>,
    hooks: &mut dyn CaptureHooks,
) -> anyhow::Result<Report> {
    let ports = args.watched_ports();

    let wall_clock_offset_ns = wall_clock_offset_ns();
    let mut saver = match &args.save_events {
        Some(path) => {
            let file = crate::output::create_private(path, "event file")?;
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

    let mut integrations = crate::integrations::Integrations::start(&args.output.integrations)?;
    let mut sinks = sinks;
    sinks.extend(integrations.sinks(&args.output.integrations)?);
    let ring_bytes = f64::from(args.ring_mb.saturating_mul(1 << 20));
    // Ring buffer fill, estimated: the most bytes one poll drained in the interval.
    let mut max_fill = 0.0f64;

    if let Err(err) = ensure_tracefs() {
        anyhow::bail!("tracefs is not available and could not be mounted: {err}");
    }
    let mut container_filter = args.container.clone().map(ContainerFilter::new);
    let config = CaptureConfig {
        ports: ports.clone(),
        pid: args.pid,
        comm: args.comm.clone(),
        capture_bytes: args.capture_bytes,
        body_budget: if args.no_capture_budget {
            0
        } else {
            // Never 0 when on: the kernel's 0 means off.
            args.output.body_limit.max(1)
        },
        ring_bytes: args.ring_mb.saturating_mul(1 << 20),
        wakeup_bytes: WAKEUP_BYTES,
        tls: !args.no_tls,
        all_ports: args.all_ports,
        cgroups: container_filter.as_ref().map(ContainerFilter::cgroups),
        backend: match args.capture_backend {
            CaptureBackendArg::Auto => BackendChoice::Auto,
            CaptureBackendArg::Socket => BackendChoice::Forced(Backend::Socket),
            CaptureBackendArg::Syscall => BackendChoice::Forced(Backend::Syscall),
        },
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
    if !args.no_tls {
        let targets = capture.tls_targets();
        if targets.is_empty() {
            tracing::info!(
                "TLS: no TLS library hooked; HTTPS connections are counted, not decoded"
            );
        } else {
            tracing::info!(
                targets = %targets.iter().map(|t| t.describe()).collect::<Vec<_>>().join(", "),
                "TLS: hooked the read/write functions of"
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handler")?;
    }
    tracing::info!(
        ports = ?ports,
        all_ports = args.all_ports,
        pid = ?args.pid,
        comm = ?args.comm,
        container = ?args.container,
        backend = capture.backend().name(),
        "attached; capturing until SIGINT/SIGTERM{}",
        args.duration.map(|d| format!(" or {d}s")).unwrap_or_default()
    );

    let pipeline_config = PipelineConfig {
        http: http_config(&args.output),
        redactor: redactor(&args.output),
        routes: args.output.integrations.routes.rules(),
        wall_clock_offset_ns,
        ..PipelineConfig::default()
    };
    let mut pipeline =
        Pipeline::new(pipeline_config, sinks).with_cgroups(Box::new(CgroupScanner::new()));
    hooks.attached()?;
    let started = Instant::now();
    let deadline = args
        .duration
        .map(|secs| started + Duration::from_secs_f64(secs.max(0.0)));
    let mut last_counters = Instant::now();
    // What loading the programs and parsing BTF freed goes back first.
    release_free_memory();
    let mut last_trim = Instant::now();
    let mut pacer = DrainPacer::new(ring_bytes);
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
        let mut drained = 0u64;
        let mut records = 0u64;
        let since_last_drain = pacer.drain_started();
        capture.poll(timeout, &mut |raw| {
            // Each ring record: an 8-byte header, the sample rounded up to 8 bytes.
            drained += (raw.len() as u64).div_ceil(8) * 8 + 8;
            records += 1;
            handle(raw, &mut pipeline, &mut failure)
        })?;
        max_fill = max_fill.max(drained as f64 / ring_bytes);
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
            if let Some(filter) = &mut container_filter {
                filter.rescan();
                capture.select_cgroups(&filter.cgroups())?;
            }
            integrations.update_health(pipeline.report(), pipeline.connections(), Some(max_fill));
            max_fill = 0.0;
        }
        if last_trim.elapsed() >= TRIM_INTERVAL {
            last_trim = Instant::now();
            release_free_memory();
        }
        if failure.is_some() || stopping {
            break;
        }
        if !hooks.tick(&pipeline)? {
            stop.store(true, Ordering::Relaxed);
        }
        let pause = pacer.pause(drained, records, since_last_drain);
        if !pause.is_zero() {
            std::thread::sleep(pause);
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
    Ok(report)
}

/// Gives the heap's free pages back to the system. The allocator keeps what a burst
/// freed (a backlog after the reader was starved, a storm of unpaired messages after
/// drops): measured here, 100 MiB of RSS after such a burst, 42 MiB after this call, so
/// without it RSS shows the worst moment rather than what is live. Takes 6-19 ms with a
/// 100 MiB heap (logged at debug level), every TRIM_INTERVAL.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    {
        let started = Instant::now();
        // SAFETY: malloc_trim only returns free heap pages to the kernel; no pointer changes.
        unsafe { libc::malloc_trim(0) };
        tracing::debug!(took_us = started.elapsed().as_micros(), "heap trimmed");
    }
}

/// `--container`: the cgroups of the containers whose id starts with a prefix.
struct ContainerFilter {
    prefix: String,
    scanner: CgroupScanner,
}

impl ContainerFilter {
    fn new(prefix: String) -> Self {
        let mut scanner = CgroupScanner::new();
        scanner.rescan();
        let filter = Self { prefix, scanner };
        if filter.cgroups().is_empty() {
            tracing::warn!(
                container = %filter.prefix,
                "--container: no running container's id starts with this yet; watching for one"
            );
        }
        filter
    }

    fn rescan(&mut self) {
        self.scanner.rescan();
    }

    fn cgroups(&self) -> Vec<u64> {
        self.scanner.container_cgroups(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: f64 = 16.0 * 1024.0 * 1024.0;

    #[test]
    fn small_records_pause_less_when_the_ring_fills_fast() {
        let mut pacer = DrainPacer::new(RING);
        // 64 KiB of small records in 20 ms: a sixteenth of the ring takes 320 ms.
        let slow = pacer.pause(64 << 10, 256, Duration::from_millis(20));
        assert_eq!(slow, BATCH_INTERVAL);
        // 4 MiB of small records in 20 ms: a sixteenth of the ring fills in 5 ms.
        let fast = pacer.pause(4 << 20, 16 << 10, Duration::from_millis(20));
        assert!(
            fast > Duration::from_millis(4) && fast < Duration::from_millis(6),
            "{fast:?}"
        );
        // Nothing drained, or no measurable time: no pause, no division by zero.
        assert_eq!(pacer.pause(0, 0, Duration::from_millis(20)), Duration::ZERO);
        assert!(pacer.pause(8, 1, Duration::ZERO) <= BATCH_INTERVAL);
    }

    #[test]
    fn bulk_records_stop_pausing_for_a_while() {
        let mut pacer = DrainPacer::new(RING);
        assert_eq!(
            pacer.pause(4 << 20, 256, Duration::from_millis(20)),
            Duration::ZERO
        );
        // A drain of small records right after bulk data: still no pause.
        assert_eq!(
            pacer.pause(1 << 10, 8, Duration::from_millis(20)),
            Duration::ZERO
        );
    }
}
