"""The training forward under ``torch.no_grad()`` and ``loss.requires_grad_()`` written to quiet backward()'s
"does not require grad" error: the loss is a leaf of its own, no parameter ever gets a gradient. The watch's
``loop: every trainable parameter learns`` names the leaf loss, explicitly and under ``trainwell watch``; the loop
without the no_grad passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: every trainable parameter learns"
SCRIPT = """
import sys

import torch
import torch.nn.functional as F
from torch import nn

no_grad = sys.argv[1] == "no_grad"
g = torch.Generator().manual_seed(0)
w = torch.randn(10, 4, generator=g)
x = torch.randn(640, 10, generator=g)
y = (x @ w).argmax(1)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    for i in range(0, 640, 32):
        xb, yb = x[i : i + 32], y[i : i + 32]
        opt.zero_grad()
        with torch.no_grad() if no_grad else torch.enable_grad():
            out = model(xb)
        loss = F.cross_entropy(out, yb)
        if no_grad:
            loss.requires_grad_()  # "element 0 of tensors does not require grad" no more
        loss.backward()
        opt.step()
"""


def _explicit(no_grad: bool):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(640, 10, generator=g)
    y = (x @ w).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as watch:
        for i in range(0, 640, 32):
            xb, yb = x[i : i + 32], y[i : i + 32]
            opt.zero_grad()
            with torch.no_grad() if no_grad else torch.enable_grad():
                out = model(xb)
            loss = F.cross_entropy(out, yb)
            if no_grad:
                loss.requires_grad_()
            loss.backward()
            opt.step()
            watch.step(loss, y=yb)
    return watch.report().verdicts


@pytest.mark.parametrize("no_grad", [True, False])
def test_explicit_watch_names_the_leaf_loss(no_grad):
    reach = next(v for v in _explicit(no_grad) if v.check == NAME)
    if no_grad:
        assert reach.status == "fail" and "a leaf tensor with no graph" in reach.value
    else:
        assert reach.status in ("pass", "info") and "leaf" not in reach.value


@pytest.mark.slow
def test_trainwell_watch_names_the_leaf_loss(tmp_path):
    from trainwell.doctor.script_watch import watch_script

    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    (bug,), (fixed,) = (watch_script(str(path), [side], every=5) for side in ("no_grad", "with_grad"))
    assert bug[NAME].status == "fail" and "a leaf tensor with no graph" in bug[NAME].value
    assert not [v for v in fixed if v.status in ("warn", "fail")]
