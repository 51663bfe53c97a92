"""A second optimizer for the head at a rate of its own while the first is built on ``model.parameters()``: both
step the head after the one ``backward()``, so it is updated twice. The watch names it (``loop: optimizers share
parameters``); the first optimizer built without the head passes, and so do two optimizers sharing the body, each
stepping after a backward of its own loss."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: optimizers share parameters"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _train(kind: str):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(640, 10, generator=g)
    y = (x @ w).argmax(1)
    torch.manual_seed(0)
    model = Net()
    body = model.parameters() if kind == "overlapping" else model.body.parameters()
    opt, head_opt = torch.optim.SGD(body, lr=0.1, momentum=0.9), torch.optim.SGD(model.head.parameters(), lr=0.1)
    with doctor.watch(model, [opt, head_opt], every=5) as watch:
        for i in range(0, 640, 32):
            xb, yb = x[i : i + 32], y[i : i + 32]
            opt.zero_grad()
            head_opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            if kind == "alternating":  # the head's own loss, its own backward: a new gradient at its step
                head_opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
            head_opt.step()
            watch.step(loss, y=yb)
    return [v for v in watch.report().verdicts if v.check == NAME]


@pytest.mark.parametrize("kind", ["overlapping", "apart", "alternating"])
def test_a_tensor_stepped_twice_per_gradient_is_named(kind):
    named = _train(kind)
    if kind == "overlapping":
        assert len(named) == 1 and named[0].status == "fail" and "head.*" in named[0].value
    else:
        assert not named
