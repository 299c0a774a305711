"""Writes the tiny GGUF fixtures from __test__/fixtures/tiny-gpt2 (f16 safetensors, n_embd 32).

The layout is llama.cpp's convert_hf_to_gguf.py's for GPT-2, written by scripts/gpt2_gguf.py
(which bench/make_checkpoint.py uses too).

    python -m venv .venv && .venv/bin/pip install gguf safetensors
    .venv/bin/python scripts/make_gguf_fixture.py

writes __test__/fixtures/tiny-gpt2-{f16,q8_0,q4_0}.gguf: every 2-D tensor as F16, or quantized
with gguf.quants.quantize (the reference Q8_0 / Q4_0 quantizers, which llama.cpp's match).
"""

import os
import sys

from safetensors.numpy import load_file

from gpt2_gguf import write_gguf

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "__test__", "fixtures")
SOURCE = os.path.join(FIXTURES, "tiny-gpt2")


def main(out=FIXTURES):
    weights = {k.removeprefix("transformer."): v for k, v in load_file(os.path.join(SOURCE, "model.safetensors")).items()}
    for matrix_type in ("F16", "Q8_0", "Q4_0"):
        path = os.path.join(out, f"tiny-gpt2-{matrix_type.lower()}.gguf")
        write_gguf(path, SOURCE, weights, matrix_type, "nexttoken tiny-gpt2 fixture")
        print("wrote", os.path.relpath(path), f"{os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
