"""``StepLR(step_size=2, gamma=10)`` written to divide the rate by 10: torch multiplies the rate by gamma at every
milestone, so it grows 10x each time. Watch names the gamma (not a per-batch schedule stepped per epoch, which a
rate rising in jumps would otherwise suggest); gamma=0.1 passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.growing_gamma import growing_gamma

NAME = "loop: learning rate applied"


def _data(n=128):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(3, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _train(gamma: float, make=None):
    """The user's loop: 6 epochs of 4 batches, a StepLR(step_size=2) (or ``make(opt)``'s) stepped after every
    epoch."""
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    sched = make(opt) if make else torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=gamma)
    rates = []
    with doctor.watch(model, opt, every=2) as w:
        for _ in range(6):
            for step in range(4):
                xb, yb = x[32 * step : 32 * step + 32], y[32 * step : 32 * step + 32]
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                rates.append(opt.param_groups[0]["lr"])
                opt.step()
                w.step(loss, y=yb)
            sched.step()
    return next(v for v in w.report().verdicts if v.check == NAME), rates


def test_a_step_lr_with_gamma_10_is_named_with_the_gamma_meant():
    verdict, rates = _train(10.0)
    assert rates[-1] == pytest.approx(100 * rates[0])  # the oracle: torch's own rates grew 100x
    assert verdict.status == "warn" and "StepLR(gamma=10) multiplies the rate by 10" in verdict.value
    assert "gamma=0.1 divides it by 10" in verdict.advice
    assert "every 2 calls of scheduler.step() (step_size=2)" in verdict.value


def test_a_range_tests_exponential_ramp_is_not_named():
    # ExponentialLR(gamma=1.1): the growing rate of a learning-rate range test, meant
    verdict, rates = _train(0.0, lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=1.1))
    assert rates[-1] == pytest.approx(1.1 ** 5 * rates[0])
    assert "gamma" not in verdict.value


def test_a_decay_passes():
    verdict, rates = _train(0.1)
    assert rates[-1] < rates[0] and "gamma" not in verdict.value


def test_a_growing_gamma_on_another_optimizer_or_with_no_rise_is_not_read():
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=2.0)
    assert growing_gamma([(sched, 3)], [opt], [0.1, 0.2, 0.4]) is not None
    assert growing_gamma([(sched, 3)], [], [0.1, 0.2, 0.4]) is None
    assert growing_gamma([(sched, 3)], [opt], [0.1, 0.1, 0.1]) is None
