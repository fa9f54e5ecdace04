//! Checks of the host around the kernel: its cgroup layout and the container runtimes on it.

use std::path::{Path, PathBuf};

use httpscope_core::cgroup::{CgroupLayout, CgroupMounts};

use super::Check;
use crate::loader::trial_load;

/// Container runtimes httpscope can name: the programs that identify them.
const RUNTIME_PROGRAMS: &[&str] = &[
    "docker",
    "dockerd",
    "podman",
    "containerd",
    "crio",
    "runc",
    "crun",
];

/// API sockets of container engines: a running engine, not only an installed program.
const RUNTIME_SOCKETS: &[(&str, &str)] = &[
    ("docker", "/run/docker.sock"),
    ("podman", "/run/podman/podman.sock"),
    ("containerd", "/run/containerd/containerd.sock"),
    ("cri-o", "/run/crio/crio.sock"),
];

pub(super) fn checks() -> Vec<Check> {
    vec![cgroup_layout(), container_runtimes()]
}

/// The programs capture would run here, loaded (verified) and dropped: the kernel's
/// verifier, not a list of versions, says whether capture can start.
pub(super) fn programs() -> Vec<Check> {
    let loaded = trial_load(false);
    let mut checks = vec![Check {
        name: "bpf programs",
        ok: loaded.is_ok(),
        detail: match &loaded {
            Ok(trial) => format!(
                "The kernel accepts the {} object's {} backend programs{} (loaded and \
                 verified here, not attached).",
                trial.object.name(),
                trial.backend.name(),
                if trial.tls_probes_load {
                    " and TLS probes"
                } else {
                    "; the TLS probes do not load"
                }
            ),
            Err(err) => format!("The kernel refuses the capture programs: {err}."),
        },
        cost: "nothing can be captured on this kernel",
        required: true,
    }];
    if let Ok(trial) = &loaded {
        let gated = trial.features.gated();
        checks.push(Check {
            name: "kernel features",
            ok: gated.is_empty(),
            detail: if gated.is_empty() {
                "The kernel has every BPF feature httpscope uses (bpf_loop, task storage, \
                 BTF task pointers, attach cookies)."
                    .into()
            } else {
                gated
                    .iter()
                    .map(|g| format!("This kernel lacks {}: {}.", g.missing, g.cost))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            cost: "what each missing feature costs is said above; the rest is captured",
            required: false,
        });
    }
    checks
}

/// `--all-ports` runs extra verifier-checked code in the capture programs: load them.
pub(super) fn all_ports() -> Check {
    let loaded = trial_load(true);
    Check {
        name: "all ports",
        ok: loaded.is_ok(),
        detail: match &loaded {
            Ok(trial) => format!(
                "--all-ports works here: the kernel accepts the {} backend's programs \
                 that judge each connection's first bytes.",
                trial.backend.name()
            ),
            Err(err) => format!("--all-ports does not work here: {err}."),
        },
        cost: "--all-ports cannot be used: name the ports with --port",
        required: false,
    }
}

fn cgroup_layout() -> Check {
    let mounts = std::fs::read_to_string("/proc/self/mounts")
        .map(|text| CgroupMounts::parse(&text))
        .unwrap_or_default();
    let layout = mounts.layout();
    let detail = match &mounts.unified {
        Some(unified) => format!(
            "The cgroup layout is {layout}; the cgroup v2 hierarchy is mounted at {}.",
            unified.display()
        ),
        None => format!("The cgroup layout is {layout}; no cgroup v2 hierarchy is mounted."),
    };
    Check {
        name: "cgroups",
        ok: matches!(layout, CgroupLayout::V2 | CgroupLayout::Hybrid),
        detail,
        cost: "records carry no cgroup or container id, and --container cannot filter \
               (the kernel's cgroup id names a cgroup v2 directory)",
        required: false,
    }
}

fn container_runtimes() -> Check {
    let programs: Vec<String> = RUNTIME_PROGRAMS
        .iter()
        .filter_map(|name| find_program(name).map(|path| format!("{name} ({})", path.display())))
        .collect();
    let sockets: Vec<String> = RUNTIME_SOCKETS
        .iter()
        .filter(|(_, socket)| Path::new(socket).exists())
        .map(|(name, socket)| format!("{name} ({socket})"))
        .collect();
    let programs_sentence = if programs.is_empty() {
        "No container runtime program is installed".to_string()
    } else {
        format!(
            "Installed container runtime programs: {}",
            programs.join(", ")
        )
    };
    let sockets_sentence = if sockets.is_empty() {
        "no container engine API socket is listening".to_string()
    } else {
        format!("engine API sockets: {}", sockets.join(", "))
    };
    Check {
        name: "container runtimes",
        ok: true,
        detail: format!("{programs_sentence}; {sockets_sentence}."),
        cost: "nothing",
        required: false,
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
