"""Whether a regression's inputs carry its targets, read without the model: each held-out example predicted by the
target of its nearest training example in input space (the 1-nearest-neighbour rule, Cover & Hart 1967). A
model that fits its training examples and does no better than a constant on held-out ones has either targets that
do not follow the inputs (shuffled apart from them: the neighbour rule fails too) or too few examples for its own
way of interpolating: a coordinate network on random Fourier features of scale sigma (Tancik et al. 2020) passes
through every training point and oscillates between them when they lie further apart than its features'
wavelengths, ~1 / sigma, while the neighbour rule still follows a smooth target there.

Example:
    >>> import torch, torch.nn.functional as F
    >>> x = torch.linspace(0, 1, 40).unsqueeze(1)
    >>> y = torch.sin(6 * x).squeeze(1)
    >>> loss, _ = neighbour_loss(x[::2], y[::2], x[1::2], y[1::2], F.mse_loss)
    >>> round(loss, 4)
    0.0112
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainwell.doctor.loss_kinds import _scalar


def neighbour_loss(x_train, y_train, x_held, y_held, loss_fn: Callable) -> tuple[float, float] | None:
    """``(loss, distance)``: ``loss_fn`` of each held-out example's nearest training example's target (Euclidean
    distance over the flattened inputs) against its own, and the median distance to those neighbours; None where
    the rule does not apply: inputs that are not one floating-point tensor, targets that are not floating point
    (a class's neighbour is read by :mod:`~trainwell.doctor.neighbour_classes`), or a loss that cannot take
    targets in the outputs' place."""
    tensors = (x_train, y_train, x_held, y_held)
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in tensors) or \
            not len(x_train) or not len(x_held):
        return None
    with torch.no_grad():
        distances = torch.cdist(x_held.reshape(len(x_held), -1).double(), x_train.reshape(len(x_train), -1).double())
        nearest = distances.min(1)
        try:
            loss = _scalar(loss_fn(y_train[nearest.indices], y_held))
        except (RuntimeError, ValueError, TypeError, IndexError):
            return None
    return loss, float(nearest.values.median())
