"""A network with no nonlinearity between its layers (Linear after Linear, or ``F.relu(h)`` whose result is
dropped) is a linear model whatever its depth: on an XOR-like target it does no better than a constant, which the
baseline used to blame on the inputs. The doctor names the missing nonlinearity; the same net with ReLUs, and a
single Linear layer (logistic regression), are not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _xor(n=128, d=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return x, ((x[:, 0] * x[:, 1]) > 0).long()


class DroppedRelu(nn.Module):
    """The activation is called, its result thrown away."""

    def __init__(self, used: bool):
        super().__init__()
        self.a, self.b, self.used = nn.Linear(8, 64), nn.Linear(64, 2), used

    def forward(self, x):
        h = self.a(x)
        if self.used:
            h = F.relu(h)
        else:
            F.relu(h)  # the bug: h is still the Linear's output
        return self.b(h)


def _stack(act: bool):
    layers = [nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)]
    return nn.Sequential(*(layers if act else layers[::2]))


@pytest.fixture(scope="module")
def reports():
    x, y = _xor()
    out = {}
    for name, build in (("stack", lambda: _stack(False)), ("stack ok", lambda: _stack(True)),
                        ("dropped", lambda: DroppedRelu(False)), ("dropped ok", lambda: DroppedRelu(True)),
                        ("logistic", lambda: nn.Linear(8, 2))):
        torch.manual_seed(0)
        out[name] = doctor.check(build(), x, y, nn.CrossEntropyLoss())
    return out


@pytest.mark.slow  # ~1.5 s for the five checks
@pytest.mark.parametrize("name", ["stack", "dropped"])
def test_a_linear_network_is_named(reports, name):
    report = reports[name]
    v = report["nonlinearity"]
    assert v.status == "warn" and "affine" in v.value, v
    baseline = report["input-independent baseline"]
    assert baseline.status in ("warn", "fail") and "fix 'nonlinearity' first" in baseline.advice, baseline


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stack ok", "dropped ok", "logistic"])
def test_a_nonlinear_network_or_one_layer_is_not_named(reports, name):
    report = reports[name]
    assert "nonlinearity" not in [v.check for v in report], report["nonlinearity"]
