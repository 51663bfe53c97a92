"""A validation set evaluated more than once per epoch, read as one validation per epoch.

A loop that evaluates its validation set twice after each epoch, once for the loss and once for the accuracy (an
``evaluate(loader)`` returning both, called for each), scores the same weights on the same examples twice:
``trainwell watch`` reads each pass as a validation of its own, and ``w.validate`` may be given both. The second
has no training step since the first: the training loss beside it would be its last batch's alone, and the
validation curve would count every epoch twice (no rise "in a row" is ever seen across the repeated, equal values).

Read from the validations' step counts and values: every step count that was validated has the same number k >= 2
of validations (two step counts at least; the last may have more: a final evaluation after the loop), each group's
values equal. The epochs that trained nothing after an
iterator was used up (:mod:`~trainwell.doctor.empty_epochs`) validate at one step count only, and a validation
and a test loss given in turn differ: neither is read as repeats.
"""

from __future__ import annotations

import math
from itertools import groupby

#: the relative difference within which two validations' values are the same evaluation's
SAME = 1e-6


def repeats(marks: list[tuple]) -> list[bool]:
    """For each validation ``(steps, value, ...)`` in ``marks``, whether it repeats the one before it (the same
    steps and value, in a run where every validated step count has the same number, two or more, of them; the last
    one that number or more)."""
    groups = [list(g) for _, g in groupby(marks, key=lambda m: m[0])]
    sizes = {len(g) for g in groups[:-1]}
    if len(groups) < 2 or len(sizes) != 1 or sizes == {1} or len(groups[-1]) < min(sizes) or \
            len({m[0] for m in marks}) != len(groups):
        return [False] * len(marks)
    if not all(math.isclose(m[1], g[0][1], rel_tol=SAME, abs_tol=1e-12) for g in groups for m in g):
        return [False] * len(marks)
    return [i > 0 for g in groups for i in range(len(g))]


def once_each(marks: list[tuple]) -> list[tuple]:
    """``marks`` without the validations that repeat the one before (see :func:`repeats`)."""
    return [m for m, again in zip(marks, repeats(marks), strict=True) if not again]


__all__ = ["once_each", "repeats"]
