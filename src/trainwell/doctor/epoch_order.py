"""Every epoch draws its batches in the same order: a ``DataLoader(..., shuffle=True,
generator=torch.Generator().manual_seed(42))`` re-created each epoch (or a ``torch.manual_seed(0)`` at the top of
each epoch) gives every epoch the permutation of the first, and ``shuffle=False`` never permutes. The model then
sees the same batches in the same order every epoch, which SGD's convergence arguments assume it does not
(Bottou 2012, "Stochastic gradient descent tricks": shuffle the examples every epoch).

Read from the targets given to ``w.step(loss, y=y)``: the sequence of batches' targets repeats exactly with a
period of p steps (an epoch: the spacing of ``w.validate()`` calls when they are made once per epoch)."""

from __future__ import annotations

import math

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: batch order"
#: the verdict's value starts with this: the order does not explain the loss curve's reading
SAME_ORDER = "every epoch draws the batches in the same order"
MIN_PERIOD = 3  # steps per epoch: fewer is one fixed batch or two (a deliberate overfit test)
KEPT = 512  # the watch keeps the targets of the first 512 w.step calls
MIN_BITS = 64  # the repetition observed must be this unlikely by chance (-log2 of its probability)


def _fingerprints(ys: list[torch.Tensor]) -> list[int]:
    return [hash((tuple(y.shape), str(y.dtype), y.detach().cpu().contiguous().numpy().tobytes())) for y in ys]


def _period(keys: list[int]) -> int | None:
    """The smallest p >= MIN_PERIOD such that keys[i] == keys[i + p] for every i, observed over two periods or
    more, with enough distinct keys per period that chance cannot explain it; None otherwise."""
    n = len(keys)
    for p in range(MIN_PERIOD, n // 2 + 1):
        if all(keys[i] == keys[i + p] for i in range(n - p)):
            distinct = len(set(keys[:p]))
            if distinct >= MIN_PERIOD and (n - p) * math.log2(distinct) >= MIN_BITS:
                return p
            return None  # a shorter cycle of few values: not an epoch's order
    return None


def same_order(ys: list[torch.Tensor], calls: int, validations: list[int]) -> Verdict | None:
    """A warn when the targets of consecutive epochs come in the same batch order. ``ys``: each ``w.step`` call's
    targets (from the first call on), ``calls``: how many ``w.step`` calls were made, ``validations``: the number
    of steps before each ``w.validate()`` call. None when the order differs, or it cannot be read (not every call
    gave y, fewer than two epochs)."""
    if len(ys) < 2 * MIN_PERIOD or len(ys) != min(calls, KEPT):
        return None
    p = _period(_fingerprints(ys))
    if p is None:
        return None
    spacing = {b - a for a, b in zip([0, *validations], validations, strict=False)}
    epoch = "the steps between w.validate() calls" if spacing == {p} else "one epoch?"
    return Verdict(NAME, "warn", f"{SAME_ORDER}: the targets of {len(ys)} steps repeat exactly every {p} steps "
                   f"({epoch}), batch for batch", "a new order every epoch",
                   "the loader's shuffle restarts from the same seed each epoch (a DataLoader re-created with "
                   "generator=torch.Generator().manual_seed(...), or torch.manual_seed() each epoch), or "
                   "shuffle=False: build the DataLoader once with shuffle=True, or re-seed with the epoch number, "
                   "or keep one generator")
