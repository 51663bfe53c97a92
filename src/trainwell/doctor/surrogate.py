"""A piecewise-constant forward under a surrogate backward: what the gradient check cannot check.

A quantizer (``round``), a binarizer (``sign``) or a codebook look-up (VQ-VAE, van den Oord et al. 2017) is flat
between its steps: its true gradient is 0 almost everywhere. Quantization-aware training and binary networks pass
a surrogate gradient through it instead, the straight-through estimator (Bengio, Leonard & Courville 2013,
"Estimating or propagating gradients through stochastic neurons for conditional computation"), written as a
custom ``autograd.Function`` or as ``x + (q(x) - x).detach()``. Centred differences then read exactly 0 where
autograd reads the surrogate: a disagreement by design, not a wrong backward. It is told from a backward that
gives a gradient to a weight the loss does not depend on at all by a larger step, which crosses a step of the
forward and moves the loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: the reading of a disagreement at piecewise-constant coordinates
STEP_ADVICE = ("the forward is piecewise constant here (quantization, rounding, sign); its backward is a surrogate "
               "(straight-through) that the numbers cannot check: fine by design, else look for round/sign/argmax "
               "with a custom backward")

_SCALES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # relative to the weight's magnitude (at least 0.1)


@torch.no_grad()
def flat(objective: Callable[[], torch.Tensor], p: torch.Tensor, at: tuple[int, ...], h: float,
         known: tuple[float, float] | None = None) -> bool:
    """Whether ``objective()`` is exactly the same at ``p[at] + h`` and ``p[at] - h`` (``known``: those two values,
    if already evaluated). ``p[at]`` is restored."""
    if known is None:
        old = float(p[at])
        try:
            p[at] = old + h
            plus = float(objective())
            p[at] = old - h
            known = (plus, float(objective()))
        finally:
            p[at] = old
    return known[0] == known[1]


@torch.no_grad()
def steps(objective: Callable[[], torch.Tensor], p: torch.Tensor, at: tuple[int, ...]) -> bool:
    """Whether the loss ``objective()``, flat to a small step of ``p[at]``, moves under a larger one: the forward
    is piecewise constant in that weight. ``p[at]`` is restored."""
    old = float(p[at])
    base = float(objective())
    try:
        for scale in _SCALES:
            for sign in (1.0, -1.0):
                p[at] = old + sign * scale * max(abs(old), 0.1)
                value = float(objective())
                if value != base:
                    return value == value  # a NaN is no step of the forward
    finally:
        p[at] = old
    return False
