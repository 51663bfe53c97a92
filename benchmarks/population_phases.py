"""Where a population's wall time goes outside its steps: building the members, starting their run folders,
the per-member work at each epoch's end, and writing each member's folder at the end.

Workload: ``population.py``'s sweep (MNIST-1D, an MLP, one-cycle, no report, no pre-flight, no monitor), with a
narrow hidden layer by default so that the steps are cheap and the bookkeeping shows. Prints the phases of
``fit_population`` by wall clock, and the end-of-epoch work (``Trainer._end_epoch``: each member's metrics lines,
best-weight copy and stopping criteria) per member and epoch, over the epochs other than the first and the last
(those create and finish the files).

A/B against other code: run it alternately with that code's ``src`` first on ``PYTHONPATH``.

Usage: python benchmarks/population_phases.py [--members 256] [--epochs 12] [--hidden 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from population import _configs  # noqa: E402  (the same sweep as population.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--hidden", default="8")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.epochs < 3:
        raise SystemExit("population_phases: --epochs must be at least 3 (the first and last epochs are left out)")
    torch.set_num_threads(args.threads)
    import trainwell.pipeline.population as pop
    from trainwell.train import trainer as trainer_mod

    order = ("build members", "start run folders", "train (fit)", "  of which the steps", "  of which epoch ends",
             "  of which epoch ends (steady)", "write members' folders",
             "  of which write_run (summary, doctor, summary.json)")
    spent: Counter = Counter(dict.fromkeys(order, 0.0))  # printed in this order

    def timed(owner, name: str, label: str, when=lambda *a: True) -> None:
        original = getattr(owner, name)

        def wrapper(*a, **k):
            tic = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                if when(*a):
                    spent[label] += time.perf_counter() - tic
        setattr(owner, name, wrapper)

    for name, label in (("_build", "build members"), ("_start_run", "start run folders"), ("_train", "train (fit)"),
                        ("_write_members", "write members' folders")):
        timed(pop, name, label)
    timed(pop, "write_run", "  of which write_run (summary, doctor, summary.json)")
    timed(trainer_mod.Trainer, "_train_epoch", "  of which the steps")
    timed(trainer_mod.Trainer, "_end_epoch", "  of which epoch ends")
    timed(trainer_mod.Trainer, "_end_epoch", "  of which epoch ends (steady)",
          when=lambda self, epoch, *a: 1 <= epoch < args.epochs - 1)
    configs = _configs(args.members, args.epochs, args.hidden, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        pop.fit_population(configs[:4], out=f"{tmp}/warm-up")
        for label in spent:  # zeroed, not cleared: the order stays
            spent[label] = 0.0
        tic = time.perf_counter()
        pop.fit_population(configs, out=f"{tmp}/population")
        wall = time.perf_counter() - tic
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"{args.members} members, {args.epochs} epochs, hidden [{args.hidden}]")
    print(f"fit_population wall {wall:.2f} s")
    for label, seconds in spent.items():
        print(f"  {label}: {seconds:.2f} s")
    steady = spent["  of which epoch ends (steady)"] / (args.members * (args.epochs - 2))
    print(f"end-of-epoch work per member and epoch: {1e6 * steady:.0f} us")


if __name__ == "__main__":
    main()
