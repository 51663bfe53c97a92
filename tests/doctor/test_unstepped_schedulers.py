"""A scheduler created before the loop and never stepped in it (``scheduler.step()`` forgotten): the rate stays at
its start, named by ``loop: learning rate applied``. Stepping it, a SequentialLR whose later part waits for its
milestone, a loop with no scheduler, and one epoch (too early to tell) pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import lr_scheduler as S
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: learning rate applied"


def _run(make, step: str = "", epochs: int = 3, validate: bool = True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(192, 10, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    sched = make(opt, epochs * len(loader)) if make is not None else None
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step == "batch":
                    sched.step()
                w.step(loss, y=yb)
            with torch.no_grad():
                val = float(F.cross_entropy(model(x[:64]), y[:64]))
            if validate:
                w.validate(val)
            if step == "epoch":
                sched.step(val) if isinstance(sched, S.ReduceLROnPlateau) else sched.step()
    return next(v for v in w.report().verdicts if v.check == NAME)


@pytest.mark.parametrize("make, kind", [
    (lambda opt, total: S.StepLR(opt, step_size=1, gamma=0.5), "StepLR"),
    (lambda opt, total: S.OneCycleLR(opt, max_lr=0.1, total_steps=total), "OneCycleLR"),
])
def test_a_scheduler_never_stepped_is_named(make, kind):
    v = _run(make)
    assert v.status == "warn" and f"{kind} created on the optimizer, but scheduler.step() never ran" in v.value
    assert "over 3 epochs" in v.value


def test_epochs_told_by_the_loader_passes_without_validation():
    v = _run(lambda opt, total: S.StepLR(opt, step_size=1), validate=False)
    assert v.status == "warn" and "never ran" in v.value


@pytest.mark.parametrize("make, step", [
    (lambda opt, total: S.StepLR(opt, step_size=1, gamma=0.5), "epoch"),
    (lambda opt, total: S.ReduceLROnPlateau(opt, patience=0), "epoch"),
    (lambda opt, total: S.OneCycleLR(opt, max_lr=0.1, total_steps=total), "batch"),
    # a warm-up, then a cosine that starts after the run watched here: SequentialLR steps its parts
    (lambda opt, total: S.SequentialLR(opt, [S.LinearLR(opt, 0.1, total_iters=5), S.CosineAnnealingLR(opt, 100)],
                                       milestones=[10 * total]), "batch"),
    (None, ""),
])
def test_stepped_or_no_scheduler_passes(make, step):
    assert "never ran" not in _run(make, step).value


def test_one_epoch_is_too_early_to_tell():
    assert "never ran" not in _run(lambda opt, total: S.StepLR(opt, step_size=1), epochs=1).value
