//! Compiles the fast-path XDP program (`bpf/fastpath.bpf.c`) with clang into `$OUT_DIR`,
//! where `port::xdp::fastpath` embeds it. Only with the `xdp` feature (which already
//! needs clang for libxdp). Without clang the object is left empty and `run --offload
//! xdp` says so at start; everything else builds and works.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/fastpath.bpf.c");
    println!("cargo:rerun-if-changed=bpf/fastpath.h");
    if std::env::var_os("CARGO_FEATURE_XDP").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let obj = out.join("fastpath.bpf.o");
    let arch_include = format!(
        "/usr/include/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    let status = Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into()))
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{arch_include}"))
        .arg("-c")
        .arg("bpf/fastpath.bpf.c")
        .arg("-o")
        .arg(&obj)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            println!(
                "cargo:warning=could not compile bpf/fastpath.bpf.c with clang ({other:?}); `run --offload xdp` will be unavailable"
            );
            std::fs::write(&obj, b"").expect("write placeholder object");
        }
    }
}
