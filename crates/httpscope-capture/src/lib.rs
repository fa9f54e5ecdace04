//! httpscope's kernel side: loads the BPF programs, attaches them to the
//! tracepoints of the chosen backend (socket or syscall) and to uprobes on TLS
//! libraries, and runs the capture loop that hands raw ring-buffer records to a
//! [`CaptureHandler`]. Needs root.

mod backend;
mod capture_loop;
mod cgroups;
mod detach;
mod discovery;
pub mod doctor;
mod elf;
mod features;
mod follow;
pub mod golang;
mod ladder;
mod loader;
mod pacer;
mod probe_site;
mod refusal;
mod ring;
mod timing;
pub mod tls;
mod tracefs;
mod uprobe_multi;
mod uprobes;
mod verify;

pub use backend::{missing_events, missing_for, Backend, BackendChoice};
pub use capture_loop::{CaptureHandler, RunOptions};
pub use cgroups::{CgroupScanner, ContainerFilter};
pub use features::{BpfObject, GatedFeature, KernelFeatures};
pub use ladder::{BenchStage, BENCH_STAGE_ENV};
pub use loader::{trial_load, Capture, CaptureConfig, CaptureError, TrialLoad};
pub use refusal::Refusal;
pub use tracefs::ensure_tracefs;

/// Monotonic clock in ns, the clock of the kernel's event timestamps.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Offset to add to a kernel timestamp to get Unix time in ns.
pub fn wall_clock_offset_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME) as i64 - clock_ns(libc::CLOCK_MONOTONIC) as i64
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}
