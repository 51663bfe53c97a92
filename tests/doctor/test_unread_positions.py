"""A conv stack read at its last position (``h[:, :, -1]``) sees only its receptive field, 5 of 64 steps: the
label, set by the first steps, cannot be read, and the baseline used to blame memorization. The doctor names the
unread positions; the same stack pooled over every position is not named."""

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.unread_positions import unread_positions


class Conv(nn.Module):
    def __init__(self, last_only: bool):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv1d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(16, 16, 3, padding=1),
                                   nn.ReLU())
        self.out, self.last_only = nn.Linear(16, 2), last_only

    def forward(self, x):
        h = self.convs(x)
        return self.out(h[:, :, -1] if self.last_only else h.mean(-1))


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 64, generator=g)
    return x, (x[:, 0, :16].mean(1) > 0).long()  # the label lives in the first steps


@pytest.mark.slow  # ~1 s: one whole check
def test_positions_the_output_never_reads_are_named():
    x, y = _data()
    torch.manual_seed(0)
    report = doctor.check(Conv(True), x, y, nn.CrossEntropyLoss())
    v = report["receptive field"]
    assert v.status == "warn" and "of the input's 64 positions" in v.value, v
    baseline = report["input-independent baseline"]
    assert baseline.status == "pass" or "fix 'receptive field' first" in baseline.advice, baseline


def test_a_pooled_stack_reads_every_position():
    x, _ = _data()
    torch.manual_seed(0)
    assert unread_positions(Conv(False), x) is None
    assert unread_positions(Conv(True), x) is not None
