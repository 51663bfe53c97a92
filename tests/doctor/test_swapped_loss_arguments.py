"""``criterion(y, model(x))`` with ``BCEWithLogitsLoss``: the arguments swapped run without an error (its target may
need a gradient), the loss falls below 0 and the classifier stays at chance. ``loop: loss`` names it from the
gradient (-y / N whatever the outputs) and the value; the loss in the right order passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor


def _run(swapped: bool, labels: int = 1, one_hot: bool = False):
    """A binary classifier (labels=1), a multi-label one, or one-vs-rest on one-hot rows of ``labels`` classes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 12, generator=g)
    y = (x[:, :labels] + 0.5 * x[:, labels : 2 * labels] > 0).float().squeeze(1)
    if one_hot:
        y = F.one_hot(x[:, :labels].argmax(1), labels).float()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, labels))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.BCEWithLogitsLoss()
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
                out = model(xb).squeeze(1) if labels == 1 else model(xb)
                loss = criterion(yb, out) if swapped else criterion(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return next(v for v in w.report().verdicts if v.check == "loop: loss")


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
@pytest.mark.parametrize("case", [dict(labels=1), dict(labels=3), dict(labels=4, one_hot=True)])
def test_swapped_arguments_fail(case):
    """One-hot rows make the gradient NLL's on raw scores (-1/N at the label): the value tells them apart."""
    v = _run(swapped=True, **case)
    assert v.status == "fail" and "its arguments are swapped" in v.value
    assert "criterion(model(x), y)" in v.advice


@pytest.mark.parametrize("case", [dict(labels=1), dict(labels=4, one_hot=True)])
def test_the_right_order_passes(case):
    v = _run(swapped=False, **case)
    assert v.status == "pass" and v.value.startswith("mean binary cross-entropy with logits")
