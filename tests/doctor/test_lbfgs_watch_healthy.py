"""L-BFGS on a small full-batch regression: each ``opt.step(closure)`` runs up to ``max_iter`` iterations, and once
its tolerances are met it returns without moving any weight. Those steps are an optimizer that stopped itself, not
"updates are tiny: raise the learning rate". SGD at a rate far too low is still told to raise it."""

import pytest
import torch
from torch import nn

from trainwell import doctor


def _data():
    torch.manual_seed(0)
    x = torch.linspace(-3, 3, 200)[:, None]
    return x, torch.sin(x) + 0.05 * torch.randn_like(x)


def _model():
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


@pytest.fixture(scope="module")
def lbfgs_report():
    x, y = _data()
    model, loss_fn = _model(), nn.MSELoss()
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=20, history_size=10, line_search_fn="strong_wolfe")
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(12):
            def closure():
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                return loss
            loss = opt.step(closure)
            w.step(loss)
    return w


@pytest.mark.slow
def test_lbfgs_that_met_its_tolerance_is_not_told_to_raise_the_rate(lbfgs_report):
    assert lbfgs_report.losses[-1] < 0.01  # it fitted the curve, then stopped moving
    report = lbfgs_report.report()
    assert "monitor: update/weight ratio" not in report.checks, report["monitor: update/weight ratio"]


def test_sgd_at_a_rate_far_too_low_is_still_told_to_raise_it():
    x, y = _data()
    model, loss_fn = _model(), nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=1e-7)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(30):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    verdict = w.report()["monitor: update/weight ratio"]
    assert verdict.status == "warn" and "raise the learning rate" in verdict.advice
