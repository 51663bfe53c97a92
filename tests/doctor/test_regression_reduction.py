"""A regression loss's reduction read from the loss's value against the gradient it sends to the outputs: a sum
(reduction='sum') is named, its gradient B x the mean's; a mean passes. Elements in Huber's linear zone, an L1
loss and Huber with another delta are read or left alone on the identities alone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.regression_reduction import reduction


class _Regressor(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, k))

    def forward(self, x):
        return self.body(x).squeeze(-1)


def _run(crit, k=1, lr=1e-3):
    torch.manual_seed(0)
    x = torch.randn(512, 6)
    y = (x @ torch.randn(6, k)).squeeze(-1) + 3 * (torch.rand(512, k).squeeze(-1) < 0.1)  # outliers for Huber
    model = _Regressor(k)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=5) as w:
        for s in range(20):
            i = (s * 64) % 512
            loss = crit(model(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()["loop: loss"]


@pytest.mark.parametrize("crit, k, name", [(nn.HuberLoss(reduction="sum"), 1, "Huber"),
                                           (nn.MSELoss(reduction="sum"), 3, "squared error")])
def test_a_summed_regression_loss_is_named(crit, k, name):
    verdict = _run(crit, k, lr=1e-4)
    assert verdict.status == "info" and verdict.value.startswith(f"summed {name}")
    assert f"over {64 * k} output elements" in verdict.value and f"{64 * k}x the mean's" in verdict.advice
    assert "on 7 of 7 observed steps" in verdict.expected  # steps 0, 1, 2, 4, 9, 14, 19


@pytest.mark.parametrize("crit, k", [(nn.HuberLoss(), 1), (nn.MSELoss(), 3)])
def test_a_mean_regression_loss_passes(crit, k):
    verdict = _run(crit, k)
    assert verdict.status == "pass" and verdict.value.startswith("mean")


@pytest.mark.parametrize("crit", [nn.L1Loss(), nn.L1Loss(reduction="sum"), nn.HuberLoss(delta=0.5)])
def test_losses_whose_value_the_gradient_does_not_fix_are_not_read(crit):
    torch.manual_seed(0)
    z = torch.randn(64, requires_grad=True)
    loss = crit(z, 3 * torch.randn(64))
    loss.backward()
    assert reduction([(z.detach(), z.grad)], float(loss)) is None


def _gathered(loss_of_chosen, steps=12):
    """A user's DQN-style update: (64, 2) outputs, the loss on the one gathered at each row's action (the other
    output receives no gradient), targets fixed per batch."""
    torch.manual_seed(0)
    x, model = torch.randn(512, 6), nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    action, target = torch.randint(0, 2, (512,)), 0.3 * torch.randn(512)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=3) as w:
        for s in range(steps):
            i = slice((s * 64) % 512, (s * 64) % 512 + 64)
            chosen = model(x[i]).gather(1, action[i, None]).squeeze(1)
            loss = loss_of_chosen(chosen, target[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()["loop: loss"]


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_gathered_output_counts_the_elements_the_loss_reached():
    """Only the gathered outputs carry a gradient: n is 64, not 128. Huber in its quadratic zone and squared
    error / 2 send the same gradient and are named together (elements in Huber's linear zone name it alone); a plain
    MSE keeps its name."""
    huber = _gathered(F.smooth_l1_loss)
    assert huber.status == "pass" and "Huber" in huber.value and "over 64 output elements" in huber.value
    half = _gathered(lambda o, t: F.mse_loss(o, t) / 2)
    assert half.value.startswith("mean squared error / 2 (or Huber in its quadratic zone) over 64")
    mse = _gathered(F.mse_loss)
    assert mse.status == "pass" and mse.value.startswith("mean squared error over 64 output elements")
