"""Inputs and labels shuffled apart every epoch over a data set larger than the training rows the watch keys
(65,536): ``x[perm_x]`` with ``y[perm_y]``, two permutations drawn each epoch. The rows keyed are the first half of
that budget at every step and then one step in a stride that doubles, so the second epoch's rows still come back to
the first epoch's: ``loop: labels follow their inputs`` names the loop; the twin that indexes both with one
permutation is not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.row_labels import NAME, ROWS


class Net(nn.Module):
    """A small classifier."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _run(apart: bool, n: int = 70_000, batch: int = 2048):
    """Two epochs over ``n`` rows; ``apart``: the labels indexed by a permutation of their own."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = x[:, :4].argmax(1)
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(2):
            perm_x = torch.randperm(n)
            perm_y = torch.randperm(n) if apart else perm_x
            for i in range(0, n, batch):
                xb, yb = x[perm_x[i:i + batch]], y[perm_y[i:i + batch]]
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.fixture(scope="module")
def verdicts():
    return {apart: _run(apart) for apart in (True, False)}


@pytest.mark.slow
def test_labels_shuffled_apart_over_more_rows_than_are_keyed_are_named(verdicts):
    assert 70_000 > ROWS
    v = verdicts[True]
    assert v is not None and v.status == "fail" and "the labels do not follow their inputs" in v.value, v
    assert "shuffle the (input, label) pairs together" in v.advice


@pytest.mark.slow
def test_one_permutation_for_both_is_not_named(verdicts):
    assert verdicts[False] is None
