"""The doctor on a validation set not preprocessed like the training set: features standardized with the
training mean and std for training but left raw for validation, or pixels divided by 255 for training only. The
validation error then reads as overfitting; the watch names the validation inputs instead (from the forwards
without gradients before ``w.validate()``). A validation set preprocessed alike passes, also with a real shift
between the splits, and sparse features absent from a small validation set are not read as a scale change."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.validation_inputs import Moments

NAME = "loop: validation inputs"


def _tabular(n, seed):
    """Raw tabular features in their own units (ages, incomes, counts), a label from two of them."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 6, generator=g)
    y = ((z[:, 0] + z[:, 1] > 0).long() + (z[:, 2] > 0.5).long())
    units = torch.tensor([12.0, 2e4, 3.0, 50.0, 0.5, 7.0])
    offset = torch.tensor([40.0, 5e4, 10.0, 300.0, 2.0, 20.0])
    return z * units + offset, y


def _train(x, y, xv, yv, epochs=3, batch=32):
    """The user's loop: train on DataLoader batches, validate per epoch over a validation DataLoader."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(xv, yv), batch_size=64)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            model.train()
            for xb, yb in train:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(sum(float(F.cross_entropy(model(xb), yb, reduction="sum")) for xb, yb in val) / len(xv))
    with torch.no_grad():
        errors = [float((model(a).argmax(1) != b).float().mean()) for a, b in ((x, y), (xv, yv))]
    return w.report(train_error=errors[0], val_error=errors[1]), errors


def _verdict(report):
    return next((v for v in report if v.check == NAME), None)


def test_moments_match_torch_on_features_with_a_large_offset():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(300, 3, generator=g) * 2 + 1e6, torch.rand(300, 1, generator=g) ** 4], 1).double()
    m = Moments()
    for part in x.split(37):
        m.add(part)
    mean, std, kurt, n = m.stats(per_feature=True)
    assert n == 300
    assert torch.allclose(mean, x.mean(0), rtol=1e-12)
    assert torch.allclose(std, x.std(0), rtol=1e-6)
    c = x - x.mean(0)
    assert torch.allclose(kurt, (c ** 4).mean(0) / (c ** 2).mean(0) ** 2, rtol=1e-4)


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_raw_validation_features_beside_standardized_training_ones_are_named():
    x, y = _tabular(1024, 0)
    xv, yv = _tabular(512, 1)
    mu, sd = x.mean(0), x.std(0)
    report, (train_error, val_error) = _train((x - mu) / sd, y, xv, yv)  # validation left raw
    assert val_error > train_error + 0.1  # the mismatch costs the validation error
    v = _verdict(report)
    assert v is not None and v.status == "warn", v
    # the features whose raw units are near unit scale (std 0.5, mean 2) are not off; the other five are
    assert "5 of 6 input features" in str(v.value) and "preprocess" in v.advice
    for check in ("bias/variance", "overfitting"):  # the gap is not read as overfitting
        other = next(o for o in report if o.check == check)
        assert other.status == "info" and f"explained by '{NAME}'" in str(other.value), other


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_standardized_validation_features_pass():
    x, y = _tabular(1024, 0)
    xv, yv = _tabular(512, 1)
    mu, sd = x.mean(0), x.std(0)
    report, _ = _train((x - mu) / sd, y, (xv - mu) / sd, yv)
    v = _verdict(report)
    assert v is not None and v.status == "pass", v


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_pixels_divided_by_255_for_training_only_are_named():
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (768, 64), generator=g).float()
    y = (pixels[:, :8].mean(1) > 127.5).long() + (pixels[:, 8:16].mean(1) > 127.5).long()
    report, _ = _train(pixels[:512] / 255, y[:512], pixels[512:], y[512:])
    v = _verdict(report)
    assert v is not None and v.status == "warn" and "64 of 64" in str(v.value), v
    ratio = float(re.search(r"std is ([0-9.]+)x", str(v.value)).group(1))
    assert 0.9 * 255 < ratio < 1.1 * 255


@pytest.mark.parametrize("shift, scale", [(0.5, 1.3), (-0.3, 0.8), (1.0, 1.0)])
@pytest.mark.slow  # 0.21 s each on a 2-core CPU (RESULTS §51)
def test_a_real_shift_between_the_splits_is_not_flagged(shift, scale):
    """Validation data from a shifted population (every feature's mean moved by up to 1 std, its spread by up to
    1.3x), preprocessed with the training statistics: not a preprocessing mismatch."""
    x, y = _tabular(1024, 0)
    xv, yv = _tabular(512, 1)
    mu, sd = x.mean(0), x.std(0)
    xv = mu + sd * shift + (xv - xv.mean(0)) * scale
    report, _ = _train((x - mu) / sd, y, (xv - mu) / sd, yv)
    v = _verdict(report)
    assert v is not None and v.status == "pass", v


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_sparse_features_absent_from_a_small_validation_set_pass():
    """Bag-of-words indicators of rare words (0.5% to 2% of the rows): a validation set of 32 rows lacks most of
    them, and their zero spread there is within sampling noise of a rare feature's, not a scale change."""
    g = torch.Generator().manual_seed(0)
    rates = torch.logspace(-2.3, -1.7, 200)
    words = (torch.rand(1056, 200, generator=g) < rates).float()
    y = (words[:, -100:].sum(1) > words[:, -100:].sum(1).median()).long()
    report, _ = _train(words[:1024], y[:1024], words[1024:], y[1024:])
    v = _verdict(report)
    assert v is not None and v.status == "pass" and "32 validation rows" in str(v.value), v
