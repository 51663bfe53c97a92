"""A configuration's 0 (or -1) for "no clipping" handed to ``clip_grad_norm_``: torch scales every gradient by
``max_norm / norm``, so 0 stops the training and -1 reverses every step. Watch names the max_norm (not a
``zero_grad()`` misplaced, which the empty gradients would otherwise suggest); a positive max_norm passes."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.clip_max_norm import NAME


def _data(n=128):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(3, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _train(max_norm: float):
    """The user's loop: clip_grad_norm_(model.parameters(), max_norm) between backward() and step()."""
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start = [p.detach().clone() for p in model.parameters()]
    with doctor.watch(model, opt, every=2) as w:
        for step in range(8):
            xb, yb = x[16 * step : 16 * step + 16], y[16 * step : 16 * step + 16]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            opt.step()
            w.step(loss, y=yb)
    moved = any(not torch.equal(a, p) for a, p in zip(start, model.parameters(), strict=True))
    return {v.check: v for v in w.report().verdicts}, moved


def test_max_norm_0_stops_the_training_and_is_named():
    verdicts, moved = _train(0.0)
    assert not moved  # the oracle: torch left every weight where it started
    v = verdicts[NAME]
    assert v.status == "fail" and "max_norm=0" in v.value and "every gradient to 0" in v.value
    assert re.match(r"clip_grad_norm_\(max_norm=0\), in all \d+ calls read, sets every gradient to 0", v.value), v
    assert "if max_norm > 0" in v.advice
    assert "loop: gradients at optimizer.step()" not in verdicts  # not read as a zero_grad() misplaced


def test_a_negative_max_norm_is_named_as_reversing_the_steps():
    verdicts, _ = _train(-1.0)
    assert verdicts[NAME].status == "fail" and "reverses every gradient" in verdicts[NAME].value


@pytest.mark.parametrize("max_norm", [10.0, 1e9])
def test_a_positive_max_norm_passes(max_norm):
    verdicts, moved = _train(max_norm)
    assert moved and NAME not in verdicts
    assert verdicts["loop: gradients at optimizer.step()"].status == "pass"
