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

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

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


# ReduceLROnPlateau writes no initial_lr: it is found where the loop holds it, or at its creation inside the watch
PLATEAU_NEVER_STEPPED = "ReduceLROnPlateau(mode='min') created on the optimizer, but scheduler.step(metric) never ran"


def test_a_plateau_scheduler_never_stepped_is_named():
    v = _run(lambda opt, total: S.ReduceLROnPlateau(opt, factor=0.5, patience=1))
    assert v.status == "warn" and PLATEAU_NEVER_STEPPED in v.value and "over 3 epochs" in v.value, v
    assert "scheduler.step(val_loss)" in v.advice


def test_a_plateau_scheduler_stepped_every_epoch_that_never_lowers_the_rate_passes():
    v = _run(lambda opt, total: S.ReduceLROnPlateau(opt, patience=10), step="epoch")
    assert v.status == "pass" and "0.1 at step 1 -> 0.1 at step 18" in v.value, v


class _Trainer:
    """A user's trainer class: the scheduler an attribute, created in __init__ (or inside the watch), and the
    loop a method; ``step_it``: scheduler.step(val_loss) after each epoch's validation."""

    def __init__(self, inside: bool, step_it: bool):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(192, 10, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.inside, self.step_it = inside, step_it
        self.scheduler = None if inside else S.ReduceLROnPlateau(self.opt, patience=1)

    def fit(self, epochs: int = 3):
        loader = DataLoader(TensorDataset(self.x, self.y), batch_size=32, shuffle=True)
        with doctor.watch(self.model, self.opt) as w:
            if self.inside:
                self.scheduler = S.ReduceLROnPlateau(self.opt, patience=1)
            for _ in range(epochs):
                for xb, yb in loader:
                    loss = F.cross_entropy(self.model(xb), yb)
                    self.opt.zero_grad()
                    loss.backward()
                    self.opt.step()
                    w.step(loss, y=yb)
                with torch.no_grad():
                    val = float(F.cross_entropy(self.model(self.x[:64]), self.y[:64]))
                w.validate(val)
                if self.step_it:
                    self.scheduler.step(val)
        return w.report()[NAME]


@pytest.mark.parametrize("inside", [False, True])
def test_a_plateau_scheduler_held_by_a_trainer_never_stepped_is_named(inside):
    v = _Trainer(inside, step_it=False).fit()
    assert v.status == "warn" and PLATEAU_NEVER_STEPPED in v.value, v


def test_a_plateau_scheduler_held_by_a_trainer_and_stepped_passes():
    assert "never ran" not in _Trainer(inside=False, step_it=True).fit().value
