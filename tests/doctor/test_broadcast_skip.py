"""A residual branch that ends in width 1 (``nn.Linear(c, 1)`` for ``nn.Linear(c, c)``) is added to its
(B, C) input by broadcasting: torch raises nothing, the check used to pass. The doctor names the branch; the
block written with the right width, a squeeze-and-excitation gate multiplied in and a dueling head's V + A are
not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.broadcast_skip import broadcast_skips


class Residual(nn.Module):
    def __init__(self, width_out: int, c: int = 32):
        super().__init__()
        self.inp = nn.Linear(20, c)
        self.body = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, width_out))
        self.out = nn.Linear(c, 4)

    def forward(self, x):
        h = F.relu(self.inp(x))
        h = h + self.body(h)
        return self.out(h)


class Gated(nn.Module):
    """Squeeze-and-excitation: a (B, C, 1) gate multiplied in; then a dueling head, V (B, 1) + A (B, 4)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 8, 3, padding=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Conv1d(8, 8, 1), nn.Sigmoid())
        self.v, self.a = nn.Linear(8 * 20, 1), nn.Linear(8 * 20, 4)

    def forward(self, x):
        h = F.relu(self.conv(x[:, None]))
        h = h * self.gate(h)
        h = h.flatten(1)
        a = self.a(h)
        return self.v(h) + a - a.mean(1, keepdim=True)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 20, generator=g)
    return x, (x @ torch.randn(20, 4, generator=g)).argmax(1)


@pytest.mark.slow  # ~1 s: one whole check
def test_a_branch_broadcast_onto_its_input_is_named():
    x, y = _data()
    torch.manual_seed(0)
    report = doctor.check(Residual(1), x, y, nn.CrossEntropyLoss())
    v = report["residual shapes"]
    assert v.status == "warn" and "'body'" in v.value and "(B, 1)" in v.value and "(B, 32)" in v.value, v


def test_the_right_width_and_gates_are_not_named():
    x, _ = _data()
    torch.manual_seed(0)
    assert broadcast_skips(Residual(32), x) == []
    assert broadcast_skips(Gated(), x) == []
