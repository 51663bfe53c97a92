"""Pooling layers (nn/pool.py) and their kinds in a CNN's block spec."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.nn.pool import GaussianPool, L2Pool


def test_pooling_layers():
    x = torch.randn(2, 3, 8, 8)
    # the lecture's L2 pooling (Goodfellow sec. 9.3) is torch's LPPool with p = 2: root of the sum of squares
    assert torch.allclose(L2Pool(2)(x), nn.LPPool2d(2, 2)(x), atol=1e-5)
    assert torch.allclose(L2Pool(3, 2)(x), nn.LPPool2d(2, 3, 2)(x), atol=1e-5)
    assert torch.allclose(L2Pool(2)(x[..., 0, :]), nn.LPPool1d(2, 2)(x[..., 0, :]), atol=1e-5)
    assert torch.allclose(L2Pool(2, rms=True)(x), torch.sqrt(F.avg_pool2d(x**2, 2)), atol=1e-5)
    zeros = torch.zeros(1, 1, 4, 4, requires_grad=True)
    out = L2Pool(2)(zeros)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(1, 1, 2, 2)) and torch.equal(zeros.grad, torch.zeros(1, 1, 4, 4))
    const = torch.full((1, 2, 6, 6), 5.0)
    assert torch.allclose(GaussianPool(3, sigma=1.0)(const), torch.full((1, 2, 2, 2), 5.0))
    impulse = torch.zeros(1, 1, 3, 3)
    impulse[0, 0, 1, 1] = 1.0
    centre = GaussianPool(3, sigma=1.0)(impulse).item()
    impulse2 = torch.zeros(1, 1, 3, 3)
    impulse2[0, 0, 0, 0] = 1.0
    assert centre > GaussianPool(3, sigma=1.0)(impulse2).item()  # the centre weighs most


def test_pool_kinds_in_the_block_spec():
    from trainwell.config import ModelConfig
    from trainwell.nn.models import build_model

    blocks = [{"type": "conv", "channels": 4, "kernel": 3, "padding": 1}, {"type": "pool", "kind": "l2"},
              {"type": "pool", "kind": "rms", "kernel": 1}, {"type": "pool", "kind": "gaussian", "kernel": 2,
                                                               "sigma": 0.5}]
    m = build_model(ModelConfig(kind="cnn", blocks=blocks), (1, 8, 8), 3)
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    assert [(type(p).__name__, getattr(p, "rms", None)) for p in m[2:4]] == [("L2Pool", False), ("L2Pool", True)]


def test_a_window_that_is_not_a_whole_number_of_positions_is_refused_in_one_line():
    import pytest

    from trainwell.nn.pool import l2_pool

    x = torch.randn(2, 3, 9, 9)
    for make in (lambda **kw: GaussianPool(**kw), lambda **kw: L2Pool(**kw),
                 lambda **kw: (lambda t: l2_pool(t, **kw))):
        for bad, named in (({"kernel": 0}, "kernel=0"), ({"kernel": 2.5}, "kernel=2.5"),
                           ({"stride": 0}, "stride=0"), ({"kernel": True}, "kernel=True")):
            with pytest.raises(ValueError, match=rf"{named} is not allowed: use a whole number of positions >= 1"):
                make(**bad)(x)
    # the oracle: torch's LPPool and a box average with the same window
    assert torch.allclose(L2Pool(3, 2)(x), F.lp_pool2d(x, 2, 3, 2), atol=1e-6)
    assert torch.allclose(GaussianPool(3, 2, sigma=1e6)(x), F.avg_pool2d(x, 3, 2), atol=1e-5)
