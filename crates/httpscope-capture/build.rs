//! Compiles the BPF C program (`bpf/httpscope.bpf.c` and the `bpf/*.bpf.h` parts it
//! includes) with clang into OUT_DIR, as the full and the baseline object.

use std::{env, path::PathBuf, process::Command};

const SOURCE: &str = "bpf/httpscope.bpf.c";
/// Every part of the one compilation unit (`*.bpf.h`) and the shared header live here.
const SOURCE_DIR: &str = "bpf";

fn main() {
    // A directory: cargo reruns when any file in it changes.
    println!("cargo:rerun-if-changed={SOURCE_DIR}");
    println!("cargo:rerun-if-env-changed=CLANG");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let multiarch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => ("aarch64-linux-gnu", "arm64"),
        _ => ("x86_64-linux-gnu", "x86"),
    };

    // One source, two objects: the full one, and the baseline one for kernels without
    // bpf_loop, task storage or BTF task pointers (bpf/compat.bpf.h).
    for (object, defines) in [
        ("httpscope.bpf.o", &[][..]),
        ("httpscope-baseline.bpf.o", &["-DHTTPSCOPE_BASELINE"][..]),
    ] {
        let status = Command::new(&clang)
            .args([
                "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
            ])
            .args(defines)
            .arg(format!("-D__TARGET_ARCH_{}", multiarch.1))
            .arg(format!("-I/usr/include/{}", multiarch.0))
            .arg("-c")
            .arg(SOURCE)
            .arg("-o")
            .arg(out_dir.join(object))
            .status()
            .unwrap_or_else(|err| {
                panic!("running {clang}: {err}; install clang and libbpf-dev (see README)")
            });
        assert!(
            status.success(),
            "{clang} failed to compile {SOURCE} into {object}"
        );
    }
}
