"""A fast drop, then a plateau, under ``doctor.watch``: "high" only with update/weight ratios above 1e-2."""

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.plateau_steps import plateau_at_healthy_steps
from trainwell.doctor.verdict import Verdict

CURVE = "learning rate (loss curve)"
HIGH = ("high: fast drop, then a plateau; start 0.236 -> end 0.131 (45% drop, the loss was lower at mid-run (0.126) "
        "than at the end); noise 10% of the loss level")


class _Watched:
    """What the reading takes from a watch: the monitor's records of update/weight ratios."""

    def __init__(self, ratio: float):
        self.monitor = type("M", (), {"records": [{"update_ratio": {"0.weight": ratio, "2.weight": ratio}}]})()


def _high() -> Verdict:
    return Verdict(CURVE, "warn", HIGH, "a steady decrease to a low value", "lower the learning rate")


def test_plateau_with_healthy_steps_is_information():
    v = plateau_at_healthy_steps(_Watched(3e-3), _high())
    assert v.status == "info" and str(v.value).startswith("levelled off") and "update/weight 0.003" in str(v.value)


def test_plateau_with_large_steps_stays_high():
    v = plateau_at_healthy_steps(_Watched(3e-2), _high())
    assert v.status == "warn" and str(v.value).startswith("high") and "update/weight 0.03" in str(v.value)


def _quantile_loop(lr: float):
    """A user's quantile regressor (pinball loss over 3 quantiles) on targets of heteroscedastic noise."""
    torch.manual_seed(0)
    n = 1024
    x = torch.rand(n, 1) * 4 - 2
    y = torch.sin(x) + (0.2 + 0.3 * x.abs()) * torch.randn(n, 1)
    qs = torch.tensor([0.1, 0.5, 0.9])

    def pinball(pred, target):
        e = target - pred
        return torch.maximum(qs * e, (qs - 1) * e).mean()

    model = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(6):
            for i in torch.randperm(n).split(64):
                loss = pinball(model(x[i]), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i])
    return next(v for v in w.report().verdicts if v.check == CURVE)


@pytest.fixture(scope="module")
def curves():
    return {"healthy": _quantile_loop(3e-3), "large": _quantile_loop(3e-2)}


@pytest.mark.slow
def test_quantile_regression_at_its_floor_is_not_told_to_lower_the_rate(curves):
    # a 3x lower rate ends at the same loss: the plateau is the pinball loss of the targets' spread
    v = curves["healthy"]
    assert v.status == "info" and str(v.value).startswith("levelled off"), v.value


@pytest.mark.slow
def test_quantile_regression_with_large_steps_is_still_named(curves):
    v = curves["large"]
    assert v.status == "warn" and str(v.value).startswith("high: fast drop, then a plateau"), v.value
