"""Inputs far above unit scale (raw 0..255 pixels, tabular features in raw units) named by check ('input scale')
as by watch ('loop: inputs'), with the same threshold; regression targets in raw units named by check ('targets')
as by watch ('loop: labels'). Standardized and [0, 1] inputs, one-hot rows, embedding ids and standardized targets
stay silent."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.step_readings import abs_quantile

D = 24
FAR = 5 * 2.576  # a Gaussian of std 5's 99th percentile of |x|


def forecaster():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.head(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


class Tagger(nn.Module):
    def __init__(self, vocab=500):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, 16)
        self.out = nn.Linear(16, 5)

    def forward(self, ids):
        return self.out(self.emb(ids).mean(1))


def series(n=256, seed=0):
    """Demand readings in raw units (mean ~600, std ~300) and the next value to forecast."""
    g = torch.Generator().manual_seed(seed)
    level = 594 + 287 * torch.randn(n, 1, generator=g)
    x = level + 150 * torch.randn(n, D, generator=g)
    y = level + 30 * torch.randn(n, 1, generator=g)
    return x, y


def standardized(t):
    return (t - t.mean(0)) / t.std(0)


def images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 16, 16), generator=g).float(), torch.randint(0, 10, (n,), generator=g)


def verdict(report, name):
    return next((v for v in report.verdicts if v.check == name), None)


def warned(report, name):
    v = verdict(report, name)
    return v is not None and v.status == "warn"


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_tabular_features_in_raw_units_warn_with_the_standardizing_advice():
    x, y = series()
    report = doctor.check(forecaster(), x, standardized(y), nn.MSELoss())
    v = verdict(report, "input scale")
    assert v is not None and v.status == "warn" and "far above unit scale" in v.value
    assert "subtract the mean and divide by the std" in v.advice and "training set" in v.advice
    assert abs_quantile(x) > FAR  # the oracle: the inputs' own 99th percentile of |x|


def test_standardized_features_are_silent():
    x, y = series()
    report = doctor.check(forecaster(), standardized(x), standardized(y), nn.MSELoss())
    assert verdict(report, "input scale") is None and not warned(report, "targets")


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_raw_pixels_warn_and_pixels_in_unit_range_do_not():
    x, y = images()
    assert warned(doctor.check(SmallCNN(), x, y, nn.CrossEntropyLoss()), "input scale")
    assert verdict(doctor.check(SmallCNN(), x / 255, y, nn.CrossEntropyLoss()), "input scale") is None


@pytest.mark.slow  # 0.3-1.2 s each
def test_one_hot_rows_and_embedding_ids_are_silent():
    g = torch.Generator().manual_seed(0)
    cls = torch.randint(0, D, (128,), generator=g)
    y = torch.randint(0, 5, (128,), generator=g)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, 5))
    assert verdict(doctor.check(mlp, F.one_hot(cls, D).float(), y, nn.CrossEntropyLoss()), "input scale") is None
    ids = torch.randint(0, 500, (128, 12), generator=g)  # integer ids up to 499 into nn.Embedding
    assert verdict(doctor.check(Tagger(), ids, y, nn.CrossEntropyLoss()), "input scale") is None


def test_a_model_that_normalizes_its_input_first_is_silent():
    x, y = series()
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(D), nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 1))
    assert verdict(doctor.check(model, x, standardized(y), nn.MSELoss()), "input scale") is None


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_check_and_watch_agree_on_large_inputs():
    x, y = series()
    model = forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ys = standardized(y)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for i in range(0, len(x), 32):
                loss = F.mse_loss(model(x[i:i + 32]), ys[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    assert warned(w.report(), "loop: inputs")
    assert warned(doctor.check(forecaster(), x, ys, nn.MSELoss()), "input scale")


@pytest.mark.slow  # seconds each
def test_regression_targets_in_raw_units_warn_and_standardized_ones_do_not():
    x, y = series()
    for loss_fn in (nn.MSELoss(), nn.L1Loss(), nn.HuberLoss()):
        v = verdict(doctor.check(forecaster(), standardized(x), y, loss_fn), "targets")
        assert v is not None and v.status == "warn" and "raw units" in v.value
        assert "(y - mean) / std" in v.advice
    assert not warned(doctor.check(forecaster(), standardized(x), standardized(y), nn.MSELoss()), "targets")


@pytest.mark.slow  # seconds each
def test_box_targets_in_pixels_warn():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(128, 3, 16, 16, generator=g)
    boxes = torch.stack([torch.rand(128, generator=g) * 200 + 20 * k for k in range(4)], 1)  # x1, y1, x2, y2 px
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 4))
    assert warned(doctor.check(model, x, boxes, nn.SmoothL1Loss()), "targets")
