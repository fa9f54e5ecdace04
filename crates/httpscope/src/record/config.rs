//! What `record` and `top` ask of the capture, from their arguments: the kernel
//! side's configuration, the pipeline's, and when the capture loop stops.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use httpscope_capture::{Backend, BackendChoice, CaptureConfig, ContainerFilter, RunOptions};
use httpscope_core::pipeline::PipelineConfig;

use crate::cli::{CaptureBackendArg, RecordArgs};
use crate::output::{http_config, redactor};

/// Queued bytes that wake the reader before its poll times out.
const WAKEUP_BYTES: u64 = 256 * 1024;

/// The BPF programs' configuration; `containers` holds the cgroups `--container` matched.
pub(crate) fn capture_config(
    args: &RecordArgs,
    containers: Option<&ContainerFilter>,
) -> CaptureConfig {
    CaptureConfig {
        ports: args.watched_ports(),
        pid: args.pid,
        comm: args.comm.clone(),
        capture_bytes: args.capture_bytes,
        body_budget: if args.no_capture_budget {
            0
        } else {
            // Never 0 when on: the kernel's 0 means off.
            args.output.body_limit.max(1)
        },
        ring_bytes: ring_bytes(args),
        wakeup_bytes: WAKEUP_BYTES,
        tls: !args.no_tls,
        all_ports: args.all_ports,
        cgroups: containers.map(ContainerFilter::cgroups),
        backend: backend_choice(args.capture_backend),
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
pub(crate) fn pipeline_config(args: &RecordArgs, wall_clock_offset_ns: i64) -> PipelineConfig {
    PipelineConfig {
        http: http_config(&args.output),
        redactor: redactor(&args.output),
        routes: args.output.integrations.routes.rules(),
        wall_clock_offset_ns,
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
