"""Fixed cost of one `fit` (everything but the training loop) with the report off.

Runs ``--runs`` short fits in one process (after one warm-up) and reports the median of: the whole call, the
training loop (`fit_s`), the final evaluation of the three splits (timed separately on the trained model), and
what remains: data, model, run directory, checkpoints' fsyncs, summary, doctor post-flight. Target (issue 11):
remaining <= 0.05 s with `report.enabled = false` (no figures unless the report or --figures asks).

Usage: python benchmarks/fixed_cost.py [--runs 7] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from trainwell.config import load_config
from trainwell.pipeline import fit

BASE = ["data.name=mnist1d", "model.kind=mlp", "model.hidden=[100,100]", "train.epochs=1", "report.enabled=false",
        "doctor.preflight=false", "doctor.monitor_every=0", "train.device=cpu"]


def final_eval_s(model: torch.nn.Module, cfg) -> float:
    from trainwell.pipeline import load_data
    from trainwell.train.trainer import evaluate, loss_function

    splits, _ = load_data(cfg)
    tic = time.perf_counter()
    for x, y in (splits.train, splits.val, splits.test):
        evaluate(model, x, y, loss_function(cfg.train.loss))
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = load_config(None, BASE + args.overrides)
    walls, loops, evals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        fit(cfg, out=f"{tmp}/warm", quiet=True)
        for i in range(args.runs):
            tic = time.perf_counter()
            res = fit(cfg, out=f"{tmp}/r{i}", quiet=True)
            walls.append(time.perf_counter() - tic)
            loops.append(res.summary["fit_s"])
            evals.append(final_eval_s(res.model, cfg))
    rest = [w - f - e for w, f, e in zip(walls, loops, evals, strict=True)]
    print(f"torch threads {torch.get_num_threads()}; median over {args.runs} fits: "
          f"whole {statistics.median(walls):.3f} s, loop {statistics.median(loops):.3f} s, "
          f"final evaluation {statistics.median(evals):.3f} s, "
          f"fixed cost {statistics.median(rest):.3f} s (target <= 0.05 s)")


if __name__ == "__main__":
    main()
