#!/usr/bin/env bash
# The one command: `npm run bench` at the repository root, or `bash bench/run.sh [options]`.
# Installs what is missing, makes the models once, measures the machine, runs every engine one after
# another and writes bench/results/<date>.{json,md,svg} + latest.{md,svg}.
# Options (passed to harness.mjs): --reps N (5) --warmup N (1) --threads N (2)
#   --engines nexttoken,pytorch,transformers.js,node-llama-cpp --date YYYY-MM-DD --out DIR
set -euo pipefail
cd "$(dirname "$0")"
step() { printf '[bench] %s\n' "$*" >&2; }

# 1. The library itself (index.js + the native addon at the repository root).
if [ ! -d ../node_modules/gpt-3-encoder ]; then
  step "npm ci at the repository root"
  (cd .. && npm ci --no-audit --no-fund)
fi
if [ ! -f ../index.js ] || ! compgen -G '../nexttoken.*.node' >/dev/null; then
  step "npm run build at the repository root (release build of the addon: several minutes)"
  (cd .. && npm run build)
fi

# 2. The peers for Node (bench/package.json, its own lockfile; not part of the library's install).
#    onnxruntime-node's postinstall would try to download CUDA libraries: skipped (CPU runtime ships in the tarball).
if [ ! -d node_modules/@huggingface/transformers ] || [ ! -d node_modules/node-llama-cpp ]; then
  step "npm ci in bench/ (transformers.js, node-llama-cpp)"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

# 3. Python: PyTorch transformers (a peer) and the converters.
if ! python3 -c 'import torch, transformers, safetensors, numpy, gguf, onnx, onnxruntime, onnxscript' 2>/dev/null; then
  step "pip install -r bench/requirements.txt"
  python3 -m pip install -r requirements.txt
fi

# 4. The models: one seeded-random GPT-2 124M checkpoint and its ONNX / GGUF conversions (~1.5 GB, ~1 min).
if [ ! -f models/gpt2-124m/model.safetensors ] || [ ! -f models/gpt2-124m-onnx/onnx/model.onnx ] || [ ! -f models/gpt2-124m.gguf ]; then
  step "making the models (bench/make_checkpoint.py)"
  python3 make_checkpoint.py
fi

# 5. The measurements.
exec node harness.mjs "$@"
