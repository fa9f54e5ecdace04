//! What the running kernel offers the BPF programs, probed (never read off its version),
//! and which of the two BPF objects built from the one source it can load.

use aya::programs::ProgramType;
use aya::sys::{is_helper_supported, BpfHelper};

/// The BPF object to load: one source, built twice (`bpf/compat.bpf.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpfObject {
    /// Everything: the capture budget, task storage, BTF task pointers.
    Full,
    /// For kernels without those: bodies copied whole (up to `--capture-bytes`),
    /// per-thread state in hash maps.
    Baseline,
}

impl BpfObject {
    pub fn name(self) -> &'static str {
        match self {
            BpfObject::Full => "full",
            BpfObject::Baseline => "baseline",
        }
    }
}

/// Kernel features the programs may use, each probed by loading a tiny program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFeatures {
    /// `bpf_loop` (Linux 5.17): the capture budget's framing walk.
    pub bpf_loop: bool,
    /// Task-local storage from tracing programs (5.12): per-thread TLS call state.
    pub task_storage: bool,
    /// `bpf_get_current_task_btf` (5.11): direct reads of the current task.
    pub task_btf: bool,
    /// `bpf_get_attach_cookie` for uprobes (5.15): Go crypto/tls, Node.js TLSWrap and
    /// OpenSSL's internal workers are hooked with per-probe cookies.
    pub attach_cookies: bool,
}

/// A feature the kernel lacks, what it is, and what its absence costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatedFeature {
    pub missing: String,
    pub cost: &'static str,
}

impl KernelFeatures {
    pub fn probe() -> Self {
        let helper = |helper| matches!(is_helper_supported(ProgramType::KProbe, helper), Ok(true));
        Self {
            bpf_loop: helper(BpfHelper::BPF_FUNC_loop),
            task_storage: helper(BpfHelper::BPF_FUNC_task_storage_get),
            task_btf: helper(BpfHelper::BPF_FUNC_get_current_task_btf),
            attach_cookies: helper(BpfHelper::BPF_FUNC_get_attach_cookie),
        }
    }

    /// The full object needs all of bpf_loop, task storage and BTF task pointers (and the
    /// atomic fetch-and-add of Linux 5.12, which any kernel with bpf_loop has). Tests of the
    /// baseline object on a newer kernel set `HTTPSCOPE_BPF_OBJECT=baseline`.
    pub fn object(&self) -> BpfObject {
        if std::env::var_os("HTTPSCOPE_BPF_OBJECT").is_some_and(|v| v == "baseline") {
            return BpfObject::Baseline;
        }
        if self.bpf_loop && self.task_storage && self.task_btf {
            BpfObject::Full
        } else {
            BpfObject::Baseline
        }
    }

    /// What capture goes without on this kernel, one entry per missing feature.
    pub fn gated(&self) -> Vec<GatedFeature> {
        let mut gated = Vec::new();
        if self.object() == BpfObject::Baseline {
            let missing = [
                (!self.bpf_loop, "bpf_loop"),
                (!self.task_storage, "task storage"),
                (!self.task_btf, "BTF task pointers"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect::<Vec<_>>();
            gated.push(GatedFeature {
                missing: if missing.is_empty() {
                    "nothing, but HTTPSCOPE_BPF_OBJECT=baseline chose the baseline object".into()
                } else {
                    missing.join(", ")
                },
                cost: "the capture budget is off: bodies are copied whole, up to --capture-bytes per call; the socket backend cannot load",
            });
        }
        if !self.attach_cookies {
            gated.push(GatedFeature {
                missing: "BPF attach cookies".into(),
                cost: "Go crypto/tls and Node.js TLS are not hooked (their HTTPS stays encrypted, counted)",
            });
        }
        gated
    }
}
