#!/usr/bin/env bash
# Builds the CUDA addon (npm/linux-x64-gnu-cuda/) and the GPU check (target/cuda/gpu_check) on a
# machine without a GPU or a CUDA install (issue 24). CUDA 13.0 comes from NVIDIA's PyPI wheels in a
# venv; the libraries those wheels do not ship (the driver's libcuda, cuBLAS, cuRAND) are linked
# against stubs, and the real ones are found at run time on the GPU machine.
#
# Cards: CUDA_COMPUTE_CAP=90 makes candle compile its kernels for sm_90a, which runs on compute
# capability 9.0 only: H100, H200, GH200. Other cards need a build with their own compute
# capability. CUDA 13.0 (not newer): the GPU machines' driver 580 refuses PTX from nvcc >= 13.1.
#
# ~10 min on 2 cores the first time (nvcc compiling candle's kernels); the venv, the stubs and
# cargo's target dir (target/cuda/) are reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_DIR=target/cuda
VENV=$CUDA_DIR/venv
PACKAGE_DIR=npm/linux-x64-gnu-cuda

# nvcc's wheel depends on nvvm, crt and the runtime without versions, so every wheel is pinned.
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/cuda-requirements.txt
CUDA_ROOT=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13

# The wheels ship only versioned libraries; `-lcudart` / `-lnvrtc` want the unversioned names.
ln -sf libcudart.so.13 "$CUDA_ROOT/lib/libcudart.so"
ln -sf libnvrtc.so.13 "$CUDA_ROOT/lib/libnvrtc.so"
# cudarc's build script adds lib/stubs to the linker's search path only if the directory exists
# when it first runs, so it is made before anything is compiled.
STUBS=$CUDA_ROOT/lib/stubs
mkdir -p "$STUBS"

export CUDA_ROOT CUDA_HOME=$CUDA_ROOT PATH=$CUDA_ROOT/bin:$PATH
export CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=90
# Its own target dir: the CPU build in target/release stays as it is.
export CARGO_TARGET_DIR=$CUDA_DIR/cargo

# 1. Every library (candle's kernels through nvcc: most of the time), the addon's too but as an
# rlib, which is not linked, so nothing needs the stubs yet. Built as part of the addon, with its
# features: candle built for the core alone would be built again for the addon.
cargo rustc --release --locked -p nexttoken-node --features cuda --lib --crate-type rlib

# 2. A stub library per CUDA library the wheels lack, defining every function that cudarc and
# candle call in it (their undefined symbols, grouped by prefix). The linker only checks that the
# names exist; at run time the real libraries with these SONAMEs are loaded instead.
undefined=$(for crate in cudarc candle_core candle_nn candle_kernels; do
  nm -u --quiet "$CARGO_TARGET_DIR"/release/deps/lib"$crate"-*.rlib 2>/dev/null || true
done | awk '{ print $NF }' | sort -u)
stub() { # stub <soname> <link name> <grep pattern of its functions>
  local source=$CUDA_DIR/stub-$2.c
  grep -E "$3" <<<"$undefined" | sed 's/.*/void &(void) {}/' >"$source"
  [ -s "$source" ] || { echo "cuda-build: no $2 functions found in the rlibs: is the cuda feature on?" >&2; exit 1; }
  gcc -shared -fPIC -Wl,-soname,"$1" -o "$STUBS/lib$2.so" "$source"
}
stub libcuda.so.1 cuda '^cu[A-Z]'
stub libcublas.so.13 cublas '^cublas[^L]'
stub libcublasLt.so.13 cublasLt '^cublasLt'
stub libcurand.so.10 curand '^curand'

# 3. The addon and the GPU check's binary, linked against the stubs.
cargo build --release --locked -p nexttoken-node -p nexttoken --features nexttoken-node/cuda --lib --example gpu_check
strip -o "$PACKAGE_DIR/nexttoken.linux-x64-gnu-cuda.node" "$CARGO_TARGET_DIR/release/libnexttoken_node.so"
strip -o "$CUDA_DIR/gpu_check" "$CARGO_TARGET_DIR/release/examples/gpu_check"

ls -l "$PACKAGE_DIR"/*.node "$CUDA_DIR/gpu_check"
