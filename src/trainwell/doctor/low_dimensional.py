"""Low-dimensional inputs in the overfit check: which examples stand for the data, and how much of a noisy
regression's loss no smooth function of the inputs removes.

With a few input features (a 1-D curve, a 2-D field) the first rows of a sorted or gridded batch cover a sliver of
the input range (``torch.linspace(-3, 3, 400)[:20]`` is [-3, -2.7]): the check takes rows spread evenly over the
batch instead. Nearby inputs there carry targets that differ by their noise, and memorizing that noise takes a
function as steep as the noise over the inputs' spacing, which a small smooth network reaches slowly (the
spectral bias of networks, Rahaman et al. 2019). How much of the loss is noise is read from the data: the loss of
each example given the best output of its nearest neighbour (the nearest-neighbour rule, Cover & Hart 1967: its
risk is about twice the lowest any function of the inputs reaches; 2 sigma^2 for MSE, the difference-based noise
estimate of Rice 1984)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainwell.doctor.loss_kinds import _scalar

#: the most input features for which rows are spread over the batch and the noise is read from neighbours
MAX_FEATURES = 4


def low_dimensional(x) -> bool:
    """Whether ``x`` is a floating-point (N, d) tensor of at most :data:`MAX_FEATURES` features, each row one
    point of a low-dimensional input space."""
    return isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() == 2 and \
        0 < x.shape[1] <= MAX_FEATURES


def spread_rows(x, y, n: int) -> tuple[object, object]:
    """``n`` examples of ``(x, y)``: rows spread evenly over the batch for low-dimensional inputs (a sorted grid's
    first rows cover a sliver of its range), the first ``n`` otherwise."""
    if not low_dimensional(x) or len(x) <= n or not isinstance(y, torch.Tensor) or len(y) != len(x):
        return x[:n], y[:n]
    index = torch.linspace(0, len(x) - 1, n).round().long()
    return x[index], y[index]


def neighbour_loss(x, outputs, y: torch.Tensor, loss_fn: Callable) -> float | None:
    """The loss when each example gets the output fitted to its nearest neighbour among ``x`` (``outputs``: the
    free outputs fitted per example, the floor's): about twice the noise a smooth function of the inputs leaves.
    None for inputs that are not low-dimensional, or outputs not one tensor of one row per example."""
    if not low_dimensional(x) or not isinstance(outputs, torch.Tensor) or outputs.dim() == 0 or \
            len(outputs) != len(x) or len(x) < 3:
        return None
    with torch.no_grad():
        dist = torch.cdist(x.double(), x.double())
        dist.fill_diagonal_(math.inf)
        try:
            value = _scalar(loss_fn(outputs[dist.argmin(1)], y))
        except Exception:  # noqa: BLE001 - a loss that refuses the borrowed outputs: no reading
            return None
    return value if math.isfinite(value) else None
