"""Generalized cross-entropy (Zhang & Sabuncu 2018), L_q = (1 - p_y^q) / q, written by hand for labels with noise.
Its gradient is cross-entropy's times p_y^q, per example, and its first value at near-uniform outputs is
(1 - (1/C)^q) / q, below ln C: it is not read as outputs far from uniform. Cross-entropy on a head initialized
100x too large still is."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

CLASSES, Q = 4, 0.7


def generalized_cross_entropy(logits, labels, q=Q):
    p = F.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)
    return ((1 - p.clamp_min(1e-7) ** q) / q).mean()


def _watched(loss: str):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, CLASSES, (1024,), generator=g)
    x = 2.0 * torch.randn(CLASSES, 10, generator=g)[y] + torch.randn(1024, 10, generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    if loss == "cross_entropy_large_head":
        with torch.no_grad():
            model[2].weight.mul_(100.0)
    loss_fn = generalized_cross_entropy if loss == "generalized" else F.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for xb, yb in loader:
                value = loss_fn(model(xb), yb)
                opt.zero_grad()
                value.backward()
                opt.step()
                w.step(value, y=yb)
    return w.losses[0], w.report()["loop: loss"]


@pytest.mark.parametrize("loss", ["generalized", "cross_entropy_large_head"])
@pytest.mark.slow  # 0.23 s each on a 2-core CPU (RESULTS §51)
def test_generalized_cross_entropy_is_not_compared_with_ln_c(loss):
    first, verdict = _watched(loss)
    if loss == "generalized":
        uniform = (1 - (1 / CLASSES) ** Q) / Q  # the oracle: L_q at uniform outputs
        assert abs(first - uniform) < 0.15 * uniform and first < math.log(CLASSES)
        assert verdict.status == "pass" and "not compared with ln C" in str(verdict.value)
    else:
        assert verdict.status == "warn" and "far from uniform" in verdict.advice
