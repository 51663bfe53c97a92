"""torch's fused optimizers against its for-loop and multi-tensor ones, on a full training step (CPU time).

``trainwell.optim.build_optimizer`` uses ``fused=True`` where torch has it (Adam, AdamW, SGD, Adagrad). This
times one training step (forward, cross-entropy, backward, update) of a small MLP on MNIST-1D-shaped data and of
the default MNIST-1D CNN with each implementation of Adam, interleaved, medians of ``--reps`` blocks.

Usage: python benchmarks/fused_optim.py [--reps 5] [--steps 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    from trainwell.config import Config
    from trainwell.pipeline import prepare

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(40, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    return {"MLP 40-300-100-10": (mlp, (40,)), "default CNN": (prepare(Config()).model, (1, 40))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kinds = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    for name, (model, shape) in _models().items():
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(4000, *shape, generator=g), torch.randint(0, 10, (4000,), generator=g)
        opts = {k: torch.optim.Adam(model.parameters(), lr=1e-3, **kw) for k, kw in kinds.items()}

        def block(opt, model=model, x=x, y=y, g=g) -> float:
            tic = time.process_time()
            for _ in range(args.steps):
                idx = torch.randint(0, len(x), (100,), generator=g)
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
            return (time.process_time() - tic) / args.steps * 1e3

        for opt in opts.values():
            block(opt)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in opts}
        for _ in range(args.reps):
            for k, opt in opts.items():
                times[k].append(block(opt))
        med = {k: statistics.median(v) for k, v in times.items()}
        cells = ", ".join(f"{k} {v:.3f} ms ({med['for-loop'] / v:.2f}x)" for k, v in med.items())
        print(f"{name}: step, median of {args.reps}: {cells}", flush=True)


if __name__ == "__main__":
    main()
