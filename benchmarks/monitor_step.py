"""The monitor's snapshot cost: one observed training step of the default CNN against a plain one.

A snapshot (``doctor.monitor_every`` steps apart, 50 by default) arms the monitor after a step (a copy of the
weights, forward hooks), runs the next step with its hooks (activation statistics and histograms in the forward,
gradient statistics in the backward) and records it (norms, update ratios, one JSON line). This times the three
parts against plain steps of the same model, batch and optimizer, interleaved, on the process's CPU time, and
prints the snapshot's extra cost and what it adds to the loop at the given cadence.

Usage: python benchmarks/monitor_step.py [--steps 60] [--every 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from trainwell import optim
from trainwell.config import load_config
from trainwell.doctor.monitors import Monitor
from trainwell.pipeline import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="observed and plain steps timed (each)")
    parser.add_argument("--every", type=int, default=50, help="the cadence the loop's share is computed for")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prep = prepare(load_config(None, ["train.device=cpu"]))
    model = prep.model
    x, y = prep.splits.train
    xb, yb = x[:100], y[:100]
    opt = optim.build_optimizer(model, "adam", lr=1e-3)

    def step():
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    clock = time.process_time
    times = {"plain step": [], "arm": [], "observed step": [], "record": []}
    with tempfile.TemporaryDirectory() as tmp:
        mon = Monitor(every=1, path=Path(tmp) / "monitors.jsonl")
        state = SimpleNamespace(model=model, optimizer=opt, step=0, epoch=0, batch_loss=None)
        mon.on_fit_start(state)
        for i in range(args.steps + 5):  # the first 5 rounds warm up
            tic = clock()
            step()
            t_plain = clock() - tic
            state.step = 0  # (step + 1) % every == 0: the monitor arms
            tic = clock()
            mon.on_batch_end(state)  # arms: copies the weights, installs the hooks
            t_arm = clock() - tic
            tic = clock()
            state.batch_loss = step()
            t_obs = clock() - tic
            state.step = 1
            mon.every = 10**9  # record without arming again
            tic = clock()
            mon.on_batch_end(state)  # removes the hooks, records
            t_rec = clock() - tic
            mon.every = 1
            if i >= 5:
                for k, v in zip(times, (t_plain, t_arm, t_obs, t_rec), strict=True):
                    times[k].append(1e3 * v)
    med = {k: statistics.median(v) for k, v in times.items()}
    extra = med["arm"] + med["observed step"] - med["plain step"] + med["record"]
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, {args.steps} rounds, CPU time")
    for k, v in med.items():
        print(f"  {k:14s} {v:7.3f} ms")
    print(f"snapshot extra {extra:.3f} ms = {extra / med['plain step']:.2f} plain steps; at one snapshot every "
          f"{args.every} steps the loop pays {100 * extra / (args.every * med['plain step']):+.2f}%")


if __name__ == "__main__":
    main()
