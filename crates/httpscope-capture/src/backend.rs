//! The two capture backends and the load-time choice between them.

use aya::Btf;
use aya_obj::btf::BtfKind;

use crate::features::BpfObject;

/// Where the BPF programs see socket traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// BTF tracepoints on socket sends and receives (Linux 6.3+): only socket calls run BPF.
    Socket,
    /// One BTF tracepoint on the raw `sys_exit` event: every syscall of every process
    /// takes the kernel's syscall-tracing slow path.
    Syscall,
}

/// `auto` takes the socket backend wherever the kernel has its tracepoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Forced(Backend),
}

/// Tracepoints the socket backend attaches to: (program, event).
const SOCKET_TRACEPOINTS: &[(&str, &str)] = &[
    ("sock_send", "sock_send_length"),
    ("sock_recv", "sock_recv_length"),
    ("sock_state", "inet_sock_set_state"),
    ("sock_destroy", "tcp_destroy_sock"),
];
const SYSCALL_TRACEPOINTS: &[(&str, &str)] = &[("syscall_exit", "sys_exit")];

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Socket => "socket",
            Backend::Syscall => "syscall",
        }
    }

    /// The BTF tracepoints (program, event) this backend attaches.
    pub(crate) fn tracepoints(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Backend::Socket => SOCKET_TRACEPOINTS,
            Backend::Syscall => SYSCALL_TRACEPOINTS,
        }
    }

    /// The TLS return probe, which finds the call's connection this backend's way.
    pub(crate) fn tls_return_program(self) -> &'static str {
        match self {
            Backend::Socket => "ssl_ret_sock",
            Backend::Syscall => "ssl_ret",
        }
    }

    /// Maps only the other backend uses: created at their smallest size.
    pub(crate) fn unused_maps(self) -> &'static [&'static str] {
        match self {
            Backend::Socket => &["conns", "fd_files", "unwatched_fds", "ssl_fds"],
            Backend::Syscall => &["tls_streams"],
        }
    }
}

/// The kernel events a backend needs that this kernel's BTF lacks (empty: it can load).
pub fn missing_events(backend: Backend, btf: &Btf) -> Vec<&'static str> {
    backend
        .tracepoints()
        .iter()
        .map(|&(_, event)| event)
        .filter(|event| {
            btf.id_by_type_name_kind(&format!("btf_trace_{event}"), BtfKind::Typedef)
                .is_err()
        })
        .collect()
}

/// What a backend needs that this kernel lacks, with the object it would load (the
/// socket backend reads the task's syscall registers through BTF task pointers, which
/// only the full object uses).
pub fn missing_for(backend: Backend, btf: &Btf, object: BpfObject) -> Vec<&'static str> {
    let mut missing = missing_events(backend, btf);
    if backend == Backend::Socket && object == BpfObject::Baseline {
        missing.push(
            "the BPF features of the full object (bpf_loop, task storage, BTF task pointers)",
        );
    }
    missing
}

impl BackendChoice {
    /// The backend to load, or the forced one with what it misses.
    pub fn resolve(
        self,
        btf: &Btf,
        object: BpfObject,
    ) -> Result<Backend, (Backend, Vec<&'static str>)> {
        match self {
            BackendChoice::Forced(backend) => {
                let missing = missing_for(backend, btf, object);
                if missing.is_empty() {
                    Ok(backend)
                } else {
                    Err((backend, missing))
                }
            }
            BackendChoice::Auto if missing_for(Backend::Socket, btf, object).is_empty() => {
                Ok(Backend::Socket)
            }
            BackendChoice::Auto => Ok(Backend::Syscall),
        }
    }
}
