"""Writes a GPT-2 as llama.cpp's convert_hf_to_gguf.py lays one out: arch `gpt2`, `gpt2.*`
hyperparameters, the tokenizer as `tokenizer.ggml.*`, Conv1D weights transposed to ggml's
(out, in) rows; the matrices in one type, quantized by the gguf package's reference quantizers
(llama.cpp's), 1-D tensors (norms, biases) and the position embeddings kept F32 as that converter
keeps them. Used by scripts/make_gguf_fixture.py (the test fixtures) and bench/make_checkpoint.py
(the benchmark's files). Needs numpy and the gguf package only."""

import json
import os

import gguf
import numpy as np

EOS = 50256

FILE_TYPES = {
    "F32": gguf.LlamaFileType.ALL_F32,
    "F16": gguf.LlamaFileType.MOSTLY_F16,
    "BF16": gguf.LlamaFileType.MOSTLY_BF16,
    "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
}


def tokenizer_parts(hf_dir):
    """GPT-2's tokens (by id), merges and token types from vocab.json and merges.txt."""
    vocab = json.load(open(os.path.join(hf_dir, "vocab.json"), encoding="utf-8"))
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    merges = [ln for ln in open(os.path.join(hf_dir, "merges.txt"), encoding="utf-8").read().split("\n")
              if ln and not ln.startswith("#version")]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    types[EOS] = gguf.TokenType.CONTROL
    return tokens, merges, types


def write_gguf(path, hf_dir, weights, matrix_type, name):
    """Writes `path`: the config and tokenizer of `hf_dir` and `weights` ({name without
    'transformer.': numpy array}), matrices in `matrix_type` (a key of FILE_TYPES)."""
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    L, E = cfg["n_layer"], cfg["n_embd"]
    tokens, merges, types = tokenizer_parts(hf_dir)
    assert len(tokens) == cfg["vocab_size"]
    wr = gguf.GGUFWriter(path, "gpt2")
    wr.add_name(name)
    wr.add_file_type(FILE_TYPES[matrix_type])
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

    qtype = getattr(gguf.GGMLQuantizationType, matrix_type)

    def add(name, a, matrix=False):
        a = np.ascontiguousarray(a.astype(np.float32))
        if not matrix or matrix_type == "F32":
            wr.add_tensor(name, a)
        else:
            q = gguf.quants.quantize(a, qtype)
            wr.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    T = lambda a: a.T  # HF Conv1D stores [in, out]; ggml wants [out, in] rows
    w = weights
    add("token_embd.weight", w["wte.weight"], True)
    add("position_embd.weight", w["wpe.weight"])  # never quantized by llama.cpp's converter
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
