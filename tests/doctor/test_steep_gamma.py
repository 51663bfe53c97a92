"""``ExponentialLR(gamma=0.1)`` stepped every epoch: the rate falls 10x each epoch and has collapsed below 1% of its
start by the third epoch. The collapse verdict names that scheduler's gamma in its advice, not ReduceLROnPlateau's
patience (which this loop has none of); a ReduceLROnPlateau that cut the rate as often keeps its own advice."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.growing_gamma import steep_gamma_advice

NAME = "loop: learning rate applied"


def _data(n=128):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(3, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _train(kind: str):
    """The user's loop: 8 epochs of 4 batches, its scheduler stepped after each epoch's validation."""
    torch.manual_seed(0)
    x, y = _data()
    xv, yv = _data(64)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.1) if kind == "exponential" else \
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0)
    rates = []
    with doctor.watch(model, opt, every=2) as w:
        for _ in range(8):
            model.train()
            for step in range(4):
                xb, yb = x[32 * step : 32 * step + 32], y[32 * step : 32 * step + 32]
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                rates.append(opt.param_groups[0]["lr"])
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                val = F.cross_entropy(model(xv), yv).item()
            w.validate(val)
            # mode="max" on a falling loss: no epoch improves on the first, every epoch cuts (patience 0)
            sched.step() if kind == "exponential" else sched.step(val)
    return next(v for v in w.report().verdicts if v.check == NAME), rates


def test_exponential_lr_gamma_0_1_per_epoch_is_named_with_its_gamma():
    verdict, rates = _train("exponential")
    assert rates[8] == pytest.approx(0.01 * rates[0])  # the oracle: torch's rate at epoch 3, 1% of the start
    assert verdict.status == "warn" and "cut only at the validations" in verdict.value
    assert "ExponentialLR(gamma=0.1) multiplies the rate by 0.1" in verdict.advice
    assert "patience" not in verdict.advice


def test_a_plateau_cut_keeps_its_patience_advice():
    verdict, rates = _train("plateau")
    assert rates[-1] < 0.01 * rates[0]
    assert verdict.status == "warn" and "patience" in verdict.advice and "gamma" not in verdict.advice


def test_a_gentle_or_unstepped_or_foreign_decay_gives_no_advice():
    opt, other = (torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1) for _ in range(2))
    gentle = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    steep = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    assert steep_gamma_advice([(gentle, 5)], [opt]) is None
    assert steep_gamma_advice([(steep, 1)], [opt]) is None
    assert steep_gamma_advice([(steep, 5)], [other]) is None
    assert "StepLR(gamma=0.1)" in steep_gamma_advice([(steep, 5)], [opt])
