"""``loss.backward(retain_graph=True)`` to log a gradient norm, then ``loss.backward()`` again: the step applies
twice the gradient. The watch names the repeated backward of one forward's loss (``loop: loss``), not an
accumulation; four micro-batches accumulated undivided are still named as such, and one backward passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: loss"


@pytest.mark.parametrize("kind", ["twice", "accumulated", "once"])
def test_one_loss_backed_twice_is_told_from_accumulation(kind):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(640, 10, generator=g)
    y = (x @ w).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=5) as watch:
        for i in range(0, 640, 32):
            xb, yb = x[i : i + 32], y[i : i + 32]
            opt.zero_grad()
            parts = zip(xb.chunk(4), yb.chunk(4), strict=True) if kind == "accumulated" else [(xb, yb)]
            for xp, yp in parts:
                loss = F.cross_entropy(model(xp), yp)
                if kind == "twice":
                    loss.backward(retain_graph=True)
                    norm = sum(float(p.grad.norm()) ** 2 for p in model.parameters()) ** 0.5  # for a log
                    assert norm >= 0
                loss.backward()
            opt.step()
            watch.step(loss, y=yb)
    v = next(v for v in watch.report().verdicts if v.check == NAME)
    if kind == "twice":
        assert v.status == "fail" and v.value.startswith("backward() ran 2 times per step on one forward's loss")
    elif kind == "accumulated":
        assert v.status == "fail" and v.value.startswith("4 micro-batches accumulated per step")
    else:
        assert v.status in ("pass", "info")
