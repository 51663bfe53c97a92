"""A Gaussian or Poisson NLL given (B, 1) outputs and (B,) targets: torch broadcasts the pair to (B, B) without a
warning (``F.mse_loss`` warns), every output is fitted to every target of the batch, and the loss still falls.
Targets shaped like the outputs pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.loss_inputs import read_loss_inputs


class MeanAndVariance(nn.Module):
    """A regression net with a mean head and a softplus variance head (heteroscedastic regression)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 32), nn.ReLU())
        self.mean, self.var = nn.Linear(32, 1), nn.Linear(32, 1)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h), F.softplus(self.var(h)) + 1e-6


def _gaussian(mu_var, y):
    return F.gaussian_nll_loss(mu_var[0], y, mu_var[1])


def _poisson(log_rate, y):
    return F.poisson_nll_loss(log_rate, y)


def _data(n=512):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    mean = x[:, 0] + 0.5 * x[:, 1]
    return x, (mean + 0.3 * torch.randn(n, generator=g)).unsqueeze(1), torch.poisson(mean.exp().clamp_max(20), g)


def _run(model, loss_fn, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=4) as w:
        for i in range(0, len(x), 32):
            loss = loss_fn(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + 32])
    return w.report()["loop: labels"]


@pytest.mark.parametrize("squeeze, status", [(False, "pass"), (True, "fail")])
def test_gaussian_nll_on_targets_of_another_shape_is_named(squeeze, status):
    torch.manual_seed(0)
    x, y, _ = _data()
    verdict = _run(MeanAndVariance(), _gaussian, x, y.squeeze(1) if squeeze else y)
    assert verdict.status == status, verdict
    if squeeze:
        assert "gaussian_nll_loss" in verdict.value and "(32, 32)" in verdict.value, verdict


@pytest.mark.parametrize("flat_targets, status", [(False, "pass"), (True, "fail")])
def test_poisson_nll_on_targets_of_another_shape_is_named(flat_targets, status):
    torch.manual_seed(0)
    x, _, counts = _data()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    verdict = _run(model, _poisson, x, counts if flat_targets else counts.unsqueeze(1))
    assert verdict.status == status, verdict


@pytest.mark.parametrize("squeeze", [False, True])
def test_check_reads_the_gaussian_nll_broadcast_from_one_call_of_the_loss(squeeze):
    torch.manual_seed(0)
    x, y, _ = _data(64)
    verdict = read_loss_inputs(_gaussian, MeanAndVariance()(x), y.squeeze(1) if squeeze else y)
    if squeeze:
        assert verdict is not None and verdict.status == "fail" and "(64, 64)" in verdict.value, verdict
    else:
        assert verdict is None or verdict.status == "pass", verdict


def _squared_error(out, y):
    return ((out - y) ** 2).mean()


def _pinball(out, y, q=0.9):  # quantile regression: the gradient's size differs above and below the target
    r = y - out
    return torch.maximum(q * r, (q - 1) * r).mean()


@pytest.mark.parametrize("loss_fn", [_squared_error, _pinball])
@pytest.mark.parametrize("flat_targets, status", [(False, "pass"), (True, "fail")])
def test_a_hand_written_regression_loss_on_targets_of_another_shape_is_named(loss_fn, flat_targets, status):
    torch.manual_seed(0)
    x, y, _ = _data()
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    verdict = _run(model, loss_fn, x, y.squeeze(1) if flat_targets else y)
    assert verdict.status == status, verdict
    if flat_targets:
        assert "one value, not to its own target" in verdict.value, verdict
