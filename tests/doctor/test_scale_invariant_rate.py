"""A cosine classifier (class weights and features each normalized, ``s * cos(theta)``) trained with
SGD(lr=0.1, momentum=0.9): its class weights enter only after normalization, so every step grows their norm and
shrinks the effective step lr / ||w||^2 (Hoffer et al. 2018). Its slow, near-linear curve reads "too low", but a 3x
rate trains worse: the advice must not say to raise the rate there. A plain Linear head, and a cosine head whose
norm did not grow, keep the curve's advice."""

import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.diagnosis import LR_CURVE
from trainwell.doctor.scale_invariant_rate import StartNorms, grown_norms, invariant_tail
from trainwell.doctor.verdict import Verdict


class CosineHead(nn.Module):
    def __init__(self, d: int, classes: int, s: float = 8.0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(classes, d) * 0.01)
        self.s = s

    def forward(self, h):
        return self.s * F.normalize(h, dim=1) @ F.normalize(self.w, dim=1).T


def _model(head: str) -> nn.Sequential:
    torch.manual_seed(0)
    last = CosineHead(32, 10) if head == "cosine" else nn.Linear(32, 10)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), last)


def _blobs():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 64, generator=g)
    y = torch.randint(0, 10, (640,), generator=g)
    return centers[y] + torch.randn(640, 64, generator=g), y


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data, dtype=torch.float32)[:1400] / 16.0, torch.tensor(d.target)[:1400]


TOO_LOW = Verdict(LR_CURVE, "warn", "too low: slow, near-linear decrease; start 3.06 -> end 1.62", "a bend",
                  "raise the learning rate (by 3-10x)")


def _trained(head: str, steps: int, lr: float = 0.1):
    x, y = _blobs()
    model = _model(head)
    start = StartNorms(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for i in range(steps):
        rows = slice(64 * i, 64 * (i + 1))
        loss = F.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, start, ((x[:64],), {})


def test_the_scale_invariant_layers_are_found():
    x, _ = _blobs()
    assert invariant_tail(_model("cosine"), x[:8]) == ["3", "2"]  # the class weights, the normalized features' layer
    assert invariant_tail(_model("linear"), x[:8]) == []


def test_too_low_on_a_grown_cosine_head_does_not_say_raise():
    model, start, forward = _trained("cosine", 10)
    v = grown_norms(TOO_LOW, start, types.SimpleNamespace(model=model, reading=False), forward, 0.1)
    assert v.status == "warn" and str(v.value).startswith("too low") and "'3.w'" in v.value
    assert "scale-invariant" in v.value and "raise the learning rate" not in v.advice
    assert "smaller learning rate" in v.advice and "Hoffer" in v.advice and "\n" not in v.advice


@pytest.mark.parametrize(("head", "steps"), [("linear", 10), ("cosine", 0)])
def test_the_advice_stands_where_no_norm_grew(head, steps):
    model, start, forward = _trained(head, steps)
    assert grown_norms(TOO_LOW, start, types.SimpleNamespace(model=model, reading=False), forward, 0.1) is TOO_LOW


def _watched(lr: float):
    x, y = _digits()
    model = _model("cosine")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(3):
            for i in torch.randperm(len(x), generator=torch.Generator().manual_seed(1)).split(64):
                loss = F.cross_entropy(model(x[i]), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i])
    return w.report()[LR_CURVE]


@pytest.mark.slow
def test_the_watch_never_says_raise_on_the_cosine_classifier():
    v = _watched(0.1)
    assert "raise the learning rate" not in v.advice, v
    if str(v.value).startswith("too low"):
        assert "scale-invariant" in v.value
