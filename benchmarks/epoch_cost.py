"""The fit loop's cost per epoch when an epoch is one small step: what logging, checkpoints' best-weight copies and
the loop itself add to a short epoch, where they are not hidden behind the training.

Workload: the lab's pretraining setting (scikit-learn's digits, 29 labelled images, the rest held out and not
evaluated during training; an MLP [128, 64], Adam, batch 100: one optimizer step per epoch), with the lab's
settings (no pre-flight, no monitor, no report, checkpoints only at the end). The cost per epoch is
``(fit of E + 1 epochs - fit of 1 epoch) / E``, which removes each fit's fixed cost (data, model, run folder, final
evaluation), timed by CPU time (one torch thread). Each repetition prints its value; the median is reported.

A/B against other code: run it alternately with that code's ``src`` first on ``PYTHONPATH``.

Usage: python benchmarks/epoch_cost.py [--epochs 400] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

SETTINGS = ["data.name=digits", "data.val_fraction=0.98", "model.kind=mlp", "model.hidden=[128, 64]",
            "optim.name=adam", "optim.lr=0.001", "optim.schedule=none", "train.batch_size=100",
            "train.val_each_epoch=false", "stop.restore_best=false", "doctor.preflight=false",
            "doctor.monitor_every=0", "report.enabled=false", "train.checkpoint_every=1000000",
            "train.checkpoint_minutes=1000000.0"]


def _fit_seconds(epochs: int, out: str) -> float:
    from trainwell.config import load_config
    from trainwell.pipeline import fit

    cfg = load_config(None, [*SETTINGS, f"train.epochs={epochs}"])
    tic = time.process_time()
    fit(cfg, out=out, quiet=True)
    return time.process_time() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=400, help="epochs of the long fit, beyond the first")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import trainwell

    with tempfile.TemporaryDirectory() as tmp:
        _fit_seconds(3, f"{tmp}/warm-up")
        per_epoch = []
        for rep in range(args.reps):
            long = _fit_seconds(args.epochs + 1, f"{tmp}/long{rep}")
            short = _fit_seconds(1, f"{tmp}/short{rep}")
            per_epoch.append((long - short) / args.epochs * 1e3)
            print(f"rep {rep}: {per_epoch[-1]:.3f} ms per epoch")
    print(json.dumps({"trainwell": trainwell.__file__, "ms_per_epoch": per_epoch,
                      "median_ms": statistics.median(per_epoch)}))


if __name__ == "__main__":
    main()
