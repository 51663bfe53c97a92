"""Calibrate the learning-rate diagnosis: plain SGD on spirals (2-64-64-3 ReLU MLP, He init) over learning rates
1e-3..30, batch sizes 8, 32 and full, seeds 0-2, plus dead-ReLU networks; print the verdict of every curve.

    OMP_NUM_THREADS=1 python benchmarks/lr_calibration.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import init
from trainwell.data import load
from trainwell.doctor.diagnosis import learning_rate_diagnosis


def curve(x, y, lr: float, batch_size: int, seed: int, epochs: int, dead: bool = False) -> list[float]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    init.apply(model, "he_normal", generator=torch.Generator().manual_seed(seed))
    if dead:
        with torch.no_grad():
            model[0].bias.fill_(-100.0)
    opt, g, losses = torch.optim.SGD(model.parameters(), lr), torch.Generator().manual_seed(seed), []
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            loss = F.cross_entropy(model(x[perm[i : i + batch_size]]), y[perm[i : i + batch_size]])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


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
