"""A linear decay written as ``LambdaLR(opt, lambda s: 1 - s / n)`` stepped after every batch, with ``n`` the
batches of one epoch: past ``n`` the factor is negative and every later step climbs the gradient. Watch names the
rate below 0 (not only a rate that collapsed); the same decay sized for the whole run passes."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: learning rate applied"


def _blobs(n=256):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _train(decay_over: str):
    torch.manual_seed(0)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    per_epoch, epochs = len(x) // 32, 3
    n = per_epoch if decay_over == "epoch" else per_epoch * epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / n)
    rates = []
    with doctor.watch(model, opt, every=2) as w:
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), 32):
                batch = order[i : i + 32]
                loss = F.cross_entropy(model(x[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                rates.append(opt.param_groups[0]["lr"])
                opt.step()
                schedule.step()
                w.step(loss, y=y[batch])
    return next(v for v in w.report().verdicts if v.check == NAME), rates


def test_a_decay_sized_for_one_epoch_that_goes_negative_is_named():
    verdict, rates = _train("epoch")
    first = next(i for i, r in enumerate(rates) if r < 0)  # the oracle: torch's own rates
    assert verdict.status == "warn"
    assert f"went below 0 at step {first + 1} of {len(rates)}" in verdict.value
    assert "max(0.0, 1 - step / n)" in verdict.advice


def test_the_decay_sized_for_the_run_passes():
    verdict, rates = _train("run")
    assert min(rates) >= 0 and verdict.status == "pass"
