//! Names kernel cgroup ids: the cgroup v2 id `bpf_get_current_cgroup_id()`
//! returns is the inode number of the cgroup's directory in the cgroup2
//! mount, so a walk of that mount maps every id to its path. Paths are
//! cached; an unknown id triggers one rescan (cgroup ids are never reused, so
//! a new id is a new cgroup), and an id no rescan finds is remembered as gone.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use httpscope_core::cgroup::{CgroupInfo, CgroupMounts, CgroupNames};

/// Ids remembered as unresolvable at most; the set is cleared beyond this.
const MAX_MISSED: usize = 65_536;
/// Directories visited per scan at most (a runaway hierarchy never stalls capture).
const MAX_SCANNED: usize = 200_000;

pub struct CgroupScanner {
    /// The cgroup2 mount point; `None` when the machine has none.
    root: Option<PathBuf>,
    known: HashMap<u64, Arc<CgroupInfo>>,
    missed: HashSet<u64>,
}

impl CgroupScanner {
    /// A scanner of this machine's cgroup2 hierarchy (found in `/proc/self/mounts`).
    pub fn new() -> Self {
        let mounts = std::fs::read_to_string("/proc/self/mounts")
            .map(|text| CgroupMounts::parse(&text))
            .unwrap_or_default();
        Self::at(mounts.unified)
    }

    pub fn at(root: Option<PathBuf>) -> Self {
        Self {
            root,
            known: HashMap::new(),
            missed: HashSet::new(),
        }
    }

    /// Walks the hierarchy again, learning every cgroup in it.
    pub fn rescan(&mut self) {
        let Some(root) = self.root.clone() else {
            return;
        };
        let mut pending = vec![root.clone()];
        let mut scanned = 0;
        while let Some(dir) = pending.pop() {
            scanned += 1;
            if scanned > MAX_SCANNED {
                tracing::warn!(root = %root.display(), "cgroup hierarchy too large; scan cut short");
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue; // removed while we walked
            };
            self.known
                .entry(meta.ino())
                .or_insert_with(|| Arc::new(CgroupInfo::parse(&relative(&root, &dir))));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            pending.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }

    /// The ids of every known cgroup whose container id starts with `prefix`.
    pub fn container_cgroups(&self, prefix: &str) -> Vec<u64> {
        let prefix = prefix.to_ascii_lowercase();
        self.known
            .iter()
            .filter(|(_, info)| {
                info.container_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(&prefix))
            })
            .map(|(&id, _)| id)
            .collect()
    }
}

impl Default for CgroupScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl CgroupNames for CgroupScanner {
    fn name(&mut self, cgroup_id: u64) -> Option<Arc<CgroupInfo>> {
        if let Some(info) = self.known.get(&cgroup_id) {
            return Some(Arc::clone(info));
        }
        if self.root.is_none() || self.missed.contains(&cgroup_id) {
            return None;
        }
        self.rescan();
        let found = self.known.get(&cgroup_id).cloned();
        if found.is_none() {
            if self.missed.len() >= MAX_MISSED {
                self.missed.clear();
            }
            self.missed.insert(cgroup_id);
        }
        found
    }
}

/// `--container`: the cgroups of the containers whose id starts with a prefix.
pub struct ContainerFilter {
    prefix: String,
    scanner: CgroupScanner,
}

impl ContainerFilter {
    /// Scans the hierarchy once, and warns when no container matches yet.
    pub fn new(prefix: String) -> Self {
        let mut scanner = CgroupScanner::new();
        scanner.rescan();
        let filter = Self { prefix, scanner };
        if filter.cgroups().is_empty() {
            tracing::warn!(
                container = %filter.prefix,
                "--container: no running container's id starts with this yet; watching for one"
            );
        }
        filter
    }

    pub(crate) fn rescan(&mut self) {
        self.scanner.rescan();
    }

    /// The matching cgroups found by the last scan.
    pub fn cgroups(&self) -> Vec<u64> {
        self.scanner.container_cgroups(&self.prefix)
    }
}

/// `dir` below `root`, as the kernel writes cgroup paths: `/` for the root.
fn relative(root: &Path, dir: &Path) -> String {
    let below = dir.strip_prefix(root).unwrap_or(dir);
    format!("/{}", below.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_tree_is_named_by_inode() {
        let root = std::env::temp_dir().join(format!("httpscope-cgroups-{}", std::process::id()));
        let id = "5e08593ba1bf069a8cb5a38f05f5e3ec5ff387050a978d050adc2e120de20fea";
        let container = root.join("libpod_parent").join(format!("libpod-{id}"));
        std::fs::create_dir_all(&container).expect("temp dirs");
        let ino = |p: &Path| std::fs::metadata(p).expect("stat").ino();

        let mut scanner = CgroupScanner::at(Some(root.clone()));
        let named = scanner.name(ino(&container)).expect("found by a rescan");
        assert_eq!(&*named.path, format!("/libpod_parent/libpod-{id}"));
        assert_eq!(named.container_id.as_deref(), Some(id));
        assert_eq!(
            scanner.name(ino(&root)).map(|i| i.path.clone()),
            Some("/".into())
        );
        assert_eq!(scanner.container_cgroups(&id[..12]), vec![ino(&container)]);
        assert!(scanner.container_cgroups("ffff").is_empty());

        // A cgroup created later is found on its first miss.
        let later = root.join("docker").join(id.replace('5', "6"));
        std::fs::create_dir_all(&later).expect("temp dirs");
        assert!(scanner
            .name(ino(&later))
            .is_some_and(|i| i.container_id.is_some()));
        assert_eq!(scanner.name(u64::MAX), None);
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
