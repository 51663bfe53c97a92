"""The overfit check on regressors whose targets sit in raw units, far from where a fresh model's outputs start
(around 10 or 1000: a temperature, a price): the bar is one constant output's loss on the subset (the targets'
variance for MSE), and the copy that must reach it first travels the targets' offset, through the noise its
dropout adds to an output of that size. A healthy MLP passes under nn.MSELoss, nn.L1Loss and nn.SmoothL1Loss; a
model that can only learn a constant, whose output is cut from the gradient, or whose ReLU after the last layer
cannot reach negative targets still fails."""

import pytest
import torch
from torch import nn

from trainwell.doctor.overfit import overfit_tiny_subset

FEATURES = 10
LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "smooth_l1": nn.SmoothL1Loss}


def _targets(offset, scale, n=256, seed=1):
    """Inputs and targets ``offset + scale * (x0 - x1)``: a regression in raw units."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    return x, offset + scale * (x[:, 0] - x[:, 1])


class Regressor(nn.Module):
    """A user's MLP regressor with dropout; ``bug`` plants a model that cannot fit its examples: 'constant' (every
    weight frozen but the output bias), 'detached' (the output cut from the gradient, only a learned shift added),
    'relu_out' (a ReLU after the last layer)."""

    def __init__(self, bug="", dropout=0.1):
        super().__init__()
        self.bug = bug
        self.layers = nn.ModuleList([nn.Linear(FEATURES, 64), nn.Linear(64, 64)])
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(64, 1)
        self.shift = nn.Parameter(torch.zeros(1))
        if bug == "constant":
            for p in [*self.layers.parameters(), self.head.weight, self.shift]:
                p.requires_grad_(False)

    def forward(self, x):
        for layer in self.layers:
            x = self.drop(torch.relu(layer(x)))
        out = self.head(x).squeeze(-1)
        if self.bug == "detached":
            out = out.detach() + self.shift
        if self.bug == "relu_out":
            out = torch.relu(out)
        return out


def _overfit(bug, loss, offset, scale, seed=1, dropout=0.1):
    torch.manual_seed(seed)
    model = Regressor(bug, dropout)
    x, y = _targets(offset, scale, seed=seed)
    return overfit_tiny_subset(model, x, y, LOSSES[loss]())


@pytest.mark.slow  # ~1 s each
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize(("offset", "scale"), [(10.0, 1.0), (1000.0, 100.0)])
def test_a_healthy_regressor_fits_targets_in_raw_units(loss, offset, scale, seed):
    verdict = _overfit("", loss, offset, scale, seed)
    assert verdict.status == "pass", verdict.value


@pytest.mark.slow  # ~1 s each
@pytest.mark.parametrize("loss", ["mse", "smooth_l1"])
def test_a_healthy_regressor_without_dropout_travels_an_offset_of_1000(loss):
    verdict = _overfit("", loss, 1000.0, 1.0, seed=0, dropout=0.0)
    assert verdict.status == "pass", verdict.value


@pytest.mark.slow  # ~1 s each
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("bug", ["constant", "detached"])
@pytest.mark.parametrize(("offset", "scale"), [(10.0, 1.0), (1000.0, 100.0)])
def test_a_regressor_that_cannot_fit_fails_on_targets_in_raw_units(bug, loss, offset, scale):
    verdict = _overfit(bug, loss, offset, scale)
    assert verdict.status == "fail", verdict.value
    assert "one constant output" in verdict.value


@pytest.mark.slow  # ~1 s each
@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_relu_after_the_last_layer_fails_on_negative_targets(loss):
    verdict = _overfit("relu_out", loss, -10.0, 1.0)
    assert verdict.status == "fail", verdict.value
