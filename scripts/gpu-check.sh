#!/usr/bin/env bash
# The prepared GPU check (issue 24), one command on a machine with an NVIDIA GPU:
#
#   bash scripts/gpu-check.sh                 # CUDA: needs target/cuda/gpu_check (cuda-build.sh)
#   bash scripts/gpu-check.sh --device cpu    # the same on the CPU (a CPU build, small sizes)
#
# It needs no cargo, no Node and no package registry: the binary gpu_check, built on a machine
# without a GPU by scripts/cuda-build.sh (a self-contained example of the core, ~50 MB), and a
# Python with torch and transformers (PYTHON, default python3), whose pip `nvidia` packages also
# supply cuBLAS, cuRAND, the CUDA 13 runtime and NVRTC; the driver supplies libcuda.so.1. It
# prints: device logits against the CPU's and transformers' (fp32), greedy ids against the
# goldens, batch rows against single ones; then pp128/pp512, tg128 and batch decoding for the
# 124M and gpt2-xl shapes (seeded-random checkpoints made here with torch) in fp32 and bf16, and
# transformers eager's on the same card; weights' GB/s against the card's copy bandwidth; then the
# checks and the first model's timings again with the fused CUDA kernels (NEXTTOKEN_FUSED_CUDA=1).
# Exits non-zero when a check failed. GPU_CHECK_SHAPES (124m xl), GPU_CHECK_DTYPES (fp32,bf16; q8
# too once a device runs it) and GPU_CHECK_BATCH_SIZES (1,16,64,256) change what is timed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0

DEVICE=cuda
if [ "${1:-}" = --device ]; then DEVICE=${2:?--device needs cuda or cpu}; fi
PYTHON=${PYTHON:-python3}
WORK=${GPU_CHECK_DIR:-/tmp/nexttoken-gpu-check}
if [ "$DEVICE" = cuda ]; then
  BIN=${GPU_CHECK_BIN:-target/cuda/gpu_check}
  read -ra SHAPES <<<"${GPU_CHECK_SHAPES:-124m xl}"
  DTYPES=${GPU_CHECK_DTYPES:-fp32,bf16} BATCH_SIZES=${GPU_CHECK_BATCH_SIZES:-1,16,64,256}
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  # Every library directory of pip's nvidia packages (nvidia/cu13/lib for CUDA 13 wheels).
  NVIDIA_LIBS=$("$PYTHON" -c '
import glob, os, nvidia
dirs = {os.path.dirname(p) for root in nvidia.__path__ for p in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True)}
print(":".join(sorted(dirs)))')
  export LD_LIBRARY_PATH=$NVIDIA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
  BIN=${GPU_CHECK_BIN:-target/release/examples/gpu_check}
  read -ra SHAPES <<<"${GPU_CHECK_SHAPES:-124m}"
  DTYPES=${GPU_CHECK_DTYPES:-fp32} BATCH_SIZES=${GPU_CHECK_BATCH_SIZES:-1,16}
fi
if [ ! -x "$BIN" ]; then
  echo "gpu-check: no $BIN: scripts/cuda-build.sh builds it (for --device cpu: cargo build --release --example gpu_check)" >&2
  exit 1
fi
if missing=$(ldd "$BIN" | grep 'not found'); then
  echo "gpu-check: libraries $BIN needs are missing (the driver gives libcuda.so.1; pip's nvidia-cublas, nvidia-curand, nvidia-cuda-runtime and nvidia-cuda-nvrtc the others):" >&2
  echo "$missing" >&2
  exit 1
fi

"$PYTHON" scripts/gpu_check_torch.py checkpoints "$WORK" __test__/fixtures/tiny-gpt2 "${SHAPES[@]}"
MODELS=("${SHAPES[@]/#/$WORK/gpt2-}")
COPY_GBPS=$("$PYTHON" scripts/gpu_check_torch.py bandwidth "$DEVICE")
echo "== $DEVICE copy bandwidth (1 GiB, read + write): $COPY_GBPS GB/s"

status=0
"$BIN" --device "$DEVICE" --fixtures __test__/fixtures --dtypes "$DTYPES" --batch-sizes "$BATCH_SIZES" \
  --copy-gbps "$COPY_GBPS" "${MODELS[@]}" || status=$?
if [ "$DEVICE" = cuda ]; then
  # The device backend's fused CUDA kernels are opt-in until this run passes: the same checks
  # with them, and the first model's timings, to compare with the run above.
  echo "== the same with the fused CUDA kernels (NEXTTOKEN_FUSED_CUDA=1)"
  NEXTTOKEN_FUSED_CUDA=1 "$BIN" --device cuda --fixtures __test__/fixtures --dtypes "$DTYPES" \
    --batch-sizes "$BATCH_SIZES" --copy-gbps "$COPY_GBPS" "${MODELS[0]}" || status=$?
fi
"$PYTHON" scripts/gpu_check_torch.py eager "$DEVICE" "$DTYPES" "$BATCH_SIZES" "${MODELS[@]}"
echo "gpu-check on $DEVICE took ${SECONDS} s (gpu_check exited with $status)"
exit "$status"
