"""A coordinate network on random Fourier features (Tancik et al. 2020) fits the pre-flight's 192 training pixels
exactly and oscillates between them: no held-out gain over a constant, as labels shuffled apart from their inputs
show. Each held-out pixel's nearest training pixel tells the two apart: a smooth image follows its coordinates
(information: the subset is too sparse for the features' scale), shuffled values do not (the warning stands)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.baseline import input_independent_baseline


class FourierField(nn.Module):
    """gamma(v) = [sin 2 pi B v, cos 2 pi B v] with B ~ N(0, sigma^2) fixed, then an MLP to the pixel's value."""

    def __init__(self, features=32, sigma=10.0, hidden=64):
        super().__init__()
        self.register_buffer("B", torch.randn(2, features) * sigma)
        self.mlp = nn.Sequential(nn.Linear(2 * features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, v):
        p = 2 * math.pi * v @ self.B
        return self.mlp(torch.cat([p.sin(), p.cos()], -1)).squeeze(-1)


def _pixels(n=256):
    """``n`` pixels drawn from a 64 x 64 image of a smooth pattern and an edge, as a training loader's first batches
    hand them over: coordinates in [0, 1]^2 and values."""
    g = torch.linspace(0, 1, 64)
    coords = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    image = (torch.sin(12 * coords[:, 0]) * torch.cos(9 * coords[:, 1]) + (coords.sum(-1) > 1).float()) / 2
    idx = torch.randperm(len(coords))[:n]
    return coords[idx], image[idx]


def test_a_fourier_field_too_fine_for_the_subset_is_information_and_shuffled_pixels_still_warn():
    torch.manual_seed(0)
    x, y = _pixels()
    torch.manual_seed(0)
    field = input_independent_baseline(FourierField(), x, y, F.mse_loss)
    assert field.status == "info", field
    assert "nearest training example predicts its target" in field.value and "Fourier" in field.advice, field
    torch.manual_seed(0)
    shuffled = input_independent_baseline(FourierField(), x, y[torch.randperm(len(y))], F.mse_loss)
    assert shuffled.status == "warn" and "shuffled" in shuffled.advice, shuffled
