#!/usr/bin/env python3
"""transformers + PyTorch: one padded batch `generate` of B prompts (the same protocol as
protocol.mjs). Token times come from a logits processor that stamps every decoding step."""
import json
import os
import sys
import time

cfg = json.load(open(sys.argv[1]))
out_path = sys.argv[2]
os.environ["OMP_NUM_THREADS"] = str(cfg["threads"])
os.environ["HF_HUB_OFFLINE"] = "1"
import torch  # noqa: E402
from transformers import GPT2LMHeadModel, LogitsProcessor, LogitsProcessorList  # noqa: E402

torch.set_num_threads(int(cfg["threads"]))
torch.set_num_interop_threads(1)
SIZES, PROMPT_TOKENS, NEW_TOKENS, REPS = [1, 2, 4, 8, 16], 32, 64, 3
model = GPT2LMHeadModel.from_pretrained(cfg["models"]["hf"], local_files_only=True, dtype=torch.float32).eval()


class Stamp(LogitsProcessor):
    def __init__(self, start):
        self.start, self.times = start, []

    def __call__(self, input_ids, scores):
        self.times.append((time.perf_counter() - self.start) * 1000.0)
        return scores


def run_batch(prompts):
    ids = torch.tensor(prompts)  # equal lengths: no padding needed, mask all ones
    start = time.perf_counter()
    stamp = Stamp(start)
    with torch.inference_mode():
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=50256,
            logits_processor=LogitsProcessorList([stamp]),
        )
    wall = (time.perf_counter() - start) * 1000.0
    return {"wallMs": wall, "stamps": [stamp.times for _ in prompts]}


out = {"engine": "pytorch", "info": {"mode": "model.generate on a (B, 32) batch", "threads": cfg["threads"]}, "sizes": {}}
for b in SIZES:
    prompts = [cfg["promptIds"][i * 16 : i * 16 + PROMPT_TOKENS] for i in range(b)]
    run_batch(prompts)
    reps = [run_batch(prompts) for _ in range(REPS)]
    out["sizes"][str(b)] = reps
    med = sorted(r["wallMs"] for r in reps)[REPS // 2]
    print(f"  [pytorch] B={b}: {b * NEW_TOKENS / med * 1000:.1f} tok/s aggregate", file=sys.stderr, flush=True)
json.dump(out, open(out_path, "w"))
