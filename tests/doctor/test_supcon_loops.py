"""doctor.watch on a supervised contrastive loop (SupCon, Khosla et al. 2020) written by hand as a log-softmax over
the similarities of two views of each example times the mask of each anchor's positives: its floor is the mean
ln(positives per anchor), so a healthy run levels off near it and gets no learning-rate warning, while a run at a
too-high rate, stuck far above that floor, is still told to lower it."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.supcon_floor import positives_floor


def blobs(n, classes=8, d=16):
    g = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(classes, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def supcon(z, labels, temperature):
    sim = z @ z.t() / temperature
    eye = torch.eye(len(z), dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(log_prob * positives).sum(1).div(positives.sum(1)).mean()


def _train(lr, epochs=2, temperature=0.1):
    torch.manual_seed(0)
    x, y = blobs(1024)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))
    opt = torch.optim.Adam(model.parameters(), lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, drop_last=True)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                views = torch.cat([xb + 0.1 * torch.randn_like(xb), xb + 0.1 * torch.randn_like(xb)])
                labels = torch.cat([yb, yb])
                loss = supcon(F.normalize(model(views), dim=1), labels, temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=labels)
    return w


def test_the_floor_is_what_ideal_embeddings_reach():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    z = F.one_hot(labels, 4).float()  # each class on its own axis: positives equal, negatives orthogonal
    reached = float(supcon(z, labels, temperature=0.01))
    assert abs(positives_floor(labels) - reached) < 1e-5  # float32 softmax
    expected = (3 * math.log(2) + 2 * math.log(1) + 4 * math.log(3) + 3 * math.log(2)) / 12  # the oracle: mean ln P
    assert abs(positives_floor(labels) - expected) < 1e-12


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_healthy_supcon_run_levels_off_at_its_floor_without_a_rate_warning():
    w = _train(1e-3)
    curve = w.report()["learning rate (loss curve)"]
    assert curve.status == "pass", curve
    assert "floor" in str(curve.value), curve
    assert abs(w._contrastive.square_scale - 10.0) < 1e-3  # the oracle: 1/T


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_supcon_run_at_a_too_high_rate_is_still_told_to_lower_it():
    w = _train(100.0)
    curve = w.report()["learning rate (loss curve)"]
    assert curve.status in ("warn", "fail"), curve
    assert "lower the learning rate" in curve.advice, curve
