"""A weight that sits exactly on kinks: a disagreement the gradient check must not read as a wrong backward.

A zero-initialized weight that scales a branch (the last BatchNorm's gamma of each residual branch, Goyal et al.
2017, "Accurate, Large Minibatch SGD") makes the branch exactly 0, so ``relu(x + gamma * z)`` sits on its kink at
every position where ``x`` is exactly 0 (the output of the ReLU before it). Autograd then takes ReLU's slope at 0
(0), while the centred difference averages the slopes on both sides; summed over many positions with gradients of
both signs, the two one-sided slopes can agree by chance, so their jump does not show the kink. A step of a few
``h`` off the point leaves the kinks on one side: there autograd and the centred difference agree when the backward
is right, and still disagree when a term is cut from the graph (a value taken with ``.item()``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

_OFF = 4.0  # how many h the point is moved: [w + 3h, w + 5h] stays on one side of a kink at w


def _agrees_at(objective: Callable[[], torch.Tensor], p: torch.Tensor, at: tuple[int, ...], point: float,
               h: float, floor: float) -> bool:
    """Whether autograd's derivative and the centred difference of step ``h`` agree at ``p[at] = point`` (within
    ``floor``, or a relative error of 1e-4)."""
    p[at] = point
    with torch.enable_grad():
        value = objective()
        grad = torch.autograd.grad(value, p, allow_unused=True)[0] if value.requires_grad else None
    a = 0.0 if grad is None else float(grad[at])
    p[at] = point + h
    plus = float(objective())
    p[at] = point - h
    num = (plus - float(objective())) / (2 * h)
    return abs(a - num) <= floor or abs(a - num) <= 1e-4 * max(abs(a), abs(num))


@torch.no_grad()
def on_kink(objective: Callable[[], torch.Tensor], p: torch.Tensor, at: tuple[int, ...], h: float,
            floor: float) -> bool:
    """Whether autograd and the centred difference agree a few ``h`` to one side of ``p[at]`` or the other, the
    disagreement at ``p[at]`` itself then coming from kinks exactly there. ``p[at]`` is restored."""
    old = float(p[at])
    try:
        return any(_agrees_at(objective, p, at, old + side * _OFF * h, h, floor) for side in (1.0, -1.0))
    finally:
        p[at] = old
