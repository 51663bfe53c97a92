"""``loss.backward()`` and ``optimizer.step()`` dedented out of the batch loop: every batch runs forward, only the
last one of each epoch trains. The watch names it (``loop: every batch reaches backward``); the loop with them
inside, and a loop that logs one accuracy per step with gradients on, pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.dropped_batches import NAME, dropped_batches


def _verdict(dedented: bool):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g)
    y = (x[:, :3] @ torch.randn(3, 3, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=3) as w:
        for _ in range(3):
            for i in range(0, 320, 32):
                xb, yb = x[i:i + 32], y[i:i + 32]
                loss = F.cross_entropy(model(xb), yb)
                if not dedented:
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    w.step(loss, y=yb)
            if dedented:
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.mark.slow
def test_backward_and_step_outside_the_batch_loop_are_named():
    v = _verdict(dedented=True)
    assert v is not None and v.status == "fail" and "outside the batch loop" in v.advice


@pytest.mark.slow
def test_the_loop_with_them_inside_passes():
    assert _verdict(dedented=False) is None


def test_a_few_dropped_forwards_per_step_pass():
    assert dropped_batches([1, 1, 1, 1]) is None  # an accuracy logged with gradients on
    assert dropped_batches([5, 5, 5]) is None  # a WGAN generator's samples for 5 critic steps
    assert dropped_batches([9, 9]) is None  # too few steps
    assert dropped_batches([9, 31, 31]) is not None
