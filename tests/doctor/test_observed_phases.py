"""The watch's observed steps fall on every phase of a short period of the loop's own: a loop that steps on every
batch but calls ``zero_grad()`` on every fourth (gradient accumulation written wrong), observed one step in 8, had
every observed step land right after a ``zero_grad()`` (its step reads one batch) and read as healthy. The twin
accumulates four batches per step, as meant, and is not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.loop_probe import LoopProbe

NAME = "loop: gradients at optimizer.step()"


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 8, generator=g)
    return x, (x[:, 0] > 0).long()


def _run(step_every_batch: bool):
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(3):
            for i in range(0, 1024, 32):
                k = i // 32
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32]) / 4
                loss.backward()
                if step_every_batch:  # a step on every batch, .grad cleared on every fourth only
                    opt.step()
                    if k % 4 == 2:
                        opt.zero_grad()
                    w.step(loss, y=y[i : i + 32])
                elif k % 4 == 3:  # four batches accumulated, then one step
                    opt.step()
                    opt.zero_grad()
                    w.step(loss, y=y[i : i + 32])
    return w.report()[NAME]


def test_observed_steps_cover_every_phase_of_short_periods():
    class Probe:
        every = 20
    steps = [k for k in range(400) if LoopProbe._observed(Probe, k)]
    assert len([k for k in steps if k >= 3]) == 20  # one in each block of 20, as before
    for period in (2, 3, 4, 5, 6, 8):
        assert {k % period for k in steps[3:]} == set(range(period))


@pytest.mark.slow
def test_zero_grad_every_fourth_step_is_named_whatever_the_cadence():
    bug = _run(step_every_batch=True)
    assert bug.status == "fail" and "earlier steps' gradients" in bug.value


@pytest.mark.slow
def test_four_batches_accumulated_per_step_pass():
    assert _run(step_every_batch=False).status == "pass"
