"""A noisy regression on two input features (noise std equal to the signal's), fitted by a small ReLU network
whose random init already follows the inputs a little: it starts below one constant output's loss. Twenty
examples' noise then takes a steeper function than such a network reaches in the overfit's steps (the spectral
bias, Rahaman et al. 2019), so the overfit judges it against the targets' noise read from nearest neighbours
(Cover & Hart 1967; Rice 1984) from its start as it does from the constant's loss. Inputs normalized over the
features instead of over the examples (two features become +-0.71) leave the network nothing to fit: still a fail."""

import pytest
import torch
from torch import nn

from trainwell.doctor.preflight import overfit_tiny_subset


class Regressor(nn.Module):
    def __init__(self, per_row: bool = False):
        super().__init__()
        self.per_row = per_row
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        if self.per_row:  # the bug: the statistics of each row's two features, not of each feature over the data
            x = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)
        return self.net(x)


def _case(seed: int, per_row: bool):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(256, 2, generator=g) * 4 - 2
    signal = torch.sin(x[:, 0]) + 0.5 * x[:, 1]
    y = (signal + signal.std() * torch.randn(256, generator=g)).unsqueeze(1)
    return overfit_tiny_subset(Regressor(per_row), x, y, nn.MSELoss())


@pytest.mark.slow  # 0.2-0.7 s each on a 2-core CPU (more when it is shared)
@pytest.mark.parametrize("seed", [1, 8])  # seeds whose init starts below one constant output's loss
def test_a_healthy_noisy_regression_that_starts_below_the_constant_is_judged_against_its_noise(seed):
    verdict = _case(seed, per_row=False)
    assert verdict.status == "pass", verdict
    assert "nearest neighbour" in verdict.value and "the start's loss" in verdict.expected


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])  # 0: starts below the constant, 1: above it
def test_inputs_normalized_over_the_features_still_fail(seed):
    assert _case(seed, per_row=True).status == "fail"
