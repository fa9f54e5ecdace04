//! Checks what this kernel and this process allow, and what each gap costs.

use std::fs;
use std::path::Path;

use aya::maps::MapType;
use aya::programs::ProgramType;

use crate::tracefs::ensure_tracefs;

mod host;

/// Tracepoints the capture attaches to: the raw syscall-return event (through
/// a BTF tracepoint program) and process exit.
pub const TRACEPOINTS: &[&str] = &["raw_syscalls/sys_exit", "sched/sched_process_exit"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What the user loses when this check fails.
    pub cost: &'static str,
    /// Whether capture cannot start without it.
    pub required: bool,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bits of this process.
pub fn effective_capabilities() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Whether this process may load and attach tracing BPF programs.
pub fn has_capture_privileges() -> bool {
    let caps = effective_capabilities();
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

pub fn run_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let caps = effective_capabilities();
    checks.push(Check {
        name: "privileges",
        ok: has_capture_privileges(),
        detail: format!(
            "This process runs as euid {euid} with effective capabilities {caps:016x}; \
             capture needs CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON."
        ),
        cost: "nothing can be captured: run as root (or `sudo httpscope ...` as another user)",
        required: true,
    });

    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    checks.push(Check {
        name: "btf",
        ok: btf,
        detail: if btf {
            "The kernel describes its types in /sys/kernel/btf/vmlinux.".into()
        } else {
            "The kernel has no /sys/kernel/btf/vmlinux.".into()
        },
        cost: "CO-RE cannot relocate kernel struct offsets: the programs will not load (needs CONFIG_DEBUG_INFO_BTF=y)",
        required: true,
    });

    let tracefs = ensure_tracefs();
    checks.push(Check {
        name: "tracefs",
        ok: tracefs.is_ok(),
        detail: match &tracefs {
            Ok(dir) => format!("The tracefs filesystem is mounted at {dir}."),
            Err(err) => format!("The tracefs filesystem cannot be mounted: {err}."),
        },
        cost: "syscall tracepoints cannot be attached: nothing can be captured",
        required: true,
    });

    if let Ok(dir) = tracefs {
        let missing: Vec<&str> = TRACEPOINTS
            .iter()
            .copied()
            .filter(|tp| !Path::new(dir).join("events").join(tp).is_dir())
            .collect();
        checks.push(Check {
            name: "tracepoints",
            ok: missing.is_empty(),
            detail: if missing.is_empty() {
                format!("The tracepoints {} are present.", TRACEPOINTS.join(" and "))
            } else {
                format!("The tracepoints {} are missing.", missing.join(" and "))
            },
            cost: "syscall returns cannot be seen: nothing can be captured (needs CONFIG_FTRACE_SYSCALLS=y)",
            required: true,
        });
    }

    // The BTF tracepoint on sys_exit needs the kernel BTF checked above (Linux 5.5+).
    let tracepoint_programs = aya::sys::is_program_supported(ProgramType::TracePoint);
    checks.push(Check {
        name: "tracepoint programs",
        ok: matches!(tracepoint_programs, Ok(true)),
        detail: match tracepoint_programs {
            Ok(true) => "The kernel runs BPF programs on tracepoints.".into(),
            Ok(false) => "The kernel refuses BPF programs on tracepoints.".into(),
            Err(err) => format!("Probing tracepoint BPF programs failed: {err}."),
        },
        cost: "BPF cannot run on tracepoints: nothing can be captured",
        required: true,
    });

    let ring = aya::sys::is_map_supported(MapType::RingBuf);
    checks.push(Check {
        name: "ring buffer",
        ok: matches!(ring, Ok(true)),
        detail: match ring {
            Ok(true) => "The kernel has BPF ring buffers.".into(),
            Ok(false) => "The kernel has no BPF ring buffers.".into(),
            Err(err) => format!("Probing BPF ring buffers failed: {err}."),
        },
        cost: "events cannot reach userspace (needs Linux 5.8+)",
        required: true,
    });

    let uprobes = Path::new("/sys/bus/event_source/devices/uprobe/type").exists();
    checks.push(Check {
        name: "uprobes",
        ok: uprobes,
        detail: if uprobes {
            "The kernel can place uprobes (its uprobe PMU is present).".into()
        } else {
            "The kernel has no uprobe PMU.".into()
        },
        cost: "TLS libraries cannot be hooked: HTTPS stays encrypted (plain HTTP is unaffected)",
        required: false,
    });

    let libraries = crate::tls::find_libraries();
    checks.push(Check {
        name: "tls libraries",
        ok: uprobes && !libraries.is_empty(),
        detail: if libraries.is_empty() {
            "No OpenSSL 1.1/3 shared library (libssl) was found.".into()
        } else {
            format!(
                "With --tls (the default) httpscope hooks SSL_read/SSL_write(_ex) in {}.",
                libraries
                    .iter()
                    .map(|t| t.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        cost: "HTTPS stays encrypted: TLS connections are counted (tls_conns), not decoded",
        required: false,
    });

    let kprobes = Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    checks.push(Check {
        name: "kprobes",
        ok: true,
        detail: format!(
            "This kernel {} kprobes; httpscope uses neither kprobes nor fentry.",
            if kprobes { "has" } else { "has no" }
        ),
        cost: "nothing",
        required: false,
    });
    // Loading needs the privileges, BTF and program support checked above.
    if checks.iter().all(|c| c.ok || !c.required) {
        checks.push(host::all_ports());
    }
    checks.extend(host::checks());
    checks
}
