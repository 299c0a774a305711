"""Writes the tiny GGUF fixtures from __test__/fixtures/tiny-gpt2 (f16 safetensors, n_embd 32).

The layout is llama.cpp's convert_hf_to_gguf.py's for GPT-2 (and bench/make_checkpoint.py's
make_gguf): arch `gpt2`, `gpt2.*` hyperparameters, the tokenizer as `tokenizer.ggml.*`, Conv1D
weights transposed to ggml's (out, in) rows, 1-D tensors (norms, biases) and the position
embeddings kept F32.

    python -m venv .venv && .venv/bin/pip install gguf safetensors
    .venv/bin/python scripts/make_gguf_fixture.py

writes __test__/fixtures/tiny-gpt2-{f16,q8_0,q4_0}.gguf: every 2-D tensor as F16, or quantized
with gguf.quants.quantize (the reference Q8_0 / Q4_0 quantizers, which llama.cpp's match).
"""

import json
import os

import gguf
import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "__test__", "fixtures")
SOURCE = os.path.join(FIXTURES, "tiny-gpt2")
EOS = 50256


def tokenizer_parts():
    vocab = json.load(open(os.path.join(SOURCE, "vocab.json"), encoding="utf-8"))
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    merges = [ln for ln in open(os.path.join(SOURCE, "merges.txt"), encoding="utf-8").read().split("\n")
              if ln and not ln.startswith("#version")]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    types[EOS] = gguf.TokenType.CONTROL
    return tokens, merges, types


def weights():
    w = load_file(os.path.join(SOURCE, "model.safetensors"))
    return {k.removeprefix("transformer."): v for k, v in w.items()}


def write(path, qtype):
    cfg = json.load(open(os.path.join(SOURCE, "config.json")))
    L, E = cfg["n_layer"], cfg["n_embd"]
    tokens, merges, types = tokenizer_parts()
    wr = gguf.GGUFWriter(path, "gpt2")
    wr.add_name("nexttoken tiny-gpt2 fixture")
    wr.add_file_type({"F16": gguf.LlamaFileType.MOSTLY_F16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                      "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[qtype.name])
    wr.add_context_length(cfg["n_positions"])
    wr.add_embedding_length(E)
    wr.add_feed_forward_length(cfg.get("n_inner") or 4 * E)
    wr.add_block_count(L)
    wr.add_head_count(cfg["n_head"])
    wr.add_layer_norm_eps(cfg.get("layer_norm_epsilon", 1e-5))
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("gpt-2")
    wr.add_token_list(tokens)
    wr.add_token_types(types)
    wr.add_token_merges(merges)
    wr.add_bos_token_id(EOS)
    wr.add_eos_token_id(EOS)
    wr.add_add_bos_token(False)

    w = weights()

    def add(name, a, matrix=False):
        if not matrix:  # norms and biases stay F32, as llama.cpp's converter keeps them
            wr.add_tensor(name, np.ascontiguousarray(a.astype(np.float32)))
        elif qtype == gguf.GGMLQuantizationType.F16:
            wr.add_tensor(name, np.ascontiguousarray(a.astype(np.float16)))
        else:
            q = gguf.quants.quantize(np.ascontiguousarray(a.astype(np.float32)), qtype)
            wr.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    T = lambda a: np.ascontiguousarray(a.T)  # HF Conv1D stores [in, out]; ggml wants [out, in] rows
    add("token_embd.weight", w["wte.weight"], True)
    # llama.cpp's converter keeps position embeddings F32 whatever the type (POS_EMBD is in its
    # list of tensors never quantized), and so do we.
    add("position_embd.weight", w["wpe.weight"])
    for i in range(L):
        p, b = f"h.{i}.", f"blk.{i}."
        add(b + "attn_norm.weight", w[p + "ln_1.weight"])
        add(b + "attn_norm.bias", w[p + "ln_1.bias"])
        add(b + "attn_qkv.weight", T(w[p + "attn.c_attn.weight"]), True)
        add(b + "attn_qkv.bias", w[p + "attn.c_attn.bias"])
        add(b + "attn_output.weight", T(w[p + "attn.c_proj.weight"]), True)
        add(b + "attn_output.bias", w[p + "attn.c_proj.bias"])
        add(b + "ffn_norm.weight", w[p + "ln_2.weight"])
        add(b + "ffn_norm.bias", w[p + "ln_2.bias"])
        add(b + "ffn_up.weight", T(w[p + "mlp.c_fc.weight"]), True)
        add(b + "ffn_up.bias", w[p + "mlp.c_fc.bias"])
        add(b + "ffn_down.weight", T(w[p + "mlp.c_proj.weight"]), True)
        add(b + "ffn_down.bias", w[p + "mlp.c_proj.bias"])
    add("output_norm.weight", w["ln_f.weight"])
    add("output_norm.bias", w["ln_f.bias"])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    print("wrote", os.path.relpath(path), f"{os.path.getsize(path) / 1e6:.2f} MB")


def main():
    for qtype in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0):
        write(os.path.join(FIXTURES, f"tiny-gpt2-{qtype.name.lower()}.gguf"), qtype)


if __name__ == "__main__":
    main()
