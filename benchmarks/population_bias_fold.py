"""A population step with each layer's bias folded into its GEMM, against the written-out step in use.

Folded: a layer's weight and bias are one (M, N, K + 1) tensor, and each activation lives in an (M, N + 1, B)
buffer whose last row is ones (the ReLU written into its first N rows), so every GEMM adds the bias itself (no
broadcast copy of the bias before a beta = 1 GEMM) and the weight gradient's GEMM gives the bias gradient too (no
sum over the batch). In use (:func:`trainwell.train.population_mlp.mlp_cross_entropy_step`): ``addmm``/``baddbmm``
with the bias, and a sum for its gradient. Members share the batch (the wide first-layer GEMM).

The prototype is checked against the step in use (losses and every gradient within 1e-5) before timing; blocks of
20 steps alternate, CPU time at one thread, median of ``--reps``. Then the operators that differ, alone.

Usage: OMP_NUM_THREADS=1 python benchmarks/population_bias_fold.py [--members 64] [--reps 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from trainwell.train.population_mlp import mlp_cross_entropy_step, mlp_plan

SIZES, B = [40, 100, 100, 10], 100


def _block(fn, n: int = 20) -> float:
    tic = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - tic) / n


class Folded:
    """The written-out cross-entropy step of a shared-batch MLP population with folded biases."""

    def __init__(self, plan, params: dict[str, torch.Tensor], m: int):
        self.plan, self.m = plan, m
        self.weights = [torch.cat([params[w], params[b].unsqueeze(2)], 2).contiguous() for w, b, *_ in plan]
        self.buffers = [torch.ones(m, n + 1, B) for _, _, _, n, _ in plan[:-1]]  # the ones row kept between steps

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        m, plan = self.m, self.plan
        xa = torch.cat([x, torch.ones(len(x), 1)], 1)
        n0 = plan[0][3]
        z = self.weights[0].view(m * n0, -1).mm(xa.t()).view(m, n0, -1)
        inputs = [xa.t()]
        for i in range(1, len(plan) + 1):
            if i < len(plan):
                torch.clamp_min(z, 0, out=self.buffers[i - 1][:, :plan[i - 1][3]])  # the ReLU into the buffer
                inputs.append(self.buffers[i - 1])
                z = self.weights[i].bmm(self.buffers[i - 1])
        yy = y.expand(m, len(y))
        logp = torch.log_softmax(z, dim=1)
        losses = nn.functional.nll_loss(logp, yy, reduction="none").mean(1)
        g = torch.zeros_like(logp).scatter_(1, yy.unsqueeze(1), -1.0 / len(y))
        dz = torch._log_softmax_backward_data(g, logp, 1, logp.dtype)
        grads: list[torch.Tensor] = [dz] * len(plan)
        for i in range(len(plan) - 1, -1, -1):
            k, n = plan[i][2], plan[i][3]
            if i == 0:
                grads[0] = dz.reshape(m * n, -1).mm(xa).view(m, n, k + 1)
            else:
                grads[i] = dz.bmm(inputs[i].transpose(1, 2))
                back = self.weights[i][:, :, :k].transpose(1, 2).bmm(dz)
                dz = torch.ops.aten.threshold_backward(back, inputs[i][:, :k], 0)
        return losses, grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    m = args.members
    layers: list[nn.Module] = []
    for a, b in zip(SIZES, SIZES[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    plan = mlp_plan(nn.Sequential(*layers[:-1]))
    g = torch.Generator().manual_seed(0)
    params = {}
    for w, b, k, n, _ in plan:
        params[w], params[b] = torch.randn(m, n, k, generator=g) / k**0.5, 0.1 * torch.randn(m, n, generator=g)
    x, y = torch.randn(B, SIZES[0], generator=g), torch.randint(0, SIZES[-1], (B,), generator=g)
    folded = Folded(plan, params, m)

    losses, _ = mlp_cross_entropy_step(plan, params, x, y, True)
    folded_losses, grads = folded.step(x, y)
    torch.testing.assert_close(folded_losses, losses, atol=1e-5, rtol=1e-5)
    for (w, b, k, *_), grad in zip(plan, grads, strict=True):
        torch.testing.assert_close(grad[:, :, :k], params[w].grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grad[:, :, k], params[b].grad, atol=1e-5, rtol=1e-5)

    def current():
        mlp_cross_entropy_step(plan, params, x, y, True)

    def fold():
        folded.step(x, y)

    _block(current, 5), _block(fold, 5)
    now, new = [], []
    for _ in range(args.reps):
        now.append(_block(current))
        new.append(_block(fold))
    flop = 6 * sum(a * b for a, b in zip(SIZES, SIZES[1:], strict=False)) * B * m
    a, b = statistics.median(now), statistics.median(new)
    print(f"torch {torch.__version__}, 1 thread, {m} members sharing batches of {B}, MLP {SIZES}")
    print(f"in use {1e3 * a:.2f} ms ({flop / a / 1e9:.1f} GFLOP/s), folded {1e3 * b:.2f} ms "
          f"({flop / b / 1e9:.1f} GFLOP/s): folded runs at {a / b:.2f}x the speed")

    w, h = folded.weights[1], folded.buffers[0]
    wc, hc, bias = w[:, :, :-1].contiguous(), h[:, :-1].contiguous(), w[:, :, -1:].contiguous()
    ops = {"forward GEMM, in use: baddbmm(bias, W, h)": lambda: torch.baddbmm(bias, wc, hc),
           "forward GEMM, folded: W' @ h'": lambda: w.bmm(h),
           "weight gradient, in use: dz @ h^T and the bias sum": lambda: (hc.bmm(hc.transpose(1, 2)), hc.sum(2)),
           "weight gradient, folded: dz @ h'^T": lambda: hc.bmm(h.transpose(1, 2))}
    for name, fn in ops.items():
        fn()
        print(f"  {name}: {1e3 * statistics.median(_block(fn, 10) for _ in range(5)):.2f} ms")


if __name__ == "__main__":
    main()
