"""Every epoch draws its batches in the same order: a ``DataLoader(..., shuffle=True,
generator=torch.Generator().manual_seed(42))`` re-created each epoch (or a ``torch.manual_seed(0)`` at the top of
each epoch) gives every epoch the permutation of the first, and ``shuffle=False`` never permutes. The model then
sees the same batches in the same order every epoch, which SGD's convergence arguments assume it does not
(Bottou 2012, "Stochastic gradient descent tricks": shuffle the examples every epoch).

Read from the targets given to ``w.step(loss, y=y)``: the sequence of batches' targets repeats exactly with a
period of p steps (an epoch: the spacing of ``w.validate()`` calls when they are made once per epoch), while a
shuffling sampler (torch's ``RandomSampler``, what ``shuffle=True`` builds) was iterated more than once: the loop
meant to shuffle. A loop that walks its data in one fixed order by design (``shuffle=False``, slices of a tensor
shuffled once) passes."""

from __future__ import annotations

import math

import torch
from torch.utils.data import RandomSampler

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.verdict import Verdict

NAME = "loop: batch order"
#: the verdict's value starts with this: the order does not explain the loss curve's reading
SAME_ORDER = "every epoch draws the batches in the same order"
MIN_PERIOD = 3  # steps per epoch: fewer is one fixed batch or two (a deliberate overfit test)
KEPT = 512  # the watch keeps the targets of the first 512 w.step calls
MIN_BITS = 64  # the repetition observed must be this unlikely by chance (-log2 of its probability)


class SamplerCount(ReadsCalls):
    """Counts the iterations of torch's ``RandomSampler`` (one per epoch of a ``DataLoader(shuffle=True)``) between
    :meth:`start` and :meth:`stop`; several may count at once."""

    patched = (RandomSampler, "__iter__")

    def __init__(self) -> None:
        self.count = 0

    def saw(self, sampler: RandomSampler) -> None:
        self.count += 1


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


def same_order(ys: list[torch.Tensor], calls: int, validations: list[int], shuffles: int) -> Verdict | None:
    """A warn when the targets of consecutive epochs come in the same batch order although the loop shuffles.
    ``ys``: each ``w.step`` call's targets (from the first call on), ``calls``: how many ``w.step`` calls were
    made, ``validations``: the number of steps before each ``w.validate()`` call, ``shuffles``: how many times a
    ``RandomSampler`` was iterated. None when the order differs, is fixed by design (no shuffling sampler), or
    cannot be read (not every call gave y, fewer than two epochs)."""
    if shuffles < 2 or len(ys) < 2 * MIN_PERIOD or len(ys) != min(calls, KEPT):
        return None
    p = _period(_fingerprints(ys))
    if p is None:
        return None
    spacing = {b - a for a, b in zip([0, *validations], validations, strict=False)}
    epoch = "the steps between w.validate() calls" if spacing == {p} else "one epoch?"
    return Verdict(NAME, "warn", f"{SAME_ORDER}: the targets of {len(ys)} steps repeat exactly every {p} steps "
                   f"({epoch}), batch for batch", "a new order every epoch",
                   "the DataLoader's shuffle restarts from the same seed each epoch (a DataLoader re-created with "
                   "generator=torch.Generator().manual_seed(...), or torch.manual_seed() each epoch): build the "
                   "DataLoader once, re-seed with the epoch number, or keep one generator")
