"""Gradient clipping written in the wrong place of a user's step: ``clip_grad_norm_`` before ``loss.backward()``
finds no gradient and clips nothing; after ``optimizer.step()`` it clips what the step already applied. The watch
names both (``loop: clipping order``); clipping between backward and step, a GradScaler's unscale-then-clip, and a
norm measured after the step for a log (``max_norm`` never reached) pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import clip_grad_norm_
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: clipping order"


def _verdict(report):
    return next((v for v in report.verdicts if v.check == NAME), None)


def _train(where: str, max_norm: float = 0.5, set_to_none: bool = True, scaler: bool = False):
    """A user's loop over a DataLoader, clipping ``where``: before (the backward), between (backward and step),
    after (the step); the verdict it gets."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(640, 10, generator=g)
    loader = DataLoader(TensorDataset(x, (x @ w).argmax(1)), batch_size=32, shuffle=True, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    amp = torch.amp.GradScaler("cpu", init_scale=2.0**8) if scaler else None
    with doctor.watch(model, opt, every=5) as watch:
        for xb, yb in loader:
            opt.zero_grad(set_to_none=set_to_none)
            loss = F.cross_entropy(model(xb), yb)
            if where == "before":
                clip_grad_norm_(model.parameters(), max_norm)
            if amp is not None:
                amp.scale(loss).backward()
                amp.unscale_(opt)
            else:
                loss.backward()
            if where == "between":
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            if amp is not None:
                amp.step(opt)
                amp.update()
            else:
                opt.step()
            if where == "after":
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            watch.step(loss, y=yb)
    return _verdict(watch.report())


@pytest.mark.parametrize("set_to_none", [True, False])
def test_clipping_before_backward_is_named(set_to_none):
    v = _train("before", set_to_none=set_to_none)
    assert v is not None and v.status == "warn"
    assert "before loss.backward()" in v.value and "clips nothing" in v.value
    assert "after loss.backward() and before optimizer.step()" in v.advice


def test_clipping_after_the_step_is_named():
    v = _train("after")
    assert v is not None and v.status == "warn"
    assert "after optimizer.step()" in v.value and "already applied" in v.value


def test_clipping_between_backward_and_step_passes():
    assert _train("between") is None


def test_unscale_then_clip_under_a_grad_scaler_passes():
    assert _train("between", scaler=True) is None


def test_a_norm_measured_after_the_step_passes():
    # clip_grad_norm_(params, inf) returns the norm without clipping: a log of the applied gradient's norm
    assert _train("after", max_norm=float("inf")) is None


def test_clipping_before_backward_that_would_never_bind_is_information():
    v = _train("before", max_norm=1e6)
    assert v is not None and v.status == "info"


def test_clipping_another_models_parameters_is_not_read():
    # a second model's clipping (a target network, a discriminator) says nothing of the watched one's order
    other = nn.Linear(3, 3)
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=2) as watch:
        for _ in range(8):
            opt.zero_grad()
            clip_grad_norm_(other.parameters(), 0.1)
            loss = model(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            opt.step()
            watch.step(loss)
    assert watch._clips.calls == 0
    assert _verdict(watch.report()) is None
