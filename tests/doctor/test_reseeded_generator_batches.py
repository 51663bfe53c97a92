"""A loop that draws its batch indices with its own generator, seeded again inside the batch loop
(``g = torch.Generator().manual_seed(0)`` then ``torch.randperm(n, generator=g)``): every step trains on the same
batch, which the model memorizes; named by ``loop: inputs``. The generator seeded once before the loop passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 64)
        self.fc2 = nn.Linear(64, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def _train(reseed: bool):
    g0 = torch.Generator().manual_seed(0)
    x = torch.randn(512, 10, generator=g0)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    xv = torch.randn(128, 10, generator=g0)
    yv = (xv[:, 0] > 0).long() + (xv[:, 1] > 0.5).long()
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(4):
            for _ in range(16):
                if reseed:  # meant to make the run reproducible: every step draws the same indices
                    g = torch.Generator().manual_seed(0)
                idx = torch.randperm(len(x), generator=g)[:32]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv).item())
        return w.report()["loop: inputs"]


@pytest.fixture(scope="module")
def reseeded():
    return _train(reseed=True)


def test_a_generator_seeded_again_every_step_is_named(reseeded):
    assert reseeded.status == "warn" and "the same input batch in all" in reseeded.value, reseeded
    assert "torch.Generator().manual_seed(0) inside the batch loop" in reseeded.advice, reseeded


def test_a_generator_seeded_once_passes():
    v = _train(reseed=False)
    assert v.status == "pass" and "distinct batches" in v.value, v
