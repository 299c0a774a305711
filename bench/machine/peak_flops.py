#!/usr/bin/env python3
"""f32 matmul throughput of this machine with N threads: torch.mm of 2048x2048 matrices (PyTorch's
CPU BLAS), best of several timed calls after a warm-up. Prints one JSON line."""
import json
import os
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
calls = int(sys.argv[3]) if len(sys.argv) > 3 else 10
os.environ["OMP_NUM_THREADS"] = str(threads)
import torch  # noqa: E402

torch.set_num_threads(threads)
a = torch.randn(n, n)
b = torch.randn(n, n)
c = torch.empty(n, n)
torch.mm(a, b, out=c)
rates = []
for _ in range(calls):
    t = time.perf_counter()
    torch.mm(a, b, out=c)
    rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
rates.sort()
print(json.dumps({"what": f"torch.mm f32 {n}x{n}x{n}", "threads": threads, "calls": calls,
                  "bestGflops": round(rates[-1], 1), "medianGflops": round(rates[len(rates) // 2], 1),
                  "torch": torch.__version__}))
