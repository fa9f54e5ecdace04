//! Loads the BPF object with its configuration, attaches it, and reads the ring buffer.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::UProbeScope;
use aya::programs::{BtfTracePoint, TracePoint, UProbe};
use aya::{Btf, Ebpf, EbpfLoader};
use httpscope_core::event::abi::{KernelStat, COMM_LEN, MAX_CAPTURE, MAX_PORTS};
use httpscope_core::event::KernelCounters;
use thiserror::Error;

use crate::tls::{self, TlsTarget};

static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/httpscope.bpf.o"));

/// Programs and the tracepoints they attach to (category, name).
/// The one program that sees every syscall return (a BTF tracepoint on the raw
/// `sys_exit` event) and picks the socket syscalls by number.
const SYSCALL_EXIT: (&str, &str) = ("syscall_exit", "sys_exit");
/// Classic tracepoints: (program, category, event).
const TRACEPOINTS: &[(&str, &str, &str)] = &[("process_exit", "sched", "sched_process_exit")];

/// TLS library functions hooked: (entry program, symbol). Each also gets the `ssl_ret`
/// return probe, attached first so that no call can enter unseen and return seen.
const TLS_PROBES: &[(&str, &str)] = &[
    ("ssl_write_enter", "SSL_write"),
    ("ssl_read_enter", "SSL_read"),
    ("ssl_write_ex_enter", "SSL_write_ex"),
    ("ssl_read_ex_enter", "SSL_read_ex"),
    ("ssl_handshake_enter", "SSL_do_handshake"),
];
const TLS_RETURN_PROGRAM: &str = "ssl_ret";
/// Entry only: remembers which fd an SSL object uses.
const TLS_SET_FD: (&str, &str) = ("ssl_set_fd_enter", "SSL_set_fd");

/// What to capture; becomes the BPF programs' read-only globals.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub ports: Vec<u16>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Bytes copied per syscall at most.
    pub capture_bytes: u32,
    pub ring_bytes: u32,
    /// Wake the reader once this much is queued; 0 wakes it on every event.
    pub wakeup_bytes: u64,
    /// Hook the TLS libraries found (libssl) to capture HTTPS plaintext.
    pub tls: bool,
    /// Every TCP port is a candidate (`ports`, when not empty, narrow); the
    /// kernel keeps the connections whose first bytes are HTTP or hooked TLS.
    pub all_ports: bool,
    /// Only tasks in these cgroup v2 ids (`--container`; more can be added
    /// while capturing with [`SyscallCapture::select_cgroups`]); `None`: every cgroup.
    pub cgroups: Option<Vec<u64>>,
}

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("between 1 and {MAX_PORTS} ports can be watched (or none with --all-ports), got {0}")]
    Ports(usize),
    #[error("--comm must be shorter than {COMM_LEN} bytes (the kernel keeps {max} characters)", max = COMM_LEN - 1)]
    Comm,
    #[error("ring buffer size must be a power of two of at least 4096 bytes, got {0}")]
    RingSize(u32),
    #[error("counting CPUs: {0}")]
    Cpus(String),
    #[error("loading the BPF programs: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("BPF program {0} is missing from the object")]
    MissingProgram(&'static str),
    #[error("attaching {program} to {category}/{name}: {source}")]
    Attach {
        program: &'static str,
        category: &'static str,
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("reading the kernel's BTF (/sys/kernel/btf/vmlinux): {0}; httpscope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (see `httpscope doctor`)")]
    KernelBtf(String),
    #[error("BPF map {0}: {1}")]
    Map(&'static str, String),
    #[error("waiting for events: {0}")]
    Poll(#[source] std::io::Error),
}

/// Live capture from the syscall tracepoints. Dropping it detaches everything.
pub struct SyscallCapture {
    _ebpf: Ebpf,
    tls: Vec<TlsTarget>,
    ring: RingBuf<MapData>,
    stats: PerCpuArray<MapData, [u64; KernelStat::COUNT]>,
    /// The cgroups selected by `--container`, when it is given.
    selected_cgroups: Option<BpfHashMap<MapData, u64, u8>>,
}

impl SyscallCapture {
    pub fn attach(config: &CaptureConfig) -> Result<Self, CaptureError> {
        if (config.ports.is_empty() && !config.all_ports) || config.ports.len() > MAX_PORTS {
            return Err(CaptureError::Ports(config.ports.len()));
        }
        if !config.ring_bytes.is_power_of_two() || config.ring_bytes < 4096 {
            return Err(CaptureError::RingSize(config.ring_bytes));
        }
        let mut ports = [0u16; MAX_PORTS];
        ports[..config.ports.len()].copy_from_slice(&config.ports);
        let mut comm = [0u8; COMM_LEN];
        if let Some(name) = &config.comm {
            let bytes = name.as_bytes();
            if bytes.len() >= COMM_LEN {
                return Err(CaptureError::Comm);
            }
            comm[..bytes.len()].copy_from_slice(bytes);
        }
        let port_count = config.ports.len() as u32;
        let filter_tgid = config.pid.unwrap_or(0);
        let capture_bytes = config.capture_bytes.min(MAX_CAPTURE);
        let cpus = aya::util::nr_cpus()
            .map_err(|(what, err)| CaptureError::Cpus(format!("{what}: {err}")))?;

        let mut ebpf = EbpfLoader::new()
            // Task storage has no typed aya wrapper; the kernel creates it from BTF.
            .allow_unsupported_maps()
            .override_global("watched_ports", &ports, true)
            .override_global("watched_port_count", &port_count, true)
            .override_global("filter_tgid", &filter_tgid, true)
            .override_global("filter_comm", &comm, true)
            .override_global("capture_bytes", &capture_bytes, true)
            .override_global("wakeup_bytes", &config.wakeup_bytes, true)
            .override_global("tls_probes", &u8::from(config.tls), true)
            .override_global("all_ports", &u8::from(config.all_ports), true)
            .override_global("filter_cgroups", &u8::from(config.cgroups.is_some()), true)
            .map_max_entries("events", config.ring_bytes)
            .map_max_entries("scratch", cpus as u32)
            .load(BPF_OBJECT)
            .map_err(|e| CaptureError::Load(Box::new(e)))?;

        // Selected before anything is attached: no connection is judged without them.
        let selected_cgroups = match &config.cgroups {
            Some(ids) => {
                let map = ebpf
                    .take_map("selected_cgroups")
                    .ok_or_else(|| CaptureError::Map("selected_cgroups", "missing".into()))?;
                let mut map = BpfHashMap::try_from(map)
                    .map_err(|e| CaptureError::Map("selected_cgroups", e.to_string()))?;
                insert_cgroups(&mut map, ids)?;
                Some(map)
            }
            None => None,
        };

        attach_syscall_exit(&mut ebpf)?;
        for &(program, category, name) in TRACEPOINTS {
            let tracepoint: &mut TracePoint = ebpf
                .program_mut(program)
                .ok_or(CaptureError::MissingProgram(program))?
                .try_into()
                .map_err(|e| attach_error(program, category, name, e))?;
            tracepoint
                .load()
                .map_err(|e| attach_error(program, category, name, e))?;
            tracepoint
                .attach(category, name)
                .map_err(|e| attach_error(program, category, name, e))?;
        }

        let tls = if config.tls {
            attach_tls(&mut ebpf)
        } else {
            Vec::new()
        };

        let ring = RingBuf::try_from(
            ebpf.take_map("events")
                .ok_or_else(|| CaptureError::Map("events", "missing".into()))?,
        )
        .map_err(|e| CaptureError::Map("events", e.to_string()))?;
        let stats = PerCpuArray::try_from(
            ebpf.take_map("stats")
                .ok_or_else(|| CaptureError::Map("stats", "missing".into()))?,
        )
        .map_err(|e| CaptureError::Map("stats", e.to_string()))?;
        Ok(Self {
            _ebpf: ebpf,
            tls,
            ring,
            stats,
            selected_cgroups,
        })
    }

    /// Adds cgroups to the `--container` selection (containers started since).
    pub fn select_cgroups(&mut self, ids: &[u64]) -> Result<(), CaptureError> {
        match &mut self.selected_cgroups {
            Some(map) => insert_cgroups(map, ids),
            None => Ok(()),
        }
    }

    /// The TLS libraries and executables whose SSL_read/SSL_write are hooked.
    pub fn tls_targets(&self) -> &[TlsTarget] {
        &self.tls
    }

    /// Waits up to `timeout` for events, then hands every queued record to `handle`.
    /// Returns how many records were handled.
    pub fn poll(
        &mut self,
        timeout: Duration,
        handle: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, CaptureError> {
        let mut handled = self.drain(handle);
        if handled > 0 {
            return Ok(handled);
        }
        let mut pollfd = libc::pollfd {
            fd: self.ring.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pollfd` is a valid array of one pollfd that outlives the call.
        let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(CaptureError::Poll(err));
            }
        }
        handled += self.drain(handle);
        Ok(handled)
    }

    fn drain(&mut self, handle: &mut dyn FnMut(&[u8])) -> usize {
        let mut handled = 0;
        while let Some(item) = self.ring.next() {
            handle(&item);
            handled += 1;
        }
        handled
    }

    /// Sums the kernel's per-CPU counters.
    pub fn counters(&self) -> Result<KernelCounters, CaptureError> {
        let per_cpu = self
            .stats
            .get(&0, 0)
            .map_err(|e| CaptureError::Map("stats", e.to_string()))?;
        let mut counters = KernelCounters::default();
        for cpu in per_cpu.iter() {
            for (total, value) in counters.values.iter_mut().zip(cpu) {
                *total += value;
            }
        }
        Ok(counters)
    }
}

fn insert_cgroups(map: &mut BpfHashMap<MapData, u64, u8>, ids: &[u64]) -> Result<(), CaptureError> {
    for id in ids {
        map.insert(id, 1, 0)
            .map_err(|e| CaptureError::Map("selected_cgroups", e.to_string()))?;
    }
    Ok(())
}

/// Whether the kernel accepts the syscall program with `--all-ports` on: the
/// program is loaded (verified) and dropped, never attached.
pub fn all_ports_loads() -> Result<(), CaptureError> {
    let cpus =
        aya::util::nr_cpus().map_err(|(what, err)| CaptureError::Cpus(format!("{what}: {err}")))?;
    let mut ebpf = EbpfLoader::new()
        .allow_unsupported_maps()
        .override_global("all_ports", &1u8, true)
        .map_max_entries("scratch", cpus as u32)
        .load(BPF_OBJECT)
        .map_err(|e| CaptureError::Load(Box::new(e)))?;
    load_syscall_exit(&mut ebpf)?;
    Ok(())
}

fn attach_syscall_exit(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let (program, event) = SYSCALL_EXIT;
    load_syscall_exit(ebpf)?
        .attach()
        .map_err(|e| attach_error(program, "tp_btf", event, e))?;
    Ok(())
}

fn load_syscall_exit(ebpf: &mut Ebpf) -> Result<&mut BtfTracePoint, CaptureError> {
    let (program, event) = SYSCALL_EXIT;
    let btf = Btf::from_sys_fs().map_err(|e| CaptureError::KernelBtf(e.to_string()))?;
    let tracepoint: &mut BtfTracePoint = ebpf
        .program_mut(program)
        .ok_or(CaptureError::MissingProgram(program))?
        .try_into()
        .map_err(|e| attach_error(program, "tp_btf", event, e))?;
    tracepoint
        .load(event, &btf)
        .map_err(|e| attach_error(program, "tp_btf", event, e))?;
    Ok(tracepoint)
}

fn attach_error(
    program: &'static str,
    category: &'static str,
    name: &'static str,
    source: aya::programs::ProgramError,
) -> CaptureError {
    CaptureError::Attach {
        program,
        category,
        name,
        source: Box::new(source),
    }
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, program: &str) -> Result<&'a mut UProbe, String> {
    let probe: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("BPF program {program} is missing"))?
        .try_into()
        .map_err(|e| format!("{program}: {e}"))?;
    Ok(probe)
}

/// Hooks every libssl found (and executables that link it statically). Best effort: a
/// failure costs HTTPS plaintext only, so it is logged and capture goes on.
fn attach_tls(ebpf: &mut Ebpf) -> Vec<TlsTarget> {
    let mut programs: Vec<&str> = TLS_PROBES.iter().map(|&(p, _)| p).collect();
    programs.extend([TLS_RETURN_PROGRAM, TLS_SET_FD.0]);
    for program in programs {
        if let Err(err) =
            uprobe(ebpf, program).and_then(|p| p.load().map_err(|e| format!("{program}: {e}")))
        {
            tracing::warn!(%err, "TLS capture is off: its uprobe programs do not load");
            return Vec::new();
        }
    }
    let libraries = tls::find_libraries();
    let executables = tls::find_executables(&libraries);
    let mut hooked = Vec::new();
    for target in libraries.into_iter().chain(executables) {
        match attach_tls_target(ebpf, &target) {
            Ok(0) => {}
            Ok(symbols) => {
                tracing::debug!(target = %target.describe(), symbols, "TLS functions hooked");
                hooked.push(target);
            }
            Err(err) if target.executable => {
                tracing::debug!(target = %target.describe(), %err, "not hooked")
            }
            Err(err) => tracing::warn!(target = %target.describe(), %err, "TLS library not hooked"),
        }
    }
    hooked
}

/// Attaches the TLS probes to one file; returns how many read/write functions were hooked.
fn attach_tls_target(ebpf: &mut Ebpf, target: &TlsTarget) -> Result<usize, String> {
    let mut data_functions = 0;
    let mut first_error = None;
    for (i, &(program, symbol)) in TLS_PROBES.iter().enumerate() {
        let attached = uprobe(ebpf, TLS_RETURN_PROGRAM)
            .and_then(|p| {
                p.attach(symbol, &target.path, UProbeScope::AllProcesses)
                    .map_err(|e| format!("uretprobe {symbol}: {e}"))
            })
            .and_then(|_| {
                uprobe(ebpf, program)?
                    .attach(symbol, &target.path, UProbeScope::AllProcesses)
                    .map_err(|e| format!("uprobe {symbol}: {e}"))
            });
        match attached {
            // Executables without SSL_write have no libssl inside: skip them quickly.
            Err(_) if target.executable && i == 0 => return Ok(0),
            Ok(_) if symbol != "SSL_do_handshake" => data_functions += 1,
            Ok(_) => {}
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if data_functions > 0 {
        let (program, symbol) = TLS_SET_FD;
        if let Err(err) = uprobe(ebpf, program).and_then(|p| {
            p.attach(symbol, &target.path, UProbeScope::AllProcesses)
                .map_err(|e| e.to_string())
        }) {
            tracing::debug!(target = %target.describe(), %err, "SSL_set_fd not hooked");
        }
        return Ok(data_functions);
    }
    Err(first_error.unwrap_or_else(|| "no TLS functions found".into()))
}
