//! Checks what this kernel and this process allow, and what each gap costs.

use std::fs;
use std::path::Path;

use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::Btf;

use crate::backend::{missing_events, Backend};
use crate::tracefs::ensure_tracefs;

mod capabilities;
mod host;

pub use capabilities::{capture_refusal, tls_gaps};

/// Tracepoints every backend needs: process exit (the syscall backend's raw
/// sys_exit event and the socket backend's events are checked in the kernel BTF).
pub const TRACEPOINTS: &[&str] = &["sched/sched_process_exit"];

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
    capabilities::can_capture(effective_capabilities())
}

/// Which capture backend `--capture-backend auto` takes here, and whether each one can load.
fn backend_checks(btf: &Btf) -> Vec<Check> {
    let mut socket_missing = missing_events(Backend::Socket, btf);
    if !matches!(aya::sys::is_map_supported(MapType::SkStorage), Ok(true)) {
        socket_missing.push("socket storage maps");
    }
    let syscall_missing = missing_events(Backend::Syscall, btf);
    let auto = if socket_missing.is_empty() {
        Backend::Socket.name()
    } else {
        Backend::Syscall.name()
    };
    vec![
        Check {
            name: "socket backend",
            ok: socket_missing.is_empty(),
            detail: if socket_missing.is_empty() {
                format!("The socket tracepoints sock_send_length, sock_recv_length, inet_sock_set_state and tcp_destroy_sock are present, so --capture-backend auto takes `{auto}`.")
            } else {
                format!("The socket tracepoints {} are missing (Linux 6.3+ has them), so --capture-backend auto takes `{auto}`.", socket_missing.join(" and "))
            },
            cost: "capture falls back to the syscall backend: every syscall of every process takes the kernel's syscall-tracing slow path",
            required: false,
        },
        Check {
            name: "syscall backend",
            ok: syscall_missing.is_empty(),
            detail: if syscall_missing.is_empty() {
                "The raw sys_exit tracepoint is present (for kernels without the socket tracepoints, or --capture-backend syscall).".into()
            } else {
                format!("The syscall tracepoints {} are missing (they need CONFIG_FTRACE_SYSCALLS=y).", syscall_missing.join(" and "))
            },
            cost: "--capture-backend syscall cannot load; kernels without the socket tracepoints capture nothing",
            required: false,
        },
    ]
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
    let gaps = tls_gaps();
    checks.push(Check {
        name: "tls privileges",
        ok: gaps.is_empty(),
        detail: if gaps.is_empty() {
            "This process holds CAP_SYS_ADMIN and CAP_SYS_PTRACE, which the TLS hooks use.".into()
        } else {
            format!("{}.", gaps.join("; "))
        },
        cost: "HTTPS of other processes stays encrypted: its connections are counted, not decoded",
        required: false,
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
    if let Ok(kernel_btf) = Btf::from_sys_fs() {
        checks.extend(backend_checks(&kernel_btf));
    }

    let tracefs = ensure_tracefs();
    checks.push(Check {
        name: "tracefs",
        ok: tracefs.is_ok(),
        detail: match &tracefs {
            Ok(dir) => format!("The tracefs filesystem is mounted at {dir}."),
            Err(err) => format!("The tracefs filesystem cannot be mounted: {err}."),
        },
        cost: "tracepoints cannot be attached: nothing can be captured",
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
            cost: "process exits cannot be seen: connections of exited processes wait for the idle timeout",
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

    let mut seen = Default::default();
    let libraries = crate::tls::find_libraries(&mut seen);
    let programs = crate::tls::find_executables(&mut seen);
    let list = |targets: &[crate::tls::TlsTarget]| {
        targets
            .iter()
            .map(|t| format!("{} [tls_lib={}]", t.describe(), t.library()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    checks.push(Check {
        name: "tls libraries",
        ok: uprobes && !libraries.is_empty(),
        detail: if libraries.is_empty() {
            "No OpenSSL 1.1/3 shared library (libssl) was found.".into()
        } else {
            format!(
                "With --tls (the default) httpscope hooks the TLS read/write functions (Node.js: \
                 its TLSWrap) in {}.",
                list(&libraries)
            )
        },
        cost: "HTTPS stays encrypted: TLS connections are counted (tls_conns), not decoded",
        required: false,
    });
    checks.push(Check {
        name: "tls programs",
        ok: uprobes,
        detail: if programs.is_empty() {
            "No running program has Go crypto/tls, Node.js TLS, rustls or a static OpenSSL; \
             programs started later are hooked at their exec."
                .into()
        } else {
            format!(
                "With --tls (the default) httpscope hooks the running programs {} (and \
                 programs started later, at their exec).",
                list(&programs)
            )
        },
        cost: "HTTPS of Go, Node.js and rustls programs and statically linked OpenSSL stays encrypted",
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
        checks.extend(host::programs());
        checks.push(host::all_ports());
    }
    checks.extend(host::checks());
    checks
}
