"""Pooling layers from the lecture beyond torch's max and average: L2 pooling and distance-weighted average.

- L2 pooling: the square root of the *sum* of squares over each window (the lecture; Goodfellow et al. 2016,
  sec. 9.3; torch's ``LPPool`` with p = 2). ``rms=True`` gives the root mean square instead (Boureau et al.
  2010), a factor sqrt(window size) smaller, which keeps the scale of the input.
- Distance-weighted average: a fixed Gaussian weighting by distance to the window centre, normalized to sum 1
  (a blur followed by subsampling, like the C-cells of the Neocognitron).

Both work on 1-D (N, C, L) and 2-D (N, C, H, W) inputs.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn


def window(kernel, stride) -> tuple[int, int]:
    """``(kernel, stride)`` checked as whole numbers of positions >= 1 (``stride=None``: the kernel, windows that
    tile the input), else a one-line error naming the argument."""
    for name, value in (("kernel", kernel), ("stride", stride)):
        if value is None and name == "stride":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}={value!r} is not allowed: use a whole number of positions >= 1"
                             + (" (or stride=None, the kernel)" if name == "stride" else ""))
    return int(kernel), int(kernel if stride is None else stride)


def _avg(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    return (F.avg_pool1d if x.dim() == 3 else F.avg_pool2d)(x, kernel, stride)


def l2_pool(x: torch.Tensor, kernel: int = 2, stride: int | None = None, rms: bool = False) -> torch.Tensor:
    """sqrt(sum of x^2) over each ``kernel`` window (per channel), every ``stride`` positions; sqrt(mean) with ``rms``.

    An all-zero window gives exactly 0, with gradient 0 (sqrt has no finite derivative at 0; 0 is a subgradient).

    Raises:
        ValueError: a ``kernel`` or ``stride`` that is not a whole number >= 1.
    """
    kernel, stride = window(kernel, stride)
    mean_sq = _avg(x * x, kernel, stride)
    sq = mean_sq if rms else mean_sq * kernel ** (x.dim() - 2)  # (N, C, L) or (N, C, H, W): window = k^dims
    positive = sq > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), torch.zeros_like(sq))


class L2Pool(nn.Module):
    """Module form of :func:`l2_pool`: sqrt(sum of squares) over each window, or the root mean square with
    ``rms=True``. Config: ``{type = "pool", kind = "l2"}`` / ``kind = "rms"``."""

    def __init__(self, kernel: int = 2, stride: int | None = None, *, rms: bool = False):
        super().__init__()
        (self.kernel, self.stride), self.rms = window(kernel, stride), rms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_pool(x, self.kernel, self.stride, self.rms)

    def geometry(self) -> tuple[int, int]:
        return self.kernel, self.stride

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, rms={self.rms}"


def gaussian_window(kernel: int, sigma: float, dims: int) -> torch.Tensor:
    """Weights exp(-d^2 / 2 sigma^2) by distance d to the window centre, summing to 1."""
    r = torch.arange(kernel, dtype=torch.float32) - (kernel - 1) / 2
    g1 = torch.exp(-(r**2) / (2 * sigma**2))
    g = g1 if dims == 1 else g1[:, None] * g1[None, :]
    return g / g.sum()


class GaussianPool(nn.Module):
    """Distance-weighted (Gaussian) average over each window: a fixed blur, then subsampling."""

    def __init__(self, kernel: int = 3, stride: int | None = None, sigma: float = 1.0):
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"sigma={sigma} is not allowed: use a number > 0")
        (self.kernel, self.stride), self.sigma = window(kernel, stride), sigma
        self.register_buffer("w1", gaussian_window(kernel, sigma, 1), persistent=False)
        self.register_buffer("w2", gaussian_window(kernel, sigma, 2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if x.dim() == 3:
            w = self.w1.to(x.dtype).expand(c, 1, -1)
            return F.conv1d(x, w, stride=self.stride, groups=c)
        w = self.w2.to(x.dtype).expand(c, 1, -1, -1)
        return F.conv2d(x, w, stride=self.stride, groups=c)

    def geometry(self) -> tuple[int, int]:
        return self.kernel, self.stride

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, sigma={self.sigma}"
