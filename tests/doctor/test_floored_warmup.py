"""A hand-written warm-up by integer division, ``base_lr * min(1, (step + 1) // warmup_steps)``: the rate is exactly 0
for the whole warm-up, then the full rate at once; named by ``loop: learning rate applied``. The same warm-up with a
float division, and a staircase warm-up (the rate raised in quarters), pass; so does a group held at 0 while the
head trains (a backbone unfrozen later)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.floored_warmup import floored_warmup

NAME = "loop: learning rate applied"


def _train(kind: str, epochs: int = 3):
    """``kind``: "floor" (``//``), "divide" (``/``) or "stairs" (``base_lr * (1 + 4 * step // warmup) / 4``,
    capped at the rate), over 8 steps per epoch with a warm-up of 12 steps."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    base_lr, warmup_steps = 0.05, 12
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9)
    step = 0
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            for i in range(0, len(x), 32):
                factor = {"floor": min(1, (step + 1) // warmup_steps), "divide": min(1.0, (step + 1) / warmup_steps),
                          "stairs": min(1.0, (1 + 4 * step // warmup_steps) / 4)}[kind]
                for group in opt.param_groups:
                    group["lr"] = base_lr * factor
                step += 1
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + 32])
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[:64]), y[:64]).item())
    return {v.check: v for v in w.report()}


def test_a_warmup_by_integer_division_warns():
    v = _train("floor")[NAME]
    assert v.status == "warn", v
    assert v.value.startswith("the rate was exactly 0 on the first 11 of 24 steps, then 0.05 from step 12 on"), v


@pytest.mark.parametrize("kind", ["divide", "stairs"])
def test_warmups_that_ramp_pass(kind):
    v = _train(kind)[NAME]
    assert v.status == "pass", v


def test_the_rates_read():
    ramp = [0.0] * 12 + [0.1] * 20
    assert floored_warmup(NAME, [ramp]) is not None
    assert floored_warmup(NAME, [[0.0] * 9 + [0.1] * 20]) is None  # too few steps at 0 to tell
    assert floored_warmup(NAME, [[0.0] * 12 + [0.01, 0.05] + [0.1] * 20]) is None  # it ramps after its zeros
    assert floored_warmup(NAME, [ramp, [0.1] * 32]) is None  # a group trains meanwhile: a backbone held on purpose
    assert floored_warmup(NAME, [[0.0] * 32]) is None  # 0 throughout: the zero-rate reading's


def test_a_per_epoch_warmup_from_zero_names_its_epoch():
    """``LambdaLR(opt, lambda e: min(1.0, e / 2))`` stepped once per epoch: the whole first epoch at rate 0, then half
    the rate at once; the verdict names the per-epoch schedule beside integer division, and advises starting above
    0."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, e / 2))
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(4):
            for i in range(0, len(x), 16):
                loss = F.cross_entropy(model(x[i : i + 16]), y[i : i + 16])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + 16])
            sched.step()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[:64]), y[:64]).item())
    v = {v.check: v for v in w.report()}[NAME]
    assert v.status == "warn", v
    assert v.value.startswith("the rate was exactly 0 on the first 16 of 64 steps, then 0.025 from step 17 on"), v
    assert "stepped once per epoch" in v.value and "(epoch + 1) / warmup_epochs" in v.advice, v


def test_the_epoch_ends_read():
    ramp = [0.0] * 12 + [0.1] * 20
    assert "integer division" in floored_warmup(NAME, [ramp], {8, 16, 24}).value
    assert "once per epoch" not in floored_warmup(NAME, [ramp], {8, 16, 24}).value
    assert "once per epoch" in floored_warmup(NAME, [ramp], {12, 24}).value
