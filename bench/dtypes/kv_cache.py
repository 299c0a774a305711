"""What a KV cache in lower precision would cost in accuracy (issue 14), measured with the reference
implementation rather than built: transformers' GPT-2 in f32, its keys and values rounded to f16
or bf16 as a cache in that type would hold them (every position's, its own included: a cache is
written, then read), against the same model unrounded.

    python bench/dtypes/kv_cache.py [model dir = bench/models/gpt2-124m] [text file = bench/dtypes/text.md]

Prints the rows of bench/dtypes/accuracy.mjs (max and mean |logit - f32 logit|, KL divergence of
the next-token distribution from f32's, mean and p99 over 1,024 positions, top-1 agreement), so
the two tables read together. Needs torch and transformers (bench/requirements.txt).
"""

import sys
from pathlib import Path

import torch
from transformers import GPT2LMHeadModel, GPT2TokenizerFast

ROOT = Path(__file__).resolve().parents[2]
TOKENS = 1024


def round_keys_and_values(model, dtype):
    """Rounds the keys and values each block's c_attn produces (its output is [q | k | v])."""
    width = model.config.n_embd

    def hook(_module, _inputs, output):
        q, kv = output[..., :width], output[..., width:]
        return torch.cat([q, kv.to(dtype).to(output.dtype)], dim=-1)

    return [block.attn.c_attn.register_forward_hook(hook) for block in model.transformer.h]


def compare(expected, got):
    diff = (got - expected).abs()
    p, q = expected.log_softmax(-1), got.log_softmax(-1)
    kl = (p.exp() * (p - q)).sum(-1).sort().values
    return {
        "max": diff.max().item(),
        "mean": diff.mean().item(),
        "kl_mean": kl.mean().item(),
        "kl_p99": kl[int(0.99 * (len(kl) - 1))].item(),
        "top1": (expected.argmax(-1) == got.argmax(-1)).double().mean().item(),
    }


def main():
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "models" / "gpt2-124m"
    text_file = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "bench" / "dtypes" / "text.md"
    tokenizer = GPT2TokenizerFast.from_pretrained(model_dir)
    ids = tokenizer(text_file.read_text())["input_ids"][:TOKENS]
    if len(ids) < TOKENS:
        raise SystemExit(f"{text_file} has only {len(ids)} tokens")
    model = GPT2LMHeadModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    batch = torch.tensor([ids])
    with torch.no_grad():
        expected = model(batch).logits[0].double()
        print(f"KV cache precision against f32, {model_dir.name}, {TOKENS} tokens of {text_file.name}:")
        print("| KV cache | max abs diff | mean abs diff | KL mean | KL p99 | top-1 agreement |")
        print("| --- | --: | --: | --: | --: | --: |")
        for name, dtype in [("f16", torch.float16), ("bf16", torch.bfloat16)]:
            hooks = round_keys_and_values(model, dtype)
            got = model(batch).logits[0].double()
            for h in hooks:
                h.remove()
            r = compare(expected, got)
            print(
                f"| {name} | {r['max']:.2g} | {r['mean']:.2g} | {r['kl_mean']:.2g} | {r['kl_p99']:.2g} "
                f"| {100 * r['top1']:.1f}% |"
            )


if __name__ == "__main__":
    main()
