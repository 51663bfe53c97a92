"""Data augmentation (data/augment.py): seeded, and applied to training batches only."""

import pytest
import torch

from trainwell.data.augment import augment_image, augment_signal, build, gaussian_noise


def test_augmentations_are_seeded_and_training_only():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 40)
    a, b = augment_signal(x, g1, shift=3, scale=0.2), augment_signal(x, g2, shift=3, scale=0.2)
    assert torch.equal(a, b) and not torch.equal(a, x)
    shifted = augment_signal(x, torch.Generator().manual_seed(1), shift=3, scale=0.0)
    for i in range(8):  # each example is a circular shift of itself
        assert any(torch.equal(shifted[i], torch.roll(x[i], k, dims=-1)) for k in range(-3, 4))
    img = torch.randn(6, 3, 8, 8)
    out = augment_image(img, torch.Generator().manual_seed(0), crop_padding=2, flip=True)
    assert out.shape == img.shape
    flipped = augment_image(img, torch.Generator().manual_seed(0), flip=True)
    for i in range(6):
        assert torch.equal(flipped[i], img[i]) or torch.equal(flipped[i], img[i].flip(-1))
    noisy = gaussian_noise(torch.zeros(100000), 0.5, torch.Generator().manual_seed(0))
    assert float(noisy.std()) == pytest.approx(0.5, rel=0.02)
    assert build("none") is None
