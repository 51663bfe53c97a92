"""Corrupted data (data/corrupt.py): label noise, random labels and random pixels."""

import pytest
import torch

from trainwell.data import load
from trainwell.data.corrupt import label_noise, random_labels, random_pixels


def test_label_noise_resamples_the_requested_fraction():
    y = torch.zeros(10000, dtype=torch.int64)
    noisy = label_noise(y, 0.3, num_classes=10, seed=3)
    changed = float((noisy != y).float().mean())
    assert changed == pytest.approx(0.3 * 0.9, abs=0.015)
    assert torch.equal(noisy, label_noise(y, 0.3, 10, seed=3))


def test_random_labels_touch_train_only_and_are_fixed():
    clean = load("digits")
    s = load("digits", random_labels=True, corrupt_seed=5)
    assert torch.equal(s.test[1], clean.test[1]) and torch.equal(s.val[1], clean.val[1])
    agree = float((s.train[1] == clean.train[1]).float().mean())
    assert agree < 0.2  # chance is 10%
    assert torch.equal(s.train[1], random_labels(clean.train[1], 10, 5))


def test_random_pixels_permute_each_example_independently():
    x = torch.arange(24.0).reshape(2, 1, 3, 4).repeat(3, 1, 1, 1)
    out = random_pixels(x, seed=0)
    assert out.shape == x.shape
    for a, b in zip(x, out, strict=True):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
    assert not torch.equal(out[0], out[2])
