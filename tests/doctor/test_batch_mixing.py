"""``F.normalize(h, dim=0)`` in a user's forward (over the batch, meant per example): each example's output
depends on the rest of its batch. The watch names it (``loop: batch independence``); ``dim=1`` passes, and so
does a BatchNorm1d (in eval mode it uses its running statistics)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: batch independence"


class Net(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.norm = nn.BatchNorm1d(32) if kind == "batchnorm" else None
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = self.body(x)
        if self.norm is not None:
            h = self.norm(h)
        else:
            h = 4 * F.normalize(h, dim=0 if self.kind == "over_batch" else 1)
        return self.head(h)


@pytest.mark.parametrize("kind", ["over_batch", "per_example", "batchnorm"])
def test_a_reduction_over_the_batch_is_named(kind):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(640, 10, generator=g)
    y = (x @ w).argmax(1)
    torch.manual_seed(0)
    model = Net(kind)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as watch:
        for i in range(0, 640, 32):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            loss.backward()
            opt.step()
            watch.step(loss, y=y[i : i + 32])
    named = [v for v in watch.report().verdicts if v.check == NAME and v.status == "fail"]
    if kind == "over_batch":
        assert len(named) == 1 and "depends on the other examples of its batch in eval mode" in named[0].value
    else:
        assert not named
