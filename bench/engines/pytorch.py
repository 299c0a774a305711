#!/usr/bin/env python3
"""Python transformers + PyTorch (CPU), the same protocol as engines/driver.mjs.

Usage: python3 engines/pytorch.py <config.json> <result.json>
Threads: OMP_NUM_THREADS and torch.set_num_threads = config threads, interop 1.
"""
import json
import os
import statistics
import sys
import time

cfg = json.load(open(sys.argv[1]))
out_path = sys.argv[2]
THREADS = int(cfg["threads"])
os.environ["OMP_NUM_THREADS"] = str(THREADS)  # before importing torch
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def mem_kb():
    s = open("/proc/self/status").read()
    get = lambda k: int(next(ln.split()[1] for ln in s.splitlines() if ln.startswith(k + ":")))
    return {"hwm": get("VmHWM"), "rss": get("VmRSS")}


def log(*a):
    print("  [pytorch]", *a, file=sys.stderr, flush=True)


now_ms = lambda: time.perf_counter() * 1000.0
t_import = now_ms()
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

torch.set_num_threads(THREADS)
torch.set_num_interop_threads(1)
transformers.utils.logging.disable_progress_bar()
import_ms = now_ms() - t_import

EOS = 50256
result = {"engine": "pytorch", "importMs": import_ms, "rssBeforeLoadKb": mem_kb()["rss"], "tests": {}}
t0 = now_ms()
# BENCH_TORCH_DTYPE (bench/dtypes): the weights and activations in that dtype, e.g. bfloat16.
DTYPE = getattr(torch, os.environ.get("BENCH_TORCH_DTYPE", "float32"))
model = GPT2LMHeadModel.from_pretrained(cfg["models"]["hf"], local_files_only=True, dtype=DTYPE).eval()
result["loadMs"] = now_ms() - t0
result["rssAfterLoadKb"] = mem_kb()["rss"]
log(f"loaded in {result['loadMs']:.0f} ms (import torch + transformers {import_ms:.0f} ms, not counted)")
result["info"] = {
    "version": transformers.__version__,
    "torch": torch.__version__,
    "weights": f"model.safetensors f32, loaded as {str(DTYPE).removeprefix('torch.')}",
    "threads": f"torch.set_num_threads({THREADS}), interop 1",
}


class Stamps(BaseStreamer):
    def __init__(self):
        self.t = []

    def put(self, value):  # first call: the prompt; then one call per new token
        self.t.append(now_ms())

    def end(self):
        pass


def tensors(ids):
    x = torch.tensor([ids], dtype=torch.long)
    return x, torch.ones_like(x)


@torch.inference_mode()
def prefill(ids):
    x, am = tensors(ids)
    out = model(input_ids=x, attention_mask=am, use_cache=True, logits_to_keep=1)
    return out.logits[0, -1]


@torch.inference_mode()
def generate(ids, n):
    x, am = tensors(ids)
    st = Stamps()
    s = now_ms()
    seq = model.generate(input_ids=x, attention_mask=am, max_new_tokens=n, do_sample=False,
                         eos_token_id=None, pad_token_id=EOS, streamer=st)
    new = seq[0, len(ids):].tolist()
    return {"ids": new, "ttftMs": st.t[1] - s, "decodeMs": st.t[-1] - st.t[1], "n": len(new)}


def repeat(fn):
    for _ in range(cfg["warmup"]):
        fn()
    return [fn() for _ in range(cfg["reps"])]


prompt = cfg["promptIds"]
cc = cfg["crossCheck"]
cc_prompt = prompt[: cc["promptTokens"]]
g = generate(cc_prompt, cc["newTokens"])
row = prefill(cc_prompt)
top = torch.topk(row, 10)
result["crossCheck"] = {"ids": g["ids"],
                        "top": [{"id": int(i), "logit": float(v)} for v, i in zip(top.values, top.indices)]}

for t in cfg["tests"]:
    ids = prompt[: t["promptTokens"]]
    if t["kind"] == "pp":
        def one():
            s = now_ms()
            prefill(ids)
            return {"ms": now_ms() - s}
        runs = repeat(one)
        log(t["id"], {"tokPerS": round(statistics.median(t["promptTokens"] / r["ms"] * 1000 for r in runs))})
    elif t["kind"] == "ttft":
        def one():
            s = now_ms()
            r = generate(ids, 1)
            ms = now_ms() - s
            assert r["n"] == 1, r["n"]
            return {"ms": ms, "engineMs": r["ttftMs"]}
        runs = repeat(one)
        log(t["id"], {"ms": round(statistics.median(r["ms"] for r in runs))})
    else:
        def one():
            s = now_ms()
            r = generate(ids, t["newTokens"])
            wall = now_ms() - s
            assert r["n"] == t["newTokens"], (t["id"], r["n"])
            return {"ttftMs": r["ttftMs"], "decodeMs": r["decodeMs"], "n": r["n"], "wallMs": wall}
        runs = repeat(one)
        log(t["id"], {"tokPerS": round(statistics.median((r["n"] - 1) / r["decodeMs"] * 1000 for r in runs), 1)})
    result["tests"][t["id"]] = runs

result["peakRssKb"] = mem_kb()["hwm"]
json.dump(result, open(out_path, "w"))
log(f"peak RSS {result['peakRssKb'] / 1024:.0f} MiB")
