"""A loss that free outputs drive to -inf while the model's own outputs cannot follow: its outputs are tied.

The overfit check fits free outputs to the loss to find its floor. A normalizing flow's loss, the negative
log-likelihood ``0.5 * z^2 + const - log|det J|`` (Dinh et al. 2017, "Density estimation using Real NVP"), reads
two outputs that the model ties together: the log-determinant is the sum of the same coupling layers' log-scales
that make ``z``, and RealNVP bounds each log-scale with ``tanh``. Free outputs take the log-determinant alone to
+inf, and the loss to -inf; the flow's own loss stays above ``-(a bound) * (scaled dimensions)``. A log-determinant
added instead of subtracted, or log-scales left unbounded under it, lets the flow itself contract every example to
a point: its loss falls as the free outputs' does.

The reading trains a copy of the model on the examples as the overfit does, and asks whether its own loss falls
more than :data:`~trainwell.doctor.unbounded_loss.DEPTH` times the start's size (plus 1) below 0, as the loop's
reading of an unbounded loss asks (:mod:`~trainwell.doctor.unbounded_loss`): when it does not, the free outputs'
-inf says nothing of the model's loss, and its floor is unknown. Only outputs of two tensors or more can be tied
so: free outputs of one tensor (a segmentation's scores under a Dice on raw scores) are outputs the model itself can
give, and their -inf is the loss's own (its model may just fall slower than the overfit's steps)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.fitting import _train_copy
from trainwell.doctor.inputs import Inputs
from trainwell.doctor.unbounded_loss import DEPTH


def held_above(model: nn.Module, x: torch.Tensor | Inputs, y, loss_fn: Callable, start: float, floor: float,
               steps: int, lr: float, seed: int, several: bool = True) -> float | None:
    """Where free outputs drive the loss from ``start`` to a ``floor`` far below (more than 100 times the start's
    size, plus 1, below 0 or the start): the loss a trained copy of ``model`` ends at on ``x, y`` when it stays
    finite and above ``-DEPTH * (|start| + 1)`` for all ``steps`` (its outputs are tied). None when the floor is
    not that far below, or the copy falls below that too, or leaves the finite numbers (the loss is unbounded
    for the model too)."""
    if not several or not floor < min(start, 0.0) - 100 * (abs(start) + 1):
        return None
    depth = -DEPTH * (abs(start) + 1)
    _, final = _train_copy(model, x, y, loss_fn, steps, lr, seed, stop_below=depth)
    return final if math.isfinite(final) and final >= depth else None
