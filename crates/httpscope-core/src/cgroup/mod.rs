//! cgroups: the hierarchy layout a machine mounts, and the container a cgroup path names.

pub mod layout;

pub use layout::{CgroupLayout, CgroupMounts};
