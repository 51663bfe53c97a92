"""A population's update through torch's fused kernels against its per-member tensor path (CPU time).

``trainwell.train.member_optim.PopulationOptimizer`` updates Adam, SGD and momentum populations with
``torch._fused_adam_`` / ``torch._fused_sgd_``, once per run of members that share a step count and momentum;
members at their own learning rates take the kernel's step at rate 1 and then ``p += lr * step``. With more runs
than half the members it keeps the per-member tensor path (about ten passes over the stacked parameters for Adam,
four to five for momentum). This times one update (gradients copied in, then ``step``) of the MNIST-1D MLP
[100, 100] stacked over ``--members`` members, for 1 run at one rate, 1 run at M rates, and k runs (members frozen
between them), fused and per-member, interleaved, medians of ``--reps`` blocks.

Usage: python benchmarks/population_optim.py [--members 16,64] [--reps 5] [--steps 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainwell.train.member_optim import PopulationOptimizer

SHAPES = [(100, 40), (100,), (100, 100), (100,), (10, 100), (10,)]  # MNIST-1D MLP [100, 100]


def _case(m: int, name: str, rates: str, runs: int, fused: bool, steps: int):
    """A block of ``steps`` updates; returns ms per update."""
    g = torch.Generator().manual_seed(0)
    params = {str(i): torch.randn(m, *s, generator=g) for i, s in enumerate(SHAPES)}
    grads = [torch.randn(m, *s, generator=g) for s in SHAPES]
    lrs = torch.full((m,), 1e-3) if rates == "one" else torch.linspace(1e-3, 1e-2, m)
    opt = PopulationOptimizer(params, name, lrs, torch.zeros(m))
    for k in range(1, runs):  # k - 1 frozen members split the others into k runs
        opt.freeze(k * m // runs)
    if not fused:
        opt._fused = lambda *a: False

    def block() -> float:
        tic = time.process_time()
        for _ in range(steps):
            for p, gr in zip(params.values(), grads, strict=True):
                p.grad = gr.clone()
            opt.step()
        return (time.process_time() - tic) / steps * 1e3
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="16,64")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| optimizer | members | rates | runs | per-member path (ms) | fused (ms) | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for m in (int(v) for v in args.members.split(",")):
        for name in ("adam", "momentum"):
            for rates, runs in (("one", 1), ("own", 1), ("own", max(2, m // 8)), ("own", m // 2)):
                blocks = {f: _case(m, name, rates, runs, f, args.steps) for f in (False, True)}
                for b in blocks.values():
                    b()  # warm-up
                times: dict[bool, list[float]] = {f: [] for f in blocks}
                for _ in range(args.reps):
                    for f, b in blocks.items():
                        times[f].append(b())
                slow, fast = (statistics.median(times[f]) for f in (False, True))
                print(f"| {name} | {m} | {rates} | {runs} | {slow:.3f} | {fast:.3f} | {slow / fast:.2f}x |",
                      flush=True)


if __name__ == "__main__":
    main()
