"""Probe translation equivariance and invariance (and their absence for rotation).

Convolution commutes with shifts: conv(shift(x)) = shift(conv(x)) away from the borders (equivariance).
Pooling after it makes the output change little when the input moves by less than a pooling window (local
invariance). Neither is equivariant to rotation or scaling: rotating the input does not rotate the output.
"""

from __future__ import annotations

import torch
from torch import nn


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def _interior(t: torch.Tensor, margin: int) -> torch.Tensor:
    return t[..., margin : t.shape[-2] - margin, margin : t.shape[-1] - margin]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@torch.no_grad()
def shift_equivariance(layer: nn.Module, x: torch.Tensor, shift: int = 2, margin: int | None = None) -> float:
    """Relative error between layer(shift(x)) and shift(layer(x)) away from the borders (0 = equivariant).

    ``layer`` must keep the spatial size (stride 1, 'same' padding); ``x`` is (N, C, H, W).

    Raises:
        ValueError: a layer that changes the spatial size (a stride s moves its output by shift / s pixels, so the
            comparison would not measure equivariance), or an output with nothing left inside the margin (the
            error of no pixels would read 0, "equivariant").
    """
    margin = margin if margin is not None else 2 * shift + 4
    out = layer(x)
    if tuple(out.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(f"shift_equivariance needs a layer that keeps the spatial size (stride 1, 'same' padding): "
                         f"it maps {tuple(x.shape[-2:])} to {tuple(out.shape[-2:])}; probe the layer with stride 1 "
                         f"and padding=kernel_size // 2")
    if min(out.shape[-2:]) <= 2 * margin:
        raise ValueError(f"shift_equivariance compares outputs at least margin={margin} pixels from the borders, "
                         f"and a {tuple(out.shape[-2:])} output has none: use images larger than {2 * margin} "
                         f"pixels, or a smaller shift or margin")
    a = layer(_shift(x, shift, shift))
    b = _shift(out, shift, shift)
    return _rel(_interior(a, margin), _interior(b, margin))


@torch.no_grad()
def shift_sensitivity(layer: nn.Module, x: torch.Tensor, shift: int = 1) -> float:
    """Relative change of layer's output when the input moves by ``shift`` pixels (0 = invariant)."""
    return _rel(layer(_shift(x, shift, shift)), layer(x))


@torch.no_grad()
def rotation_equivariance(layer: nn.Module, x: torch.Tensor) -> float:
    """Relative error between layer(rot90(x)) and rot90(layer(x)) (0 would mean rotation-equivariant)."""
    a = layer(torch.rot90(x, 1, dims=(-2, -1)))
    b = torch.rot90(layer(x), 1, dims=(-2, -1))
    return _rel(a, b)


def probe(x: torch.Tensor, channels: int = 8, kernel: int = 5, pool: int = 4, seed: int = 0) -> dict[str, float]:
    """Run every probe on a random conv layer (and conv + max-pool) over images ``x`` of shape (N, C, H, W). The
    layer is drawn with ``seed`` on a fork of torch's RNG: the caller's random stream is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        conv = nn.Conv2d(x.shape[1], channels, kernel, padding=kernel // 2, bias=False)
    pooled = nn.Sequential(conv, nn.MaxPool2d(pool))
    return {
        "conv shift equivariance error": shift_equivariance(conv, x),
        "conv change under a 1-pixel shift": shift_sensitivity(conv, x),
        "conv+pool change under a 1-pixel shift": shift_sensitivity(pooled, x),
        "conv rotation equivariance error": rotation_equivariance(conv, x),
    }
