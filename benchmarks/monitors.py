"""Doctor monitor overhead: `trainwell fit` with the in-flight monitors at their default cadence vs without.

Both sides train the default MNIST-1D CNN with the same config and seed (pre-flight off on both, so only the
monitors differ); runs are interleaved and the ratio of the medians of Trainer.fit's wall time is reported.

Usage: python benchmarks/monitors.py [--epochs 20] [--reps 5] [--every 50]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile

import torch

from trainwell.config import load_config
from trainwell.pipeline import fit


def timed_fit(overrides: list[str]) -> float:
    cfg = load_config(None, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        return fit(cfg, out=f"{tmp}/run", quiet=True).summary["fit_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--every", type=int, default=50, help="monitor cadence in steps (the default is 50)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    args = parser.parse_args()
    base = [f"train.epochs={args.epochs}", f"train.device={args.device}", "doctor.preflight=false",
            "report.enabled=false"]
    off, on = base + ["doctor.monitor_every=0"], base + [f"doctor.monitor_every={args.every}"]
    timed_fit(off)  # warm-up
    without, with_ = [], []
    for rep in range(args.reps):
        without.append(timed_fit(off))
        with_.append(timed_fit(on))
        print(f"rep {rep}: no monitors {without[-1]:.3f} s, monitors every {args.every} {with_[-1]:.3f} s", flush=True)
    a, b = statistics.median(without), statistics.median(with_)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"median without {a:.3f} s | with {b:.3f} s | ratio {b / a:.3f} | overhead {100 * (b / a - 1):+.1f}% "
          f"(target <= +10%)")


if __name__ == "__main__":
    main()
