"""A layer built inside ``forward()`` (``return nn.Linear(32, 4)(h)``): new random weights at every call, never in
the optimizer. The watch names it (``loop: layers built once``); the layer built in ``__init__`` passes, and so does
a second model trained beside the watched one (its parameters are the same tensors at every step)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: layers built once"


class Net(nn.Module):
    def __init__(self, head_in_forward: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.head = None if head_in_forward else nn.Linear(32, 4)

    def forward(self, x):
        h = self.body(x)
        return nn.Linear(32, 4)(h) if self.head is None else self.head(h)


@pytest.mark.parametrize("kind", ["in_forward", "in_init", "other_model"])
def test_a_layer_built_in_forward_is_named(kind):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(640, 10, generator=g)
    y = (x @ w).argmax(1)
    torch.manual_seed(0)
    model = Net(kind == "in_forward")
    other = nn.Linear(4, 4)  # a second model trained with its own optimizer, its loss added to the model's
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as watch:
        for i in range(0, 640, 32):
            xb, yb = x[i : i + 32], y[i : i + 32]
            opt.zero_grad()
            other_opt.zero_grad()
            out = model(xb)
            loss = F.cross_entropy(other(out) if kind == "other_model" else out, yb)
            loss.backward()
            opt.step()
            other_opt.step()
            watch.step(loss, y=yb)
    named = [v for v in watch.report().verdicts if v.check == NAME]
    if kind == "in_forward":
        assert len(named) == 1 and named[0].status == "fail" and "(4, 32)" in named[0].value
    else:
        assert not named
