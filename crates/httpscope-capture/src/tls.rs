//! Finding TLS libraries (OpenSSL's libssl) to hook with uprobes: the shared
//! libraries running processes have mapped, the system's own, and executables
//! that link libssl statically (with their symbols).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// Executables checked for a statically linked libssl, at most.
pub const MAX_EXECUTABLES: usize = 256;

/// A file to attach the TLS uprobes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// Path to attach through (it names the file; uprobes follow the inode).
    pub path: PathBuf,
    /// A shared libssl, or an executable that may contain libssl.
    pub executable: bool,
}

impl TlsTarget {
    /// `libssl.so.3` → `OpenSSL 3`, `libssl.so.1.1` → `OpenSSL 1.1`.
    pub fn describe(&self) -> String {
        if self.executable {
            return format!("{} (static)", self.path.display());
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.strip_prefix("libssl.so.") {
            Some(version) => format!("{} (OpenSSL {version})", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

fn is_libssl(name: &str) -> bool {
    name.strip_prefix("libssl.so")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    let meta = fs::metadata(path).ok()?;
    meta.is_file().then(|| (meta.dev(), meta.ino()))
}

fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Distinct libssl shared libraries: mapped by running processes, or installed.
pub fn find_libraries() -> Vec<TlsTarget> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut add = |path: PathBuf| {
        if let Some(id) = file_id(&path) {
            if seen.insert(id) {
                found.push(TlsTarget {
                    path,
                    executable: false,
                });
            }
        }
    };
    for dir in SYSTEM_LIB_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_libssl(n) && n != "libssl.so")
            .collect();
        names.sort();
        for name in names {
            add(Path::new(dir).join(name));
        }
    }
    for pid in pids() {
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5) else {
                continue;
            };
            if !path.starts_with('/') || line.ends_with("(deleted)") {
                continue;
            }
            let name = path.rsplit('/').next().unwrap_or(path);
            if !is_libssl(name) {
                continue;
            }
            // The path as the process sees it: another mount namespace may have its own.
            let own = PathBuf::from(path);
            let theirs = PathBuf::from(format!("/proc/{pid}/root{path}"));
            match (file_id(&own), file_id(&theirs)) {
                (Some(a), Some(b)) if a == b => add(own),
                (_, Some(_)) => add(theirs),
                _ => {}
            }
        }
    }
    found
}

/// Executables of running processes, distinct, excluding this one: candidates for a
/// statically linked libssl (the attach tells whether they define its symbols).
pub fn find_executables(libraries: &[TlsTarget]) -> Vec<TlsTarget> {
    let mut seen: HashSet<(u64, u64)> = libraries.iter().filter_map(|t| file_id(&t.path)).collect();
    if let Some(me) = file_id(Path::new("/proc/self/exe")) {
        seen.insert(me);
    }
    let mut found = Vec::new();
    for pid in pids() {
        if found.len() >= MAX_EXECUTABLES {
            break;
        }
        let path = PathBuf::from(format!("/proc/{pid}/exe"));
        let Some(id) = file_id(&path) else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        // Symbol resolution reads the whole file: only files naming SSL_write get that far.
        if !mentions(&path, b"SSL_write\0") {
            continue;
        }
        // Prefer the real path when it is the same file (for messages).
        let path = match fs::read_link(&path) {
            Ok(real) if file_id(&real) == Some(id) => real,
            _ => path,
        };
        found.push(TlsTarget {
            path,
            executable: true,
        });
    }
    found
}

/// Whether `needle` occurs in the file, read in bounded chunks (executables can be huge).
fn mentions(path: &Path, needle: &[u8]) -> bool {
    use std::io::Read;

    const CHUNK: usize = 1 << 20;
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    let keep = needle.len().saturating_sub(1);
    let mut buf = vec![0u8; CHUNK + keep];
    let mut carried = 0;
    loop {
        let read = match file.read(&mut buf[carried..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let filled = carried + read;
        if buf[..filled].windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        carried = keep.min(filled);
        buf.copy_within(filled - carried..filled, 0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_needle_across_chunk_boundaries() {
        let dir = std::env::temp_dir().join(format!("httpscope-mentions-{}", std::process::id()));
        let mut bytes = vec![b'x'; (1 << 20) - 4];
        bytes.extend_from_slice(b"SSL_write\0tail");
        std::fs::write(&dir, &bytes).unwrap();
        assert!(mentions(&dir, b"SSL_write\0"));
        assert!(!mentions(&dir, b"SSL_read\0"));
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn recognises_libssl_names() {
        assert!(is_libssl("libssl.so.3"));
        assert!(is_libssl("libssl.so.1.1"));
        assert!(is_libssl("libssl.so"));
        assert!(!is_libssl("libssl3.so"));
        assert!(!is_libssl("libssl.so3"));
        let lib = TlsTarget {
            path: "/usr/lib/libssl.so.1.1".into(),
            executable: false,
        };
        assert_eq!(lib.describe(), "/usr/lib/libssl.so.1.1 (OpenSSL 1.1)");
    }
}
