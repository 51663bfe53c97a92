"""The population step alone on a GPU: M MNIST-1D-sized MLPs ([40, 100, 100, 10], batch 100, Adam at per-member
rates) stepped back to back, with the step captured as a CUDA graph (``train.cuda_graph``, the default) or eager,
members drawing their own batches or the same ones. Reports member-steps per second over the wall clock (the
device synchronized before and after), the device's own time per step (CUDA events), and the achieved FLOP/s
against the float32 ``torch.mm`` peak measured in the same process (TF32 off on both sides).

FLOPs per member-step: 6 x multiply-adds per example x batch (as in benchmarks/population.py). The training loop
around the step (epochs, validation, each member's files) is benchmarks/population.py's measurement; this one is
the step's own ceiling.

Usage: python benchmarks/population_step_cuda.py [--members 16,64,256] [--steps 300] [--hidden 100,100]
"""

from __future__ import annotations

import argparse
import time

import torch
from matmul_peak import matmul_peak
from population_step import _mlp

from trainwell.train.population import PopulationLearner


def run(members: int, sizes: list[int], shared: bool, graph: bool, steps: int, rows: int = 4000,
        batch: int = 100) -> dict:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    nets = [_mlp(sizes) for _ in range(members)]
    learner = PopulationLearner(nets[0], [n.state_dict() for n in nets], optimizer="adam",
                                lrs=[1e-3 * (1 + m / members) for m in range(members)],
                                weight_decays=[0.0] * members, device=dev, cuda_graph=graph,
                                shared_input=True if shared else False)
    x = torch.randn(rows, sizes[0], device=dev)
    y = torch.randint(0, sizes[-1], (rows,), device=dev)
    order = torch.stack([torch.randperm(rows) for _ in range(1 if shared else members)]).to(dev)
    order = order.expand(members, rows) if shared else order
    starts = [(i * batch) % (rows - batch + 1) for i in range(steps + 10)]
    for s in starts[:10]:  # warm-up: the eager steps, the capture
        learner.train_step(x, y, order[:, s : s + batch])
    torch.cuda.synchronize()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    tic = time.perf_counter()
    begin.record()
    for s in starts[10:]:
        learner.train_step(x, y, order[:, s : s + batch])
    end.record()
    torch.cuda.synchronize()
    wall = time.perf_counter() - tic
    return {"wall_per_step": wall / steps, "device_per_step": begin.elapsed_time(end) / 1e3 / steps,
            "replays": learner.captured.replays if learner.captured is not None else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="16,64,256")
    parser.add_argument("--hidden", default="100,100")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("population_step_cuda.py: no CUDA device here (it measures the captured step on a GPU)")
    torch.backends.cuda.matmul.allow_tf32 = False
    sizes = [40, *[int(h) for h in args.hidden.split(",")], 10]
    flop_member_step = 6 * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False)) * 100
    peak = matmul_peak(torch.device("cuda"), [1024, 2048, 4096])["peak_flops"]
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, float32 mm peak {peak / 1e12:.1f} TFLOP/s")
    print("| members | batches | step | wall us/step | device us/step | member-steps/s | TFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for m in (int(v) for v in args.members.split(",")):
        for shared in (False, True):
            for graph in (True, False):
                r = run(m, sizes, shared, graph, args.steps)
                rate = m / r["wall_per_step"]
                flops = rate * flop_member_step
                print(f"| {m} | {'shared' if shared else 'own'} | {'graph' if graph else 'eager'} "
                      f"({r['replays']} replays) | {1e6 * r['wall_per_step']:.0f} | "
                      f"{1e6 * r['device_per_step']:.0f} | {rate:,.0f} | {flops / 1e12:.2f} | "
                      f"{100 * flops / peak:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
