"""A watched loop's report points the learning rate one way: a monitor that saw units die (steps too large) and a
loss curve that reads "too low" (a slow decrease, measured towards 0) do not give "lower" and "raise" together."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

RAISE, LOWER = "raise the learning rate", "lower the learning rate"
LR_SLOW = 5e-4


def _slow_run(dead: bool, lr: float = 2e-3):
    """A regression learned at a small rate (a slow, near-linear decrease); ``dead``: half of the hidden ReLUs
    start with a bias of -50, so they never fire (what a too-large step leaves behind)."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
    if dead:
        with torch.no_grad():
            model[0].bias[:40] = -50.0
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(200):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()


def _advice(report):
    return " ".join(v.advice or "" for v in report.verdicts if v.status in ("warn", "fail"))


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_dead_units_and_a_slow_curve_do_not_give_opposite_learning_rate_advice():
    report = _slow_run(dead=True)
    assert report["monitor: dead ReLUs"].status == "warn" and LOWER in report["monitor: dead ReLUs"].advice
    curve = report["learning rate (loss curve)"]
    assert curve.value.startswith("too low") and curve.status == "info" and "monitor: dead ReLUs" in curve.value
    assert RAISE not in _advice(report)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_slow_curve_without_dead_units_still_says_raise_the_rate():
    report = _slow_run(dead=False, lr=LR_SLOW)
    curve = report["learning rate (loss curve)"]
    assert curve.status == "warn" and curve.value.startswith("too low") and RAISE in curve.advice
    assert LOWER not in _advice(report)
