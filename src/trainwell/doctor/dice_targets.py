"""A soft Dice (or IoU) loss read with no targets given: its binary targets read back from the gradient it sends.

The gradient a soft Dice (or IoU) loss sends to its outputs is affine in each output's target, the same a and b
over a group of outputs (:mod:`~trainwell.doctor.dice_form`): dL/do_i = a y_i + b. Against binary targets (class
indices one-hot along the class axis, a 0/1 mask) each group's gradient then takes two values only, a + b where the
target is 1 and b where it is 0: the targets are read back from it, where a loop hands the loss no saved target to
read (``trainwell watch`` on a Dice written out by hand: ``F.one_hot`` and sums, no loss call of torch's). Which of
the two values is the target's 1 follows the sign of a, which is that of the Dice's denominator (negative on raw
scores that sum below 0): both are tried, and for class indices, the signs that make each position's targets one-hot
along the class axis. The reading is then the targets' own (:func:`~trainwell.doctor.dice_form.read_dice`): the
gradient's affine fit, the smoothing, the weights, and the loss's value against the Dice read from them, which no
other loss with a two-valued gradient meets (an L1 loss's sign(o - y) reads as a ratio of 1 and is left out; a DQN's
``q * one_hot(actions)`` regressed sends a value per example that no Dice's value matches, and 0 to the actions not
taken, where a Dice's gradient c D / den is not 0). Nothing generic is read from the graph (a one-hot in it is no
target of the outputs it multiplies)."""

from __future__ import annotations

import itertools

import torch

from trainwell.doctor.dice_form import MOST, _groupings, read_dice

#: two gradient values of a group told apart from rounding: each value within this share of their gap of one
TWO_VALUES = 1e-4
#: the most class channels whose sign combinations are tried for one-hot targets
CHANNELS = 10


def _two_valued(g: torch.Tensor, groups: torch.Tensor, k: int) -> torch.Tensor | None:
    """Per output, whether its gradient is its group's lower value, when every group's gradient takes exactly two
    values (up to :data:`TWO_VALUES` of their gap); else None."""
    lo = torch.full((k,), torch.inf, dtype=g.dtype).scatter_reduce(0, groups, g, "amin")
    hi = torch.full((k,), -torch.inf, dtype=g.dtype).scatter_reduce(0, groups, g, "amax")
    gap = hi - lo
    if not bool((gap > 0).all()):
        return None  # a group of one value: which outputs are targets cannot be told
    low = (g - lo[groups]).abs() <= TWO_VALUES * gap[groups]
    if not bool((low | ((hi[groups] - g).abs() <= TWO_VALUES * gap[groups])).all()):
        return None
    return low


def candidate_targets(z: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    """The binary targets (of ``z``'s shape, float64) a soft Dice or IoU loss's gradient ``g`` can have been
    computed against: per grouping of the outputs whose gradient is two-valued in every group, the lower values as
    the 1s, the higher ones, and, for (B, C, ...) outputs grouped by class channel, each channel's choice that makes
    the targets one-hot along axis 1."""
    if not z.is_floating_point() or g is None or g.shape != z.shape or not 16 <= z.numel() <= MOST:
        return []
    gd = g.detach().double().flatten().cpu()
    if not bool(torch.isfinite(gd).all()):
        return []
    found: list[torch.Tensor] = []
    for n, groups in enumerate(_groupings(z)):
        groups = groups.cpu()
        k = int(groups.max()) + 1
        low = _two_valued(gd, groups, k)
        if low is None:
            continue
        if n == 2 and k <= CHANNELS:  # per class channel: the channels' signs giving one-hot targets
            per = low.reshape(z.shape).movedim(1, 0).reshape(k, -1)
            for flips in itertools.product((False, True), repeat=k):
                t = per ^ torch.tensor(flips)[:, None]
                if bool((t.sum(0) == 1).all()):
                    found.append(t.reshape((k, z.shape[0], *z.shape[2:])).movedim(0, 1).double())
        found += [low.reshape(z.shape).double(), (~low).reshape(z.shape).double()]
    return [t for t in found if _moved(gd, t.flatten())]


def _moved(g: torch.Tensor, t: torch.Tensor) -> bool:
    """Whether every output whose target is 0 has a gradient: a Dice's b = c D / den, 0 only where its numerator
    2 sum(o y) + s is (the outputs a loss of the target outputs alone leaves untouched: a DQN's untaken actions)."""
    zero = g[t == 0]
    return zero.numel() > 0 and bool((zero != 0).all())


def read_dice_without_targets(z: torch.Tensor, g: torch.Tensor, value: float, unscale: float = 1.0) -> dict | None:
    """:func:`~trainwell.doctor.dice_form.read_dice` on the targets read back from the gradient
    (:func:`candidate_targets`), the first that reads; None when none does."""
    for t in candidate_targets(z, g)[:8]:
        read = read_dice(z, g, t.to(z.device), value, unscale)
        if read is not None:
            return read
    return None


__all__ = ["candidate_targets", "read_dice_without_targets"]
