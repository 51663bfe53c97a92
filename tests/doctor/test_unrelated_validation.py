"""Validation features shuffled apart from their labels: the model fits its training batches while its validation
predictions agree with the validation labels only at chance, from the first validation on. The watch names it
(``loop: validation labels``); the aligned validation passes, and so does a model memorizing random training labels
(its validation at chance too, but the training batches not fitted by the first validation: overfitting's
reading)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: validation labels"


@pytest.mark.parametrize("kind", ["shuffled", "aligned", "memorizing"])
def test_validation_labels_apart_from_their_inputs_are_named(kind):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x, xv = 2 * torch.randn(512, 10, generator=g), 2 * torch.randn(256, 10, generator=g)
    y, yv = (x @ w).argmax(1), (xv @ w).argmax(1)
    if kind == "shuffled":  # the features by one permutation, the labels left in their order
        xv = xv[torch.randperm(len(xv), generator=g)]
    if kind == "memorizing":  # labels drawn apart from the inputs: nothing to learn but the rows themselves
        y = torch.randint(0, 4, (512,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=5) as watch:
        for _ in range(4):
            model.train()
            for i in range(0, 512, 32):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
                loss.backward()
                opt.step()
                watch.step(loss, y=y[i : i + 32])
            model.eval()
            with torch.no_grad():
                watch.validate(F.cross_entropy(model(xv), yv).item())
    named = [v for v in watch.report().verdicts if v.check == NAME and v.status in ("warn", "fail")]
    if kind == "shuffled":
        assert len(named) == 1 and "do not go with their inputs" in named[0].value
    else:
        assert not named
