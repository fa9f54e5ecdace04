//! Attaching the TLS uprobes: OpenSSL's functions by symbol, Go's crypto/tls by file
//! offset (entry and every return instruction), Node's TLSWrap and rustls by file offset.
//! Each file is hooked once, by (device, inode), whichever process or path led to it.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::Path;

use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::{TracePoint, UProbe};
use aya::{Btf, Ebpf};

use crate::backend::Backend;
use crate::discovery::Discovery;
use crate::elf;
use crate::features::KernelFeatures;
use crate::golang::{GoTlsBinary, GoTlsFunction};
use crate::refusal::Refusal;
use crate::timing::timed;
use crate::tls::node::{NodeBinary, NodeFunction};
use crate::tls::rustls::{RustlsBinary, RustlsFunction, RustlsProbe, Unhookable};
use crate::tls::{self, openssl_workers, FileId, TargetKind, TlsTarget};
use crate::uprobe_multi::{self, MultiProgram};

/// OpenSSL functions hooked: (entry program, symbol). Each also gets the backend's
/// return probe, attached first so that no call can enter unseen and return seen.
const OPENSSL_PROBES: &[(&str, &str)] = &[
    ("ssl_write_enter", "SSL_write"),
    ("ssl_read_enter", "SSL_read"),
    ("ssl_write_ex_enter", "SSL_write_ex"),
    ("ssl_read_ex_enter", "SSL_read_ex"),
    ("ssl_handshake_enter", "SSL_do_handshake"),
];
/// What stays on OpenSSL's exported functions when its read and write workers are hooked.
const OPENSSL_HANDSHAKE_PROBE: &[(&str, &str)] = &[("ssl_handshake_enter", "SSL_do_handshake")];
/// The programs on OpenSSL's workers, which take `SSL_write_ex`'s and `SSL_read_ex`'s arguments.
const OPENSSL_WORKER_PROGRAMS: [&str; 2] = ["ssl_write_ex_enter", "ssl_read_ex_enter"];
/// GnuTLS functions hooked, the same way (the calls have OpenSSL's shape).
const GNUTLS_PROBES: &[(&str, &str)] = &[
    ("gnutls_send_enter", "gnutls_record_send"),
    ("gnutls_recv_enter", "gnutls_record_recv"),
    ("ssl_handshake_enter", "gnutls_handshake"),
];
/// Entry only: remembers which fd an SSL object uses (syscall backend: the socket
/// backend cannot turn an fd into a socket without the syscall).
const OPENSSL_SET_FD: (&str, &str) = ("ssl_set_fd_enter", "SSL_set_fd");

/// Go crypto/tls programs: the return program goes on every RET of Read.
const GO_WRITE_ENTER: &str = "go_tls_write_enter";
const GO_READ_ENTER: &str = "go_tls_read_enter";
const GO_HANDSHAKE_ENTER: &str = "go_tls_handshake_enter";
const GO_READ_RETURN: &str = "go_tls_read_ret";

/// Node.js TLSWrap programs (see `bpf/node_tls.bpf.h`).
const NODE_STREAM_ALLOC: &str = "node_stream_alloc";
const NODE_STREAM_READ: &str = "node_stream_read";
const NODE_STREAM_READ_RETURN: &str = "node_stream_read_ret";
const NODE_CLEAR: &str = "node_clear";

/// rustls programs (see `bpf/rustls.bpf.h`): entry, and the return program when one is
/// their own (the others take the backend's TLS return program).
const RUSTLS_PROGRAMS: &[&str] = &[
    "rustls_write",
    "rustls_write_vectored",
    "rustls_write_ret",
    "rustls_read",
    "rustls_first_chunk",
    "rustls_first_chunk_ret",
    "rustls_consume",
    "rustls_consume_ret",
    "rustls_sink_w",
    "rustls_sink_wv",
    "rustls_used_buf",
    "rustls_io_state",
    "rustls_is_full",
    "rustls_read_tls",
    "rustls_write_tls",
];

/// Programs that report processes whose TLS code may not be hooked yet.
const PROCESS_EXEC: &str = "process_exec";
const LIBRARIES_CHANGED: &str = "libraries_changed";
/// The dynamic loader's hook for debuggers, called after every change to the loaded
/// libraries, in each architecture's loader.
const LOADER_HOOK: &str = "_dl_debug_state";
const LOADERS: &[&str] = &["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"];

/// The TLS uprobes of one capture: what is hooked, and which files were already seen.
pub struct TlsHooks {
    backend: Backend,
    /// Without attach cookies, only what needs none is hooked (OpenSSL by symbol, GnuTLS).
    attach_cookies: bool,
    hooked: Vec<TlsTarget>,
    seen: HashSet<FileId>,
    /// How the probes reach the kernel, and the uprobe_multi links made.
    links: Links,
    /// The rustls programs loaded (they are loaded on their own: a kernel that refuses
    /// them keeps the other libraries' hooks).
    rustls: bool,
}

impl TlsHooks {
    /// Loads the uprobe programs. A failure costs HTTPS plaintext only: it is logged and
    /// capture goes on without TLS hooks (`None`).
    /// The programs go to uprobe_multi links where the kernel has them (one link per
    /// program and file: a fast detach), else to perf-event uprobes.
    pub fn load(
        ebpf: &mut Ebpf,
        backend: Backend,
        features: KernelFeatures,
        object: &[u8],
        btf: &Btf,
    ) -> Option<Self> {
        let mut programs: Vec<&str> = OPENSSL_PROBES.iter().map(|&(p, _)| p).collect();
        if backend == Backend::Syscall {
            programs.push(OPENSSL_SET_FD.0);
        }
        programs.extend([
            backend.tls_return_program(),
            GNUTLS_PROBES[0].0,
            GNUTLS_PROBES[1].0,
            LIBRARIES_CHANGED,
        ]);
        if features.attach_cookies {
            programs.extend([
                GO_WRITE_ENTER,
                GO_READ_ENTER,
                GO_HANDSHAKE_ENTER,
                GO_READ_RETURN,
                NODE_STREAM_ALLOC,
                NODE_STREAM_READ,
                NODE_STREAM_READ_RETURN,
                NODE_CLEAR,
            ]);
        }
        let all: Vec<&'static str> = programs.iter().chain(RUSTLS_PROGRAMS).copied().collect();
        let multi = uprobe_multi_allowed()
            .then(|| {
                timed("uprobe_multi programs loaded", || {
                    uprobe_multi::load(ebpf, object, btf, &all)
                })
            })
            .flatten();
        let (links, rustls) = match multi {
            Some(programs) => (
                Links::Multi {
                    programs,
                    links: Vec::new(),
                },
                true,
            ),
            None => (Links::PerfEvent, load_perf_programs(ebpf, &programs)?),
        };
        tracing::debug!(
            uprobe_multi = matches!(links, Links::Multi { .. }),
            "TLS programs loaded"
        );
        Some(Self {
            links,
            rustls,
            backend,
            attach_cookies: features.attach_cookies,
            hooked: Vec::new(),
            seen: HashSet::new(),
        })
    }

    /// Starts looking for every libssl and the executables of running processes that
    /// hold a TLS stack (Go crypto/tls, static OpenSSL...), on a thread of its own. With
    /// `pid`, only what that process runs: its executable and the libraries it has mapped
    /// (fewer probes, a faster detach). [`TlsHooks::attach_found`] hooks what it found.
    pub(crate) fn find_running(&self, pid: Option<u32>) -> Discovery {
        Discovery::start(pid, self.seen.clone())
    }

    /// Hooks what `discovery` found, once it ends.
    pub(crate) fn attach_found(&mut self, ebpf: &mut Ebpf, discovery: Discovery) {
        let found = discovery.finish();
        self.seen.extend(found.seen);
        for target in found.targets {
            timed("TLS target attached", || self.attach(ebpf, target));
        }
    }

    /// Attaches the probes for one target; logs the outcome. Returns whether it is hooked.
    pub fn attach(&mut self, ebpf: &mut Ebpf, target: TlsTarget) -> bool {
        let attacher = &mut Attacher::new(ebpf, &mut self.links, &target.path);
        let attached = match &target.kind {
            TargetKind::Go(_) | TargetKind::Node(_) if !self.attach_cookies => {
                Err("not hooked: this kernel has no BPF attach cookies (bpf_get_attach_cookie), which its probes need; its HTTPS stays encrypted".into())
            }
            TargetKind::Libssl | TargetKind::StaticOpenssl => {
                attach_openssl(attacher, self.backend, &target, self.attach_cookies)
            }
            TargetKind::Gnutls => attach_by_symbol(attacher, self.backend, &target, GNUTLS_PROBES, 0),
            TargetKind::Go(binary) => attach_go(attacher, binary),
            TargetKind::Node(binary) => attach_node(attacher, self.backend, &target, binary),
            TargetKind::Rustls(_) if !self.rustls => {
                Err("not hooked: the kernel refused the rustls programs (logged at start)".into())
            }
            TargetKind::Rustls(binary) => attach_rustls(attacher, self.backend, binary),
        };
        let attached = attached.and_then(|functions| attacher.finish().map(|()| functions));
        match attached {
            Ok(0) => false,
            Ok(functions) => {
                tracing::debug!(target = %target.describe(), functions, "TLS functions hooked");
                self.hooked.push(target);
                true
            }
            Err(err) if target.kind == TargetKind::StaticOpenssl => {
                tracing::debug!(target = %target.describe(), %err, "not hooked");
                false
            }
            Err(err) => {
                tracing::warn!(target = %target.describe(), %err, "TLS stack not hooked");
                false
            }
        }
    }

    pub fn hooked(&self) -> &[TlsTarget] {
        &self.hooked
    }

    /// The uprobe_multi links made so far (none with perf-event uprobes, which their
    /// programs own); closing one detaches its probes.
    pub fn take_links(&mut self) -> Vec<OwnedFd> {
        match &mut self.links {
            Links::Multi { links, .. } => std::mem::take(links),
            Links::PerfEvent => Vec::new(),
        }
    }

    /// Reports processes that exec or load libraries from now on (see `follow`). Without
    /// it only what runs now is hooked: logged, capture goes on.
    pub fn watch_new_binaries(&mut self, ebpf: &mut Ebpf) {
        let exec = (|| -> Result<(), String> {
            let tracepoint: &mut TracePoint = ebpf
                .program_mut(PROCESS_EXEC)
                .ok_or("process_exec is missing")?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            tracepoint.load().map_err(|e| e.to_string())?;
            tracepoint
                .attach("sched", "sched_process_exec")
                .map(drop)
                .map_err(|e| e.to_string())
        })();
        if let Err(err) = exec {
            tracing::warn!(%err, "TLS: programs started from now on will not be hooked");
        }
        for path in tls::distinct_files(LOADERS) {
            let mut attacher = Attacher::new(ebpf, &mut self.links, &path);
            let attached = attacher
                .attach_point(LIBRARIES_CHANGED, LOADER_HOOK.into())
                .and_then(|()| attacher.finish());
            if let Err(err) = attached {
                tracing::warn!(loader = %path.display(), %err, "TLS: libraries loaded from now on will not be hooked");
            }
        }
    }

    /// The files hooked or looked at so far (for the thread that follows new processes).
    pub fn seen(&self) -> HashSet<FileId> {
        self.seen.clone()
    }
}

/// `HTTPSCOPE_UPROBE_MULTI=off` keeps the perf-event uprobes where uprobe_multi links
/// would do (to compare them, or to test the older kernels' path on a newer one).
fn uprobe_multi_allowed() -> bool {
    std::env::var_os("HTTPSCOPE_UPROBE_MULTI").is_none_or(|v| v != "off")
}

/// Loads `programs` and the rustls programs for perf-event uprobes; `None` when the
/// first are refused, and whether the rustls programs loaded.
fn load_perf_programs(ebpf: &mut Ebpf, programs: &[&str]) -> Option<bool> {
    if let Err(err) = load_programs(ebpf, programs) {
        tracing::warn!(%err, "TLS capture is off: its uprobe programs do not load");
        return None;
    }
    let rustls = load_programs(ebpf, RUSTLS_PROGRAMS)
        .map_err(|err| tracing::warn!(%err, "rustls programs stay encrypted: its uprobe programs do not load"))
        .is_ok();
    Some(rustls)
}

/// The symbols probed: OpenSSL's, GnuTLS's and the dynamic loader's hook.
fn probed_symbols() -> Vec<&'static str> {
    OPENSSL_PROBES
        .iter()
        .chain(GNUTLS_PROBES)
        .chain([&OPENSSL_SET_FD])
        .map(|&(_, symbol)| symbol)
        .chain([LOADER_HOOK])
        .collect()
}

/// Loads the uprobe programs named; the first refusal is the error.
fn load_programs(ebpf: &mut Ebpf, programs: &[&str]) -> Result<(), String> {
    for &program in programs {
        let probe = uprobe(ebpf, program)?;
        timed(program, || probe.load())
            .map_err(|e| format!("{program}: {}", Refusal::of_program(program, &e)))?;
    }
    Ok(())
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, program: &str) -> Result<&'a mut UProbe, String> {
    let probe: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("BPF program {program} is missing"))?
        .try_into()
        .map_err(|e| format!("{program}: {e}"))?;
    Ok(probe)
}

/// How the probes reach the kernel.
enum Links {
    /// Perf-event uprobes, one per probe, attached and owned by aya's programs.
    PerfEvent,
    /// uprobe_multi links, one per program and file (see `uprobe_multi`).
    Multi {
        programs: HashMap<&'static str, MultiProgram>,
        links: Vec<OwnedFd>,
    },
}

/// The probes of one file: attached at once (perf events), or gathered until
/// [`Attacher::finish`] links each program's (uprobe_multi).
struct Attacher<'e> {
    ebpf: &'e mut Ebpf,
    links: &'e mut Links,
    path: &'e Path,
    /// (program, file offset, cookie), in the order asked.
    gathered: Vec<(&'static str, u64, u64)>,
    /// The file's symbols, read once, on the first probe by symbol.
    symbols: Option<HashMap<String, u64>>,
}

impl<'e> Attacher<'e> {
    fn new(ebpf: &'e mut Ebpf, links: &'e mut Links, path: &'e Path) -> Self {
        Self {
            ebpf,
            links,
            path,
            gathered: Vec::new(),
            symbols: None,
        }
    }

    fn attach<'a>(
        &mut self,
        program: &str,
        point: impl Into<UProbeAttachPoint<'a>>,
    ) -> Result<(), String> {
        self.attach_point(program, point.into())
    }

    fn attach_point(&mut self, program: &str, point: UProbeAttachPoint<'_>) -> Result<(), String> {
        let Links::Multi { programs, .. } = &*self.links else {
            return uprobe(self.ebpf, program)?
                .attach(point, self.path, UProbeScope::AllProcesses)
                .map(drop)
                .map_err(|e| format!("{program}: {e}"));
        };
        let (&program, _) = programs
            .get_key_value(program)
            .ok_or_else(|| format!("BPF program {program} is not loaded"))?;
        let offset = match point.location {
            UProbeAttachLocation::AbsoluteOffset(offset) => offset,
            UProbeAttachLocation::Symbol(symbol) => self.symbol(symbol)?,
            UProbeAttachLocation::SymbolOffset(symbol, offset) => self.symbol(symbol)? + offset,
        };
        self.gathered
            .push((program, offset, point.cookie.unwrap_or(0)));
        Ok(())
    }

    fn symbol(&mut self, symbol: &str) -> Result<u64, String> {
        let path = self.path;
        self.symbols
            .get_or_insert_with(|| elf::symbol_offsets(path, &probed_symbols()))
            .get(symbol)
            .copied()
            .ok_or_else(|| format!("symbol {symbol} not found"))
    }

    /// Links what was gathered: one link per program, the return probes' first (a call
    /// whose entry is seen has its return seen).
    fn finish(&mut self) -> Result<(), String> {
        let Links::Multi { programs, links } = &mut *self.links else {
            return Ok(());
        };
        let gathered = std::mem::take(&mut self.gathered);
        let mut order: Vec<&'static str> = Vec::new();
        for &(program, ..) in &gathered {
            if !order.contains(&program) {
                order.push(program);
            }
        }
        order.sort_by_key(|program| !programs[program].returns);
        for program in order {
            let (offsets, cookies): (Vec<u64>, Vec<u64>) = gathered
                .iter()
                .filter(|(p, ..)| *p == program)
                .map(|&(_, offset, cookie)| (offset, cookie))
                .unzip();
            let link = uprobe_multi::attach(&programs[program], self.path, &offsets, &cookies)
                .map_err(|e| format!("{program}: {e}"))?;
            links.push(link);
        }
        Ok(())
    }
}

/// A probe point by file offset, with its attach cookie (none for 0, which the programs
/// read the same: a kernel without cookies still takes such a probe).
fn at_offset(offset: u64, cookie: u64) -> UProbeAttachPoint<'static> {
    UProbeAttachPoint {
        location: UProbeAttachLocation::AbsoluteOffset(offset),
        cookie: (cookie != 0).then_some(cookie),
    }
}

/// OpenSSL: its read and write workers when their machine code allows it (a probe there
/// costs a fraction of one on the exported functions; see `tls::openssl_workers`), else the
/// exported read and write functions. Returns how many read/write functions were hooked.
/// Without attach `cookies` the worker probes carry none: what a cookie tells them (where
/// SSL_read's frame is) only serves Node's binding, and Node is not hooked then.
fn attach_openssl(
    attacher: &mut Attacher,
    backend: Backend,
    target: &TlsTarget,
    cookies: bool,
) -> Result<usize, String> {
    let Some(workers) = openssl_workers::find(&target.path) else {
        return attach_by_symbol(attacher, backend, target, OPENSSL_PROBES, 0);
    };
    for (program, worker) in OPENSSL_WORKER_PROGRAMS
        .into_iter()
        .zip([workers.write, workers.read])
    {
        let cookie = if cookies { worker.cookie() } else { 0 };
        attacher.attach(backend.tls_return_program(), at_offset(worker.offset, 0))?;
        attacher.attach(program, at_offset(worker.offset, cookie))?;
    }
    tracing::debug!(target = %target.describe(), ?workers, "OpenSSL probes on its read/write workers");
    attach_by_symbol(
        attacher,
        backend,
        target,
        OPENSSL_HANDSHAKE_PROBE,
        OPENSSL_WORKER_PROGRAMS.len(),
    )
}

/// A C TLS library by symbol (the first symbol is its write function), after
/// `data_functions` read/write functions hooked otherwise; returns how many are hooked.
fn attach_by_symbol(
    attacher: &mut Attacher,
    backend: Backend,
    target: &TlsTarget,
    probes: &[(&str, &str)],
    mut data_functions: usize,
) -> Result<usize, String> {
    let mut first_error = None;
    for (i, &(program, symbol)) in probes.iter().enumerate() {
        let attached = attacher
            .attach(backend.tls_return_program(), symbol)
            .and_then(|()| attacher.attach(program, symbol));
        match attached {
            // Executables without SSL_write have no libssl inside: skip them quickly.
            Err(_) if target.kind == TargetKind::StaticOpenssl && i == 0 && data_functions == 0 => {
                return Ok(0)
            }
            Ok(()) if program != "ssl_handshake_enter" => data_functions += 1,
            Ok(()) => {}
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if data_functions > 0 && backend == Backend::Syscall && target.kind != TargetKind::Gnutls {
        let (program, symbol) = OPENSSL_SET_FD;
        if let Err(err) = attacher.attach(program, symbol) {
            tracing::debug!(target = %target.describe(), %err, "SSL_set_fd not hooked");
        }
    }
    if data_functions > 0 {
        return Ok(data_functions);
    }
    Err(first_error.unwrap_or_else(|| "no TLS functions found".into()))
}

/// Node's TLSWrap by file offset, and its built-in OpenSSL by symbol: OnStreamRead's returns
/// first (a read window whose entry is seen always closes). Returns the probes attached.
fn attach_node(
    attacher: &mut Attacher,
    backend: Backend,
    target: &TlsTarget,
    binary: &NodeBinary,
) -> Result<usize, String> {
    let mut attached = 0;
    for probe in &binary.probes {
        if probe.function == NodeFunction::StreamRead {
            attacher.attach(NODE_STREAM_READ_RETURN, at_offset(probe.offset, 0))?;
        }
    }
    for probe in &binary.probes {
        let program = match probe.function {
            NodeFunction::StreamAlloc => NODE_STREAM_ALLOC,
            NodeFunction::StreamRead => NODE_STREAM_READ,
            NodeFunction::ClearIn | NodeFunction::ClearOut => NODE_CLEAR,
        };
        attacher.attach(program, at_offset(probe.offset, probe.cookie))?;
        attached += 1;
    }
    // Built-in OpenSSL as any other: on its workers where the machine code allows (the
    // binding then looks through SSL_read's measured frame at its caller, bpf/node_tls.bpf.h),
    // else on the exported functions.
    if binary.openssl_built_in {
        // Node is hooked only where the kernel has attach cookies.
        attached += attach_openssl(attacher, backend, target, true)?;
    }
    Ok(attached)
}

/// The programs on one rustls probe: (return program, entry program).
fn rustls_programs(backend: Backend, probe: &RustlsProbe) -> (Option<&'static str>, &'static str) {
    let backend_return = Some(backend.tls_return_program());
    match probe.function {
        RustlsFunction::Write => (Some("rustls_write_ret"), "rustls_write"),
        RustlsFunction::WriteVectored => (Some("rustls_write_ret"), "rustls_write_vectored"),
        RustlsFunction::SinkWrite => (Some("rustls_write_ret"), "rustls_sink_w"),
        RustlsFunction::SinkWriteVectored => (Some("rustls_write_ret"), "rustls_sink_wv"),
        RustlsFunction::Read => (backend_return, "rustls_read"),
        RustlsFunction::FirstChunk => (Some("rustls_first_chunk_ret"), "rustls_first_chunk"),
        RustlsFunction::Consume if probe.first_word_loaded => {
            (Some("rustls_consume_ret"), "rustls_used_buf")
        }
        RustlsFunction::Consume => (Some("rustls_consume_ret"), "rustls_consume"),
        RustlsFunction::IsFull => (None, "rustls_is_full"),
        RustlsFunction::ReadTls => (backend_return, "rustls_read_tls"),
        RustlsFunction::WriteTls => (backend_return, "rustls_write_tls"),
        RustlsFunction::IoState => (None, "rustls_io_state"),
    }
}

/// rustls by file offset, each return probe before its entry (a call whose entry is seen
/// has its return seen). Returns how many functions were hooked.
fn attach_rustls(
    attacher: &mut Attacher,
    backend: Backend,
    binary: &RustlsBinary,
) -> Result<usize, String> {
    let probes = binary.probes.as_ref().map_err(|why| match why {
        Unhookable::Inlined(function) => format!("{function} is not a function of its own"),
        _ => why.to_string(),
    })?;
    tracing::debug!(?probes, "rustls probes (file offsets)");
    for probe in probes {
        let (ret, entry) = rustls_programs(backend, probe);
        if let Some(ret) = ret {
            attacher.attach(ret, at_offset(probe.offset, 0))?;
        }
        attacher.attach(entry, at_offset(probe.offset, 0))?;
    }
    Ok(probes.len())
}

/// Go crypto/tls by file offset: Read's returns first, then the entries (a Read whose
/// entry is seen always has its return seen). Returns how many probes were attached.
fn attach_go(attacher: &mut Attacher, binary: &GoTlsBinary) -> Result<usize, String> {
    let mut attached = 0;
    for probes in &binary.probes {
        for &offset in &probes.returns {
            attacher.attach(GO_READ_RETURN, at_offset(offset, 0))?;
            attached += 1;
        }
    }
    for probes in &binary.probes {
        let program = match probes.function {
            GoTlsFunction::Write => GO_WRITE_ENTER,
            GoTlsFunction::Read => GO_READ_ENTER,
            GoTlsFunction::Handshake => GO_HANDSHAKE_ENTER,
        };
        attacher.attach(program, at_offset(probes.entry, probes.cookie))?;
        attached += 1;
    }
    Ok(attached)
}
