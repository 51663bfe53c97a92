"""Variance propagation through an average pool: a CNN body (two ReLU convolutions, ``AdaptiveAvgPool2d(2)`` on the
8x8 map, a dense ReLU layer) at PyTorch's default init. The pool hands each of its 16 inputs 1/16 of its output's
gradient, dividing the gradient norm by 4 by construction; that factor is not read as a vanishing signal. The same
body initialized with tiny weights (std 0.01, the bug) still vanishes."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.activations import variance_propagation


def _model(tiny: bool) -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 64), nn.ReLU())
    model = nn.Sequential(body, nn.Linear(64, 5))
    if tiny:
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, std=0.01)
    return model


def _data():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(128, 1, 8, 8, generator=g) < 0.3).float()
    return x, torch.randint(0, 5, (128,), generator=g)


def test_an_average_pools_division_of_the_gradient_is_not_a_vanishing_signal():
    x, y = _data()
    verdict = variance_propagation(_model(tiny=False), x, y, F.cross_entropy)
    assert verdict.status == "pass", verdict


def test_tiny_weights_around_an_average_pool_still_vanish():
    x, y = _data()
    verdict = variance_propagation(_model(tiny=True), x, y, F.cross_entropy)
    assert verdict.status in ("warn", "fail") and "vanish" in verdict.advice, verdict
