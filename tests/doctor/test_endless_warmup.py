"""A LambdaLR warm-up sized far past the run (``min(1, (s + 1) / warmup)`` with ``warmup`` 100x too long): the
rate climbs on every step and ends at a small share of the optimizer's lr. The watch's ``loop: learning rate
applied`` names it; the same warm-up sized to a few percent of the run passes."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.endless_warmup import endless_warmup

NAME = "loop: learning rate applied"
STEPS = 64


def _run(warmup: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS * 8, 6, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    with doctor.watch(model, opt, every=16) as w:
        for i in range(0, len(x), 8):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i:i + 8]), y[i:i + 8])
            loss.backward()
            opt.step()
            sched.step()
            w.step(loss, y=y[i:i + 8])
    return next(v for v in w.report().verdicts if v.check == NAME)


def test_a_warm_up_100x_longer_than_the_run_is_named():
    v = _run(warmup=100 * 4)
    assert v.status == "warn" and "a warm-up that never ended" in v.value
    assert f"{STEPS / 400:.0%} of the scheduler's base rate 0.1" in v.value
    assert "len(loader)" in v.advice


def test_a_warm_up_of_a_few_steps_passes():
    assert _run(warmup=4).status == "pass"


def test_rates_alone():
    ramp = [0.1 * (s + 1) / 1000 for s in range(100)]
    assert endless_warmup(NAME, ramp, None, 0.1, None).status == "warn"
    assert endless_warmup(NAME, ramp, None, 0.1, lambda: 0.1) is None  # the function stops where the run did
    assert endless_warmup(NAME, ramp[:40], None, 0.1, None) is None  # too few steps to read
    assert endless_warmup(NAME, [0.1 * min(1, (s + 1) / 300) for s in range(100)], None, 0.1, None) is None
    steps = [0.1 * (1 + s // 20) / 100 for s in range(100)]  # rises in jumps: a per-epoch stepping, read elsewhere
    assert endless_warmup(NAME, steps, None, 0.1, None) is None
    assert endless_warmup(NAME, ramp, None, None, None) is None  # no scheduler holds the group
