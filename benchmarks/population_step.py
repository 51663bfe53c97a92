"""The population step alone, in CPU time: one model's training step (what a separate `fit` runs: an
``nn.Module``, ``torch.optim.Adam``, cross-entropy, backward) against population steps of M members drawing their
own batches or the same batches, and the achieved FLOP/s against the float32 ``mm`` peak measured in the same
process with the same clock.

The clock is this process's CPU time (``time.process_time``) at one thread, so that time the process spends
waiting for a core on a shared machine does not count; the cases are interleaved and each reports the median of
``--reps`` blocks. FLOPs per member-step: 6 x multiply-adds per example x batch (the usual 2 forward + 4 backward;
the first layer's input gradient, which no side computes, is counted too, as in benchmarks/population.py).

Usage: python benchmarks/population_step.py [--members 16,64] [--hidden 100,100] [--reps 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from heap_option import add_heap_option, apply_heap_option
from torch import nn


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _block(fn, n: int) -> float:
    tic = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - tic) / n


def peak(n: int = 512, reps: int = 5) -> float:
    """Best float32 ``mm`` rate (FLOP/s of CPU time) at n x n x n."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return max(2 * n**3 / _block(lambda: torch.mm(a, b), 20) for _ in range(reps))


def cases(sizes: list[int], members: list[int], batch: int = 100) -> dict:
    from trainwell.train.population import PopulationLearner

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4000, sizes[0], generator=g), torch.randint(0, sizes[-1], (4000,), generator=g)
    model = _mlp(sizes)
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()

    def single():
        idx = torch.randint(0, len(x), (batch,), generator=g)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()

    out = {"one model (fit's step)": (single, 1)}
    for m in members:
        states = []
        for s in range(m):
            torch.manual_seed(s)
            states.append(_mlp(sizes).state_dict())
        for shared in (False, True):
            learner = PopulationLearner(_mlp(sizes), states, optimizer="adam", lrs=[1e-3] * m,
                                        weight_decays=[0.0] * m)

            def step(learner=learner, m=m, shared=shared):
                idx = torch.randint(0, len(x), (m, batch), generator=g)
                learner.train_step(x, y, idx[:1].expand(m, batch) if shared else idx)

            out[f"population {m}, {'same' if shared else 'own'} batches"] = (step, m)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="16,64")
    parser.add_argument("--hidden", default="100,100")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    add_heap_option(parser)
    args = parser.parse_args()
    apply_heap_option(args)
    torch.set_num_threads(args.threads)
    sizes = [40, *[int(h) for h in args.hidden.split(",")], 10]
    flop = 6 * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False)) * 100
    todo = cases(sizes, [int(m) for m in args.members.split(",")])
    times: dict[str, list[float]] = {k: [] for k in todo}
    peaks = []
    for fn, _ in todo.values():
        _block(fn, 3)
    for _ in range(args.reps):
        peaks.append(peak())
        for name, (fn, m) in todo.items():
            times[name].append(_block(fn, 100 if m == 1 else max(3, 160 // m)) / m)
    top = max(peaks)
    base = statistics.median(times["one model (fit's step)"])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32 mm peak {top / 1e9:.1f} GFLOP/s "
          f"(CPU time; best of {args.reps})")
    print("| case | CPU ms per member-step | GFLOP/s | % of peak | per-member speed-up vs one model |")
    print("|---|---|---|---|---|")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name} | {1e3 * t:.3f} | {flop / t / 1e9:.1f} | {100 * flop / t / top:.0f}% | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
