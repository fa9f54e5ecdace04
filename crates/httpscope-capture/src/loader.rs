//! Loads the BPF object with its configuration, attaches it, and reads the ring buffer.

use std::time::Duration;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use httpscope_core::event::abi::{
    KernelStat, RawBinaryEvent, BINARY_EXEC, COMM_LEN, MAX_CAPTURE, MAX_PORTS,
};
use httpscope_core::event::KernelCounters;
use thiserror::Error;

use crate::backend::{Backend, BackendChoice};
use crate::detach::close_in_parallel;
use crate::features::{BpfObject, KernelFeatures};
use crate::follow::Follower;
use crate::ladder::BenchStage;
use crate::refusal::Refusal;
use crate::ring::EventRing;
use crate::timing::timed;
use crate::tls::TlsTarget;
use crate::uprobes::TlsHooks;
use crate::verify::load_btf_tracepoints;

static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/httpscope.bpf.o"));
static BPF_OBJECT_BASELINE: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/httpscope-baseline.bpf.o"));

/// Classic tracepoints, for every backend: (program, category, event).
const TRACEPOINTS: &[(&str, &str, &str)] = &[("process_exit", "sched", "sched_process_exit")];

/// What to capture; becomes the BPF programs' read-only globals.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub ports: Vec<u16>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Bytes copied per syscall at most.
    pub capture_bytes: u32,
    /// The capture budget: body bytes copied per HTTP message on plain
    /// connections, the rest counted, not copied (`DATA_FLAG_ELIDED`); 0 copies
    /// every call up to `capture_bytes`.
    pub body_budget: u32,
    pub ring_bytes: u32,
    /// Wake the reader once this much is queued; 0 wakes it on every event.
    pub wakeup_bytes: u64,
    /// Hook the TLS libraries found (libssl) to capture HTTPS plaintext.
    pub tls: bool,
    /// Every TCP port is a candidate (`ports`, when not empty, narrow); the
    /// kernel keeps the connections whose first bytes are HTTP or hooked TLS.
    pub all_ports: bool,
    /// Only tasks in these cgroup v2 ids (`--container`; more can be added
    /// while capturing with [`Capture::select_cgroups`]); `None`: every cgroup.
    pub cgroups: Option<Vec<u64>>,
    pub backend: BackendChoice,
    /// The cost ladder's stage, set by the benchmark only; `None` captures whole.
    pub bench_stage: Option<BenchStage>,
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
    #[error("loading {program} for {category}/{name}: {refusal}")]
    Attach {
        program: &'static str,
        category: &'static str,
        name: &'static str,
        refusal: Refusal,
    },
    #[error("reading the kernel's BTF (/sys/kernel/btf/vmlinux): {0}; httpscope needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (see `httpscope doctor`)")]
    KernelBtf(String),
    #[error("the {backend} capture backend needs kernel tracepoints this kernel lacks: {missing} (see `httpscope doctor`)", backend = .0.name(), missing = .1.join(", "))]
    BackendUnsupported(Backend, Vec<&'static str>),
    #[error("BPF map {0}: {1}")]
    Map(&'static str, String),
    #[error("starting the threads that verify the BPF programs: {0}")]
    Threads(String),
    #[error("waiting for events: {0}")]
    Poll(#[source] std::io::Error),
}

/// Live capture through the chosen backend's programs (and the TLS uprobes);
/// [`Capture::run`] is its loop. Dropping it detaches everything.
pub struct Capture {
    ebpf: Ebpf,
    backend: Backend,
    object: BpfObject,
    features: KernelFeatures,
    tls: Option<TlsHooks>,
    /// Processes that exec'd or loaded libraries (with TLS hooks on), and the thread
    /// that inspects them.
    binaries: Option<(RingBuf<MapData>, Follower)>,
    ring: EventRing,
    stats: PerCpuArray<MapData, [u64; KernelStat::COUNT]>,
    /// The cgroups selected by `--container`, when it is given.
    selected_cgroups: Option<BpfHashMap<MapData, u64, u8>>,
}

impl Capture {
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
        let kernel = timed("kernel BTF and features", || {
            KernelSetup::resolve(config.backend)
        })?;
        let (btf, backend) = (&kernel.btf, kernel.backend);
        // The baseline object has no budget: bodies are copied whole, as with the budget off.
        let body_budget = match kernel.object {
            BpfObject::Full => config.body_budget,
            BpfObject::Baseline => 0,
        };
        let mut loader = kernel.loader();
        let started = std::time::Instant::now();
        let loaded = loader
            .override_global("watched_ports", &ports, true)
            .override_global("watched_port_count", &port_count, true)
            .override_global("filter_tgid", &filter_tgid, true)
            .override_global("filter_comm", &comm, true)
            .override_global("capture_bytes", &capture_bytes, true)
            .override_global("body_limit", &body_budget, true)
            .override_global("wakeup_bytes", &config.wakeup_bytes, true)
            .override_global(
                "bench_stage",
                &BenchStage::kernel_stage(config.bench_stage),
                true,
            )
            .override_global("tls_probes", &u8::from(config.tls), true)
            .override_global("all_ports", &u8::from(config.all_ports), true)
            .override_global("filter_cgroups", &u8::from(config.cgroups.is_some()), true)
            .override_global(
                "socket_backend",
                &u8::from(backend == Backend::Socket),
                true,
            )
            .map_max_entries("events", config.ring_bytes)
            .load(kernel.object_bytes());
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            "BPF object parsed, maps created"
        );
        let mut ebpf = loaded.map_err(|e| CaptureError::Load(Box::new(e)))?;

        // The TLS programs load while every map is still in `ebpf`: uprobe_multi's are
        // relocated against them all (see `uprobe_multi`).
        let tls = if config.tls {
            TlsHooks::load(
                &mut ebpf,
                backend,
                kernel.features,
                kernel.object_bytes(),
                btf,
            )
        } else {
            None
        };
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

        // The watch for new programs now, so that the scan of what runs now overlaps the
        // verification of the socket programs; the watch before the scan: a program
        // started during the scan is seen by one or the other.
        let mut tls = tls.map(|mut hooks| {
            timed("TLS: new binaries watched", || {
                hooks.watch_new_binaries(&mut ebpf)
            });
            hooks
        });
        let discovery = tls.as_ref().map(|hooks| hooks.find_running(config.pid));

        attach_btf_tracepoints(&mut ebpf, backend, btf)?;
        // The kernel BTF's last use: its parse (tens of MiB) is freed before the TLS targets'
        // symbol tables are read and the ring is mapped (see `return_freed_heap`).
        let (object, features) = (kernel.object, kernel.features);
        drop(kernel);
        for &(program, category, name) in TRACEPOINTS {
            timed(program, || {
                load_tracepoint(&mut ebpf, program, category, name)?
                    .attach(category, name)
                    .map_err(|e| attach_error(program, category, name, e))
            })?;
        }
        if let (Some(hooks), Some(discovery)) = (tls.as_mut(), discovery) {
            hooks.attach_found(&mut ebpf, discovery);
        }

        let binaries = match &tls {
            Some(hooks) => ebpf
                .take_map("binaries")
                .and_then(|map| RingBuf::try_from(map).ok())
                .map(|ring| (ring, Follower::start(hooks.seen()))),
            None => None,
        };
        return_freed_heap();
        let ring = EventRing::new(
            ebpf.take_map("events")
                .ok_or_else(|| CaptureError::Map("events", "missing".into()))?,
            "events",
        )?;
        let stats = PerCpuArray::try_from(
            ebpf.take_map("stats")
                .ok_or_else(|| CaptureError::Map("stats", "missing".into()))?,
        )
        .map_err(|e| CaptureError::Map("stats", e.to_string()))?;
        Ok(Self {
            ebpf,
            backend,
            object,
            features,
            tls,
            binaries,
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

    /// The backend that was attached.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The BPF object that was loaded, and the kernel features that chose it.
    pub fn object(&self) -> (BpfObject, KernelFeatures) {
        (self.object, self.features)
    }

    /// The TLS libraries and executables whose read/write functions are hooked.
    pub fn tls_targets(&self) -> &[TlsTarget] {
        self.tls.as_ref().map_or(&[], TlsHooks::hooked)
    }

    /// Waits up to `timeout` for events, then hands every queued record to `handle`.
    /// Returns how many records were handled.
    pub fn poll(
        &mut self,
        timeout: Duration,
        handle: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, CaptureError> {
        self.follow_new_binaries();
        let mut handled = self.drain(handle);
        if handled > 0 {
            return Ok(handled);
        }
        let mut pollfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
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

    /// Reports the processes that exec'd or loaded libraries since the last call to the
    /// inspection thread, and hooks what it found.
    fn follow_new_binaries(&mut self) {
        let (Some((ring, follower)), Some(tls)) = (self.binaries.as_mut(), self.tls.as_mut())
        else {
            return;
        };
        while let Some(item) = ring.next() {
            if let Some(event) = decode_binary_event(&item) {
                follower.report(event.tgid, event.reason == BINARY_EXEC);
            }
        }
        for (target, since_reported) in follower.found() {
            let description = target.describe();
            let started = std::time::Instant::now();
            if tls.attach(&mut self.ebpf, target) {
                tracing::info!(
                    target = %description,
                    ms = (since_reported + started.elapsed()).as_millis() as u64,
                    "TLS: hooked a program or library that appeared after capture started"
                );
            }
        }
    }

    fn drain(&mut self, handle: &mut dyn FnMut(&[u8])) -> usize {
        self.ring.drain(handle)
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

impl Drop for Capture {
    /// The uprobe_multi links first, in parallel; the rest as the fields drop.
    fn drop(&mut self) {
        if let Some(tls) = &mut self.tls {
            close_in_parallel(tls.take_links());
        }
    }
}

fn insert_cgroups(map: &mut BpfHashMap<MapData, u64, u8>, ids: &[u64]) -> Result<(), CaptureError> {
    for id in ids {
        map.insert(id, 1, 0)
            .map_err(|e| CaptureError::Map("selected_cgroups", e.to_string()))?;
    }
    Ok(())
}

/// Gives the memory the start freed (the kernel BTF, the TLS scan's symbol tables) back to
/// the system before the ring is mapped: malloc would keep it, and it would add up with the
/// ring's pages in the peak RSS.
fn return_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What every load needs from the kernel: its CPUs, its BTF, what its BPF offers, and
/// so the object and the backend to use.
struct KernelSetup {
    cpus: u32,
    btf: Btf,
    features: KernelFeatures,
    /// `features.attach_cookies`, as the programs' global reads it.
    attach_cookies: u8,
    object: BpfObject,
    backend: Backend,
}

impl KernelSetup {
    fn resolve(choice: BackendChoice) -> Result<Self, CaptureError> {
        let cpus = aya::util::nr_cpus()
            .map_err(|(what, err)| CaptureError::Cpus(format!("{what}: {err}")))?;
        let btf = Btf::from_sys_fs().map_err(|e| CaptureError::KernelBtf(e.to_string()))?;
        let features = KernelFeatures::probe();
        let object = features.object();
        let backend = choice
            .resolve(&btf, object)
            .map_err(|(backend, missing)| CaptureError::BackendUnsupported(backend, missing))?;
        Ok(Self {
            cpus: cpus as u32,
            btf,
            features,
            attach_cookies: u8::from(features.attach_cookies),
            object,
            backend,
        })
    }

    fn object_bytes(&self) -> &'static [u8] {
        match self.object {
            BpfObject::Full => BPF_OBJECT,
            BpfObject::Baseline => BPF_OBJECT_BASELINE,
        }
    }

    /// A loader for this kernel: the other backend's maps at their smallest.
    fn loader(&self) -> EbpfLoader<'_> {
        let mut loader = EbpfLoader::new();
        // The one parse of the kernel BTF (tens of MiB while it lives) serves CO-RE too.
        loader.btf(Some(&self.btf));
        for &map in self.backend.unused_maps() {
            loader.map_max_entries(map, self.cpus);
        }
        loader
            // Task storage has no typed aya wrapper; the kernel creates it from BTF.
            .allow_unsupported_maps()
            .map_max_entries("scratch", self.cpus)
            .override_global("possible_cpus", &self.cpus, true)
            .override_global("attach_cookies", &self.attach_cookies, true);
        loader
    }
}

/// What a trial load found: the object and backend capture would use here, and whether
/// the TLS probes load too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialLoad {
    pub object: BpfObject,
    pub backend: Backend,
    pub features: KernelFeatures,
    pub tls_probes_load: bool,
}

/// Loads (verifies) the programs a capture with the `auto` backend would run, and drops
/// them: nothing is attached. `all_ports` turns on the code that judges connections.
pub fn trial_load(all_ports: bool) -> Result<TrialLoad, CaptureError> {
    let kernel = KernelSetup::resolve(BackendChoice::Auto)?;
    let mut ebpf = kernel
        .loader()
        .override_global("all_ports", &u8::from(all_ports), true)
        .override_global(
            "socket_backend",
            &u8::from(kernel.backend == Backend::Socket),
            true,
        )
        .load(kernel.object_bytes())
        .map_err(|e| CaptureError::Load(Box::new(e)))?;
    load_btf_tracepoints(&mut ebpf, kernel.backend, &kernel.btf)?;
    for &(program, category, name) in TRACEPOINTS {
        load_tracepoint(&mut ebpf, program, category, name)?;
    }
    let tls_probes_load = TlsHooks::load(
        &mut ebpf,
        kernel.backend,
        kernel.features,
        kernel.object_bytes(),
        &kernel.btf,
    )
    .is_some();
    Ok(TrialLoad {
        object: kernel.object,
        backend: kernel.backend,
        features: kernel.features,
        tls_probes_load,
    })
}

/// The backend's BTF tracepoint programs, verified in parallel, then attached in order;
/// nothing of the other backend is attached.
fn attach_btf_tracepoints(
    ebpf: &mut Ebpf,
    backend: Backend,
    btf: &Btf,
) -> Result<(), CaptureError> {
    load_btf_tracepoints(ebpf, backend, btf)?;
    for &(program, event) in backend.tracepoints() {
        let tracepoint: &mut BtfTracePoint = ebpf
            .program_mut(program)
            .ok_or(CaptureError::MissingProgram(program))?
            .try_into()
            .map_err(|e| attach_error(program, "tp_btf", event, e))?;
        tracepoint
            .attach()
            .map_err(|e| attach_error(program, "tp_btf", event, e))?;
    }
    Ok(())
}

/// A classic tracepoint program, loaded (verified), not attached.
fn load_tracepoint<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
    category: &'static str,
    name: &'static str,
) -> Result<&'a mut TracePoint, CaptureError> {
    let tracepoint: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or(CaptureError::MissingProgram(program))?
        .try_into()
        .map_err(|e| attach_error(program, category, name, e))?;
    tracepoint
        .load()
        .map_err(|e| attach_error(program, category, name, e))?;
    Ok(tracepoint)
}

/// A `binary_event` from the kernel, length-checked.
fn decode_binary_event(bytes: &[u8]) -> Option<RawBinaryEvent> {
    let field = |at: usize| Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    Some(RawBinaryEvent {
        tgid: field(0)?,
        reason: field(4)?,
    })
}

pub(crate) fn attach_error(
    program: &'static str,
    category: &'static str,
    name: &'static str,
    source: aya::programs::ProgramError,
) -> CaptureError {
    CaptureError::Attach {
        program,
        category,
        name,
        refusal: Refusal::of_program(program, &source),
    }
}
