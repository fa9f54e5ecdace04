//! Which cgroup hierarchies a machine mounts: v1, v2 (unified) or both (hybrid).

use std::fmt;
use std::path::PathBuf;

/// The cgroup mounts found in a mount table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// Where the cgroup2 (unified) hierarchy is mounted, if anywhere.
    pub unified: Option<PathBuf>,
    /// Mount points of cgroup v1 hierarchies.
    pub v1: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    None,
    V1,
    V2,
    Hybrid,
}

impl fmt::Display for CgroupLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupLayout::None => "no cgroup hierarchy",
            CgroupLayout::V1 => "cgroup v1",
            CgroupLayout::V2 => "cgroup v2",
            CgroupLayout::Hybrid => "hybrid (cgroup v1 controllers plus a cgroup v2 hierarchy)",
        })
    }
}

impl CgroupMounts {
    /// Reads the cgroup mounts out of `/proc/self/mounts` text
    /// (`device mountpoint fstype options dump pass`, spaces in paths as `\040`).
    pub fn parse(mounts: &str) -> CgroupMounts {
        let mut found = CgroupMounts::default();
        for line in mounts.lines() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(_device), Some(mount_point), Some(fs_type)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mount_path(mount_point));
            match fs_type {
                "cgroup2" if found.unified.is_none() => found.unified = Some(mount_point),
                "cgroup" => found.v1.push(mount_point),
                _ => {}
            }
        }
        found
    }

    pub fn layout(&self) -> CgroupLayout {
        match (self.unified.is_some(), !self.v1.is_empty()) {
            (false, false) => CgroupLayout::None,
            (false, true) => CgroupLayout::V1,
            (true, false) => CgroupLayout::V2,
            (true, true) => CgroupLayout::Hybrid,
        }
    }
}

/// Undoes the octal escapes (`\040` for a space) the kernel writes in mount paths.
fn unescape_mount_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This VM's `/proc/self/mounts` (cgroup lines plus a neighbour).
    const HYBRID: &str = "\
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    #[test]
    fn hybrid_has_both_hierarchies() {
        let mounts = CgroupMounts::parse(HYBRID);
        assert_eq!(mounts.layout(), CgroupLayout::Hybrid);
        assert_eq!(
            mounts.unified,
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(mounts.v1.len(), 3);
    }

    #[test]
    fn unified_only_is_v2() {
        let mounts = CgroupMounts::parse(
            "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n",
        );
        assert_eq!(mounts.layout(), CgroupLayout::V2);
        assert_eq!(mounts.unified, Some(PathBuf::from("/sys/fs/cgroup")));
    }

    #[test]
    fn v1_only_and_none() {
        let v1 = CgroupMounts::parse("cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n");
        assert_eq!(v1.layout(), CgroupLayout::V1);
        assert_eq!(
            CgroupMounts::parse("garbage\n\n").layout(),
            CgroupLayout::None
        );
    }

    #[test]
    fn escaped_mount_paths_are_unescaped() {
        let mounts = CgroupMounts::parse("none /mnt/my\\040cgroups cgroup2 rw 0 0\n");
        assert_eq!(mounts.unified, Some(PathBuf::from("/mnt/my cgroups")));
    }
}
