//! Compiles the benchmark's XDP programs (`src/bench/bpf/*.bpf.c`: the generator, the
//! sink and the `xdp-redirect` peer) with clang into `$OUT_DIR`, where `bench::bpf`
//! embeds them. Without clang the objects are left empty and `vnet-bench bench` says so
//! at run time; everything else builds and works.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dir = PathBuf::from("src/bench/bpf");
    println!("cargo:rerun-if-changed=src/bench/bpf/common.h");
    let arch_include = format!(
        "/usr/include/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    for name in ["gen", "sink", "redirect"] {
        let src = dir.join(format!("{name}.bpf.c"));
        let obj = out.join(format!("{name}.bpf.o"));
        println!("cargo:rerun-if-changed={}", src.display());
        let status = Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into()))
            .args(["-O2", "-g", "-target", "bpf", "-Wall"])
            .arg(format!("-I{arch_include}"))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                println!(
                    "cargo:warning=could not compile {} with clang ({other:?}); `vnet-bench bench` will be unavailable",
                    src.display()
                );
                std::fs::write(&obj, b"").expect("write placeholder object");
            }
        }
    }
}
