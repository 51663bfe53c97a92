"""Symmetric cross-entropy (Wang et al. 2019) for noisy labels: alpha x CE plus the reverse term
-sum p log(clamp(onehot, 1e-4)) = A (1 - p(label)), A = -log(1e-4). Its gradient is cross-entropy's with per-row
weights alpha + A p(label), which rise with the label's probability: neither a loss counted twice nor one whose
first value, A (1 - 1/C) at uniform outputs, is ln C times its weight. watch reads it as a loss growing slower
than cross-entropy and passes it; plain cross-entropy from a last layer initialized far too large still warns."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: loss"
CLASSES = 5


def symmetric_cross_entropy(logits, labels, alpha=0.1):
    p = logits.softmax(1).clamp(1e-7, 1.0)
    reverse = -(p * F.one_hot(labels, CLASSES).float().clamp(1e-4, 1.0).log()).sum(1).mean()
    return alpha * F.cross_entropy(logits, labels) + reverse


def _blobs(n=512):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(CLASSES, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return centers[y] + torch.randn(n, 6, generator=g), y


def _train(loss_fn, head_scale=1.0):
    torch.manual_seed(0)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    with torch.no_grad():
        model[2].weight.mul_(head_scale)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        for s in range(30):
            i = (s * 32) % len(x)
            loss = loss_fn(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + 32])
    return w.report()


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_symmetric_cross_entropy_is_neither_scaled_nor_far_from_uniform(alpha):
    # the oracle: at uniform outputs the loss is alpha ln C + A (1 - 1/C), far above its weight x ln C
    a = -math.log(1e-4)
    assert alpha * math.log(CLASSES) + a * (1 - 1 / CLASSES) > 2 * (alpha + a / CLASSES) * math.log(CLASSES)
    report = _train(lambda z, t: symmetric_cross_entropy(z, t, alpha))
    assert report[NAME].status == "pass", report[NAME]
    assert "rise with each label's probability" in report[NAME].value


def test_cross_entropy_from_a_far_too_large_last_layer_still_warns():
    report = _train(F.cross_entropy, head_scale=60.0)
    assert report[NAME].status == "warn" and "ln C" in report[NAME].value
