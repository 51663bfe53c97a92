"""A hand-written linear warm-up whose step counter is never incremented: the rate stays at its first value,
base_lr / warmup_steps, for the whole run; named by ``loop: learning rate applied``. A warm-up that advances, a
small rate the optimizer was built with, and a ConstantLR scheduler holding a fraction of the rate pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import lr_scheduler as S
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: learning rate applied"


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(10, 32)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))


def _train(kind: str, epochs: int = 3):
    """``kind``: "stuck" (``step += 1`` forgotten), "advancing", "small" (the optimizer built with a small rate, no
    warm-up code) or "constant_lr" (a ConstantLR(factor=0.01) stepped every batch)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    torch.manual_seed(0)
    model = Classifier()
    base_lr, warmup_steps = 0.05, 100
    opt = torch.optim.SGD(model.parameters(), lr=base_lr / warmup_steps if kind == "small" else base_lr,
                          momentum=0.9)
    sched = S.ConstantLR(opt, factor=0.01, total_iters=1000) if kind == "constant_lr" else None
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    step = 0
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                if kind in ("stuck", "advancing"):
                    for group in opt.param_groups:
                        group["lr"] = base_lr * min(1.0, (step + 1) / warmup_steps)
                    if kind == "advancing":
                        step += 1
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                w.step(loss, y=yb)
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[:64]), y[:64]).item())
        return w.report()


@pytest.fixture(scope="module")
def stuck():
    return _train("stuck")


def test_a_warmup_whose_counter_never_advances_is_named(stuck):
    v = stuck[NAME]
    assert v.status == "warn", v
    assert "the rate was 0.0005 at all 24 steps: 1/100 of the 0.05 the param group had" in v.value, v
    assert "warm-up stuck at its first step" in v.value and "step counter never advances" in v.advice


def test_the_loss_curve_defers_to_it(stuck):
    curve = stuck["learning rate (loss curve)"]
    assert curve.status in ("pass", "info"), curve


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
@pytest.mark.parametrize("kind", ["advancing", "small", "constant_lr"])
def test_an_advancing_warmup_or_a_small_rate_chosen_is_not_named(kind):
    v = _train(kind)[NAME]
    assert "warm-up stuck" not in v.value, v


def test_a_rate_lowered_10x_between_phases_is_not_read_as_a_warmup():
    from trainwell.doctor.stuck_warmup import stuck_warmup

    assert stuck_warmup([[0.01] * 40], [0.1]) is None
    assert stuck_warmup([[0.0005] * 40], [0.05], [0.05]) is None  # a scheduler holds the group
    assert stuck_warmup([[0.1] * 40, [0.0005] * 40], [0.1, 0.05]).value.startswith("param group 1: ")
