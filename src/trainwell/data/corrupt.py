"""Corruptions of a dataset, as in Zhang et al., "Understanding deep learning requires rethinking
generalization" (ICLR 2017): label noise, random labels, random pixels. Each takes its own seed.
"""

from __future__ import annotations

import torch

from trainwell.errors import DataError


def label_noise(y: torch.Tensor, fraction: float, num_classes: int, seed: int) -> torch.Tensor:
    """Return a copy of ``y`` where a random ``fraction`` of labels are resampled uniformly from all classes.

    A resampled label may land on its true class (as in the MNIST-1D double-descent notebook), so the share of
    wrong labels is about ``fraction * (1 - 1/num_classes)``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise DataError(f"label noise fraction = {fraction} is not allowed: use a number in [0, 1]")
    g = torch.Generator().manual_seed(seed)
    out = y.clone()
    n = int(round(len(y) * fraction))
    idx = torch.randperm(len(y), generator=g)[:n]
    out[idx] = torch.randint(0, num_classes, (n,), generator=g, dtype=y.dtype)
    return out


def random_labels(y: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Return labels drawn uniformly at random, fixed once (the same for every epoch)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, y.shape, generator=g, dtype=y.dtype)


def random_pixels(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Return ``x`` with each example's features shuffled by its own random permutation."""
    g = torch.Generator().manual_seed(seed)
    flat = x.reshape(len(x), -1)
    keys = torch.rand(flat.shape, generator=g)
    perm = keys.argsort(dim=1)
    return flat.gather(1, perm).reshape(x.shape)
