"""Explicit convolution (cnn/conv.py) against numpy and torch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainwell.cnn import conv
from trainwell.cnn.geometry import GeometryError


def test_convolve1d_matches_numpy():
    x, w = torch.randn(7, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    np.testing.assert_allclose(conv.convolve1d(x, w).numpy(), np.convolve(x.numpy(), w.numpy()), atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_explicit_2d_convolution_equals_torch(seed):
    g = torch.Generator().manual_seed(seed)
    c, d = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 5, (1,), generator=g))
    f = int(torch.randint(1, 4, (1,), generator=g))
    stride, padding = int(torch.randint(1, 3, (1,), generator=g)), int(torch.randint(0, 2, (1,), generator=g))
    size = f + stride * int(torch.randint(1, 5, (1,), generator=g)) - 2 * padding
    size = max(size, f)
    while (size - f + 2 * padding) % stride:
        size += 1
    x = torch.randn(2, c, size, size + stride, generator=g, dtype=torch.float64)
    w = torch.randn(d, c, f, f, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, w, b, stride=stride, padding=padding)
    for impl in (conv.conv2d_loop, conv.conv2d_unfold):
        assert torch.allclose(impl(x, w, b, stride=stride, padding=padding), ref, atol=1e-10)
    flipped = F.conv2d(x, torch.flip(w, dims=(2, 3)), b, stride=stride, padding=padding)
    assert torch.allclose(conv.conv2d_unfold(x, w, b, stride=stride, padding=padding, flip=True), flipped)


@pytest.mark.parametrize("stride, padding, f", [(1, 0, 3), (2, 1, 4), (3, 2, 5)])
def test_explicit_1d_convolution_equals_torch(stride, padding, f):
    length = 20 + (-(20 - f + 2 * padding)) % stride
    x, w, b = torch.randn(3, 2, length), torch.randn(4, 2, f), torch.randn(4)
    ref = F.conv1d(x, w, b, stride=stride, padding=padding)
    assert torch.allclose(conv.conv1d_loop(x, w, b, stride, padding), ref, atol=1e-5)
    assert torch.allclose(conv.conv1d_unfold(x, w, b, stride, padding), ref, atol=1e-5)
    assert torch.allclose(conv.conv1d_unfold(x[0], w, None, stride, padding, flip=True),
                          F.conv1d(x[:1], torch.flip(w, dims=(2,)), None, stride, padding)[0], atol=1e-5)


def test_convolution_flips_the_kernel_and_cross_correlation_does_not():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0  # an impulse: convolution reproduces the kernel, correlation its 180-degree rotation
    k = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert torch.equal(conv.conv2d_unfold(x, k, padding=1, flip=True)[0, 0, 1:4, 1:4], k[0, 0])
    assert torch.equal(conv.conv2d_unfold(x, k, padding=1)[0, 0, 1:4, 1:4], torch.flip(k[0, 0], dims=(0, 1)))


def test_explicit_conv_rejects_impossible_geometry():
    with pytest.raises(GeometryError, match="not an integer"):
        conv.conv2d_loop(torch.randn(1, 1, 10, 10), torch.randn(1, 1, 3, 3), stride=2)
