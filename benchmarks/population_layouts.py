"""The GEMM layouts of a population MLP layer, against one GEMM of the same FLOPs.

A population of M members of one MLP computes, per layer, M products (B x K) @ (K x N). The layouts timed here:

- ``one GEMM``: a single (B x K) @ (K x M*N) matmul, the same FLOPs; it is what members that share their input
  get for the first layer (their weights side by side), and the reference for the others;
- ``bmm``: ``torch.bmm`` of (M, B, K) by (M, K, N), both contiguous;
- ``bmm (strided)``: the same with the input a transposed view of a (B, M, K) tensor (the layout one wide GEMM
  leaves behind);
- ``einsum``: ``torch.einsum("mbk,mnk->mbn")`` with the weights stored (M, N, K) as ``nn.Linear`` stores them;
- ``feature-major``: ``torch.bmm`` of (M, N, K) weights by (M, K, B) activations, what the population uses
  (:mod:`trainwell.train.population_mlp`).

Each is timed forward and as forward + backward (inputs and weights requiring grad), median of ``--reps`` blocks
of ``--iters`` calls in this process's CPU time (time waiting for a core on a shared machine does not count),
all in one process, 1 thread by default; the peak is ``population_step.peak`` (512^3 ``mm``, same clock).

Usage: python benchmarks/population_layouts.py [--members 64] [--batch 100] [--sizes 40,100,100,10] [--reps 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from population_step import peak


def _time(fn, iters: int, reps: int) -> float:
    for _ in range(3):
        fn()
    out = []
    for _ in range(reps):
        tic = time.process_time()
        for _ in range(iters):
            fn()
        out.append((time.process_time() - tic) / iters)
    return statistics.median(out)


def layouts(m: int, b: int, k: int, n: int, backward: bool) -> dict:
    """Callables computing the M products of one layer in each layout (forward, or forward + backward)."""
    g = backward
    x_shared = torch.randn(b, k, requires_grad=g)
    w_wide = torch.randn(m * n, k, requires_grad=g)
    x_m = torch.randn(m, b, k, requires_grad=g)
    x_bm = torch.randn(b, m, k, requires_grad=g)
    w = torch.randn(m, n, k, requires_grad=g)
    x_km = torch.randn(m, k, b, requires_grad=g)
    grad_wide, grad_m = torch.randn(b, m * n), torch.randn(m, b, n)

    def run(f, grad):
        def call():
            out = f()
            if g:
                out.backward(grad)
        return call

    return {
        "one GEMM": run(lambda: x_shared @ w_wide.t(), grad_wide),
        "bmm": run(lambda: torch.bmm(x_m, w.transpose(1, 2)), grad_m),
        "bmm (strided)": run(lambda: torch.bmm(x_bm.transpose(0, 1), w.transpose(1, 2)), grad_m),
        "einsum": run(lambda: torch.einsum("mbk,mnk->mbn", x_m, w), grad_m),
        "feature-major": run(lambda: torch.bmm(w, x_km), grad_m.transpose(1, 2).contiguous()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--sizes", default="40,100,100,10")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    top = peak()
    print(f"threads {torch.get_num_threads()}, float32 mm peak {top / 1e9:.1f} GFLOP/s (CPU time), "
          f"members {args.members}, batch {args.batch}")
    print("| layer (K -> N) | pass | layout | ms | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|")
    sizes = [int(s) for s in args.sizes.split(",")]
    for k, n in zip(sizes, sizes[1:], strict=False):
        for backward in (False, True):
            flops = 2 * args.members * args.batch * k * n * (3 if backward else 1)
            for name, fn in layouts(args.members, args.batch, k, n, backward).items():
                s = _time(fn, args.iters, args.reps)
                print(f"| {k} -> {n} | {'fwd+bwd' if backward else 'fwd'} | {name} | {1e3 * s:.3f} | "
                      f"{flops / s / 1e9:.1f} | {100 * flops / s / top:.0f}% |", flush=True)


if __name__ == "__main__":
    main()
