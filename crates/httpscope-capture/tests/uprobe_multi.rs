//! The TLS probes' links: on Linux 6.6 and later uprobe_multi links hold them (one per
//! program and file, which detach together), older kernels and `HTTPSCOPE_UPROBE_MULTI=off`
//! keep perf-event uprobes; dropping the capture closes every link. Needs root.

use std::fs;

use httpscope_capture::{ensure_tracefs, BackendChoice, Capture, CaptureConfig};

fn config() -> CaptureConfig {
    CaptureConfig {
        ports: vec![1],
        pid: None,
        comm: None,
        capture_bytes: 4096,
        body_budget: 0,
        ring_bytes: 1 << 20,
        wakeup_bytes: 0,
        tls: true,
        all_ports: false,
        cgroups: None,
        backend: BackendChoice::Auto,
        bench_stage: None,
    }
}

/// This process's open BPF links of `kind`, as /proc/self/fdinfo names them.
fn links_of_type(kind: &str) -> usize {
    let Ok(fds) = fs::read_dir("/proc/self/fdinfo") else {
        return 0;
    };
    fds.filter_map(|fd| fs::read_to_string(fd.ok()?.path()).ok())
        .filter(|info| info.lines().any(|l| l == format!("link_type:\t{kind}")))
        .count()
}

/// Whether the running kernel is 6.6 or later, where uprobe_multi links exist.
fn kernel_has_uprobe_multi() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 6)
}

#[test]
fn tls_probes_ride_uprobe_multi_links_where_the_kernel_has_them() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // Under CI a missing capability fails, never skips.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root (BPF)"
        );
        eprintln!("\n*** SKIPPING: needs root (BPF) ***\n");
        return;
    }
    ensure_tracefs().expect("tracefs");
    let capture = Capture::attach(&config()).expect("attach");
    // Some libssl is on every machine these tests run on.
    assert!(!capture.tls_targets().is_empty(), "no TLS library hooked");
    let multi = links_of_type("uprobe_multi");
    let expected = kernel_has_uprobe_multi()
        && std::env::var_os("HTTPSCOPE_UPROBE_MULTI").is_none_or(|v| v != "off");
    if expected {
        // At least the dynamic loader's hook, and libssl's read, write and return programs.
        assert!(multi >= 4, "{multi} uprobe_multi links");
    } else {
        assert_eq!(multi, 0);
    }
    drop(capture);
    assert_eq!(
        links_of_type("uprobe_multi"),
        0,
        "links left after the drop"
    );
    assert_eq!(
        links_of_type("perf_event"),
        0,
        "perf-event links left after the drop"
    );
}
