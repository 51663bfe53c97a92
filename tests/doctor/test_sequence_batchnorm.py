"""``nn.BatchNorm1d(C)`` on a Linear's (B, T, C) output normalizes dimension 1, the positions: with T == C it runs
silently, with T != C torch raises a message that does not say why. The doctor names the BatchNorm and the fix
(transpose, or LayerNorm); the same model normalizing h.transpose(1, 2) is not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.sequence_batchnorm import linear_fed_batchnorms


class Tagger(nn.Module):
    def __init__(self, width: int, transposed: bool):
        super().__init__()
        self.inp, self.bn, self.out = nn.Linear(8, width), nn.BatchNorm1d(width), nn.Linear(width, 3)
        self.transposed = transposed

    def forward(self, x):  # x: (B, T, F)
        h = self.inp(x)
        h = self.bn(h.transpose(1, 2)).transpose(1, 2) if self.transposed else self.bn(h)
        return self.out(F.relu(h).mean(1))


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, 8, generator=g)
    return x, (x[:, :, 0].mean(1) > 0).long() + (x[:, :, 1].mean(1) > 0.2).long()


@pytest.mark.slow  # ~1 s: one whole check
def test_a_batchnorm_over_the_positions_is_named():
    x, y = _data()
    torch.manual_seed(0)
    v = doctor.check(Tagger(16, False), x, y, nn.CrossEntropyLoss())["batchnorm axis"]
    assert v.status == "warn" and "'bn'" in v.value and "nn.LayerNorm(16)" in v.advice, v


def test_the_crash_says_why():
    x, y = _data()
    torch.manual_seed(0)
    v = doctor.check(Tagger(32, False), x, y, nn.CrossEntropyLoss())["forward and loss run"]
    assert v.status == "fail" and "normalizes dimension 1" in v.advice and "transpose" in v.advice, v


def test_a_transposed_batchnorm_is_not_named():
    x, _ = _data()
    torch.manual_seed(0)
    assert linear_fed_batchnorms(Tagger(16, True), x) == []
    assert linear_fed_batchnorms(Tagger(32, True), x) == []
