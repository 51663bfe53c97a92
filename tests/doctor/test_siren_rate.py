"""A SIREN (Sitzmann et al. 2020) fitting a 2-D signal: sine layers whose pre-activations are multiplied by
w0 = 30, trained by its authors with Adam at 1e-4. The pre-flight's copies train at Adam's 1e-2, where its loss keeps
jumping back up and ends where it started: the overfit and input-independent baseline checks then train the copy
again at a tenth of the rate, and pass. A SIREN whose forward drops its input (only biases can learn) levels off
at a constant's loss instead, and is still named by both."""

import math

import pytest
import torch
from torch import nn

from trainwell import doctor


class Sine(nn.Module):
    def __init__(self, i, o, first=False, w0=30.0):
        super().__init__()
        self.w0, self.lin = w0, nn.Linear(i, o)
        bound = 1 / i if first else math.sqrt(6 / i) / w0
        nn.init.uniform_(self.lin.weight, -bound, bound)

    def forward(self, x):
        return torch.sin(self.w0 * self.lin(x))


class Siren(nn.Module):
    def __init__(self, drop_input=False):
        super().__init__()
        self.drop_input = drop_input
        self.net = nn.Sequential(Sine(2, 64, first=True), Sine(64, 64), Sine(64, 64), nn.Linear(64, 1))

    def forward(self, xy):
        return self.net(xy * 0 if self.drop_input else xy)  # the bug: a leftover mask zeroes the coordinates


def _data():
    g = torch.linspace(-1, 1, 48)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    xy = grid[torch.randperm(len(grid), generator=torch.Generator().manual_seed(0))[:256]]
    ring = torch.sin(14 * xy.norm(dim=1, keepdim=True))
    return xy, torch.sin(6 * xy[:, :1]) * torch.cos(9 * xy[:, 1:]) + 0.5 * ring


@pytest.mark.slow  # ~3 s: two pre-flights
def test_a_siren_is_fitted_at_a_rate_its_sines_allow_and_a_cut_input_is_still_named():
    xy, target = _data()
    torch.manual_seed(0)
    healthy = doctor.check(Siren(), xy, target, nn.MSELoss())
    for name in ("overfit a tiny subset", "input-independent baseline"):
        assert healthy[name].status == "pass", healthy[name]
    assert "a rate too high for this model" in str(healthy["overfit a tiny subset"].value)
    torch.manual_seed(0)
    cut = doctor.check(Siren(drop_input=True), xy, target, nn.MSELoss())
    assert cut["overfit a tiny subset"].status == "fail", cut["overfit a tiny subset"]
    assert cut["input-independent baseline"].status == "fail", cut["input-independent baseline"]
