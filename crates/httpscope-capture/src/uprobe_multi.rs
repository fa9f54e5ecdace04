//! uprobe_multi links (Linux 6.6): one BPF link holds every probe of one program on one
//! file, and closing it waits for one RCU grace period, where each perf-event uprobe
//! waits for its own, one after another under a kernel-wide lock (tens of probes took
//! seconds to detach). aya 0.14 neither loads a program for such links (it needs
//! `expected_attach_type` set at load) nor creates them: this module does both through
//! the bpf system call, on the programs aya relocated against the maps it created.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use aya::maps::{Map, MapData};
use aya::{Btf, Ebpf};
use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type, BPF_F_UPROBE_MULTI_RETURN,
};
use aya_obj::Object;

/// A program loaded for uprobe_multi links.
pub(crate) struct MultiProgram {
    fd: OwnedFd,
    /// Attached at function returns (`uretprobe` sections).
    pub(crate) returns: bool,
}

/// Loads the named programs of `object` (already loaded by aya into `ebpf`'s maps) for
/// uprobe_multi links. `None` when this kernel has no such links or refuses a program:
/// the caller keeps the perf-event uprobes.
pub(crate) fn load(
    ebpf: &Ebpf,
    object: &[u8],
    btf: &Btf,
    programs: &[&'static str],
) -> Option<HashMap<&'static str, MultiProgram>> {
    let relocated = relocated(ebpf, object, btf)
        .map_err(|err| tracing::debug!(%err, "uprobe_multi: the object does not relocate"))
        .ok()?;
    // One program first: a kernel without uprobe_multi links is told apart before the
    // verifier works on the others (an old kernel may verify them all, then refuse the link).
    let (&first_name, rest) = programs.split_first()?;
    let first = load_program(&relocated, first_name)
        .map_err(|err| tracing::debug!(program = first_name, %err, "uprobe_multi: not loaded"))
        .ok()?;
    if !supported(&first.fd) {
        return None;
    }
    let mut loaded = HashMap::from([(first_name, first)]);
    for (name, program) in rest.iter().zip(load_all(&relocated, rest)) {
        match program {
            Ok(program) => {
                loaded.insert(*name, program);
            }
            Err(err) => {
                tracing::debug!(program = name, %err, "uprobe_multi: not loaded");
                return None;
            }
        }
    }
    Some(loaded)
}

/// Loads `programs` on as many threads as there are CPUs: the verifier works on each
/// alone, and the return probes that carry the capture budget's walk take a few hundred
/// ms apiece.
fn load_all(relocated: &Relocated, programs: &[&'static str]) -> Vec<Result<MultiProgram, String>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(&name) = programs.get(at) else {
                return done;
            };
            done.push((at, load_program(relocated, name)));
        }
    };
    let mut results: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..workers.min(programs.len()))
            .map(|_| {
                std::thread::Builder::new()
                    .name("verify".into())
                    .spawn_scoped(scope, work)
            })
            .collect();
        running
            .into_iter()
            .flat_map(|thread| match thread {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(err) => vec![(usize::MAX, Err(format!("no thread to load on: {err}")))],
            })
            .collect()
    });
    results.sort_by_key(|(at, _)| *at);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Attaches `program` at `offsets` of the file at `path` (each with its cookie), in one link.
pub(crate) fn attach(
    program: &MultiProgram,
    path: &Path,
    offsets: &[u64],
    cookies: &[u64],
) -> std::io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let flags = if program.returns {
        BPF_F_UPROBE_MULTI_RETURN
    } else {
        0
    };
    link_create(program.fd.as_raw_fd(), &path, offsets, cookies, flags)
}

/// The kernel knows uprobe_multi links when it refuses a probe on "/" for not being a
/// regular file (EBADF); an older one refuses the attach type itself (EINVAL).
fn supported(program: &OwnedFd) -> bool {
    let Ok(root) = CString::new("/") else {
        return false;
    };
    match link_create(program.as_raw_fd(), &root, &[0], &[0], 0) {
        Ok(_) => true,
        Err(err) => err.raw_os_error() == Some(libc::EBADF),
    }
}

/// The object as aya loaded it: its relocations resolved against `ebpf`'s maps and the
/// kernel's BTF, its functions sanitized for this kernel; and its own BTF loaded, which
/// gives the programs their whole names and source lines (in bpftool, in verifier logs).
struct Relocated {
    obj: Object,
    btf: Option<OwnedFd>,
}

fn relocated(ebpf: &Ebpf, object: &[u8], btf: &Btf) -> Result<Relocated, String> {
    let mut obj = Object::parse(object).map_err(|e| e.to_string())?;
    let mut own_btf = None;
    if let Some(features) = aya::features().btf() {
        if let Some(sanitized) = obj
            .fixup_and_sanitize_btf(features)
            .map_err(|e| e.to_string())?
        {
            own_btf = Some(load_btf(&sanitized.to_bytes()).map_err(|e| e.to_string())?);
        }
    }
    obj.relocate_btf(btf).map_err(|e| e.to_string())?;
    let maps = std::mem::take(&mut obj.maps);
    let mut with_fds = Vec::new();
    for (name, map) in &maps {
        // Maps taken out of `ebpf` are not referenced by the uprobe programs.
        if let Some(data) = ebpf.map(name).and_then(map_data) {
            with_fds.push((name.as_str(), data.fd().as_fd().as_raw_fd(), map));
        }
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|&(section, _)| section).collect();
    obj.relocate_maps(with_fds.into_iter(), &text_sections)
        .map_err(|e| e.to_string())?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| e.to_string())?;
    obj.sanitize_functions(aya::features());
    Ok(Relocated { obj, btf: own_btf })
}

fn load_btf(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: bpf_attr is plain data; all zeroes is its documented empty value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the BTF-load member of the union, written field by field.
    let load = unsafe { &mut attr.__bindgen_anon_7 };
    load.btf = bytes.as_ptr() as u64;
    load.btf_size = bytes.len() as u32;
    bpf(bpf_cmd::BPF_BTF_LOAD, &mut attr)
}

fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(data)
        | Map::HashMap(data)
        | Map::LruHashMap(data)
        | Map::PerCpuArray(data)
        | Map::PerCpuHashMap(data)
        | Map::PerCpuLruHashMap(data)
        | Map::RingBuf(data)
        | Map::SkStorage(data)
        | Map::InodeStorage(data)
        | Map::Unsupported(data) => Some(data),
        _ => None,
    }
}

fn load_program(relocated: &Relocated, name: &str) -> Result<MultiProgram, String> {
    use aya_obj::ProgramSection;

    let obj = &relocated.obj;
    let program = obj.programs.get(name).ok_or("missing from the object")?;
    let returns = match program.section {
        ProgramSection::URetProbe { .. } => true,
        ProgramSection::UProbe { .. } => false,
        _ => return Err("not a uprobe program".into()),
    };
    let function = obj
        .functions
        .get(&program.function_key())
        .ok_or("its function is missing from the object")?;
    // SAFETY: bpf_attr is plain data; all zeroes is its documented empty value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the prog-load member of the union, written field by field.
    let load = unsafe { &mut attr.__bindgen_anon_3 };
    load.prog_type = bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32;
    load.expected_attach_type = bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32;
    load.insns = function.instructions.as_ptr() as u64;
    load.insn_cnt = function.instructions.len() as u32;
    load.license = program.license.as_ptr() as u64;
    for (to, from) in load.prog_name.iter_mut().zip(name.bytes().take(15)) {
        *to = from as libc::c_char;
    }
    let func_info = function.func_info.func_info_bytes();
    let line_info = function.line_info.line_info_bytes();
    if let Some(btf) = &relocated.btf {
        load.prog_btf_fd = btf.as_raw_fd() as u32;
        if function.func_info_rec_size > 0 {
            load.func_info = func_info.as_ptr() as u64;
            load.func_info_cnt = function.func_info.len() as u32;
            load.func_info_rec_size = function.func_info_rec_size as u32;
        }
        if function.line_info_rec_size > 0 {
            load.line_info = line_info.as_ptr() as u64;
            load.line_info_cnt = function.line_info.len() as u32;
            load.line_info_rec_size = function.line_info_rec_size as u32;
        }
    }
    let fd = bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr).map_err(|e| e.to_string())?;
    Ok(MultiProgram { fd, returns })
}

fn link_create(
    program: i32,
    path: &CString,
    offsets: &[u64],
    cookies: &[u64],
    flags: u32,
) -> std::io::Result<OwnedFd> {
    if offsets.len() != cookies.len() || offsets.is_empty() {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: bpf_attr is plain data; all zeroes is its documented empty value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the link-create member of the union, written field by field.
    let link = unsafe { &mut attr.link_create };
    link.__bindgen_anon_1.prog_fd = program as u32;
    link.attach_type = bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32;
    // SAFETY: as above, the uprobe_multi member of link_create's union.
    let multi = unsafe { &mut link.__bindgen_anon_3.uprobe_multi };
    multi.path = path.as_ptr() as u64;
    multi.offsets = offsets.as_ptr() as u64;
    multi.cookies = cookies.as_ptr() as u64;
    multi.cnt = offsets.len() as u32;
    multi.flags = flags;
    bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// The bpf system call for a command that returns a new file descriptor.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid bpf_attr for `cmd`, and every pointer in it outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}
