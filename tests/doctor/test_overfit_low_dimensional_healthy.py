"""The overfit check on healthy noisy regressions of a 1-D input: the subset is spread over the batch (a sorted
``linspace`` grid's first 20 rows cover [-3, -2.7] only), and a loss held up by the targets' noise is judged
against that noise (half the loss of each example given its nearest neighbour's output), while a model whose
output is bounded below zero on signed targets, or that never reads its input, still fails."""

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.overfit import overfit_tiny_subset

QUANTILES = torch.tensor([0.1, 0.5, 0.9])


def pinball(pred, y):
    """A user's three-quantile pinball loss: pred (N, 3), y (N,)."""
    e = y[:, None] - pred
    return torch.maximum(QUANTILES * e, (QUANTILES - 1) * e).mean()


def sine_curve(relu_last=False, act=nn.Tanh):
    """A sorted 1-D grid with sin targets and noise 0.05, and a small MLP fitting it (``relu_last``: a ReLU after
    the last layer, though half the targets are negative)."""
    torch.manual_seed(0)
    x = torch.linspace(-3, 3, 400)[:, None]
    y = torch.sin(x) + 0.05 * torch.randn_like(x)
    layers = [nn.Linear(1, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, 1)]
    return nn.Sequential(*layers, *([nn.ReLU()] if relu_last else [])), x, y


class QuantileNet(nn.Module):
    """An MLP predicting three quantiles; ``blind`` has forward feed the body zeros in place of x (a typo)."""

    def __init__(self, blind=False):
        super().__init__()
        self.blind = blind
        self.body = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.body(torch.zeros_like(x) if self.blind else x)


def quantile_data():
    """x uniform on [-2, 2], y = x^2 - 1 plus noise whose scale grows with |x|; the first 256 rows."""
    torch.manual_seed(0)
    x = torch.rand(3000, 1) * 4 - 2
    y = x[:, 0] ** 2 - 1 + (0.2 + 0.3 * x[:, 0].abs()) * torch.randn(3000)
    return x[:256], y[:256]


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
def test_a_small_mlp_on_a_noisy_sine_grid_passes_the_overfit(act):
    model, x, y = sine_curve(act=act)
    verdict = overfit_tiny_subset(model, x, y, nn.MSELoss())
    assert verdict.status == "pass", verdict.value


def test_a_relu_after_the_last_layer_on_the_signed_sine_still_fails():
    model, x, y = sine_curve(relu_last=True)
    verdict = overfit_tiny_subset(model, x, y, nn.MSELoss())
    assert verdict.status == "fail", verdict.value


@pytest.mark.slow  # about a second each: the whole pre-flight
def test_check_passes_the_overfit_of_a_sine_fit_with_noisy_targets():
    model, x, y = sine_curve()
    report = doctor.check(model, x, y, nn.MSELoss())
    assert report["overfit a tiny subset"].status == "pass", report["overfit a tiny subset"].value


@pytest.mark.slow
def test_check_passes_the_overfit_of_a_quantile_regression_and_names_the_noise():
    x, y = quantile_data()
    torch.manual_seed(0)
    report = doctor.check(QuantileNet(), x, y, pinball)
    verdict = report["overfit a tiny subset"]
    assert verdict.status == "pass", verdict.value
    torch.manual_seed(0)
    blind = doctor.check(QuantileNet(blind=True), x, y, pinball)["overfit a tiny subset"]
    assert blind.status == "fail", blind.value
    assert "no better than one constant output" in blind.advice
