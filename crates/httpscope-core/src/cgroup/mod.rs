//! cgroups: the hierarchy layout a machine mounts, and the container a cgroup path names.

pub mod container;
pub mod layout;

pub use container::CgroupInfo;
pub use layout::{CgroupLayout, CgroupMounts};

use std::sync::Arc;

/// Names the cgroup behind a kernel cgroup id (live: by scanning the cgroup
/// v2 hierarchy, cached). `None` when it cannot (gone, or no hierarchy).
pub trait CgroupNames {
    fn name(&mut self, cgroup_id: u64) -> Option<Arc<CgroupInfo>>;
}
