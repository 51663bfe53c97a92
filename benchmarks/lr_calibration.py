"""Calibrate the learning-rate diagnosis: plain SGD on spirals (2-64-64-3 ReLU MLP, He init) over learning rates
1e-3..30, batch sizes 8, 32 and full, seeds 0-2, plus dead-ReLU networks; print the verdict of every curve.

    OMP_NUM_THREADS=1 python benchmarks/lr_calibration.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainwell.data import load
from trainwell.doctor.diagnosis import learning_rate_diagnosis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for the tests' fixtures
from tests.doctor_fixtures import sgd_curve as curve  # noqa: E402  (the regression tests read the same curves)


def main() -> None:
    x, y = load("spirals", n_per_class=100).train
    rows = [(lr, bs, False) for lr in (0.001, 0.003, 0.03, 0.3, 1.0, 3.0, 30.0) for bs in (8, 32, 10_000)]
    rows += [(0.1, bs, True) for bs in (32, 10_000)]
    print("| lr | batch | seed 0 | seed 1 | seed 2 |\n|---|---|---|---|---|")
    for lr, bs, dead in rows:
        epochs = 40 if bs < 1000 else 300
        labels = [learning_rate_diagnosis(curve(x, y, lr, bs, s, epochs, dead)).value.split(":")[0]
                  for s in range(3)]
        name = f"{'dead net, ' if dead else ''}{lr:g}"
        print(f"| {name} | {'full' if bs > len(x) else bs} | " + " | ".join(labels) + " |")


if __name__ == "__main__":
    main()
