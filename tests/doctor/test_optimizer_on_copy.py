"""An optimizer built on a deep copy of the model (``ema = copy.deepcopy(model)``, ``SGD(ema.parameters())``)
while the loop computes its loss with ``model``: the watch names the copy as the cause (``loop: optimizer holds
the parameters``), whichever of the two models it is given, and the parameters that get no gradient defer to it.
Healthy twin: the optimizer on ``model``, the EMA copy updated from it after each step."""

import copy

import pytest
import torch
from torch import nn

from trainwell import doctor

OWNERSHIP = "loop: optimizer holds the parameters"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _run(on_copy: bool, watched: str):
    g = torch.Generator().manual_seed(0)
    centers = 2.5 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (256,), generator=g)
    x = centers[y] + torch.randn(256, 8, generator=g)
    torch.manual_seed(0)
    model = Net()
    ema = copy.deepcopy(model)
    opt = torch.optim.SGD((ema if on_copy else model).parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(ema if watched == "ema" else model, opt, every=5) as w:
        for _epoch in range(2):
            model.train()
            perm = torch.randperm(256)
            for i in range(0, 256, 32):
                idx = perm[i:i + 32]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                        e.lerp_(p, 0.1)
                w.step(loss, y=y[idx])
    return {v.check: v for v in w.report().verdicts}


def test_a_watch_given_the_copy_names_the_optimizer_built_on_it():
    found = _run(on_copy=True, watched="ema")
    assert found[OWNERSHIP].status == "fail" and "a copy's parameters" in found[OWNERSHIP].value
    learns = found["loop: every trainable parameter learns"]
    assert learns.status == "info" and f"explained by '{OWNERSHIP}'" in learns.value
    assert found["loop: train/eval mode"].status == "skip"


def test_a_watch_given_the_trained_model_names_the_optimizer_on_another_copy():
    found = _run(on_copy=True, watched="model")
    assert found[OWNERSHIP].status == "fail" and "copy of the model" in found[OWNERSHIP].advice


@pytest.mark.parametrize("watched", ["model"])
def test_an_optimizer_on_the_trained_model_with_an_ema_copy_is_clean(watched):
    found = _run(on_copy=False, watched=watched)
    assert found[OWNERSHIP].status == "pass"
    assert not [v for v in found.values() if v.status in ("warn", "fail")], list(found.values())
