"""A RealNVP-style normalizing flow (affine coupling layers, Dinh et al. 2017) trained by its negative
log-likelihood under a standard normal base: ``0.5 * z^2 + const - log|det J|``. Free outputs drive that loss to
-inf (the log-determinant alone grows), but the flow's log-scales are bounded by ``tanh`` and tie the
log-determinant to ``z``: its own loss stays bounded, and the overfit must judge the flow, not the free outputs.
The log-determinant added instead of subtracted, with log-scales left unbounded, lets the flow contract every
example to a point: its own loss falls without bound too, and that is still named."""

import math

import pytest
import torch
from torch import nn

from trainwell import doctor

OVERFIT = "overfit a tiny subset"


class Coupling(nn.Module):
    """One affine coupling layer: half of the features scale and shift the other half."""

    def __init__(self, flip: bool, bounded: bool):
        super().__init__()
        self.flip, self.bounded = flip, bounded
        self.net = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        if self.flip:
            a, b = b, a
        s, t = self.net(a).chunk(2, dim=1)
        if self.bounded:
            s = torch.tanh(s)
        b = b * torch.exp(s) + t
        return torch.cat([b, a] if self.flip else [a, b], dim=1), s.sum(1)


class Flow(nn.Module):
    def __init__(self, bounded: bool = True):
        super().__init__()
        self.layers = nn.ModuleList([Coupling(i % 2 == 1, bounded) for i in range(4)])

    def forward(self, x):
        logdet = torch.zeros(len(x))
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet


def nll(out, _):
    z, logdet = out
    return (0.5 * z.pow(2).sum(1) + math.log(2 * math.pi) - logdet).mean()


def nll_logdet_added(out, _):
    z, logdet = out
    return (0.5 * z.pow(2).sum(1) + math.log(2 * math.pi) + logdet).mean()


def _moons(n=256):
    g = torch.Generator().manual_seed(0)
    t = torch.rand(n, generator=g) * math.pi
    up = torch.rand(n, generator=g) < 0.5
    x = torch.stack([torch.where(up, torch.cos(t), 1 - torch.cos(t)),
                     torch.where(up, torch.sin(t), 0.5 - torch.sin(t))], 1)
    return x + 0.05 * torch.randn(n, 2, generator=g)


@pytest.fixture(scope="module")
def reports():
    x = _moons()
    out = {}
    for name, bounded, loss in (("healthy", True, nll), ("added", False, nll_logdet_added)):
        torch.manual_seed(0)
        model = Flow(bounded)
        out[name] = doctor.check(model, x, x, loss, optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    return out


@pytest.mark.slow  # 2 checks, 5.4 s on a 2-core CPU
def test_a_flow_with_tanh_bounded_log_scales_is_not_told_its_loss_falls_without_bound(reports):
    report = reports["healthy"]
    assert report[OVERFIT].status == "pass", report[OVERFIT]
    assert "without bound" not in str(report[OVERFIT].value)
    assert report.failed == [] and report.warnings == []


@pytest.mark.slow
def test_a_flow_whose_log_determinant_is_added_still_falls_without_bound(reports):
    report = reports["added"]
    assert report[OVERFIT].status == "warn"
    assert str(report[OVERFIT].value).startswith("the loss falls without bound")
    assert "log-determinant added" in report[OVERFIT].advice
