#!/usr/bin/env python3
"""The PyTorch half of the GPU check (scripts/gpu-check.sh runs it; issue 24). Needs torch and
transformers only; downloads nothing.

    gpu_check_torch.py checkpoints OUT_DIR TOKENIZER_DIR SHAPE...   seeded-random GPT-2 checkpoints
                                                                    (124m, xl) made from a config
    gpu_check_torch.py bandwidth DEVICE                             the device's copy bandwidth, GB/s
    gpu_check_torch.py eager DEVICE DTYPES BATCH_SIZES MODEL_DIR... transformers eager timings

The timings are defined as gpu_check's (crates/nexttoken/examples/gpu_check.rs): the same prompt
ids, pp<n> one forward pass, decoding speed counted after each row's first token.
"""
import os
import shutil
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

SEED = 1234
EOS = 50256
SHAPES = {
    "124m": dict(n_layer=12, n_head=12, n_embd=768),
    "xl": dict(n_layer=48, n_head=25, n_embd=1600),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BATCH_NEW_TOKENS = 32  # as gpu_check's
PREFILL_REPS = 3


def device_of(name):
    return torch.device("cuda" if name == "cuda" else "cpu")


def checkpoints(out, tokenizer_dir, *shapes):
    """gpt2-<shape>/ in the Hub's layout: f32 safetensors, GPT-2's tokenizer copied from
    `tokenizer_dir`. Made on the GPU when there is one (transformers' init, normal(0, 0.02))."""
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    for shape in shapes:
        final = os.path.join(out, f"gpt2-{shape}")
        if os.path.exists(os.path.join(final, "model.safetensors")):
            continue
        start = time.time()
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        torch.manual_seed(SEED)
        config = GPT2Config(**SHAPES[shape], vocab_size=50257, n_positions=1024, bos_token_id=EOS, eos_token_id=EOS)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = GPT2LMHeadModel(config).eval()
        model.save_pretrained(tmp, safe_serialization=True)
        GenerationConfig(bos_token_id=EOS, eos_token_id=EOS).save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            shutil.copy(os.path.join(tokenizer_dir, name), tmp)
        os.replace(tmp, final)
        print(f"made {final} in {time.time() - start:.0f} s", file=sys.stderr)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bandwidth(device_name):
    """Device-to-device copy of 1 GiB, counted as bytes read plus bytes written."""
    device = device_of(device_name)
    src = torch.empty(1 << 28, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    synchronize(device)
    reps = 10
    start = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    synchronize(device)
    print(f"{2 * src.numel() * 4 * reps / (time.perf_counter() - start) / 1e9:.0f}")


def prompt_ids(vocab_size, seed, length):
    """gpu_check's prompt_ids: different for each seed, never GPT-2's <|endoftext|>."""
    vocab = vocab_size - 1
    return [(seed * 1_000_003 + i * 7919 + 13) % vocab for i in range(length)]


def eager(device_name, dtypes, batch_sizes, *models):
    from transformers import GPT2LMHeadModel

    device = device_of(device_name)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as fp32, as gpu_check's
    for model_dir in models:
        for dtype in dtypes.split(","):
            start = time.time()
            model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=DTYPES[dtype], attn_implementation="eager")
            model = model.to(device).eval()
            vocab = model.config.vocab_size
            print(f"== transformers eager: {model_dir} on {device_name} in {dtype} (loaded in {time.time() - start:.1f} s)")

            def timed(run):
                synchronize(device)
                start = time.perf_counter()
                with torch.no_grad():
                    run()
                synchronize(device)
                return time.perf_counter() - start

            for n in (128, 512):
                ids = torch.tensor([prompt_ids(vocab, 0, n)], device=device)
                times = sorted(timed(lambda: model(ids, use_cache=False)) for _ in range(PREFILL_REPS + 1))[:-1]
                t = times[len(times) // 2]
                print(f"  pp{n}: {n / t:.0f} tok/s ({t * 1e3:.1f} ms)")

            def decode(rows, prompt_len, new_tokens):
                """Tokens per second after each row's first: the time of new_tokens minus that of one."""
                ids = torch.tensor([prompt_ids(vocab, 10 + row, prompt_len) for row in range(rows)], device=device)

                def generate(n):
                    model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                                   min_new_tokens=n, pad_token_id=EOS)

                generate(2)  # warm-up
                return rows * (new_tokens - 1) / (timed(lambda: generate(new_tokens)) - timed(lambda: generate(1)))

            print(f"  tg128: {decode(1, 16, 128):.0f} tok/s")
            for b in batch_sizes.split(","):
                print(f"  batch decode B={b}: {decode(int(b), 32, BATCH_NEW_TOKENS):.0f} tok/s")
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    commands = {"checkpoints": checkpoints, "bandwidth": bandwidth, "eager": eager}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
