//! The capabilities capture uses, and a sentence for each one this process lacks.

use super::effective_capabilities;

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Whether `caps` may load and attach tracing BPF programs.
pub(super) fn can_capture(caps: u64) -> bool {
    has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON))
}

/// Why this process cannot capture, naming the capabilities it lacks; None when it can.
pub fn capture_refusal() -> Option<String> {
    let caps = effective_capabilities();
    if can_capture(caps) {
        return None;
    }
    let held: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| has(caps, *cap))
        .map(|(_, name)| name)
        .collect();
    let held = match held.as_slice() {
        [] => "none of them".to_owned(),
        some => format!("only {}", some.join(" and ")),
    };
    Some(format!(
        "capturing needs CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON, and this process has {held}: \
         run it as root (sudo), or add the capabilities to its container or unit; \
         `httpscope doctor` shows what is missing"
    ))
}

/// A sentence for each capability the TLS hooks need and this process lacks: what it is
/// for and what its absence costs.
pub fn tls_gaps() -> Vec<&'static str> {
    tls_gaps_of(effective_capabilities())
}

fn tls_gaps_of(caps: u64) -> Vec<&'static str> {
    let mut gaps = Vec::new();
    if !has(caps, CAP_SYS_ADMIN) {
        gaps.push(
            "CAP_SYS_ADMIN is missing: kernels with the 2025 uprobe hardening (CVE-2025-38466, \
             in 6.16 and the stable kernels since July 2025) refuse uprobes without it, so TLS \
             libraries and Go or Node.js programs may not be hooked and their HTTPS stays encrypted",
        );
    }
    if !has(caps, CAP_SYS_PTRACE) {
        gaps.push(
            "CAP_SYS_PTRACE is missing: other processes' /proc/PID/maps, exe and root cannot be \
             read, so their TLS libraries and programs are not found and their HTTPS stays encrypted",
        );
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = (1 << 40) - 1;

    #[test]
    fn every_missing_tls_capability_is_named() {
        assert!(tls_gaps_of(ALL).is_empty());
        let without = |cap: u32| tls_gaps_of(ALL & !(1 << cap));
        assert!(
            matches!(without(CAP_SYS_ADMIN).as_slice(), [gap] if gap.starts_with("CAP_SYS_ADMIN"))
        );
        assert!(
            matches!(without(CAP_SYS_PTRACE).as_slice(), [gap] if gap.starts_with("CAP_SYS_PTRACE"))
        );
    }

    #[test]
    fn capture_needs_sys_admin_or_bpf_and_perfmon() {
        let bits = |caps: &[u32]| caps.iter().fold(0u64, |acc, cap| acc | (1 << cap));
        assert!(can_capture(bits(&[CAP_SYS_ADMIN])));
        assert!(can_capture(bits(&[CAP_BPF, CAP_PERFMON])));
        assert!(!can_capture(bits(&[CAP_BPF, CAP_SYS_PTRACE])));
        assert!(!can_capture(0));
    }
}
