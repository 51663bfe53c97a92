"""A cosine classifier (features and class weights normalized, logits ``16 * cos``) on sklearn's 8x8 digits under
SGD(lr=0.1, momentum=0.9): the first steps throw every example's features one way, their scale-invariant layer's
norm grows and freezes the collapse, and the loss stalls at ~2.25 against ln 10 = 2.30 while the curve, falling
from a first loss of 5.8, reads "good". The watch names the stall and the collapse; the same loop at lr 0.01
(which learns) keeps its curve."""

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.collapsed_head import cosine_floor
from trainwell.doctor.diagnosis import LR_CURVE


class CosineHead(nn.Module):
    """Class weights and features each normalized before their dot product, scaled by s."""

    def __init__(self, d, classes, s=16.0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(classes, d) * 0.01)
        self.s = s

    def forward(self, h):
        return self.s * F.normalize(h, dim=1) @ F.normalize(self.w, dim=1).T


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32))
        self.head = CosineHead(32, 10)

    def forward(self, x):
        return self.head(self.body(x))


def _run(lr):
    torch.manual_seed(0)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32)[:1400] / 16.0, torch.tensor(d.target)[:1400]
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(3):
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()[LR_CURVE], sum(w.losses[-6:]) / 6


@pytest.fixture(scope="module")
def runs():
    return {lr: _run(lr) for lr in (0.1, 0.01)}


@pytest.mark.slow
def test_a_cosine_classifier_stalled_near_ln_c_is_not_read_good(runs):
    v, level = runs[0.1]
    assert level > 0.9 * math.log(10)  # the stall
    assert v.status == "warn" and v.value.startswith("stalled near ln C"), v.value
    assert "'head' point one way for every example" in v.value and "'body.2.weight' (scale-invariant) grew" in v.value
    assert "lower the learning rate (lr = 0.1) 10x" in v.advice and "Norm matters" in v.advice


@pytest.mark.slow
def test_the_same_classifier_at_a_smaller_rate_keeps_its_curve(runs):
    v, level = runs[0.01]
    assert level < 0.5 * math.log(10)
    assert "stalled" not in v.value


def test_the_floor_a_cosine_heads_scale_allows():
    assert cosine_floor(16.0, 10) < 1e-6  # s = 16 caps nothing a classifier over 10 classes needs
    assert 1.3 < cosine_floor(1.0, 10) < 1.45  # s = 1 does: ln(1 + 9 exp(-10/9))
