//! Finding TLS stacks to hook with uprobes: OpenSSL's libssl and GnuTLS's libgnutls
//! (the shared libraries running processes have mapped, the system's own), executables
//! that link OpenSSL statically with its symbols, Go programs' crypto/tls, Node.js's
//! TLSWrap (in a node executable, or in `libnode.so`), and Rust programs' rustls.

pub mod node;
pub mod rustls;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::golang::{self, GoTlsBinary};
use node::NodeBinary;
use rustls::RustlsBinary;

pub mod openssl_workers;

/// Directories holding the system's libssl (Debian/Ubuntu multiarch, RHEL, Arch, local builds).
const SYSTEM_LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/lib64",
];

/// Executables of running processes inspected at start, at most.
pub const MAX_EXECUTABLES: usize = 256;

/// What a file to hook is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A shared libssl (OpenSSL).
    Libssl,
    /// An executable that defines SSL_write: OpenSSL linked statically, with its symbols.
    StaticOpenssl,
    /// A Go program using crypto/tls.
    Go(GoTlsBinary),
    /// A shared libgnutls.
    Gnutls,
    /// A Node.js executable or `libnode.so` (its TLSWrap; and OpenSSL, when built in).
    Node(NodeBinary),
    /// A Rust program that links rustls (hookable or not).
    Rustls(RustlsBinary),
}

/// A file to attach the TLS uprobes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// Path to attach through (it names the file; uprobes follow the inode).
    pub path: PathBuf,
    pub kind: TargetKind,
}

impl TlsTarget {
    /// `libssl.so.3` → `OpenSSL 3`; a Go program → its Go version.
    pub fn describe(&self) -> String {
        let path = self.path.display();
        match &self.kind {
            TargetKind::StaticOpenssl => format!("{path} (static OpenSSL)"),
            TargetKind::Go(go) => format!(
                "{path} (Go {}{}{})",
                go.version,
                if go.stripped { ", stripped" } else { "" },
                if go.layout_assumed {
                    ", newer than the offset table"
                } else {
                    ""
                }
            ),
            TargetKind::Gnutls => format!("{path} (GnuTLS)"),
            TargetKind::Node(node) if node.openssl_built_in => {
                format!("{path} (Node.js, OpenSSL built in)")
            }
            TargetKind::Node(_) => format!("{path} (Node.js, shared libssl)"),
            TargetKind::Rustls(binary) => match &binary.probes {
                Ok(_) => format!("{path} (rustls)"),
                Err(why) => format!("{path} (rustls found, not hookable: {why})"),
            },
            TargetKind::Libssl => {
                let name = self
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match name.strip_prefix("libssl.so.") {
                    Some(version) => format!("{path} (OpenSSL {version})"),
                    None => path.to_string(),
                }
            }
        }
    }

    /// The library's name for records (`tls_lib`).
    pub fn library(&self) -> &'static str {
        match self.kind {
            TargetKind::Libssl | TargetKind::StaticOpenssl => "openssl",
            TargetKind::Go(_) => "go",
            TargetKind::Gnutls => "gnutls",
            TargetKind::Node(_) => "node",
            TargetKind::Rustls(_) => "rustls",
        }
    }
}

/// A shared library that holds a TLS stack, by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LibraryName {
    /// `libssl.so.3`
    Libssl,
    /// `libgnutls.so.30`
    Gnutls,
    /// `libnode.so.108`: Node.js built as a library (Debian's `nodejs`), its TLSWrap.
    Node,
}

/// The TLS library a shared object's file name names.
fn library_name(name: &str) -> Option<LibraryName> {
    let versioned = |stem: &str| {
        name.strip_prefix(stem)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    if versioned("libssl.so") {
        Some(LibraryName::Libssl)
    } else if versioned("libgnutls.so") {
        Some(LibraryName::Gnutls)
    } else if versioned("libnode.so") {
        Some(LibraryName::Node)
    } else {
        None
    }
}

/// What to hook in a library so named: libnode's TLSWrap functions are looked up first.
fn library_target(path: PathBuf, name: LibraryName) -> Option<TlsTarget> {
    let kind = match name {
        LibraryName::Libssl => TargetKind::Libssl,
        LibraryName::Gnutls => TargetKind::Gnutls,
        LibraryName::Node => match node::inspect(&path) {
            Ok(binary) => TargetKind::Node(binary),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "Node.js TLS not hooked");
                return None;
            }
        },
    };
    Some(TlsTarget { path, kind })
}

/// The distinct files at `paths` as this process sees them and as every running process
/// does (through `/proc/PID/root`): inside a container, the host's and other containers'
/// copies of a file (such as the dynamic loader) are files of their own.
pub fn distinct_files(paths: &[&str]) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let roots = std::iter::once(PathBuf::from("/")).chain(
        pids()
            .into_iter()
            .map(|pid| PathBuf::from(format!("/proc/{pid}/root"))),
    );
    let mut found = Vec::new();
    for root in roots {
        for path in paths {
            let candidate = root.join(path.trim_start_matches('/'));
            if file_id(&candidate).is_some_and(|id| seen.insert(id)) {
                found.push(candidate);
            }
        }
    }
    found
}

fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Distinct TLS shared libraries (libssl, libgnutls, libnode) not in `known`: mapped by
/// running processes, or installed.
pub fn find_libraries(known: &mut HashSet<FileId>) -> Vec<TlsTarget> {
    let mut found = Vec::new();
    let mut add = |path: PathBuf, name: LibraryName| {
        if file_id(&path).is_some_and(|id| known.insert(id)) {
            found.extend(library_target(path, name));
        }
    };
    for dir in SYSTEM_LIB_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            // The unversioned names are development symlinks to the same files.
            .filter(|n| !n.ends_with(".so"))
            .collect();
        names.sort();
        for name in names {
            if let Some(library) = library_name(&name) {
                add(Path::new(dir).join(name), library);
            }
        }
    }
    for pid in pids() {
        found.extend(libraries_of(pid, known));
    }
    found
}

/// The TLS shared libraries process `pid` has mapped that are not in `known`.
pub fn libraries_of(pid: u32, known: &mut HashSet<FileId>) -> Vec<TlsTarget> {
    let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        if !path.starts_with('/') || line.ends_with("(deleted)") {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        let Some(library) = library_name(name) else {
            continue;
        };
        // The path as the process sees it: another mount namespace may have its own.
        let own = PathBuf::from(path);
        let theirs = PathBuf::from(format!("/proc/{pid}/root{path}"));
        let path = match (file_id(&own), file_id(&theirs)) {
            (Some(a), Some(b)) if a == b => own,
            (_, Some(_)) => theirs,
            _ => continue,
        };
        if file_id(&path).is_some_and(|id| known.insert(id)) {
            found.extend(library_target(path, library));
        }
    }
    found
}

/// The executable process `pid` runs, when it is not in `known`: its real path when that
/// names the same file, else its `/proc` link.
pub fn executable_of(pid: u32, known: &mut HashSet<FileId>) -> Option<PathBuf> {
    let link = PathBuf::from(format!("/proc/{pid}/exe"));
    let id = file_id(&link)?;
    if !known.insert(id) {
        return None;
    }
    Some(match fs::read_link(&link) {
        Ok(real) if file_id(&real) == Some(id) => real,
        _ => link,
    })
}

/// The file's (device, inode): uprobes are per file, so each is hooked once.
pub fn file_id(path: &Path) -> Option<FileId> {
    let meta = fs::metadata(path).ok()?;
    meta.is_file().then(|| (meta.dev(), meta.ino()))
}

/// (device, inode).
pub type FileId = (u64, u64);

/// Executables of running processes, distinct, excluding this one and `known`, that
/// hold a TLS stack to hook.
pub fn find_executables(known: &mut HashSet<FileId>) -> Vec<TlsTarget> {
    if let Some(me) = file_id(Path::new("/proc/self/exe")) {
        known.insert(me);
    }
    let mut found = Vec::new();
    let mut inspected = 0;
    for pid in pids() {
        if inspected >= MAX_EXECUTABLES {
            break;
        }
        if let Some(path) = executable_of(pid, known) {
            inspected += 1;
            found.extend(classify_executable(&path));
        }
    }
    found
}

/// What TLS stack an executable holds, if any: a Go crypto/tls, Node's TLSWrap, rustls,
/// or OpenSSL's symbols.
pub fn classify_executable(path: &Path) -> Option<TlsTarget> {
    let kind = match named_stack(path)? {
        NamedStack::Node => match node::inspect(path) {
            Ok(binary) => TargetKind::Node(binary),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "Node.js TLS not hooked");
                return None;
            }
        },
        NamedStack::Go => match golang::inspect(path) {
            Ok(binary) => TargetKind::Go(binary),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "Go program's crypto/tls not hooked");
                return None;
            }
        },
        NamedStack::Rustls => match rustls::inspect(path) {
            Ok(binary) => TargetKind::Rustls(binary),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "rustls not hooked");
                return None;
            }
        },
        NamedStack::Openssl if defines(path, "SSL_write") => TargetKind::StaticOpenssl,
        NamedStack::Openssl => return None,
    };
    Some(TlsTarget {
        path: path.to_owned(),
        kind,
    })
}

/// A TLS stack an executable's bytes name, before its symbols are read.
#[derive(Debug, PartialEq, Eq)]
enum NamedStack {
    Node,
    Go,
    Rustls,
    Openssl,
}

/// The stack a file names, in the order the checks trust them; none for a copy of the
/// profiler. Reading symbols parses the whole file: only files naming one get that far.
fn named_stack(path: &Path) -> Option<NamedStack> {
    let [go, openssl, node, rust, profiler] = mentions(
        path,
        [
            GO_TLS_WRITE_NAME,
            b"SSL_write\0",
            NODE_CLEAR_OUT,
            rustls::MARKER,
            PROFILER_MARKER,
        ],
    );
    if profiler {
        None
    } else if node {
        Some(NamedStack::Node)
    } else if go {
        Some(NamedStack::Go)
    } else if rust {
        Some(NamedStack::Rustls)
    } else if openssl {
        Some(NamedStack::Openssl)
    } else {
        None
    }
}

/// Whether the ELF file defines `symbol` (a program that links libssl dynamically only
/// imports it).
fn defines(path: &Path, symbol: &str) -> bool {
    use object::{Object, ObjectSymbol};

    let Ok(elf) = crate::elf::ElfFile::open(path) else {
        return false;
    };
    let Ok(file) = object::File::parse(elf.data()) else {
        return false;
    };
    file.symbols()
        .chain(file.dynamic_symbols())
        .any(|s| !s.is_undefined() && s.name_bytes().is_ok_and(|n| n == symbol.as_bytes()))
}

/// In every build of httpscope, as this constant. Another copy of the profiler names the
/// functions the scan looks for without holding them: it is no target.
const PROFILER_MARKER: &[u8] = b"httpscope: the profiler's own executable, not a TLS target\0";

/// Node's `TLSWrap::ClearOut` as its symbol tables hold it.
const NODE_CLEAR_OUT: &[u8] = b"_ZN4node6crypto7TLSWrap8ClearOutEv\0";

/// `crypto/tls.(*Conn).Write` as Go's function name table holds it.
const GO_TLS_WRITE_NAME: &[u8] = b"crypto/tls.(*Conn).Write\0";

/// Which of the needles occur in the file, read in bounded chunks (executables can be huge).
fn mentions<const N: usize>(path: &Path, needles: [&[u8]; N]) -> [bool; N] {
    use std::io::Read;

    const CHUNK: usize = 1 << 20;
    let mut found = [false; N];
    let Ok(mut file) = fs::File::open(path) else {
        return found;
    };
    let keep = needles
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .saturating_sub(1);
    // A vectorised search: these files run to hundreds of MiB, all read at start.
    let finders = needles.map(memchr::memmem::Finder::new);
    let mut buf = vec![0u8; CHUNK + keep];
    let mut carried = 0;
    loop {
        let read = match file.read(&mut buf[carried..]) {
            Ok(0) | Err(_) => return found,
            Ok(n) => n,
        };
        let filled = carried + read;
        for (finder, hit) in finders.iter().zip(&mut found) {
            *hit = *hit || finder.find(&buf[..filled]).is_some();
        }
        if found.iter().all(|&hit| hit) {
            return found;
        }
        carried = keep.min(filled);
        buf.copy_within(filled - carried..filled, 0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A copy of a binary that links this crate (the test binary, here) is skipped,
    /// though it holds every name the scan looks for.
    #[test]
    fn a_copy_of_the_profiler_is_not_a_target() {
        let exe = std::env::current_exe().unwrap();
        let names = [NODE_CLEAR_OUT, GO_TLS_WRITE_NAME, PROFILER_MARKER];
        assert_eq!(mentions(&exe, names), [true; 3]);
        assert_eq!(named_stack(&exe), None);
    }

    #[test]
    fn finds_a_needle_across_chunk_boundaries() {
        let dir = std::env::temp_dir().join(format!("httpscope-mentions-{}", std::process::id()));
        let mut bytes = vec![b'x'; (1 << 20) - 4];
        bytes.extend_from_slice(b"SSL_write\0tail");
        std::fs::write(&dir, &bytes).unwrap();
        assert_eq!(
            mentions(&dir, [b"SSL_write\0", b"SSL_read\0", b"xxx"]),
            [true, false, true]
        );
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn recognises_libssl_names() {
        assert_eq!(library_name("libssl.so.3"), Some(LibraryName::Libssl));
        assert_eq!(library_name("libssl.so.1.1"), Some(LibraryName::Libssl));
        assert_eq!(library_name("libssl.so"), Some(LibraryName::Libssl));
        assert_eq!(library_name("libgnutls.so.30"), Some(LibraryName::Gnutls));
        assert_eq!(library_name("libnode.so.108"), Some(LibraryName::Node));
        assert_eq!(library_name("libssl3.so"), None);
        assert_eq!(library_name("libssl.so3"), None);
        assert_eq!(library_name("libgnutls-dane.so.0"), None);
        assert_eq!(library_name("libnodeps.so.1"), None);
        let lib = TlsTarget {
            path: "/usr/lib/libssl.so.1.1".into(),
            kind: TargetKind::Libssl,
        };
        assert_eq!(lib.describe(), "/usr/lib/libssl.so.1.1 (OpenSSL 1.1)");
    }
}
