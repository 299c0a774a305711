//! With the `cuda` feature: the device backend's fused kernels (src/ops/cuda/kernels.cu) built
//! into PTX by nvcc, for the compute capability in CUDA_COMPUTE_CAP (90: H100, H200), which the
//! driver compiles for the card at its first use. scripts/cuda-build.sh sets up nvcc and the
//! variables; without the feature nothing is built.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: &str = "src/ops/cuda/kernels.cu";

fn main() {
    println!("cargo::rerun-if-changed={KERNELS}");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let capability = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| {
        panic!("CUDA_COMPUTE_CAP is not set: the compute capability to build for (90 for H100)")
    });
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("kernels.ptx");
    let status = Command::new("nvcc")
        .args(["-ptx", "-O3", "-std=c++17", &format!("-arch=compute_{capability}"), KERNELS, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|err| panic!("nvcc could not run ({err}): put CUDA's bin/ on PATH"));
    assert!(status.success(), "nvcc failed on {KERNELS}");
}
