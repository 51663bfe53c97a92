"""A failed batch independence names where the examples first mix: the module whose input already depends on the
other examples, after the module whose output does not (a reshape over a moved batch axis, attention weights
normalized over the batch, a standardization by the batch's own statistics in ``forward``)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.batch_independence import batch_independence


class ConvHead(nn.Module):
    def __init__(self, permuted: bool):
        super().__init__()
        self.conv, self.fc, self.permuted = nn.Conv1d(8, 16, 3, padding=1), nn.Linear(16 * 16, 3), permuted

    def forward(self, x):  # x: (B, T, F)
        h = F.relu(self.conv(x.transpose(1, 2)))  # (B, 16, T)
        if self.permuted:  # the bug: (T, B, C) reshaped to (B, -1) puts other examples' steps in each row
            h = h.permute(2, 0, 1).reshape(len(x), -1)
        else:
            h = h.flatten(1)
        return self.fc(h)


class Attention(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.q, self.k, self.v, self.out = nn.Linear(8, 16), nn.Linear(8, 16), nn.Linear(8, 16), nn.Linear(16, 3)
        self.axis = axis

    def forward(self, x):
        scores = self.q(x) @ self.k(x).transpose(1, 2) / 4.0  # (B, Tq, Tk)
        return self.out((scores.softmax(dim=self.axis) @ self.v(x)).mean(1))


class Standardized(nn.Module):
    def __init__(self, batch_stats: bool):
        super().__init__()
        self.a, self.b, self.batch_stats = nn.Linear(8, 32), nn.Linear(32, 3), batch_stats
        self.register_buffer("mean", torch.zeros(8))

    def forward(self, x):
        x = x.mean(1)
        x = (x - x.mean(0)) / x.std(0) if self.batch_stats else x - self.mean  # the bug: the batch's own stats
        return self.b(F.relu(self.a(x)))


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, 8, generator=g)
    return x, (x[:, :, 0].mean(1) > 0).long() + (x[:, :, 1].mean(1) > 0).long()


CASES = {"reshape": (lambda: ConvHead(True), "the input of 'fc'", "'conv'"),
         "attention over the batch": (lambda: Attention(0), "the input of 'out'", "'v'"),
         "batch statistics": (lambda: Standardized(True), "the input of 'a'", "before any module runs")}
HEALTHY = {"reshape": lambda: ConvHead(False), "attention over the batch": lambda: Attention(2),
           "batch statistics": lambda: Standardized(False)}


@pytest.mark.slow  # ~0.4 s each
@pytest.mark.parametrize("name", list(CASES))
def test_the_place_where_examples_mix_is_named(name):
    build, at, before = CASES[name]
    x, y = _data()
    torch.manual_seed(0)
    report = doctor.check(build(), x, y, nn.CrossEntropyLoss())
    v = report["batch independence"]
    assert v.status == "fail" and at in v.advice and before in v.advice, v
    baseline = report["input-independent baseline"]
    assert baseline.status == "pass" or "fix 'batch independence' first" in baseline.advice, baseline


def test_healthy_twins_keep_their_examples_apart():
    x, y = _data()
    for name, build in HEALTHY.items():
        torch.manual_seed(0)
        assert batch_independence(build(), x).status == "pass", name
