"""A LambdaLR warm-up written without its cap (``lambda s: (s + 1) / warmup``, the ``min(1.0, ...)`` left out): the
rate keeps growing past the optimizer's lr. The watch's ``loop: learning rate applied`` names it; the capped
warm-up, and one capped at 4x the lr on purpose, pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: learning rate applied"
WARMUP = 4


def _run(cap: float | None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(192, 6, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    warm = (lambda s: (s + 1) / WARMUP) if cap is None else (lambda s: min(cap, (s + 1) / WARMUP))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warm)
    with doctor.watch(model, opt, every=8) as w:
        for i in range(0, 192, 8):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i:i + 8]), y[i:i + 8])
            loss.backward()
            opt.step()
            sched.step()
            w.step(loss, y=y[i:i + 8])
    return next(v for v in w.report().verdicts if v.check == NAME)


@pytest.fixture(scope="module")
def verdicts():
    return {cap: _run(cap) for cap in (None, 1.0, 4.0)}


@pytest.mark.slow
def test_a_warm_up_without_its_cap_is_named(verdicts):
    v = verdicts[None]
    assert v.status == "warn" and "a warm-up with no cap" in v.value and "6x the optimizer's lr" in v.value
    assert "min(1.0" in v.advice


@pytest.mark.slow
def test_capped_warm_ups_pass(verdicts):
    assert verdicts[1.0].status == "pass" and verdicts[4.0].status == "pass"
