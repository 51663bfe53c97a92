"""``doctor.watch``'s readings that rerun the model: the first observed training forward, on its first few
examples, with the probe's hooks recording nothing of it (a residual block's doubled skip, a normalization over
too few values)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def on_first_rows(probe, forward: tuple | None, read: Callable[[Callable[[], object]], T], rows: int = 4) -> T | None:
    """``read(run)``, where ``run()`` calls the watched model on the first ``rows`` examples of the observed training
    forward ``forward`` (its (args, kwargs)); None without one. Exceptions from ``read`` propagate."""
    if forward is None:
        return None
    args, kwargs = forward
    head = tuple(a[:rows] if isinstance(a, torch.Tensor) and a.dim() else a for a in args)
    kept = {k: v[:rows] if isinstance(v, torch.Tensor) and v.dim() else v for k, v in kwargs.items()}
    probe.reading = True  # the probe's hooks record nothing of this forward
    try:
        return read(lambda: probe.model(*head, **kept))
    finally:
        probe.reading = False
