"""Cross-entropy given class probabilities whose rows do not sum to 1: one-hot rows read from 8-bit masks (x 255),
multi-hot rows (several labels per example). The watch's ``loop: probability targets`` names them from the training
loss call; one-hot and label-smoothed rows (summing to 1) and class indices pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: probability targets"


def _run(targets):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with doctor.watch(model, opt, every=4) as w:
        for i in range(0, 128, 16):
            t = targets(y[i:i + 16])
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(model(x[i:i + 16]), t)
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 16])
    return [v for v in w.report().verdicts if v.check == NAME]


def test_one_hot_rows_times_255_are_named():
    (v,) = _run(lambda y: F.one_hot(y, 3).float() * 255)
    assert v.status == "warn" and "rows sum to 255, not 1" in v.value and "x 255" in v.advice


def test_multi_hot_rows_are_named_with_their_own_advice():
    (v,) = _run(lambda y: (F.one_hot(y, 3) + F.one_hot((y + 1) % 3, 3)).float())
    assert "rows sum to 2, not 1" in v.value and "BCEWithLogitsLoss" in v.advice


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_rows_of_probabilities_and_class_indices_pass():
    assert _run(lambda y: F.one_hot(y, 3).float() * 0.9 + 0.1 / 3) == []
    assert _run(lambda y: y) == []
