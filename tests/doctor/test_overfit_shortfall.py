"""A failed overfit of a tiny subset says which part failed: a user's classifier ending in a Sigmoid reaches 100%
accuracy while its loss stays high (the row names the loss, not the accuracy), and one ending in a Softmax reaches
its floor, which the softmax raised (the row says so). A healthy head passes with no such note."""

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.overfit_shortfall import shortfall


def _blobs(n: int = 128):
    g = torch.Generator().manual_seed(0)
    centers = 3.0 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


class Classifier(nn.Module):
    def __init__(self, last: nn.Module | None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
        self.last = last or nn.Identity()

    def forward(self, x):
        return self.last(self.net(x))


def _overfit(last: nn.Module | None):
    torch.manual_seed(0)
    x, y = _blobs()
    model = Classifier(last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i in range(0, 128, 32):  # a few steps of the user's own loop first
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
        opt.step()
    return doctor.check(model, x, y, nn.CrossEntropyLoss(), optimizer=opt)["overfit a tiny subset"]


@pytest.mark.slow  # ~1 s: doctor.check on a user's model
def test_a_sigmoid_head_names_the_loss_as_what_failed_not_the_accuracy():
    v = _overfit(nn.Sigmoid())
    assert v.status == "fail" and ", acc 100% on 20 examples" in v.value, v
    assert "; the accuracy reached 100%, the loss did not: it stayed above " in v.value
    assert "down to its floor ~0)" in v.value
    assert "[0, 1]" in v.advice  # the bounded scores are named in what to do


@pytest.mark.slow  # ~1 s: doctor.check on a user's model
def test_a_softmax_head_says_its_floor_is_what_fails():
    v = _overfit(nn.Softmax(dim=1))
    assert v.status == "fail" and "the lowest loss any outputs reach" in v.value, v
    assert "but that floor is raised by what the model gives the loss (see what to do)" in v.value


@pytest.mark.slow  # ~1 s: doctor.check on a user's model
def test_a_healthy_head_passes_without_a_note():
    v = _overfit(None)
    assert v.status == "pass" and "did not" not in v.value and "raised" not in v.value, v


def test_the_note_names_each_part_that_missed():
    assert shortfall(0.9, 1.0, 1.4, 0.0, 0.14, True, False).startswith("; the accuracy reached 100%, the loss did not")
    assert shortfall(0.01, 0.85, 1.4, 0.0, 0.14, False, False) == \
        "; the loss reached its bar (0.14), the accuracy did not (85%)"
    assert shortfall(0.9, 0.5, 1.4, 0.0, 0.14, False, False) == ""  # both missed: the numbers say it
    assert shortfall(0.9, None, 1.4, 0.0, 0.14, True, False) == ""  # no class scores: no accuracy to name
    assert "the floor" not in shortfall(0.9, 1.0, 1.4, 0.0, 0.14, True, True)  # the loss missed even so
