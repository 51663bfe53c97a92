"""Speedrun: the default `trainwell fit` recipe vs the MNIST-1D reference loop, over several seeds.

Reference (the MNIST-1D paper's notebook): a 3-layer 1-D CNN with 25 channels, Adam 1e-2, batch 100, 6000 steps,
written as a plain PyTorch loop (about 93-94% test accuracy). The recipe: `trainwell fit` with the default config
(plus any --set), timed around training (`fit_s`), doctor and report off. Target: >= 94% mean test accuracy over
the seeds in <= 0.25x the reference's wall time.

Usage: python benchmarks/speedrun.py [--seeds 5] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.config import load_config
from trainwell.data import load
from trainwell.pipeline import fit


def reference(seed: int, steps: int = 6000) -> tuple[float, float]:
    s = load("mnist1d", val_fraction=0.0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    (x, y), (xt, yt) = ((t.to(device) for t in pair) for pair in (s.train, s.test))
    torch.manual_seed(seed)
    ch = 25
    model = nn.Sequential(nn.Conv1d(1, ch, 5, 2, 1), nn.ReLU(), nn.Conv1d(ch, ch, 3, 2, 1), nn.ReLU(),
                          nn.Conv1d(ch, ch, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(ch * 5, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    tic = time.perf_counter()
    step = 0
    while step < steps:
        perm = torch.randperm(len(x), generator=g).to(device)
        for i in range(0, len(x) - 99, 100):
            idx = perm[i : i + 100]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    wall = time.perf_counter() - tic
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    return wall, acc


def recipe(seed: int, overrides: list[str]) -> tuple[float, float]:
    cfg = load_config(None, ["doctor.preflight=false", "doctor.monitor_every=0", "report.enabled=false",
                             f"train.seed={seed}", "train.device=auto", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        summary = fit(cfg, out=f"{tmp}/run", quiet=True).summary
    return summary["fit_s"], summary["final"]["test_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    ref, ours = [], []
    for seed in range(args.seeds):
        ref.append(reference(seed))
        ours.append(recipe(seed, args.overrides))
        print(f"seed {seed}: reference {ref[-1][0]:.2f} s {ref[-1][1]:.3f} | recipe {ours[-1][0]:.2f} s "
              f"{ours[-1][1]:.3f}", flush=True)
    rt, ra = statistics.mean(t for t, _ in ref), statistics.mean(a for _, a in ref)
    ot, oa = statistics.mean(t for t, _ in ours), statistics.mean(a for _, a in ours)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"reference: {ra:.2%} mean test acc, {rt:.2f} s | recipe {' '.join(args.overrides) or '(default)'}: "
          f"{oa:.2%}, {ot:.2f} s | time ratio {ot / rt:.3f} (targets: >= 94% and <= 0.25)")


if __name__ == "__main__":
    main()
