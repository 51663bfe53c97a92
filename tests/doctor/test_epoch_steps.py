"""``optimizer.step()`` dedented out of the batch loop: every batch's ``zero_grad()`` and ``backward()`` run, the step
once per epoch, on the last batch's gradient. Named (``loop: optimizer.step() runs``) by the explicit watch whose
``w.step()`` was dedented with it, and under ``trainwell watch``; the step inside the loop passes, and so does
gradient accumulation over 4 micro-batches."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

NAME = "loop: optimizer.step() runs"
SCRIPT = """
import sys

import torch
import torch.nn.functional as F
from torch import nn

dedented = sys.argv[1] == "dedented"
g = torch.Generator().manual_seed(0)
w = torch.randn(10, 4, generator=g)
x, xv = torch.randn(512, 10, generator=g), torch.randn(128, 10, generator=g)
y, yv = (x @ w).argmax(1), (xv @ w).argmax(1)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(4):
    model.train()
    for i in range(0, 512, 32):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
        loss.backward()
        if not dedented:
            opt.step()
    if dedented:
        opt.step()
    model.eval()
    with torch.no_grad():
        val = F.cross_entropy(model(xv), yv).item()
"""


@pytest.mark.parametrize("kind", ["dedented", "per_batch", "accumulated"])
def test_one_step_per_epoch_is_named(kind):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x, xv = torch.randn(512, 10, generator=g), torch.randn(128, 10, generator=g)
    y, yv = (x @ w).argmax(1), (xv @ w).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=1) as watch:
        for _ in range(4):
            model.train()
            for i in range(0, 512, 32):
                if kind != "accumulated" or i % 128 == 0:
                    opt.zero_grad()
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
                (loss / 4 if kind == "accumulated" else loss).backward()
                if kind == "per_batch" or (kind == "accumulated" and i % 128 == 96):
                    opt.step()
                    watch.step(loss, y=y[i : i + 32])
            if kind == "dedented":
                opt.step()
                watch.step(loss, y=y[i : i + 32])
            model.eval()
            with torch.no_grad():
                watch.validate(F.cross_entropy(model(xv), yv).item())
    named = [v for v in watch.report().verdicts if v.check == NAME and v.status in ("warn", "fail")]
    if kind == "dedented":
        assert len(named) == 1 and "each after 16 backward() passes" in named[0].value
    else:
        assert not named


@pytest.mark.slow
def test_trainwell_watch_names_one_step_per_epoch(tmp_path):
    from trainwell.doctor.script_watch import watch_script

    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    (bug,), (fixed,) = (watch_script(str(path), [side], every=5) for side in ("dedented", "per_batch"))
    assert bug[NAME].status == "fail" and "backward() passes of which zero_grad() left only the last" in \
        bug[NAME].value
    assert not [v for v in fixed if v.check.startswith("loop:") and v.status in ("warn", "fail")]
