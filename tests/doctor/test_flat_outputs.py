"""A binary classifier with one output made a probability by ``F.softmax(out, dim=1)`` (1.0 whatever the score)
under ``BCELoss``: the loss is flat in the outputs, nothing learns. The watch names it (``loop: loss reaches the
outputs``, with the single output); the same loop with ``torch.sigmoid`` passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: loss reaches the outputs"


@pytest.mark.parametrize("squash", ["softmax", "sigmoid"])
def test_a_softmax_over_one_output_is_named(squash):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 10, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).float()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as watch:
        for i in range(0, 640, 32):
            xb, yb = x[i : i + 32], y[i : i + 32]
            opt.zero_grad()
            out = model(xb)
            p = F.softmax(out, dim=1) if squash == "softmax" else torch.sigmoid(out)
            loss = F.binary_cross_entropy(p.squeeze(1), yb)
            loss.backward()
            opt.step()
            watch.step(loss, y=yb)
    verdicts = watch.report().verdicts
    named = [v for v in verdicts if v.check == NAME and v.status == "fail"]
    if squash == "softmax":
        assert len(named) == 1 and "a softmax over a single output" in named[0].value
    else:
        assert not named and not [v for v in verdicts if v.status == "fail"]
