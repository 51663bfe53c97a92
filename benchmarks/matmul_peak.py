"""This machine's measured float32 matmul peak: the best FLOP/s of square ``torch.mm`` over a few sizes.

The population benchmark reports its achieved FLOP/s as a fraction of this number. FLOPs of an n x n x n matmul:
2 n^3. Each size is warmed up, then timed over enough repetitions to last ``--seconds``; the best rate counts.

Usage: python benchmarks/matmul_peak.py [--device auto] [--threads 0] [--sizes 256,512,1024,2048]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, sizes: list[int], seconds: float = 0.5) -> dict:
    """Return {"peak_flops": best rate, "by_size": {n: rate}} for float32 matmuls on ``device``."""
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        for _ in range(3):
            torch.mm(a, b)
        _sync(device)
        reps, elapsed = 1, 0.0
        while elapsed < seconds:
            reps *= 2
            _sync(device)
            tic = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            _sync(device)
            elapsed = time.perf_counter() - tic
        rates[n] = 2 * n**3 * reps / elapsed
    return {"peak_flops": max(rates.values()), "by_size": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sizes", default="256,512,1024,2048")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 proper, not TF32
    res = matmul_peak(device, [int(s) for s in args.sizes.split(",")])
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                      "peak_gflops": res["peak_flops"] / 1e9,
                      "by_size_gflops": {n: r / 1e9 for n, r in res["by_size"].items()}}))


if __name__ == "__main__":
    main()
