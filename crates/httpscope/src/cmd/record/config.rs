//! What `record` and `top` ask of the capture, from their arguments: the kernel
//! side's configuration, the pipeline's, and when the capture loop stops.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use httpscope_capture::{
    Backend, BackendChoice, BenchStage, CaptureConfig, ContainerFilter, RunOptions,
};
use httpscope_core::pipeline::PipelineConfig;

use crate::cli::{CaptureBackendArg, RecordArgs};
use crate::output::{http_config, output_keeps_bytes, redactor, Purpose};

/// Queued bytes that wake the reader before its poll times out.
const WAKEUP_BYTES: u64 = 256 * 1024;

impl Purpose {
    /// `shows_messages`: a front end shows them whole whatever the output (`top`'s
    /// details).
    pub(crate) fn of(args: &RecordArgs, shows_messages: bool) -> Self {
        let keeps_bytes = output_keeps_bytes(&args.output) || args.save_events.is_some();
        if shows_messages {
            Self::LiveView
        } else if keeps_bytes {
            Self::Everything
        } else {
            Self::MetricsOnly
        }
    }
}

/// The BPF programs' configuration; `containers` holds the cgroups `--container` matched.
pub(crate) fn capture_config(
    args: &RecordArgs,
    containers: Option<&ContainerFilter>,
    purpose: Purpose,
    bench_stage: Option<BenchStage>,
) -> CaptureConfig {
    CaptureConfig {
        ports: args.watched_ports(),
        pid: args.pid,
        comm: args.comm.clone(),
        capture_bytes: args.capture_bytes,
        body_budget: match (args.no_capture_budget, purpose) {
            (true, _) => 0,
            // The least the kernel takes for on (its 0 means off): heads and frames.
            (false, Purpose::MetricsOnly) => 1,
            (false, Purpose::Everything | Purpose::LiveView) => args.output.body_limit.max(1),
        },
        ring_bytes: ring_bytes(args),
        wakeup_bytes: WAKEUP_BYTES,
        tls: !args.no_tls,
        all_ports: args.all_ports,
        cgroups: containers.map(ContainerFilter::cgroups),
        backend: backend_choice(args.capture_backend),
        bench_stage,
    }
}

fn backend_choice(arg: CaptureBackendArg) -> BackendChoice {
    match arg {
        CaptureBackendArg::Auto => BackendChoice::Auto,
        CaptureBackendArg::Socket => BackendChoice::Forced(Backend::Socket),
        CaptureBackendArg::Syscall => BackendChoice::Forced(Backend::Syscall),
    }
}

fn ring_bytes(args: &RecordArgs) -> u32 {
    args.ring_mb.saturating_mul(1 << 20)
}

/// How the live pipeline decodes, redacts and finds routes.
pub(crate) fn pipeline_config(
    args: &RecordArgs,
    wall_clock_offset_ns: i64,
    purpose: Purpose,
    bench_stage: Option<BenchStage>,
) -> PipelineConfig {
    let redactor = redactor(&args.output);
    PipelineConfig {
        http: http_config(&args.output, purpose, &redactor),
        redactor,
        routes: args.output.integrations.routes.rules(),
        wall_clock_offset_ns,
        parse_http: !bench_stage.is_some_and(BenchStage::skips_parsing),
        ..PipelineConfig::default()
    }
}

/// Stops on `stop` or after `--duration`, following `--container` as it goes.
pub(crate) fn run_options(
    args: &RecordArgs,
    stop: Arc<AtomicBool>,
    containers: Option<ContainerFilter>,
) -> RunOptions {
    RunOptions {
        stop,
        duration: args
            .duration
            .map(|secs| Duration::from_secs_f64(secs.max(0.0))),
        ring_bytes: ring_bytes(args),
        containers,
    }
}
