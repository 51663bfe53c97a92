"""Refuse a model or input that cannot fit in memory before allocating it, with the number.

The model is built once on PyTorch's ``meta`` device (shapes only, no storage) to count its parameters; training
in float32 needs about four copies of them (weights, gradients and Adam's two moments).

Example:
    >>> from torch import nn
    >>> check_model_fits(lambda: nn.Linear(10, 10), "model")
    110
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from torch import nn

from trainwell.errors import ConfigError

BYTES_PER_PARAM = 4 * 4  # float32 weights, gradients and two optimizer moments


def physical_memory() -> int:
    """Bytes of RAM on this machine (a large number where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**40


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_model_fits(build: Callable[[], nn.Module], what: str) -> int:
    """Build ``build()`` on the meta device and refuse it if training it would need more than this machine's RAM.

    Returns the number of parameters.
    """
    with torch.device("meta"):
        model = build()
    n = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    need, have = n * BYTES_PER_PARAM, physical_memory()
    if need > have:
        raise ConfigError(f"{what} would have {n:,} parameters, about {_gib(need)} to train in float32 (weights, "
                          f"gradients, optimizer state); this machine has {_gib(have)}: make it smaller")
    return n


def check_input_fits(shape: tuple[int, ...], what: str) -> None:
    """Refuse an input shape whose single float32 example takes more than a quarter of this machine's RAM."""
    need, have = math.prod(shape) * 4, physical_memory()
    if need > have // 4:
        raise ConfigError(f"{what} {'x'.join(map(str, shape))} is {math.prod(shape):,} values, {_gib(need)} per "
                          f"example as float32; this machine has {_gib(have)}: use a smaller shape")
